"""Tests for saelab.lasso: ISTA and FISTA against an independent solver, the closed form, the
one-step-ISTA = SAE-encoder identity, the speed-up of FISTA, and bad input."""
import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from saelab import lasso, numpy_sae, torch_sae
from saelab.sae_config import L1Config


def _problem(n_atoms=40, d=20, batch=6, p_active=0.1, noise=0.05, seed=0):
    """Unit-norm random atoms, sparse non-negative codes, a little noise."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((n_atoms, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    codes = rng.uniform(size=(batch, n_atoms)) * (rng.uniform(size=(batch, n_atoms)) < p_active)
    x = codes @ D + noise * rng.standard_normal((batch, d))
    return x, D, codes


def _lbfgsb(x, D, lam):
    """Independent reference: on z >= 0, F(z) = ||x - zD||^2 + lam * sum(z) is smooth, so a
    bound-constrained quasi-Newton method (scipy's L-BFGS-B) solves it row by row."""
    zs, fs = [], []
    for row in x:
        def fun(z, row=row):
            r = z @ D - row
            return float(r @ r + lam * z.sum()), 2.0 * D @ r + lam
        res = minimize(fun, np.zeros(D.shape[0]), jac=True, method="L-BFGS-B",
                       bounds=[(0.0, None)] * D.shape[0],
                       options=dict(ftol=1e-15, gtol=1e-12, maxiter=20_000))
        zs.append(res.x)
        fs.append(res.fun)
    return np.array(zs), np.array(fs)


@pytest.mark.parametrize("solver", [lasso.ista, lasso.fista])
@pytest.mark.parametrize("lam", [0.05, 0.3])
def test_solvers_match_lbfgsb(solver, lam):
    x, D, _ = _problem()
    ref_z, ref_f = _lbfgsb(x, D, lam)
    res = solver(x, D, lam, tol=1e-12, max_iter=50_000)
    assert res.converged
    # measured (tol 1e-12): objectives agree to <= 8e-11 relative, codes to <= 1.2e-5
    np.testing.assert_allclose(res.objective, ref_f, rtol=1e-9)
    np.testing.assert_allclose(res.z, ref_z, atol=1e-4)
    assert np.array_equal(res.z > 1e-6, ref_z > 1e-6), "supports differ"
    assert np.all(res.objective <= ref_f * (1 + 1e-10))  # never worse than the reference
    np.testing.assert_allclose(res.objective, lasso.lasso_objective(x, D, res.z, lam))


def test_fista_solution_satisfies_kkt():
    """Optimality certificate: g = 2 (zD - x) D^T + lam; g_i = 0 where z_i > 0, g_i >= 0 where z_i = 0."""
    x, D, _ = _problem(n_atoms=60, d=20, batch=5, seed=3)
    lam = 0.2
    res = lasso.fista(x, D, lam, tol=1e-15, max_iter=50_000)
    g = lasso.lasso_gradient(x, D, res.z) + lam
    active = res.z > 0
    assert active.any() and (~active).any()
    assert np.abs(g[active]).max() < 1e-5  # measured 1.3e-7
    assert g[~active].min() > -1e-5


def test_lambda_above_lambda_max_gives_zero_code():
    """z = 0 is optimal iff 2 x D^T <= lam elementwise (KKT at 0)."""
    x, D, _ = _problem(seed=4)
    lam_max = float((2 * x @ D.T).max())
    assert np.all(lasso.fista(x, D, lam_max * 1.01).z == 0)
    assert np.any(lasso.fista(x, D, lam_max * 0.9).z > 0)


def test_ista_objective_never_increases():
    x, D, _ = _problem(n_atoms=80, d=20, seed=5)
    res = lasso.ista(x, D, 0.1, max_iter=300, tol=0)
    assert res.n_iter == 300 and not res.converged
    assert res.history.shape == (301,)
    assert np.all(np.diff(res.history) <= 1e-12)


def test_fista_needs_fewer_iterations_than_ista():
    x, D, _ = _problem(n_atoms=256, d=64, batch=16, p_active=0.02, noise=0.0, seed=0)
    ri = lasso.ista(x, D, 0.05, tol=1e-8, max_iter=100_000)
    rf = lasso.fista(x, D, 0.05, tol=1e-8, max_iter=100_000)
    assert ri.converged and rf.converged
    # measured: ISTA 605 iterations, FISTA 240 (tol 1e-8)
    assert rf.n_iter < 0.5 * ri.n_iter, (ri.n_iter, rf.n_iter)
    np.testing.assert_allclose(rf.objective, ri.objective, rtol=1e-6)


def test_warm_start_from_the_solution_stops_at_once():
    x, D, _ = _problem(seed=6)
    res = lasso.fista(x, D, 0.1, tol=1e-14, max_iter=50_000)
    again = lasso.ista(x, D, 0.1, z0=res.z, tol=1e-10)
    assert again.n_iter <= 2
    np.testing.assert_allclose(again.z, res.z, atol=1e-8)


def _orthonormal_rows(n_atoms, d, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, n_atoms)))  # (d, n_atoms), orthonormal columns
    return q.T  # (n_atoms, d), orthonormal rows


@pytest.mark.parametrize("n_atoms", [5, 12])
def test_orthonormal_closed_form_matches_ista(n_atoms):
    D = _orthonormal_rows(n_atoms, 12, seed=n_atoms)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 12))
    lam = 0.4
    closed = lasso.orthonormal_lasso(x, D, lam)
    np.testing.assert_allclose(closed, np.maximum(x @ D.T - lam / 2, 0))
    res = lasso.ista(x, D, lam, tol=1e-15)
    np.testing.assert_allclose(res.z, closed, atol=1e-10)
    # L = 2, and one ISTA step from zero with step 1/2 is already the solution
    assert lasso.lipschitz_constant(D) == pytest.approx(2.0)
    one = lasso.ista_step(x, D, np.zeros((7, n_atoms)), lam)
    np.testing.assert_allclose(one, closed, atol=1e-12)
    assert 0 < (closed > 0).mean() < 1  # the threshold matters on this data


def test_closed_form_beats_nearby_codes():
    D = _orthonormal_rows(6, 10, seed=2)
    x = np.random.default_rng(3).standard_normal((4, 10))
    z = lasso.orthonormal_lasso(x, D, 0.5)
    f = lasso.lasso_objective(x, D, z, 0.5)
    rng = np.random.default_rng(4)
    for _ in range(20):
        other = np.maximum(z + 0.05 * rng.standard_normal(z.shape), 0)
        assert np.all(lasso.lasso_objective(x, D, other, 0.5) >= f - 1e-12)


def test_soft_thresholds():
    v = np.array([-2.0, -0.5, 0.0, 0.3, 1.5])
    np.testing.assert_array_equal(lasso.soft_threshold(v, 1.0), [-1.0, 0.0, 0.0, 0.0, 0.5])
    np.testing.assert_array_equal(lasso.nonneg_soft_threshold(v, 1.0), [0, 0, 0, 0, 0.5])
    np.testing.assert_array_equal(lasso.nonneg_soft_threshold(v, 0.0), np.maximum(v, 0))


# ---- the key identity: one ISTA step from zero is an SAE encoder ------------------------------

def _ista_sae_setup(step=None):
    x, D, _ = _problem(n_atoms=48, d=16, batch=10, seed=7)
    D = D * np.random.default_rng(8).uniform(0.5, 1.5, size=(48, 1))  # atoms of unequal norm
    lam = 0.3
    enc = lasso.ista_encoder_weights(D, lam, step)
    want = lasso.ista_step(x, D, np.zeros((10, 48)), lam, step)
    return x, D, lam, enc, want


@pytest.mark.parametrize("step", [None, 0.01])
def test_one_ista_step_is_a_numpy_sae_encoder(step):
    x, D, lam, enc, want = _ista_sae_setup(step)
    sae = numpy_sae.L1SAE(L1Config(d_in=16, d_sae=48, l1_coeff=lam, decoder_norm="weighted"),
                          rng=0, dtype=np.float64)
    sae.load_parameters({"W_enc": enc.W_enc, "b_enc": enc.b_enc, "W_dec": D,
                         "b_dec": np.zeros(16)})
    f = sae.encode(x)
    assert 0 < (f > 0).mean() < 1
    np.testing.assert_allclose(f, want, rtol=0, atol=1e-13)
    np.testing.assert_allclose(lasso.ista(x, D, lam, step=step, max_iter=1).z, want, atol=1e-13)


def test_one_ista_step_is_a_torch_sae_encoder():
    x, D, lam, enc, want = _ista_sae_setup()
    sae = torch_sae.L1SAE(L1Config(d_in=16, d_sae=48, l1_coeff=lam, decoder_norm="unit"),
                          dtype=torch.float64)
    with torch.no_grad():
        sae.W_enc.copy_(torch.from_numpy(enc.W_enc))
        sae.b_enc.copy_(torch.from_numpy(enc.b_enc))
        sae.W_dec.copy_(torch.from_numpy(D))
        sae.b_dec.zero_()
        f = sae.encode(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(f, want, rtol=0, atol=1e-13)


def test_encoder_weights_default_step_constants():
    _, D, _ = _problem(seed=9)
    enc = lasso.ista_encoder_weights(D, 0.3)
    s2 = np.linalg.norm(D, 2) ** 2
    np.testing.assert_allclose(enc.W_enc, D.T / s2)
    np.testing.assert_allclose(enc.b_enc, np.full(D.shape[0], -0.3 / (2 * s2)))
    assert enc.W_enc.shape == (D.shape[1], D.shape[0])


# ---- bad input --------------------------------------------------------------------------------

def test_bad_input_is_named():
    x, D, _ = _problem()
    L = lasso.lipschitz_constant(D)
    D0 = D.copy()
    D0[3] = 0
    cases = [
        (lambda: lasso.ista(x, D0, 0.1), "zero-norm atom"),
        (lambda: lasso.fista(x, D, -0.1), "lam must be non-negative, got -0.1"),
        (lambda: lasso.ista(x, D, 0.1, step=1.5 / L), "step must be at most 1/L"),
        (lambda: lasso.ista(x, D, 0.1, step=0.0), "step must be positive"),
        (lambda: lasso.ista(np.full_like(x, np.nan), D, 0.1), "x contains"),
        (lambda: lasso.fista(x, np.where(D > 0.5, np.inf, D), 0.1), "D contains"),
        (lambda: lasso.ista(x[:, :5], D, 0.1), "x must have shape (batch, d) = (batch, 20)"),
        (lambda: lasso.ista(x[0], D, 0.1), "x must have shape"),
        (lambda: lasso.ista(x, D[0], 0.1), "D must have shape (n_atoms, d)"),
        (lambda: lasso.fista(x, D, 0.1, z0=np.zeros((6, 3))), "z0 must have shape"),
        (lambda: lasso.ista(x, D, 0.1, max_iter=0), "max_iter must be"),
        (lambda: lasso.ista(x, D, 0.1, tol=-1.0), "tol must be non-negative"),
        (lambda: lasso.orthonormal_lasso(x, D[:5], 0.1), "orthonormal rows"),
        (lambda: lasso.lasso_objective(x, D, np.zeros((6, 7)), 0.1), "z must have shape"),
        (lambda: lasso.ista_encoder_weights(D, 0.1, step=2 / L), "step must be at most 1/L"),
        (lambda: lasso.soft_threshold(x, -1.0), "t must be finite and non-negative"),
        (lambda: lasso.nonneg_soft_threshold(x, np.nan), "t must be finite and non-negative"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert words in str(info.value), (words, str(info.value))


def test_step_message_states_the_bound():
    x, D, _ = _problem()
    with pytest.raises(ValueError, match=r"L = 2 \|\|D\|\|_2\^2"):
        lasso.fista(x, D, 0.1, step=1.0)
    # exactly 1/L (computed independently) is allowed
    lasso.ista(x, D, 0.1, step=1 / (2 * np.linalg.svd(D, compute_uv=False)[0] ** 2), max_iter=2)
