"""Tests for saelab.evaluation: the one-call evaluation report of Chapter 5."""
import numpy as np
import pytest
import torch

from saelab import metrics
from saelab.evaluation import EvalReport, evaluate
from saelab.sae_config import (BatchTopKConfig, GatedConfig, JumpReLUConfig, L1Config,
                                MatryoshkaConfig, TopKConfig)
from saelab.synthetic import make_sparse_data
from saelab.torch_sae import make_sae

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

D_IN, D_SAE = 8, 24


def identity_sae(d_in: int) -> torch.nn.Module:
    """An L1 SAE with latents +e_j and -e_j: ReLU(x) - ReLU(-x) = x, so x_hat = x exactly."""
    sae = make_sae(L1Config(d_in, 2 * d_in, l1_coeff=0.0))
    eye = torch.eye(d_in)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))  # [d_in, 2 d_in]
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))  # [2 d_in, d_in]
        sae.b_enc.zero_()
        sae.b_dec.zero_()
    return sae


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    data = make_sparse_data(1000, d_in=D_IN, n_features=8, n_active=2, seed=0)
    sae = make_sae(L1Config(D_IN, D_SAE, l1_coeff=0.1))
    with torch.no_grad():  # 8 latents on the true features, 16 small random ones: FVU in (0, 1)
        sae.W_dec[:8] = data.dictionary
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_enc.fill_(-0.05)  # some latents fire rarely, some often
        sae.b_dec.zero_()
    return data, sae


def test_streaming_report_equals_one_shot_metrics(toy):
    data, sae = toy
    rep = evaluate(sae, data.x, batch_size=37, true_features=data.dictionary)
    with torch.no_grad():
        f = sae.encode(data.x)
        x_hat = sae.decode(f)
    assert rep.n_tokens == 1000
    assert rep.fvu == pytest.approx(metrics.fvu(data.x, x_hat), rel=1e-9)
    assert rep.explained_variance == pytest.approx(metrics.explained_variance(data.x, x_hat),
                                                   rel=1e-9)
    assert rep.l0 == pytest.approx(metrics.l0(f), rel=1e-12)
    np.testing.assert_allclose(rep.firing_density, metrics.firing_density(f))
    assert rep.dead_fraction == metrics.dead_fraction(f)
    for window in (1, 37, 500, 1000):  # first firings agree with the one-shot dead fraction
        assert rep.dead_fraction_within(window) == metrics.dead_fraction(f[:window])
    assert rep.dense_fraction_1pct == metrics.dense_fraction(f, 0.01)
    assert rep.dense_fraction_10pct == metrics.dense_fraction(f, 0.10)
    assert rep.relative_reconstruction_bias == pytest.approx(
        metrics.relative_reconstruction_bias(data.x, x_hat), rel=1e-9)
    m = metrics.mmcs(sae.W_dec, data.dictionary)
    assert rep.mmcs_learned_to_true == pytest.approx(m.a_to_b)
    assert rep.mmcs_true_to_learned == pytest.approx(m.b_to_a)
    assert 0 < rep.fvu < 1 and 0 < rep.dense_fraction_1pct  # a non-trivial case
    # the same numbers from an iterable of uneven batches, numpy included
    batches = [data.x[:300].numpy(), data.x[300:301], data.x[301:]]
    again = evaluate(sae, batches)
    assert again.fvu == pytest.approx(rep.fvu, rel=1e-9) and again.l0 == pytest.approx(rep.l0)


def test_wrong_fvu_variants_match_metrics(toy):
    data, sae = toy
    rep = evaluate(sae, data.x, batch_size=100, show_wrong_fvu=True)
    with torch.no_grad():
        x_hat = sae(data.x).x_hat
    assert rep.fvu_wrong_uncentered == pytest.approx(metrics.fvu_wrong_uncentered(data.x, x_hat),
                                                     rel=1e-9)
    assert rep.fvu_wrong_mean_of_squares == pytest.approx(
        metrics.fvu_wrong_mean_of_squares(data.x, x_hat), rel=1e-9)
    assert rep.fvu_wrong_per_token_ratio == pytest.approx(
        metrics.fvu_wrong_per_token_ratio(data.x, x_hat), rel=1e-9)
    # the pitfall shows: the uncentred variant flatters this SAE (b_dec is not the mean)
    assert rep.fvu_wrong_uncentered < rep.fvu
    assert evaluate(sae, data.x).fvu_wrong_uncentered is None


def test_identity_sae_is_perfect():
    x = torch.randn(500, D_IN, generator=torch.Generator().manual_seed(1)) + 3.0
    rep = evaluate(identity_sae(D_IN), x, batch_size=64)
    assert rep.fvu == pytest.approx(0.0, abs=1e-12)
    assert rep.explained_variance == pytest.approx(1.0, abs=1e-12)
    assert rep.relative_reconstruction_bias == pytest.approx(1.0, abs=1e-12)
    assert rep.l0 == pytest.approx(D_IN)  # exactly one of +e_j / -e_j per non-zero entry
    # x + 3 is positive on most entries: the -e_j latents fire on about Phi(-3) = 0.13% each
    assert rep.dense_fraction_10pct == pytest.approx(0.5)
    never_negative = (x >= 0).all(0).sum().item()  # columns whose -e_j latent stays silent
    assert 0 < never_negative < D_IN and rep.dead_fraction == never_negative / (2 * D_IN)


def test_identity_sae_mmcs_directions():
    rep = evaluate(identity_sae(4), torch.randn(50, 4, generator=torch.Generator().manual_seed(0)),
                   true_features=torch.eye(4))
    assert rep.mmcs_true_to_learned == pytest.approx(1.0)
    assert rep.mmcs_learned_to_true == pytest.approx(0.5)  # +e_j: 1, -e_j: best cosine 0


def test_dead_fraction_window_is_a_prefix():
    sae = identity_sae(4)  # latent j fires iff x_j > 0; latent 4 + j iff x_j < 0
    x = torch.zeros(20, 4)
    x[:, 0] = 1.0  # latent 0 fires on every row
    x[10:, 1] = 1.0  # latent 1 fires from row 10 on
    x[19, 2] = -1.0  # latent 6 fires on the last row only
    full = evaluate(sae, x, batch_size=3)
    assert full.dead_window_tokens == 20 and full.dead_fraction == pytest.approx(5 / 8)
    first10 = evaluate(sae, x, batch_size=3, dead_window_tokens=10)  # window ends mid-batch
    assert first10.dead_fraction == pytest.approx(7 / 8)
    first11 = evaluate(sae, x, batch_size=3, dead_window_tokens=11)
    assert first11.dead_fraction == pytest.approx(6 / 8)
    # densities use every row, whatever the window
    np.testing.assert_allclose(first10.firing_density, full.firing_density)
    assert first10.firing_density[6] == pytest.approx(1 / 20)
    # first firings, and every shorter window read off one report
    assert full.first_fire.tolist() == [0, 10, -1, -1, -1, -1, 19, -1]
    assert [full.dead_fraction_within(w) for w in (1, 10, 11, 19, 20)] == [7 / 8, 7 / 8, 6 / 8,
                                                                         6 / 8, 5 / 8]
    assert first10.dead_fraction_within(10) == first10.dead_fraction
    with pytest.raises(ValueError, match="window must be in 1..20, got 21"):
        full.dead_fraction_within(21)
    with pytest.raises(ValueError, match="dead_window_tokens must be at most the 20 rows"):
        evaluate(sae, x, dead_window_tokens=21)


def test_table_holds_every_metric(toy):
    data, sae = toy
    rep = evaluate(sae, data.x, true_features=data.dictionary, show_wrong_fvu=True,
                   ce_fn=lambda s: (2.0, 2.1, 5.0))
    assert rep.ce_loss_recovered == pytest.approx(2.9 / 3.0)
    assert rep.delta_ce_loss == pytest.approx(0.1)
    text = str(rep)
    assert text == rep.table()
    for name in EvalReport.__dataclass_fields__:
        if name not in ("firing_density", "first_fire", "dead_window_tokens"):
            assert name in text, name
    assert f"never fired in {rep.dead_window_tokens:,} tokens" in text
    lines = text.splitlines()[2:]
    assert len(lines) == len(rep.rows())
    value_ends = {line.index(value, len(name)) + len(value)
                  for line, (name, value, _) in zip(lines, rep.rows())}
    assert len(value_ends) == 1  # values right-aligned in one column
    bare = str(evaluate(sae, data.x))
    assert "mmcs" not in bare and "ce_loss" not in bare and "wrong" not in bare


@pytest.mark.parametrize("cfg", [L1Config(D_IN, D_SAE), TopKConfig(D_IN, D_SAE, k=3),
                                 JumpReLUConfig(D_IN, D_SAE), BatchTopKConfig(D_IN, D_SAE, k=3),
                                 GatedConfig(D_IN, D_SAE),
                                 MatryoshkaConfig(D_IN, D_SAE, k=3)], ids=lambda c: c.family)
def test_every_family_in_inference_mode(toy, cfg):
    data, _ = toy
    torch.manual_seed(0)
    sae = make_sae(cfg)
    if cfg.family in ("batchtopk", "matryoshka"):
        with torch.no_grad():
            sae.threshold.fill_(0.2)  # a trained-looking inference threshold
    sae.train()
    rep = evaluate(sae, data.x, batch_size=128)
    assert sae.training  # mode restored
    sae.eval()
    with torch.no_grad():
        f = sae.encode(data.x)
    assert rep.l0 == pytest.approx(metrics.l0(f))
    assert rep.fvu == pytest.approx(metrics.fvu(data.x, sae.decode(f)), rel=1e-6)


def test_bad_input(toy):
    data, sae = toy
    with pytest.raises(ValueError, match=r"activations must have shape \(any, 8\)"):
        evaluate(sae, torch.zeros(10, 7))
    with pytest.raises(ValueError, match=r"batch 1 of activations must have shape \(any, 8\)"):
        evaluate(sae, [data.x[:10], torch.zeros(10, 5)])
    bad = data.x.clone()
    bad[500, 3] = float("nan")
    with pytest.raises(ValueError, match=r"activations\[500:1000\] contains 1 NaN"):
        evaluate(sae, bad, batch_size=500)
    with pytest.raises(ValueError, match="batch 0 of activations contains 1 NaN"):
        evaluate(sae, iter([bad[500:501]]))
    with pytest.raises(ValueError, match="at least one row"):
        evaluate(sae, [])
    with pytest.raises(ValueError, match="show_wrong_fvu needs activations it can read twice"):
        evaluate(sae, (b for b in [data.x]), show_wrong_fvu=True)
    with pytest.raises(ValueError, match=r"true_features must have shape \(any, 8\)"):
        evaluate(sae, data.x, true_features=torch.eye(5))
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        evaluate(sae, data.x, batch_size=0)
    with pytest.raises(ValueError, match="ce_fn must return"):
        evaluate(sae, data.x, ce_fn=lambda s: 2.0)
    with pytest.raises(ValueError, match="activations must be a tensor"):
        evaluate(sae, 3.0)
