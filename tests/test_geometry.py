"""Tests for saelab.geometry: dimensionality, interference and capacity (Chapter 1)."""
import math

import numpy as np
import pytest
import torch

from saelab.geometry import (coherence, feature_dimensionality, greedy_packing, greedy_packing_count,
                             interference_formula, random_unit_vectors, simulate_interference,
                             welch_bound, welch_max_vectors)


def _polygon(n):
    ang = 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(ang), np.sin(ang)])  # [2, n]


def test_dimensionality_known_configurations():
    np.testing.assert_allclose(feature_dimensionality(np.eye(3)), [1, 1, 1])
    antipodal = np.array([[1.0, -1.0]])
    np.testing.assert_allclose(feature_dimensionality(antipodal), [0.5, 0.5])
    np.testing.assert_allclose(feature_dimensionality(_polygon(5)), [0.4] * 5, atol=1e-12)
    # scale does not matter, only directions
    np.testing.assert_allclose(feature_dimensionality(3.0 * _polygon(5)), [0.4] * 5, atol=1e-12)
    # two antipodal pairs in 2D (a square's diagonals): 1/2 each
    square = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0]])
    np.testing.assert_allclose(feature_dimensionality(square), [0.5] * 4)


def test_dimensionality_zero_column_is_zero_not_nan_torch_batched():
    W = torch.zeros(2, 2, 3)
    W[0, :, 0] = torch.tensor([1.0, 0.0])
    W[0, :, 1] = torch.tensor([0.0, 2.0])  # feature 2 of instance 0 dropped
    W[1] = torch.tensor(_polygon(3), dtype=torch.float32)  # triangle: 2/3 each
    D = feature_dimensionality(W)
    assert D.shape == (2, 3) and not bool(torch.isnan(D).any())
    np.testing.assert_allclose(D.numpy(), [[1, 1, 0], [2 / 3] * 3], atol=1e-6)


def test_dimensionalities_sum_to_at_most_d():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(4, 10))
    D = feature_dimensionality(W)
    assert np.all(D <= 1 + 1e-12) and D.sum() <= 4 + 1e-9


def test_interference_formula_by_hand():
    F = np.array([[1.0, 0.0, np.sqrt(0.5)], [0.0, 1.0, np.sqrt(0.5)]])
    # feature 0: (f0.f1)^2 + (f0.f2)^2 = 0 + 0.5
    np.testing.assert_allclose(interference_formula(F, 0.2), [0.1, 0.1, 0.2])


@pytest.mark.parametrize("signed", [False, True])
def test_interference_simulation_matches_exact_within_standard_error(signed):
    F = random_unit_vectors(32, 8, seed=1)
    p = 0.2
    r = simulate_interference(F, p, n_samples=40_000, signed=signed, seed=2)
    # per-feature: within 5 standard errors (measured max |z| 2.2 unsigned, 2.4 signed)
    assert np.all(np.abs(r.simulated - r.exact) < 5 * r.std_error)
    assert abs(r.simulated_mean - float(r.exact.mean())) < 5 * r.std_error_mean
    np.testing.assert_allclose(r.formula, interference_formula(F.numpy(), p), rtol=1e-12)
    assert r.approximation == pytest.approx(p * 31 / 8)
    if signed:  # zero-mean codes: the first-order formula is exact
        np.testing.assert_allclose(r.exact, r.formula)
    else:  # cross terms make the first-order formula wrong per feature (measured max |z| 83)
        assert np.max(np.abs(r.simulated - r.formula) / r.std_error) > 5


def test_interference_cross_term_sign_on_pentagon():
    """Pentagon, unsigned unit codes: sum_{j != k} c_j c_k = (sum c)^2 - sum c^2 = 1 - 1.5 < 0."""
    p = 0.3
    r = simulate_interference(_polygon(5), p, n_samples=40_000, seed=0)
    np.testing.assert_allclose(r.formula, p * 1.5, rtol=1e-9)
    np.testing.assert_allclose(r.exact, p * 1.5 - 0.5 * p ** 2, rtol=1e-9)
    assert abs(r.simulated_mean - (p * 1.5 - 0.5 * p ** 2)) < 5 * r.std_error_mean


def test_random_unit_vectors_mean_square_inner_product_is_one_over_d():
    d, m = 16, 400
    F = random_unit_vectors(m, d, seed=0)
    np.testing.assert_allclose(F.norm(dim=0).numpy(), 1.0)
    c2 = (F.T @ F) ** 2
    off = (c2.sum() - m) / (m * (m - 1))
    # E[c^2] = 1/d exactly; measured 0.0624 vs 0.0625
    assert abs(float(off) - 1 / d) < 0.05 / d


def test_welch_bound_met_by_simplex():
    for d in (2, 3, 5):
        # d + 1 vertices of a regular simplex centred at 0, in R^d: coherence 1/d
        E = np.eye(d + 1) - 1.0 / (d + 1)
        U, S, _ = np.linalg.svd(E)
        F = (U[:, :d] * S[:d]).T  # [d, d + 1], same Gram matrix as E
        assert coherence(F) == pytest.approx(1 / d)
        assert welch_bound(d + 1, d) == pytest.approx(1 / d)
    assert welch_bound(3, 3) == 0.0
    # no configuration beats the bound
    F = random_unit_vectors(20, 5, seed=0)
    assert coherence(F) >= welch_bound(20, 5)


def test_welch_max_vectors_inverts_the_bound():
    d, eps = 8, 0.3
    m_max = welch_max_vectors(d, eps)
    assert m_max == pytest.approx(26.0)
    assert welch_bound(26, d) == pytest.approx(eps)
    assert welch_max_vectors(16, 0.3) == math.inf
    with pytest.raises(ValueError, match="eps must be positive, got -0.1"):
        welch_max_vectors(4, -0.1)


def test_greedy_packing_counts():
    # d = 2, eps = 0.5: directions within 60 degrees clash; measured count 2
    c2 = greedy_packing_count(2, 0.5, budget=2000, seed=0)
    assert 2 <= c2 <= 3
    counts = [greedy_packing_count(d, 0.5, budget=5000, seed=0) for d in (4, 8, 16)]
    # measured [6, 21, 102]: grows faster than linearly in d
    assert counts[0] < counts[1] < counts[2]
    assert counts[2] > 4 * 16  # 102 > 64
    assert greedy_packing_count(8, 0.5, budget=5000, seed=0) == counts[1]  # seeded
    with pytest.raises(ValueError, match="eps must be in \\(0, 1\\], got 1.5"):
        greedy_packing_count(4, 1.5)
    with pytest.raises(ValueError, match="d must be at least 1, got 0"):
        greedy_packing_count(0, 0.5)


def test_packing_respects_eps():
    d, eps = 6, 0.4
    F = greedy_packing(d, eps, budget=3000, seed=4)
    assert F.shape[0] == d and F.shape[1] > d  # measured 8 vectors
    np.testing.assert_allclose(F.norm(dim=0).numpy(), 1.0)
    assert coherence(F) < eps
