"""Sparse coding with a fixed dictionary: the non-negative LASSO, solved by ISTA and FISTA.

For a dictionary ``D`` whose rows are the atoms (shape (n_atoms, d), the layout of an SAE's
``W_dec``) and an input row ``x`` of shape (d,), the best non-negative code under the SAE loss is

    z* = argmin_{z >= 0}  F(z),   F(z) = ||x - z D||^2 + lam * sum_i z_i          (1)

(Olshausen and Field, 1996, pose sparse coding this way; with z >= 0 the L1 norm is ``sum_i z_i``).
The smooth part g(z) = ||x - z D||^2 has gradient and Hessian

    grad g(z) = 2 (z D - x) D^T          (n_atoms,)
    Hess g    = 2 D D^T,   so grad g is L-Lipschitz with  L = 2 ||D||_2^2           (2)

(||D||_2 the largest singular value). One proximal-gradient (ISTA) step with step size ``eta``
is a gradient step on g followed by the prox of ``eta * lam * sum z`` on z >= 0, a shifted ReLU:

    z <- ReLU(z - eta * grad g(z) - eta * lam)                                       (3)

It decreases F monotonically for ``0 < eta <= 1/L`` (the default is ``eta = 1/L``). FISTA
(Beck and Teboulle, 2009) adds momentum and converges as O(1/k^2) instead of O(1/k).

Two identities taught in Chapter 3:

* One ISTA step from z = 0 is ``ReLU(2 eta x D^T - eta lam)``: an SAE encoder
  ``f = ReLU(x W_enc + b_enc)`` with ``W_enc = 2 eta D^T`` (d, n_atoms) and
  ``b_enc = -eta lam`` (:func:`ista_encoder_weights`). With eta = 1/L this is
  ``W_enc = D^T / ||D||_2^2``, ``b_enc = -lam / (2 ||D||_2^2)``.
* Orthonormal rows (D D^T = I): F separates into ``z_i^2 - 2 z_i c_i + lam z_i`` with
  ``c = x D^T``, so ``z* = ReLU(x D^T - lam / 2)`` (:func:`orthonormal_lasso`). Here L = 2 and
  one ISTA step from zero with eta = 1/2 lands exactly on z*.

Every solver works on a batch: ``x`` of shape (batch, d), codes of shape (batch, n_atoms). All
arithmetic is float64. Taught in Chapter 3.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from saelab._checks import (check_finite, check_int_in_range, check_nonnegative, check_numeric,
                            check_positive)

__all__ = [
    "LassoResult",
    "EncoderWeights",
    "soft_threshold",
    "nonneg_soft_threshold",
    "lasso_objective",
    "lasso_gradient",
    "lipschitz_constant",
    "ista_step",
    "ista",
    "fista",
    "orthonormal_lasso",
    "ista_encoder_weights",
]

STEP_RTOL = 1e-9  # a step of 1/L computed elsewhere may exceed ours by rounding; allow that much
ORTHONORMAL_ATOL = 1e-8  # how far D D^T may be from the identity for the closed form


class LassoResult(NamedTuple):
    """What :func:`ista` and :func:`fista` return (Chapter 3)."""

    z: np.ndarray  # (batch, n_atoms) the codes at the last iterate, all >= 0
    objective: np.ndarray  # (batch,) F(z) of every row
    n_iter: int  # iterations run
    converged: bool  # True if the stopping rule fired before max_iter
    history: np.ndarray  # (n_iter + 1,) mean of F over the batch at z0 and after every iteration


class EncoderWeights(NamedTuple):
    """SAE encoder parameters equal to one ISTA step from zero (Chapter 3)."""

    W_enc: np.ndarray  # (d, n_atoms) = 2 eta D^T
    b_enc: np.ndarray  # (n_atoms,) = -eta lam


# ----------------------------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------------------------

def _check_dictionary(D) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] == 0 or D.shape[1] == 0:
        raise ValueError(f"D must have shape (n_atoms, d) with atoms as rows, got {D.shape}")
    check_finite("D", D)
    norms = np.linalg.norm(D, axis=1)
    zero = np.flatnonzero(norms == 0)
    if zero.size:
        raise ValueError(f"D has {zero.size} zero-norm atom(s) (rows {zero[:5].tolist()}); "
                         "a zero atom cannot reconstruct anything: drop it")
    return D


def _check_x(x, D: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != D.shape[1]:
        raise ValueError(f"x must have shape (batch, d) = (batch, {D.shape[1]}) to match D of "
                         f"shape {D.shape}, got {x.shape}")
    check_finite("x", x)
    return x


def _check_z(name: str, z, batch: int, n_atoms: int) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.shape != (batch, n_atoms):
        raise ValueError(f"{name} must have shape (batch, n_atoms) = ({batch}, {n_atoms}), "
                         f"got {z.shape}")
    check_finite(name, z)
    return z


def _check_step(step, D: np.ndarray) -> float:
    L = lipschitz_constant(D)
    if step is None:
        return 1.0 / L
    step = check_positive("step", step)
    if step > (1.0 + STEP_RTOL) / L:
        raise ValueError(f"step must be at most 1/L = {1.0 / L:.6g} for this D "
                         f"(L = 2 ||D||_2^2 = {L:.6g}, the Lipschitz constant of the gradient); "
                         f"got {step}")
    return step


# ----------------------------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------------------------

def _check_threshold_args(v, t) -> tuple[np.ndarray, np.ndarray]:
    """``v`` and ``t`` as float64 arrays; ``t`` must be finite and non-negative."""
    v = np.asarray(check_numeric("v", v), dtype=np.float64)
    t = np.asarray(check_numeric("t", t, finite=False), dtype=np.float64)
    if np.any(t < 0) or not np.all(np.isfinite(t)):
        raise ValueError(f"t must be finite and non-negative, got {t if t.ndim == 0 else t.min()}")
    return v, t


def soft_threshold(v, t):
    """Signed soft thresholding ``sign(v) max(|v| - t, 0)``, elementwise. Chapter 3.

    The prox of ``t ||.||_1``: the solution of the signed LASSO for an orthonormal dictionary.

    Parameters
    ----------
    v : ndarray of any shape
    t : float or ndarray broadcastable to ``v``, >= 0
    """
    v, t = _check_threshold_args(v, t)
    return np.sign(v) * np.maximum(np.abs(v) - t, 0.0)


def nonneg_soft_threshold(v, t):
    """Non-negative soft thresholding ``max(v - t, 0) = ReLU(v - t)``, elementwise. Chapter 3.

    The prox of ``t sum_i z_i`` restricted to z >= 0. Unlike :func:`soft_threshold` it sends
    every negative input to 0: a code that may only be positive cannot follow v below zero.

    Parameters
    ----------
    v : ndarray of any shape
    t : float or ndarray broadcastable to ``v``, >= 0
    """
    v, t = _check_threshold_args(v, t)
    return np.maximum(v - t, 0.0)


def lipschitz_constant(D) -> float:
    """``L = 2 ||D||_2^2``, the Lipschitz constant of ``grad ||x - z D||^2`` in z. Chapter 3.

    Parameters
    ----------
    D : ndarray of shape (n_atoms, d)
    """
    D = _check_dictionary(D)
    return 2.0 * float(np.linalg.norm(D, 2)) ** 2


def lasso_objective(x, D, z, lam: float) -> np.ndarray:
    """``F(z) = ||x - z D||^2 + lam * sum_i z_i`` for every row; Chapter 3.

    Parameters
    ----------
    x : ndarray of shape (batch, d)
    D : ndarray of shape (n_atoms, d)
    z : ndarray of shape (batch, n_atoms), >= 0 (the penalty is ``sum z``, i.e. ||z||_1 for z >= 0)
    lam : float, >= 0

    Returns
    -------
    ndarray of shape (batch,)
    """
    D = _check_dictionary(D)
    x = _check_x(x, D)
    z = _check_z("z", z, x.shape[0], D.shape[0])
    lam = check_nonnegative("lam", lam)
    return ((x - z @ D) ** 2).sum(axis=1) + lam * np.abs(z).sum(axis=1)


def lasso_gradient(x, D, z) -> np.ndarray:
    """Gradient of the smooth part, ``2 (z D - x) D^T``, shape (batch, n_atoms). Chapter 3."""
    return 2.0 * (z @ D - x) @ D.T  # (batch, n_atoms)


def ista_step(x, D, z, lam: float, step: float | None = None) -> np.ndarray:
    """One ISTA step ``ReLU(z - step * 2 (z D - x) D^T - step * lam)``. Chapter 3.

    Parameters
    ----------
    x : ndarray of shape (batch, d)
    D : ndarray of shape (n_atoms, d), atoms as rows
    z : ndarray of shape (batch, n_atoms)
    lam : float, >= 0
    step : float, optional
        In ``(0, 1/L]`` with ``L = 2 ||D||_2^2``; default ``1/L``.

    Returns
    -------
    ndarray of shape (batch, n_atoms)
    """
    D = _check_dictionary(D)
    x = _check_x(x, D)
    z = _check_z("z", z, x.shape[0], D.shape[0])
    lam = check_nonnegative("lam", lam)
    step = _check_step(step, D)
    return nonneg_soft_threshold(z - step * lasso_gradient(x, D, z), step * lam)


# ----------------------------------------------------------------------------------------------
# Solvers
# ----------------------------------------------------------------------------------------------

def _solve(x, D, lam, step, z0, max_iter, tol, momentum: bool) -> LassoResult:
    D = _check_dictionary(D)
    x = _check_x(x, D)
    lam = check_nonnegative("lam", lam)
    step = _check_step(step, D)
    check_int_in_range("max_iter", max_iter, 1)
    tol = check_nonnegative("tol", tol)
    batch, n_atoms = x.shape[0], D.shape[0]
    if z0 is None:
        z = np.zeros((batch, n_atoms))
    else:
        z = np.maximum(_check_z("z0", z0, batch, n_atoms), 0.0)  # project onto z >= 0
    zD = z @ D  # (batch, d), kept up to date so each iteration needs two matrix products
    y, yD, t = z, zD, 1.0  # FISTA's extrapolated point, y D, and momentum counter
    f_old = ((x - zD) ** 2).sum(axis=1) + lam * z.sum(axis=1)  # (batch,) F(z0)
    history = [float(f_old.mean())]
    tiny = np.finfo(np.float64).tiny
    for it in range(1, max_iter + 1):
        grad = 2.0 * (yD - x) @ D.T  # (batch, n_atoms), gradient of the smooth part at y
        z_new = nonneg_soft_threshold(y - step * grad, step * lam)  # ISTA step (3) from y
        zD_new = z_new @ D  # (batch, d)
        f_new = ((x - zD_new) ** 2).sum(axis=1) + lam * z_new.sum(axis=1)  # (batch,)
        if momentum:
            t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            beta = (t - 1.0) / t_new
            y = z_new + beta * (z_new - z)
            yD = zD_new + beta * (zD_new - zD)  # = y @ D, by linearity
            t = t_new
        else:
            y, yD = z_new, zD_new
        z, zD = z_new, zD_new
        rel_change = np.abs(f_old - f_new) / np.maximum(f_old, tiny)  # (batch,); F >= 0
        f_old = f_new
        history.append(float(f_new.mean()))
        if np.all(rel_change <= tol):
            return LassoResult(z, f_new, it, True, np.array(history))
    return LassoResult(z, f_old, max_iter, False, np.array(history))


def ista(x, D, lam: float, step: float | None = None, z0=None, max_iter: int = 10_000,
         tol: float = 1e-10) -> LassoResult:
    """Solve the non-negative LASSO (1) for every row of ``x`` with ISTA. Chapter 3.

    Parameters
    ----------
    x : ndarray of shape (batch, d)
        Inputs, one per row.
    D : ndarray of shape (n_atoms, d)
        Dictionary with atoms as rows (an SAE's ``W_dec``); no zero rows.
    lam : float
        L1 coefficient, >= 0.
    step : float, optional
        Step size in ``(0, 1/L]``, ``L = 2 ||D||_2^2``; default ``1/L``.
    z0 : ndarray of shape (batch, n_atoms), optional
        Starting codes (negative entries are clipped to 0); default zeros.
    max_iter : int
        Most iterations to run.
    tol : float
        Stop when ``|F_k - F_{k-1}| <= tol * F_{k-1}`` for every row (relative change of F).

    Returns
    -------
    LassoResult
        ``z`` (batch, n_atoms), ``objective`` (batch,), ``n_iter``, ``converged`` and
        ``history``, the batch-mean objective at the start and after each iteration.
    """
    return _solve(x, D, lam, step, z0, max_iter, tol, momentum=False)


def fista(x, D, lam: float, step: float | None = None, z0=None, max_iter: int = 10_000,
          tol: float = 1e-10) -> LassoResult:
    """Solve the non-negative LASSO (1) with FISTA (Beck and Teboulle, 2009). Chapter 3.

    Same arguments and result as :func:`ista`. Each step takes the ISTA step (3) from the
    extrapolated point ``y = z_k + ((t_{k-1} - 1) / t_k) (z_k - z_{k-1})`` with
    ``t_k = (1 + sqrt(1 + 4 t_{k-1}^2)) / 2``, ``t_0 = 1``. F need not fall at every step, but
    ``F(z_k) - F(z*)`` shrinks as O(1/k^2) instead of ISTA's O(1/k).
    """
    return _solve(x, D, lam, step, z0, max_iter, tol, momentum=True)


def orthonormal_lasso(x, D, lam: float) -> np.ndarray:
    """Closed-form solution ``ReLU(x D^T - lam / 2)`` when the rows of D are orthonormal. Chapter 3.

    Parameters
    ----------
    x : ndarray of shape (batch, d)
    D : ndarray of shape (n_atoms, d) with ``D D^T = I`` (so n_atoms <= d)
    lam : float, >= 0

    Returns
    -------
    ndarray of shape (batch, n_atoms)
    """
    D = _check_dictionary(D)
    x = _check_x(x, D)
    lam = check_nonnegative("lam", lam)
    gram_err = float(np.abs(D @ D.T - np.eye(D.shape[0])).max())
    if gram_err > ORTHONORMAL_ATOL:
        raise ValueError(f"D must have orthonormal rows (D D^T = I) for the closed form; "
                         f"max |D D^T - I| = {gram_err:.3g}. Use ista or fista instead")
    return nonneg_soft_threshold(x @ D.T, lam / 2.0)


def ista_encoder_weights(D, lam: float, step: float | None = None) -> EncoderWeights:
    """SAE encoder weights whose output is one ISTA step from z = 0. Chapter 3.

    ``ReLU(x W_enc + b_enc)`` with ``W_enc = 2 step D^T`` and ``b_enc = -step * lam`` equals
    ``ista_step(x, D, 0, lam, step)`` for every x (with ``b_dec = 0``; an SAE with a decoder
    bias applies it to ``x - b_dec``).

    Parameters
    ----------
    D : ndarray of shape (n_atoms, d)
    lam : float, >= 0
    step : float, optional
        In ``(0, 1/L]``; default ``1/L``, giving ``W_enc = D^T / ||D||_2^2``.

    Returns
    -------
    EncoderWeights
        ``W_enc`` of shape (d, n_atoms), ``b_enc`` of shape (n_atoms,).
    """
    D = _check_dictionary(D)
    lam = check_nonnegative("lam", lam)
    step = _check_step(step, D)
    return EncoderWeights(2.0 * step * D.T.copy(), np.full(D.shape[0], -step * lam))
