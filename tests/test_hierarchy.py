"""Tests for saelab.hierarchy and saelab.absorption: parent/child data, splitting, absorption.

The measurements are checked on hand-built SAEs whose behaviour is known exactly (orthonormal
directions, magnitude-one codes, no noise), then on one small trained run.
"""
import math

import numpy as np
import pytest
import torch

from saelab.absorption import feature_absorption
from saelab.hierarchy import (family_latents, feature_splitting, firing_by_condition,
                              make_hierarchical_data)
from saelab.sae_config import L1Config
from saelab.torch_sae import make_sae
from saelab.train import TrainConfig, train_sae

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

N_PARENTS, N_CHILDREN, D_IN = 4, 3, 32


@pytest.fixture(scope="module")
def data():
    return make_hierarchical_data(4000, d_in=D_IN, n_parents=N_PARENTS, n_children=N_CHILDREN,
                                  p_parent=0.1, p_child=0.75, orthogonal=True, seed=0)


def hand_sae(encoder_rows: torch.Tensor, decoder_rows: torch.Tensor, bias: float = -0.5):
    """An L1 SAE with the given encoder directions (rows) and decoder rows, ReLU(x.e - 0.5)."""
    sae = make_sae(L1Config(decoder_rows.shape[1], decoder_rows.shape[0], l1_coeff=0.0))
    with torch.no_grad():
        sae.W_enc.copy_(encoder_rows.T)  # [d_in, d_sae]
        sae.W_dec.copy_(decoder_rows)  # [d_sae, d_in]
        sae.b_enc.fill_(bias)
        sae.b_dec.zero_()
    return sae.eval()


def codes(sae, x):
    with torch.no_grad():
        return sae.encode(x)


def children_sum(d):
    """[n_parents, d_in]: sum of each parent's child directions."""
    return d.child_dictionary.reshape(N_PARENTS, N_CHILDREN, -1).sum(1)


# ----------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------

def test_hierarchy_structure(data):
    parents, children = data.parent_codes > 0, data.child_codes > 0
    assert data.x.shape == (4000, D_IN) and children.shape == (4000, N_PARENTS * N_CHILDREN)
    assert data.child_parent.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert not bool((children & ~parents[:, data.child_parent]).any())  # child => parent
    per_parent = children.reshape(4000, N_PARENTS, N_CHILDREN).sum(2)
    assert int(per_parent.max()) == 1  # at most one child per parent
    torch.testing.assert_close(data.x, data.parent_codes @ data.parent_dictionary
                               + data.child_codes @ data.child_dictionary)
    # frequencies: p_parent = 0.1 (sd of the estimate 0.0024), p_child = 0.75 given the parent
    assert parents.float().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (per_parent.sum() / parents.sum()).item() == pytest.approx(0.75, abs=0.03)
    every = torch.cat([data.parent_dictionary, data.child_dictionary])  # orthonormal
    torch.testing.assert_close(every @ every.T, torch.eye(16), atol=1e-5, rtol=0)


@pytest.mark.parametrize("orthogonal", [True, False])
def test_child_parent_cosine(orthogonal):
    d = make_hierarchical_data(10, d_in=D_IN, child_parent_cos=0.6, orthogonal=orthogonal,
                               magnitude="uniform", seed=3)
    torch.testing.assert_close(d.child_dictionary.norm(dim=1), torch.ones(12))
    own = d.parent_dictionary[d.child_parent]  # [12, d_in]
    torch.testing.assert_close((own * d.child_dictionary).sum(1), torch.full((12,), 0.6))
    active = torch.cat([d.parent_codes[d.parent_codes > 0], d.child_codes[d.child_codes > 0]])
    assert bool(((active >= 0.5) & (active <= 1.5)).all())


def test_seeded():
    a = make_hierarchical_data(50, seed=1, noise_std=0.1)
    b = make_hierarchical_data(50, seed=1, noise_std=0.1)
    c = make_hierarchical_data(50, seed=2, noise_std=0.1)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)


def test_data_bad_input():
    with pytest.raises(ValueError, match="child_parent_cos must be in \\[0, 1\\), got 1.0"):
        make_hierarchical_data(10, child_parent_cos=1.0)
    with pytest.raises(ValueError,
                       match=r"d_in must be at least n_parents \* \(1 \+ n_children\) = 16"):
        make_hierarchical_data(10, d_in=8, orthogonal=True)
    with pytest.raises(ValueError, match="p_child must be in \\[0, 1\\], got 1.5"):
        make_hierarchical_data(10, p_child=1.5)
    with pytest.raises(ValueError, match="magnitude must be one of"):
        make_hierarchical_data(10, magnitude="exponential")


# ----------------------------------------------------------------------------------------------
# Absorption on hand-built SAEs
# ----------------------------------------------------------------------------------------------

def test_pure_parent_latents_absorb_nothing(data):
    rows = torch.cat([data.parent_dictionary, data.child_dictionary])  # [16, d_in]
    sae = hand_sae(rows, rows)  # latent i fires iff feature i is on
    ab = feature_absorption(codes(sae, data.x), sae.W_dec, data)
    assert ab.parent_latent.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(ab.cosine, 1.0, atol=1e-6)
    np.testing.assert_array_equal(ab.rates, 0.0)
    np.testing.assert_array_equal(ab.child_rates, 0.0)
    np.testing.assert_array_equal(ab.parent_only_recall, 1.0)
    assert ab.valid.all() and ab.mean == 0.0


def test_parent_latent_excluding_children_absorbs_fully(data):
    # the parent latent's encoder subtracts every child direction: P_p + C_c gives 1 - 1 = 0,
    # below the 0.5 threshold, so it fires only on parent-only inputs; the child latents point
    # along P_p + C_c (they absorbed the parent direction)
    enc = torch.cat([data.parent_dictionary - children_sum(data), data.child_dictionary])
    absorbed = data.child_dictionary + data.parent_dictionary[data.child_parent]  # P_p + C_c
    dec = torch.cat([data.parent_dictionary, absorbed / math.sqrt(2)])
    sae = hand_sae(enc, dec)
    ab = feature_absorption(codes(sae, data.x), sae.W_dec, data)
    np.testing.assert_array_equal(ab.rates, 1.0)
    np.testing.assert_array_equal(ab.child_rates, 1.0)
    np.testing.assert_array_equal(ab.parent_only_recall, 1.0)
    assert ab.mean == 1.0


def test_partial_absorption_of_one_child(data):
    # only child 0 of each parent is excluded: that child's rate is 1, its siblings' 0, and the
    # parent's rate is the share of child-active inputs that hold child 0 (about 1/3)
    first = data.child_dictionary.reshape(N_PARENTS, N_CHILDREN, -1)[:, 0]  # [n_parents, d_in]
    enc = torch.cat([data.parent_dictionary - first, data.child_dictionary])
    dec = torch.cat([data.parent_dictionary, data.child_dictionary])
    sae = hand_sae(enc, dec)
    ab = feature_absorption(codes(sae, data.x), sae.W_dec, data)
    np.testing.assert_array_equal(ab.child_rates.reshape(N_PARENTS, N_CHILDREN),
                                  [[1.0, 0.0, 0.0]] * N_PARENTS)
    children = (data.child_codes > 0).reshape(-1, N_PARENTS, N_CHILDREN)
    share = (children[..., 0].sum(0) / children.any(2).sum(0)).numpy()
    np.testing.assert_allclose(ab.rates, share)
    assert 0.2 < ab.mean < 0.45


def test_no_parent_latent_or_broken_latent_gives_nan(data):
    # only child latents: no decoder row is within min_cos of a parent
    sae = hand_sae(data.child_dictionary, data.child_dictionary)
    ab = feature_absorption(codes(sae, data.x), sae.W_dec, data)
    assert ab.parent_latent.tolist() == [-1] * N_PARENTS and not ab.valid.any()
    assert np.isnan(ab.rates).all() and np.isnan(ab.child_rates).all() and math.isnan(ab.mean)
    # a parent latent that never fires is not a working parent detector: invalid, not "absorbed"
    rows = torch.cat([data.parent_dictionary, data.child_dictionary])
    sae = hand_sae(rows, rows)
    f = codes(sae, data.x)
    f[:, 2] = 0.0
    ab = feature_absorption(f, sae.W_dec, data)
    assert ab.valid.tolist() == [True, True, False, True] and ab.parent_only_recall[2] == 0.0
    assert ab.mean == 0.0


def test_absorption_bad_input(data):
    rows = torch.cat([data.parent_dictionary, data.child_dictionary])
    sae = hand_sae(rows, rows)
    f = codes(sae, data.x)
    with pytest.raises(ValueError, match="W_dec must have shape \\(16, 32\\), got \\(16, 31\\)"):
        feature_absorption(f, sae.W_dec[:, :31], data)
    with pytest.raises(ValueError, match="f must have one row per sample of data \\(4000\\)"):
        feature_absorption(f[:10], sae.W_dec, data)
    f[0, 0] = float("nan")
    with pytest.raises(ValueError, match="f contains 1 NaN"):
        feature_absorption(f, sae.W_dec, data)
    with pytest.raises(ValueError, match="min_precision must be in \\(0.5, 1\\], got 0.4"):
        family_latents(codes(sae, data.x), data, min_precision=0.4)


# ----------------------------------------------------------------------------------------------
# Splitting on hand-built SAEs
# ----------------------------------------------------------------------------------------------

def test_splitting_narrow_parents_wide_children(data):
    narrow = hand_sae(data.parent_dictionary, data.parent_dictionary)  # m = 4: one per parent
    rows = torch.cat([data.parent_dictionary, data.child_dictionary])
    wide = hand_sae(rows, rows)  # 4m = 16: parents and every child
    sp = feature_splitting(codes(narrow, data.x), codes(wide, data.x), data)
    assert sp.narrow.parent_of_latent.tolist() == [0, 1, 2, 3]
    assert sp.narrow.n_child_latents.tolist() == [0] * 4
    assert sp.wide.parent_of_latent.tolist() == [0, 1, 2, 3] + data.child_parent.tolist()
    assert sp.wide.child_of_latent.tolist() == [-1] * 4 + list(range(12))
    assert sp.wide.n_parent_latents.tolist() == [1] * 4
    assert sp.wide.n_child_latents.tolist() == [3] * 4
    assert sp.wide.children_covered.tolist() == [3] * 4
    assert sp.split_fraction == 1.0
    assert (sp.mean_child_latents_narrow, sp.mean_child_latents_wide) == (0.0, 3.0)
    # the same SAE twice has not split
    assert feature_splitting(codes(wide, data.x), codes(wide, data.x), data).split_fraction == 0.0


def test_firing_by_condition_on_hand_built_saes(data):
    rows = torch.cat([data.parent_dictionary, data.child_dictionary])
    wide = hand_sae(rows, rows)  # latent i fires iff feature i is on
    table = firing_by_condition(codes(wide, data.x), data, parent=1)
    assert table.shape == (16, 1 + N_CHILDREN)
    np.testing.assert_array_equal(table[1], [1, 1, 1, 1])  # the parent latent: every column
    np.testing.assert_array_equal(table[4 + 3:4 + 6], np.eye(3, 4, k=1))  # child j: column 1 + j
    assert np.all(table[[0, 2, 3] + list(range(4, 7)) + list(range(10, 16))] < 0.2)  # others
    # the absorbing SAE of the test above: parent latent 1 fires only with no child on
    enc = torch.cat([data.parent_dictionary - children_sum(data), data.child_dictionary])
    absorbing = firing_by_condition(codes(hand_sae(enc, rows), data.x), data, parent=1)
    np.testing.assert_array_equal(absorbing[1], [1, 0, 0, 0])
    with pytest.raises(ValueError, match="parent must be in 0..3, got 4"):
        firing_by_condition(codes(wide, data.x), data, parent=4)


def test_firing_by_condition_nan_for_a_condition_that_never_occurs():
    d = make_hierarchical_data(200, d_in=D_IN, n_parents=N_PARENTS, n_children=N_CHILDREN,
                               p_child=1.0, orthogonal=True, seed=0)  # a parent never comes alone
    table = firing_by_condition(torch.ones(200, 5), d, parent=0)
    assert np.isnan(table[:, 0]).all() and (table[:, 1:] == 1).all()


def test_latent_that_fires_everywhere_is_unassigned(data):
    sae = hand_sae(torch.ones(1, D_IN), torch.ones(1, D_IN), bias=1.0)  # always on
    fam = family_latents(codes(sae, data.x), data)
    assert fam.parent_of_latent.tolist() == [-1] and fam.n_parent_latents.sum() == 0


# ----------------------------------------------------------------------------------------------
# A small trained run: width m = 4 versus 4m = 16, L1 SAEs
# ----------------------------------------------------------------------------------------------

def test_trained_l1_saes_split_and_absorb():
    d = make_hierarchical_data(10_000, d_in=D_IN, n_parents=N_PARENTS, n_children=N_CHILDREN,
                               p_parent=0.1, p_child=0.75, orthogonal=True, seed=0)
    f, absorption = {}, {}
    for width in (4, 16):
        torch.manual_seed(0)
        sae = make_sae(L1Config(D_IN, width, l1_coeff=0.05, decoder_norm="unit"))
        train_sae(sae, d.x, TrainConfig(n_steps=1000, batch_size=256, lr=3e-3), progress=False)
        f[width] = codes(sae.eval(), d.x)
        absorption[width] = feature_absorption(f[width], sae.W_dec, d)
    split = feature_splitting(f[4], f[16], d)
    # measured: narrow absorption 0.0 (every parent valid); wide 0.572 (per parent
    # 0.32/0.63/0.65/0.69); split fraction 0.75; child-specific latents per parent 0.0 -> 1.0
    assert absorption[4].valid.all() and absorption[4].mean < 0.05
    assert absorption[16].mean > 0.4
    assert split.split_fraction >= 0.5
    assert split.mean_child_latents_narrow == 0.0 and split.mean_child_latents_wide >= 0.75
