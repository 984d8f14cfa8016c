"""saelab.shrinkage and saelab.sweeps: closed forms, matched magnitudes, fits, a tiny sweep."""
import numpy as np
import pytest
import torch

from saelab.sae_config import L1Config, TopKConfig
from saelab.shrinkage import (fit_shrinkage, jumprelu_optimal_code, l1_optimal_code,
                              matched_magnitudes)
from saelab.evaluation import evaluate
from saelab.sweeps import knob_value, train_sweep
from saelab.train import TrainConfig


def test_l1_optimal_code_minimises_the_one_feature_loss():
    """Brute force: argmin_f>=0 (a - f)^2 + lambda f over a fine grid is max(a - lambda/2, 0)."""
    grid = np.linspace(0, 3, 30001)
    for a in (0.05, 0.3, 1.0, 2.2):
        for lam in (0.0, 0.2, 0.7, 1.5):
            best = grid[np.argmin((a - grid) ** 2 + lam * grid)]
            assert l1_optimal_code(a, lam) == pytest.approx(best, abs=1e-4)
    np.testing.assert_array_equal(l1_optimal_code(np.array([0.1, 0.5, 1.0]), 0.4), [0.0, 0.3, 0.8])
    np.testing.assert_array_equal(jumprelu_optimal_code(np.array([0.1, 0.5, 1.0]), 0.4),
                                  [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="l1_coeff must be non-negative, got -1"):
        l1_optimal_code(1.0, -1)


def test_matched_magnitudes_and_fit_recover_a_planted_shrinkage():
    rng = np.random.default_rng(0)
    n_features, d_in, d_sae, lam = 6, 6, 9, 0.4
    dictionary = np.linalg.qr(rng.standard_normal((d_in, d_in)))[0][:n_features]  # orthonormal
    perm = rng.permutation(d_sae)[:n_features]  # feature j lives on latent perm[j]
    W_dec = rng.standard_normal((d_sae, d_in))
    W_dec[perm] = dictionary
    codes = rng.uniform(0, 2, (500, n_features)) * (rng.uniform(size=(500, n_features)) < 0.4)
    f = np.zeros((500, d_sae))
    f[:, perm] = l1_optimal_code(codes, lam)
    m = matched_magnitudes(codes, f, W_dec, dictionary)
    np.testing.assert_array_equal(m.latent, perm)
    np.testing.assert_allclose(m.cosine, 1.0)
    assert len(m.true) == (codes > 0).sum()
    fit = fit_shrinkage(m.true, m.coded)
    assert fit.slope == pytest.approx(1.0) and fit.intercept == pytest.approx(-lam / 2)
    assert fit.missed == pytest.approx((m.true <= lam / 2).mean())
    # torch input works too; a feature nobody encodes is dropped by min_cosine
    W_dec[perm[0]] = rng.standard_normal(d_in)
    m2 = matched_magnitudes(torch.from_numpy(codes), torch.from_numpy(f), W_dec, dictionary)
    assert 0 not in set(m2.feature) and len(m2.true) < len(m.true)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same number of rows"):
        matched_magnitudes(np.ones((3, 2)), np.ones((4, 5)), np.ones((5, 2)), np.eye(2))
    with pytest.raises(ValueError, match=r"W_dec must have shape \(5, 2\)"):
        matched_magnitudes(np.ones((3, 2)), np.ones((3, 5)), np.ones((5, 3)), np.eye(2))
    with pytest.raises(ValueError, match="at least 2 positive"):
        fit_shrinkage(np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="cfg must be an SAE family config"):
        knob_value(3)


def test_tiny_sweep_orders_l0_by_knob_and_reports_shrinkage():
    """Measured: L1 bias 0.67 and 0.86 for lambda 0.6 and 0.2, TopK 1.00 (asserted with margin)."""
    from saelab.synthetic import make_sparse_data

    data = make_sparse_data(4096, d_in=8, n_features=12, n_active=2, seed=0)
    held = make_sparse_data(1024, dictionary=data.dictionary, n_active=2, seed=1)
    cfgs = [L1Config(8, 24, l1_coeff=0.6, decoder_norm="unit"),
            L1Config(8, 24, l1_coeff=0.2, decoder_norm="unit"), TopKConfig(8, 24, k=2, k_aux=4)]
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = train_sweep(cfgs, data.x, held.x, TrainConfig(n_steps=150, batch_size=128, lr=5e-3),
                           progress=False)
    finally:
        torch.set_num_threads(old)
    assert [knob_value(r.cfg) for r in runs] == [0.6, 0.2, 2]
    l1_strong, l1_weak, topk = (r.eval for r in runs)
    assert l1_strong.l0 < l1_weak.l0
    bias = [r.relative_reconstruction_bias for r in (l1_strong, l1_weak, topk)]
    assert bias[0] < bias[1] < bias[2]
    assert bias[0] < 0.8 and bias[2] > 0.95
    assert not runs[0].sae.training  # left in inference mode
    again = evaluate(runs[2].sae, held.x)
    assert (again.fvu, again.l0) == (runs[2].eval.fvu, runs[2].eval.l0)
