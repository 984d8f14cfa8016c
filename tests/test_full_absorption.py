"""SAEBench-style full absorption (saelab.absorption.full_absorption) on hand-built SAEs whose
behaviour is known exactly, side by side with the course's simpler rate (Chapters 5 and 7)."""
import math

import numpy as np
import pytest
import torch

from saelab.absorption import feature_absorption, full_absorption
from saelab.hierarchy import make_hierarchical_data
from test_hierarchy import N_CHILDREN, N_PARENTS, D_IN, children_sum, codes, hand_sae


@pytest.fixture(scope="module")
def data():
    return make_hierarchical_data(4000, d_in=D_IN, n_parents=N_PARENTS, n_children=N_CHILDREN,
                                  p_parent=0.1, p_child=0.75, orthogonal=True, seed=0)


def with_child_share(d) -> np.ndarray:
    """(n_parents,): share of the inputs with parent p that also hold one of its children."""
    parents = (d.parent_codes > 0).numpy()
    kids = (d.child_codes > 0).numpy().reshape(-1, N_PARENTS, N_CHILDREN).any(2)
    return kids.sum(0) / parents.sum(0)


def test_pure_latents_absorb_nothing(data):
    rows = torch.cat([data.parent_dictionary, data.child_dictionary])
    sae = hand_sae(rows, rows)
    full = full_absorption(codes(sae, data.x), sae.W_dec, data)
    assert full.parent_latent.tolist() == [0, 1, 2, 3]
    np.testing.assert_array_equal(full.n_absorbed, 0)
    np.testing.assert_array_equal(full.n_present, (data.parent_codes > 0).sum(0).numpy())
    assert full.mean == 0.0 and full.absorbing_latent.tolist() == [-1] * N_PARENTS


def test_children_that_carry_the_parent_absorb_it(data):
    # parent latent silent wherever a child is on; child latents decode to (P_p + C_c)/sqrt(2)
    # and fire at 2 - 0.5 = 1.5, so each carries 1.5/sqrt(2) = 1.06 of x . P_p = 1 (>= 0.4)
    enc = torch.cat([data.parent_dictionary - children_sum(data), 2 * data.child_dictionary])
    absorbed = data.child_dictionary + data.parent_dictionary[data.child_parent]
    dec = torch.cat([data.parent_dictionary, absorbed / math.sqrt(2)])
    sae = hand_sae(enc, dec)
    f = codes(sae, data.x)
    full = full_absorption(f, sae.W_dec, data)
    course = feature_absorption(f, sae.W_dec, data)
    share = with_child_share(data)  # about p_child = 0.75
    np.testing.assert_allclose(full.rates, share)  # denominator: every parent-present input
    np.testing.assert_array_equal(course.rates, 1.0)  # denominator: inputs with a child only
    assert ((full.absorbing_latent >= N_PARENTS)
            & (data.child_parent[full.absorbing_latent - N_PARENTS].numpy()
               == np.arange(N_PARENTS))).all()  # absorbed by one of its own children
    # child latents firing at 1 - 0.5 = 0.5 carry only 0.5/sqrt(2) = 0.35 of x . P_p: below 40%
    weak = hand_sae(torch.cat([enc[:N_PARENTS], data.child_dictionary]), dec)
    assert full_absorption(codes(weak, data.x), weak.W_dec, data).mean == 0.0
    assert full_absorption(codes(weak, data.x), weak.W_dec, data, min_share=0.3).mean > 0.7


def test_silent_parent_whose_direction_nobody_carries_is_not_full_absorption(data):
    # same encoder, but the child latents decode to C_c alone: P_p is lost, not absorbed
    enc = torch.cat([data.parent_dictionary - children_sum(data), 2 * data.child_dictionary])
    dec = torch.cat([data.parent_dictionary, data.child_dictionary])
    sae = hand_sae(enc, dec)
    f = codes(sae, data.x)
    assert feature_absorption(f, sae.W_dec, data).mean == 1.0
    assert full_absorption(f, sae.W_dec, data).mean == 0.0


def test_full_absorption_bad_input(data):
    rows = torch.cat([data.parent_dictionary, data.child_dictionary])
    sae = hand_sae(rows, rows)
    f = codes(sae, data.x)
    with pytest.raises(ValueError, match=r"min_share must be in \[0, 1\], got 1.5"):
        full_absorption(f, sae.W_dec, data, min_share=1.5)
    with pytest.raises(ValueError, match=r"W_dec must have shape \(16, 32\), got \(16, 31\)"):
        full_absorption(f, sae.W_dec[:, :31], data)
    bad = f.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="f contains 1 NaN"):
        full_absorption(bad, sae.W_dec, data)
    with pytest.raises(ValueError, match="f must have one row per sample of data"):
        full_absorption(f[:10], sae.W_dec, data)
