"""Checkers for the Chapter 1 exercises (superposition in a toy model).

Each checker calls the student's function on fixed, seeded NumPy inputs, compares with the
reference in :mod:`saelab.toy` or :mod:`saelab.geometry`, and names the likely mistake when the
answer matches a known-wrong variant. Used by ``notebooks/01_superposition.ipynb``::

    from saelab.exercises import ch01 as check
    check.toy_forward(toy_forward)
"""
from __future__ import annotations

import numpy as np

from saelab.exercises.checking import ExerciseFailed, call_student, expect_close, passed, to_numpy
from saelab.geometry import feature_dimensionality as _ref_dimensionality
from saelab.geometry import interference_formula as _ref_interference
from saelab.toy import toy_forward as _ref_forward
from saelab.toy import toy_loss as _ref_loss

__all__ = ["toy_forward", "toy_loss", "feature_dimensionality", "interference_estimate"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _fail(name: str, hint: str) -> ExerciseFailed:
    return ExerciseFailed(f"{name}: {hint}")


def _toy_inputs():
    rng = _rng(101)
    d, m, batch = 3, 6, 8
    W = rng.normal(size=(d, m))  # [d, m]
    b = rng.normal(size=m) * 0.5  # [m]; mixed signs so the ReLU and the bias both matter
    x = rng.uniform(size=(batch, m)) * (rng.uniform(size=(batch, m)) < 0.6)  # [batch, m]
    return W, b, x


def toy_forward(fn) -> None:
    """Check ``fn(W, b, x) -> x_hat`` for one toy model: ``x_hat = ReLU(x W^T W + b)`` row-wise.

    W has shape (d, m), b shape (m,), x shape (batch, m); x_hat has shape (batch, m).
    """
    name = "toy_forward"
    W, b, x = _toy_inputs()
    try:
        got = call_student(name, fn, W.copy(), b.copy(), x.copy())
    except ExerciseFailed as exc:
        crash = str(exc).removeprefix(f"{name}: ")
        raise _fail(name, f"{crash} Hint: W has shape (d, m) = {W.shape} and x has shape "
                          f"(batch, m) = {x.shape}. For a batch of rows, h = W x is x @ W.T "
                          "(shape (batch, d)) and W^T h is h @ W; W @ W.T is (d, d) and does not "
                          "fit.") from exc
    if to_numpy(got).shape == (x.shape[0], W.shape[0]):
        raise _fail(name, "your output has shape (batch, d): that is the hidden layer h = W x. "
                          "Map it back with W^T, add b and apply the ReLU.")
    gram = W.T @ W
    wrong = {
        "you forgot the ReLU: x_hat = ReLU(W^T W x + b) must be non-negative.":
            x @ gram + b,
        "you forgot the bias b: add it before the ReLU.":
            np.maximum(x @ gram, 0),
        "the bias goes inside the ReLU: x_hat = ReLU(W^T W x + b), not ReLU(W^T W x) + b.":
            np.maximum(x @ gram, 0) + b,
        "the hidden layer is linear: h = W x has no ReLU; the only ReLU is on the output.":
            np.maximum(np.maximum(x @ W.T, 0) @ W + b, 0),
        "you applied the ReLU before adding the bias and again after: x_hat = ReLU(W^T W x + b).":
            np.maximum(np.maximum(x @ gram, 0) + b, 0),
    }
    expect_close(name, got, _ref_forward(W, b, x), wrong, what="x_hat")
    passed(name)


def toy_loss(fn) -> None:
    """Check ``fn(x, x_hat, importance) -> loss``: ``mean_batch sum_i I_i (x_i - x_hat_i)^2``."""
    name = "toy_loss"
    rng = _rng(202)
    batch, m = 16, 5
    x = rng.uniform(size=(batch, m))
    x_hat = rng.uniform(size=(batch, m))
    importance = 0.7 ** np.arange(m)
    got = call_student(name, fn, x.copy(), x_hat.copy(), importance.copy())
    sq = (x - x_hat) ** 2
    wrong = {
        "you forgot the importance weights: multiply each feature's squared error by I_i.":
            sq.sum(1).mean(),
        "you averaged over features: the loss sums over features (weighted by I_i) and averages "
        "over the batch only.":
            (importance * sq).mean(),
        "you summed over the batch: average over the batch (axis 0) instead.":
            (importance * sq).sum(),
        "you squared after weighting (or squared the weights): use I_i * (x_i - x_hat_i)^2, "
        "not (I_i (x_i - x_hat_i))^2 = I_i^2 (x_i - x_hat_i)^2.":
            ((importance * (x - x_hat)) ** 2).sum(1).mean(),
        "you weighted by sqrt(I_i): the weight multiplies the squared error as it is, "
        "I_i * (x_i - x_hat_i)^2.":
            (np.sqrt(importance) * sq).sum(1).mean(),
        "you forgot to square the error.":
            (importance * (x - x_hat)).sum(1).mean(),
    }
    if got is not None and to_numpy(got).size == batch:
        raise _fail(name, "your loss has one value per example: average it over the batch "
                          "to get a single number.")
    expect_close(name, got, _ref_loss(x, x_hat, importance), wrong, what="the loss")
    passed(name)


def feature_dimensionality(fn) -> None:
    """Check ``fn(W) -> D`` for ``W`` of shape (d, m): ``D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2``.

    One column of the test matrix is zero; its dimensionality must be 0, not NaN.
    """
    name = "feature_dimensionality"
    rng = _rng(303)
    d, m = 3, 7
    W = rng.normal(size=(d, m)) * rng.uniform(0.5, 2.0, size=m)  # columns of different norms
    W[:, 4] = 0.0  # a dropped feature
    got = call_student(name, fn, W.copy())
    want = _ref_dimensionality(W)
    norm2 = (W ** 2).sum(0)
    gram = W.T @ W
    overlap = (gram ** 2).sum(1)
    live = norm2 > 0
    safe = np.where(live, norm2, 1.0)
    wrong = {
        "you did not normalise W_i in the denominator: use W_i_hat = W_i / ||W_i||, so the "
        "denominator is sum_j (W_i . W_j)^2 / ||W_i||^2.":
            np.where(live, norm2 / np.where(live, overlap, 1.0), 0.0),
        "you left out the j = i term: the sum in the denominator runs over all j, including i "
        "(that term is ||W_i||^2 and keeps D_i <= 1).":
            np.where(live, norm2 ** 2 / np.where(overlap - norm2 ** 2 > 0, overlap - norm2 ** 2, 1.0),
                     0.0),
        "you used |W_i| instead of ||W_i||^2 in the numerator.":
            np.where(live, np.sqrt(norm2) * norm2 / np.where(live, overlap, 1.0), 0.0),
        "you forgot to square the dot products (W_i_hat . W_j) in the denominator.":
            np.where(live, norm2 / np.where(live, (np.abs(gram) / np.sqrt(safe)[:, None]).sum(1), 1.0),
                     0.0),
    }
    got_arr = to_numpy(got) if got is not None else np.zeros(0)
    if got_arr.shape == (d,):
        raise _fail(name, f"your answer has {d} entries, one per row of W: feature i's direction "
                          f"is the column W[:, i], so there are m = {m} dimensionalities.")
    if got_arr.shape == want.shape and np.isnan(got_arr[4]) and np.allclose(
            np.delete(got_arr, 4), np.delete(want, 4)):
        raise _fail(name, "feature 4 has W_4 = 0 and your answer is NaN there: a dropped feature "
                          "has dimensionality 0. Guard the division (np.where).")
    expect_close(name, got, want, wrong, what="the dimensionalities")
    passed(name)


def interference_estimate(fn) -> None:
    """Check ``fn(F, p) -> E`` with ``E_i = p * sum_{j != i} (f_i . f_j)^2`` for F of shape (d, m)."""
    name = "interference_estimate"
    rng = _rng(404)
    d, m, p = 4, 9, 0.1
    F = rng.normal(size=(d, m))
    F /= np.linalg.norm(F, axis=0)
    got = call_student(name, fn, F.copy(), p)
    gram = F.T @ F
    off = gram - np.diag(np.diag(gram))
    wrong = {
        "you included j = i: f_i . f_i = 1 is the feature itself, not interference; skip the "
        "diagonal of F^T F.":
            p * (gram ** 2).sum(1),
        "you forgot the factor p: feature j only interferes when it is active (probability p).":
            (off ** 2).sum(1),
        "you squared the sum instead of summing squares: for independent codes the cross terms "
        "average out to first order, so E = p * sum_{j != i} (f_i . f_j)^2.":
            p * off.sum(1) ** 2,
        "you forgot to square the inner products.":
            p * off.sum(1),
        "you used the random-vector approximation p (m - 1) / d; compute the sum for these F.":
            np.full(m, p * (m - 1) / d),
        "you multiplied by p^2: each term needs feature j active, probability p.":
            p ** 2 * (off ** 2).sum(1),
    }
    expect_close(name, got, _ref_interference(F, p), wrong, what="the interference")
    passed(name)
