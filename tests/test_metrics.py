"""Tests for saelab.metrics: FVU (one-shot, streaming, and the wrong variants), sparsity, MMCS."""
import numpy as np
import pytest
import torch

from saelab import metrics as M


def _data(n=500, d=16, mean_scale=5.0, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)) + mean_scale * rng.normal(size=d)  # large common mean
    x_hat = x + noise * rng.normal(size=(n, d))
    return x, x_hat


def test_fvu_matches_definition_and_limits():
    x, x_hat = _data()
    want = np.sum((x - x_hat) ** 2) / np.sum((x - x.mean(0)) ** 2)
    assert M.fvu(x, x_hat) == pytest.approx(want, rel=1e-12)
    assert M.fvu(x, x) == 0.0
    # predicting the mean explains nothing
    assert M.fvu(x, np.broadcast_to(x.mean(0), x.shape)) == pytest.approx(1.0, rel=1e-12)
    assert M.explained_variance(x, x_hat) == pytest.approx(1 - want, rel=1e-12)
    # E||x||^2 - ||E x||^2 form of the denominator
    total = np.mean(np.sum(x ** 2, 1)) - np.sum(x.mean(0) ** 2)
    alt = np.mean(np.sum((x - x_hat) ** 2, 1)) / total
    assert M.fvu(x, x_hat) == pytest.approx(alt, rel=1e-9)


def test_fvu_accepts_torch_and_numpy_alike():
    x, x_hat = _data()
    got = M.fvu(torch.tensor(x, dtype=torch.float32), torch.tensor(x_hat, dtype=torch.float32))
    assert got == pytest.approx(M.fvu(x, x_hat), rel=1e-5)


@pytest.mark.parametrize("sizes", [[500], [1, 499], [7, 100, 93, 300], [250, 250]])
def test_streaming_fvu_equals_one_shot(sizes):
    x, x_hat = _data(mean_scale=1e3)  # large mean: the naive float32 E||x||^2 - ||Ex||^2 breaks
    acc = M.FVUAccumulator()
    start = 0
    for m in sizes:
        acc.update(torch.tensor(x[start:start + m]), x_hat[start:start + m])
        start += m
    assert acc.n == 500
    assert acc.value == pytest.approx(M.fvu(x, x_hat), rel=1e-10)


def test_streaming_fvu_errors():
    with pytest.raises(ValueError, match="no data"):
        M.FVUAccumulator().value
    acc = M.FVUAccumulator().update(np.ones((3, 4)) + np.eye(3, 4), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="d_in=4"):
        acc.update(np.ones((3, 5)), np.ones((3, 5)))


def test_wrong_variants_differ_from_fvu_in_the_direction_chapter5_claims():
    x, x_hat = _data(mean_scale=2.0)
    right = M.fvu(x, x_hat)
    # variance about zero counts the mean: the wrong FVU is much smaller (flatters the SAE)
    assert M.fvu_wrong_uncentered(x, x_hat) < 0.5 * right
    assert 0 < M.fvu_wrong_mean_of_squares(x, x_hat) < 0.5 * right
    # per-token ratio is a different number (mean of ratios != ratio of means)
    assert abs(M.fvu_wrong_per_token_ratio(x, x_hat) - right) > 0.05 * right
    # zero-mean, unit-variance data: the mean-of-squares bug subtracts ~1 from ~d, close to right
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4000, 16))
    z_hat = z + 0.3 * rng.normal(size=z.shape)
    assert M.fvu_wrong_mean_of_squares(z, z_hat) == pytest.approx(M.fvu(z, z_hat), rel=0.1)


def test_wrong_mean_of_squares_reproduces_the_bug_formula():
    x, x_hat = _data(n=50, d=4)
    mse = np.mean(np.sum((x - x_hat) ** 2, axis=1))
    per_dim_sq_mean = np.mean(x ** 2, axis=0)  # [d] what the bug accumulated
    scalar = np.mean(per_dim_sq_mean)  # torch.cat(...).mean(): collapsed to a scalar
    total = np.mean(np.sum(x ** 2, axis=1)) - scalar ** 2
    assert M.fvu_wrong_mean_of_squares(x, x_hat) == pytest.approx(mse / total, rel=1e-12)


def test_fvu_bad_input():
    x, x_hat = _data(n=10, d=3)
    with pytest.raises(ValueError, match="x_hat must have the same shape"):
        M.fvu(x, x_hat[:, :2])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="x contains 1 NaN"):
        M.fvu(bad, x_hat)
    with pytest.raises(ValueError, match="no variance"):
        M.fvu(np.ones((5, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="shape"):
        M.fvu(np.ones(5), np.ones(5))


def test_l0_density_dead_dense():
    f = np.array([[0.0, 1.0, 0.0, 2.0],
                  [0.0, 0.5, 0.0, 0.0],
                  [0.0, 3.0, 0.0, 1.0],
                  [0.0, 1.0, 0.1, 0.0]])
    assert M.l0(f) == pytest.approx(7 / 4)
    np.testing.assert_allclose(M.firing_density(f), [0.0, 1.0, 0.25, 0.5])
    assert M.dead_fraction(f) == 0.25
    assert M.dense_fraction(f, threshold=0.3) == 0.5
    assert M.l0(torch.tensor(f)) == pytest.approx(7 / 4)
    with pytest.raises(ValueError, match="threshold must be in"):
        M.dense_fraction(f, threshold=2.0)
    with pytest.raises(ValueError, match="f must have shape"):
        M.l0(np.ones(3))


def test_relative_reconstruction_bias():
    x, _ = _data(mean_scale=0.0, noise=0.0)
    assert M.relative_reconstruction_bias(x, x) == pytest.approx(1.0)
    assert M.relative_reconstruction_bias(x, 0.7 * x) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="must be positive"):
        M.relative_reconstruction_bias(x, -x)


def test_mmcs_known_values_and_chunking():
    rng = np.random.default_rng(0)
    b = rng.normal(size=(50, 8))
    perm = rng.permutation(50)
    res = M.mmcs(3.0 * b[perm], b)  # same directions, rescaled and shuffled
    assert res.a_to_b == pytest.approx(1.0) and res.b_to_a == pytest.approx(1.0)
    # a = first 10 atoms only: every atom of a is found; most of b is not
    res = M.mmcs(b[:10], b)
    assert res.a_to_b == pytest.approx(1.0)
    assert res.b_to_a < 0.9
    assert res.best_for_a.shape == (10,) and res.best_for_b.shape == (50,)
    # brute force, and the chunked loop agrees with one block
    a = rng.normal(size=(37, 8))
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    cos = unit(a) @ unit(b).T
    for chunk in (1, 5, 1024):
        r = M.mmcs(torch.tensor(a), b, chunk=chunk)
        assert r.a_to_b == pytest.approx(cos.max(1).mean(), rel=1e-12)
        assert r.b_to_a == pytest.approx(cos.max(0).mean(), rel=1e-12)


def test_mmcs_bad_input():
    with pytest.raises(ValueError, match="same row length"):
        M.mmcs(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="zero rows"):
        M.mmcs(np.zeros((3, 4)), np.ones((3, 4)))


def test_ce_loss_recovered_and_delta():
    assert M.ce_loss_recovered(3.0, 3.0, 10.0) == 1.0
    assert M.ce_loss_recovered(3.0, 10.0, 10.0) == 0.0
    assert M.ce_loss_recovered(3.0, 3.7, 10.0) == pytest.approx(0.9)
    assert M.delta_ce_loss(3.0, 3.1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="ce_zero must exceed ce_clean"):
        M.ce_loss_recovered(3.0, 3.5, 2.0)
    with pytest.raises(ValueError, match="ce_sae must be finite"):
        M.ce_loss_recovered(3.0, float("nan"), 10.0)
