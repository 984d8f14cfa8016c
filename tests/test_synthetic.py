"""Tests for saelab.synthetic: ground-truth sparse data over a known dictionary."""
import numpy as np
import pytest
import torch

from saelab.synthetic import make_sparse_data, random_dictionary


def test_shapes_norms_and_reconstruction():
    d = make_sparse_data(2000, d_in=16, n_features=40, n_active=3.0, seed=1)
    assert d.x.shape == (2000, 16) and d.codes.shape == (2000, 40)
    assert d.dictionary.shape == (40, 16)
    assert d.x.dtype == torch.float32
    torch.testing.assert_close(d.dictionary.norm(dim=1), torch.ones(40))
    torch.testing.assert_close(d.x, d.codes @ d.dictionary, rtol=1e-5, atol=1e-5)
    assert bool((d.codes >= 0).all())
    # about n_active active per sample (Bernoulli with p = 3/40: mean 3, sd of mean ~0.04)
    assert (d.codes > 0).sum(1).float().mean().item() == pytest.approx(3.0, abs=0.15)
    # uniform magnitudes in [0, 1]
    active = d.codes[d.codes > 0]
    assert active.max() <= 1.0 and active.mean().item() == pytest.approx(0.5, abs=0.03)


def test_seeded_and_numpy_output():
    a = make_sparse_data(100, d_in=8, n_features=20, seed=3)
    b = make_sparse_data(100, d_in=8, n_features=20, seed=3, as_numpy=True)
    c = make_sparse_data(100, d_in=8, n_features=20, seed=4)
    assert isinstance(b.x, np.ndarray)
    np.testing.assert_array_equal(a.x.numpy(), b.x)
    assert not torch.equal(a.x, c.x)


def test_magnitudes_and_noise():
    one = make_sparse_data(3000, d_in=8, n_features=20, n_active=2, magnitude="one", seed=0)
    assert set(torch.unique(one.codes).tolist()) == {0.0, 1.0}
    exp = make_sparse_data(3000, d_in=8, n_features=20, n_active=2, magnitude="exponential", seed=0)
    active = exp.codes[exp.codes > 0]
    assert active.mean().item() == pytest.approx(1.0, abs=0.08)  # Exp(1) mean; ~6000 samples
    assert active.max().item() > 3.0  # heavy-ish tail, unlike uniform
    noisy = make_sparse_data(3000, d_in=8, n_features=20, n_active=2, noise_std=0.1, seed=0)
    resid = noisy.x - noisy.codes @ noisy.dictionary
    assert resid.std().item() == pytest.approx(0.1, rel=0.05)


def test_reuse_dictionary_for_held_out_set():
    train = make_sparse_data(50, d_in=8, n_features=20, seed=0)
    held = make_sparse_data(50, dictionary=2.0 * train.dictionary.numpy(), seed=1)
    torch.testing.assert_close(held.dictionary, train.dictionary)
    assert held.x.shape == (50, 8)


def test_random_dictionary_is_isotropic():
    w = random_dictionary(4000, 3, seed=0, dtype=torch.float64)
    torch.testing.assert_close(w.norm(dim=1), torch.ones(4000, dtype=torch.float64))
    assert w.mean(0).abs().max().item() < 0.05  # directions spread over the sphere


def test_bad_input():
    with pytest.raises(ValueError, match="magnitude must be one of"):
        make_sparse_data(10, magnitude="gauss")
    with pytest.raises(ValueError, match="n_active must be at most n_features=20, got 30"):
        make_sparse_data(10, d_in=8, n_features=20, n_active=30)
    with pytest.raises(ValueError, match="n_samples must be at least 1, got 0"):
        make_sparse_data(0)
    with pytest.raises(ValueError, match="noise_std"):
        make_sparse_data(10, noise_std=-1.0)
    with pytest.raises(ValueError, match="non-zero rows"):
        make_sparse_data(10, dictionary=np.zeros((4, 3)))
