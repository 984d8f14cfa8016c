"""Checkers for the Chapter 3 exercises (the SAE is amortized LASSO).

Three exercises, each checked against :mod:`saelab.lasso` on fixed float64 inputs:

* ``nonneg_soft_threshold(v, t)``: ``ReLU(v - t)``, the prox of ``t * sum(z)`` on z >= 0.
* ``ista_step(x, D, z, lam, eta)``: one ISTA step on ``||x - z D||^2 + lam * sum(z)``,
  ``ReLU(z - eta * 2 (z D - x) D^T - eta * lam)``, with atoms as the rows of D.
* ``ista_encoder(D, lam, eta)``: the SAE encoder ``(W_enc, b_enc) = (2 eta D^T, -eta lam)`` whose
  output ``ReLU(x W_enc + b_enc)`` is one ISTA step from z = 0.

A wrong answer is compared with the answers of common mistakes (signed instead of non-negative
thresholding, a forgotten factor 2 or step size, the gradient's sign, lam/2 instead of lam, D
instead of D^T) and the message names the one it matches. Used by ``notebooks/03_lasso.ipynb``::

    from saelab.exercises import ch03 as check
    check.ista_step(ista_step)
"""
from __future__ import annotations

import numpy as np

from saelab import lasso
from saelab.exercises.checking import ExerciseFailed, call_student, expect_close, passed, to_numpy

__all__ = ["nonneg_soft_threshold", "ista_step", "ista_encoder"]


def _fail(name: str, hint: str) -> ExerciseFailed:
    return ExerciseFailed(f"{name}: {hint}")


def _relu(a):
    return np.maximum(a, 0.0)


# ----------------------------------------------------------------------------------------------
# Exercise 1: non-negative soft thresholding
# ----------------------------------------------------------------------------------------------

def nonneg_soft_threshold(fn) -> None:
    """Check ``fn(v, t) -> ReLU(v - t)`` on a matrix ``v`` with entries on both sides of 0 and t."""
    name = "nonneg_soft_threshold"
    rng = np.random.default_rng(3001)
    v = rng.uniform(-2.0, 2.0, size=(6, 9))  # below -t, in (-t, 0), in (0, t) and above t
    t = 0.7
    got = call_student(name, fn, v.copy(), t)
    wrong = {
        "you wrote the signed soft threshold sign(v) max(|v| - t, 0): a code that must be "
        "non-negative cannot follow v below zero, so every v < t gives 0.":
            lasso.soft_threshold(v, t),
        "you subtracted t after the ReLU: ReLU(v) - t is negative for small v. Subtract first, "
        "then clip: ReLU(v - t).":
            _relu(v) - t,
        "you forgot the threshold: ReLU(v - t) also zeroes the entries in (0, t].":
            _relu(v),
        "you added t: the threshold shrinks towards zero, ReLU(v - t).":
            _relu(v + t),
        "you forgot to clip at zero: ReLU(v - t) is never negative.":
            v - t,
        "that is hard thresholding (keep v where v > t): soft thresholding also shrinks the "
        "survivors by t.":
            v * (v > t),
        "you thresholded at t/2: the function takes the threshold t as it is (the lam/2 of the "
        "closed form goes into t when you call it).":
            _relu(v - t / 2),
    }
    expect_close(name, got, lasso.nonneg_soft_threshold(v, t), wrong, what="the thresholded array")
    passed(name)


# ----------------------------------------------------------------------------------------------
# Exercise 2: one ISTA step
# ----------------------------------------------------------------------------------------------

def _ista_inputs():
    """A non-square dictionary (so D and D^T cannot be swapped silently) and a non-zero z."""
    rng = np.random.default_rng(3002)
    batch, n_atoms, d = 5, 12, 7
    D = rng.standard_normal((n_atoms, d))
    D /= np.linalg.norm(D, axis=1, keepdims=True)
    z = rng.uniform(size=(batch, n_atoms)) * (rng.uniform(size=(batch, n_atoms)) < 0.4)
    x = rng.standard_normal((batch, d))
    lam = 0.4
    eta = 0.8 / lasso.lipschitz_constant(D)  # below 1/L, and not a round number
    return x, D, z, lam, eta


def ista_step(fn) -> None:
    """Check ``fn(x, D, z, lam, eta) -> ReLU(z - eta * 2 (z D - x) D^T - eta * lam)``.

    x has shape (batch, d), D shape (n_atoms, d) with atoms as rows, z shape (batch, n_atoms).
    """
    name = "ista_step"
    x, D, z, lam, eta = _ista_inputs()
    try:
        got = call_student(name, fn, x.copy(), D.copy(), z.copy(), lam, eta)
    except ExerciseFailed as exc:
        crash = str(exc).removeprefix(f"{name}: ")
        raise _fail(name, f"{crash} Hint: D has shape (n_atoms, d) = {D.shape}, atoms as rows. "
                          "The reconstruction is z @ D (shape (batch, d)) and the gradient "
                          "2 (z D - x) D^T is (z @ D - x) @ D.T (shape (batch, n_atoms)).") from exc
    grad = 2.0 * (z @ D - x) @ D.T  # (batch, n_atoms)
    want = lasso.ista_step(x, D, z, lam, eta)
    wrong = {
        "you forgot the factor 2 in the gradient: d/dz ||x - z D||^2 = 2 (z D - x) D^T.":
            _relu(z - eta * grad / 2 - eta * lam),
        "the gradient step has the wrong sign: step downhill, z - eta * grad, with "
        "grad = 2 (z D - x) D^T (note the order z D - x).":
            _relu(z + eta * grad - eta * lam),
        "the threshold is missing the step size: the prox of eta * lam * sum(z) shifts by "
        "eta * lam, not lam.":
            _relu(z - eta * grad - lam),
        "the gradient is missing the step size: z - eta * grad.":
            _relu(z - grad - eta * lam),
        "you thresholded at eta * lam / 2: in this loss (no 1/2 in front of the squared error) "
        "the penalty lam * sum(z) gives the shift eta * lam.":
            _relu(z - eta * grad - eta * lam / 2),
        "you used the signed soft threshold: the codes must stay non-negative, so apply "
        "ReLU(v - eta * lam).":
            lasso.soft_threshold(z - eta * grad, eta * lam),
        "you forgot the ReLU (the prox of the penalty on z >= 0): clip at zero after the shift.":
            z - eta * grad - eta * lam,
        "you forgot the current z: the step starts from z, z - eta * grad, not from 0.":
            _relu(-eta * grad - eta * lam),
        "you forgot the threshold: after the gradient step, subtract eta * lam before the ReLU.":
            _relu(z - eta * grad),
    }
    expect_close(name, got, want, wrong, what="the new codes")
    passed(name)


# ----------------------------------------------------------------------------------------------
# Exercise 3: the ISTA step as an SAE encoder
# ----------------------------------------------------------------------------------------------

def _encoder_inputs():
    rng = np.random.default_rng(3003)
    n_atoms, d = 10, 6
    D = rng.standard_normal((n_atoms, d)) * rng.uniform(0.5, 1.5, size=(n_atoms, 1))
    lam = 0.3
    eta = 0.6 / lasso.lipschitz_constant(D)
    return D, lam, eta


def ista_encoder(fn) -> None:
    """Check ``fn(D, lam, eta) -> (W_enc, b_enc)`` with ``W_enc = 2 eta D^T``, ``b_enc = -eta lam``.

    W_enc has shape (d, n_atoms) (the SAE layout) and b_enc shape (n_atoms,); a scalar b_enc is
    accepted and broadcast.
    """
    name = "ista_encoder"
    D, lam, eta = _encoder_inputs()
    n_atoms, d = D.shape
    got = call_student(name, fn, D.copy(), lam, eta)
    if got is None:
        raise _fail(name, "your function returned None; did you forget `return W_enc, b_enc`?")
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise _fail(name, "return two things, W_enc and b_enc: `return W_enc, b_enc`.")
    W_enc, b_enc = got
    W_arr = to_numpy(W_enc)
    if W_arr.shape == (n_atoms, d):
        raise _fail(name, f"W_enc has shape (n_atoms, d) = {W_arr.shape}, the layout of D. The "
                          f"encoder computes x @ W_enc with x of shape (batch, d), so W_enc is "
                          f"(d, n_atoms) = {(d, n_atoms)}: it is built from D^T, not D.")
    want = lasso.ista_encoder_weights(D, lam, eta)
    expect_close(name, W_enc, want.W_enc, {
        "W_enc is missing the factor 2: one step from zero gives 2 eta x D^T "
        "(the gradient of ||x - z D||^2 at z = 0 is -2 x D^T).": eta * D.T,
        "W_enc is missing the step size eta: W_enc = 2 eta D^T.": 2 * D.T,
        "W_enc has the wrong sign: the step from zero moves along -grad = +2 x D^T.": -2 * eta * D.T,
    }, what="W_enc")
    b_arr = to_numpy(b_enc)
    if b_arr.ndim == 0:
        b_arr = np.full(n_atoms, float(b_arr))
    expect_close(name, b_arr, want.b_enc, {
        "b_enc is missing the step size: the ISTA shift is eta * lam, so b_enc = -eta * lam.":
            np.full(n_atoms, -lam),
        "b_enc has the wrong sign: the threshold is subtracted, b_enc = -eta * lam.":
            np.full(n_atoms, eta * lam),
        "b_enc is half what it should be: in this loss the shift is eta * lam, not eta * lam / 2.":
            np.full(n_atoms, -eta * lam / 2),
        "b_enc has an extra factor 2: only the gradient term carries the 2; b_enc = -eta * lam.":
            np.full(n_atoms, -2 * eta * lam),
    }, what="b_enc")
    passed(name)
