"""Tests for saelab.feature_sampling: the sparse feature generators of Chapter 1."""
import math

import pytest
import torch

from saelab.feature_sampling import sample_sparse_codes, sample_toy_features


def test_toy_features_shape_range_and_sparsity_per_instance():
    p = torch.tensor([1.0, 0.5, 0.1])
    x = sample_toy_features(20_000, p, n_features=4, n_instances=3, seed=0)
    assert x.shape == (20_000, 3, 4)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    active = (x > 0).float().mean(dim=(0, 2))  # [inst]
    n = 20_000 * 4
    for k in range(3):  # binomial standard error, 5 sigma
        se = math.sqrt(float(p[k] * (1 - p[k])) / n) + 1e-9
        assert abs(float(active[k]) - float(p[k])) < 5 * se + 1e-6
    # active values are uniform on [0, 1]: mean 1/2
    assert abs(float(x[:, 0].mean()) - 0.5) < 0.01


def test_toy_features_per_feature_probability_and_zero():
    p = torch.tensor([[0.0, 1.0]])
    x = sample_toy_features(1000, p, n_features=2, n_instances=1, seed=1)
    assert float(x[..., 0].abs().max()) == 0.0
    assert bool((x[..., 1] > 0).all())


def test_toy_features_seeded_reproducible_and_generator():
    a = sample_toy_features(64, 0.3, 5, 2, seed=7)
    b = sample_toy_features(64, 0.3, 5, 2, seed=7)
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(7)
    c = sample_toy_features(64, 0.3, 5, 2, generator=g)
    assert torch.equal(a, c)
    assert not torch.equal(a, sample_toy_features(64, 0.3, 5, 2, seed=8))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_batch=4, feature_probability=1.5, n_features=3), "feature_probability must be in \\[0, 1\\], got 1.5"),
        (dict(n_batch=4, feature_probability=torch.tensor([0.5, -0.1]), n_features=3, n_instances=2),
         "feature_probability must be in \\[0, 1\\], got -0.1"),
        (dict(n_batch=0, feature_probability=0.5, n_features=3), "n_batch must be at least 1, got 0"),
        (dict(n_batch=4, feature_probability=0.5, n_features=-2), "n_features must be at least 1, got -2"),
        (dict(n_batch=4, feature_probability=torch.tensor([0.5, 0.5]), n_features=3, n_instances=3),
         "one entry per instance"),
    ],
)
def test_toy_features_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_toy_features(**kwargs)


@pytest.mark.parametrize("magnitude, signed", [("one", False), ("one", True), ("uniform", False), ("uniform", True)])
def test_sparse_codes_moments(magnitude, signed):
    p, n, m = 0.2, 50_000, 8
    z = sample_sparse_codes(n, m, p, magnitude=magnitude, signed=signed, seed=3, dtype=torch.float64)
    assert z.shape == (n, m)
    mu2 = p if magnitude == "one" else p / 3
    mu1 = 0.0 if signed else (p if magnitude == "one" else p / 2)
    # 5 standard errors of the mean over n * m entries (entries of z^2 have variance <= mu2)
    tol = 5 * math.sqrt(mu2 / (n * m))
    assert abs(float((z ** 2).mean()) - mu2) < tol
    assert abs(float(z.mean()) - mu1) < tol
    assert abs(float((z != 0).double().mean()) - p) < 5 * math.sqrt(p * (1 - p) / (n * m))
    if magnitude == "one":
        assert set(torch.unique(z).tolist()) <= {-1.0, 0.0, 1.0}


def test_sparse_codes_per_feature_probability_and_errors():
    z = sample_sparse_codes(2000, 3, torch.tensor([0.0, 0.5, 1.0]), seed=0)
    assert float(z[:, 0].abs().sum()) == 0 and bool((z[:, 2] == 1).all())
    with pytest.raises(ValueError, match="p must be in \\[0, 1\\], got 2.0"):
        sample_sparse_codes(10, 3, 2.0)
    with pytest.raises(ValueError, match="magnitude must be one of"):
        sample_sparse_codes(10, 3, 0.5, magnitude="gauss")
    with pytest.raises(ValueError, match="seed"):
        sample_sparse_codes(10, 3, 0.5, seed=1, generator=torch.Generator())
