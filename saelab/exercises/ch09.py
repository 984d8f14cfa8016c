"""Exercise checkers for Chapter 9 (the limits of SAEs).

* ``fit_power_law(n, loss) -> (a, b)``: least squares of ``log loss = log a - b log n``.
  Compared with :func:`saelab.lm.scaling_laws.fit_power_law`.
* ``diff_in_means_probe(x, y) -> w``: ``mean(x[y]) - mean(x[~y])``. Compared with
  :func:`saelab.probes.diff_in_means`.
* ``sparse_probe(codes_train, y_train, codes_test, y_test, k) -> (indices, auroc)``: select the
  k latents with the largest |difference in mean activation| on the training rows, fit a logistic
  regression on them, return the indices (any order) and the held-out AUROC. Compared with
  :func:`saelab.probes.fit_sparse_probe` and :func:`saelab.probes.auroc` (AUROC within 0.02, since
  any reasonably converged logistic fit ranks the test rows almost the same way).

A wrong answer is compared with the answers of common mistakes and the message names the one it
matches. Taught in Chapter 9.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from saelab.exercises import checking

__all__ = ["fit_power_law", "diff_in_means_probe", "sparse_probe", "sparse_probe_data"]


def fit_power_law(fn: Callable) -> None:
    """Check ``fn(n, loss) -> (a, b)`` with ``loss ~ a * n**(-b)``. Chapter 9."""
    from saelab.lm.scaling_laws import fit_power_law as reference

    name = "fit_power_law"
    rng = np.random.default_rng(909)
    n = np.array([256, 512, 1024, 2048, 4096, 8192], dtype=float)
    loss = 1.7 * n ** -0.31 * np.exp(0.03 * rng.standard_normal(n.size))
    got = checking.call_student(name, fn, n.copy(), loss.copy())
    fit = reference(n, loss)
    want = np.array([fit.a, fit.b])
    slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)
    lin_slope, lin_intercept = np.polyfit(n, loss, 1)
    mistakes = {
        "b has the wrong sign: the slope of log(loss) against log(n) is -b, so b = -slope.":
            [np.exp(intercept), slope],
        "you returned log(a), the intercept; a = exp(intercept).": [intercept, -slope],
        "you fitted a straight line to loss against n; a power law is a straight line in "
        "log-log coordinates: fit log(loss) against log(n).": [lin_intercept, -lin_slope],
        "you swapped a and b; return (a, b).": [-slope, np.exp(intercept)],
    }
    checking.expect_close(name, got, want, mistakes, rtol=1e-4, atol=1e-6, what="(a, b)")
    checking.passed(name)


def diff_in_means_probe(fn: Callable) -> None:
    """Check ``fn(x, y) -> w`` [d], the difference-in-means direction. Chapter 9."""
    from saelab.probes import diff_in_means

    name = "diff_in_means_probe"
    rng = np.random.default_rng(9090)
    y = rng.uniform(size=60) < 0.3
    x = rng.standard_normal((60, 5)) + np.outer(y, [2.0, 0, -1, 0, 0.5]) + 1.0
    got = checking.call_student(name, fn, x.copy(), y.copy())
    want = diff_in_means(x, y)
    mistakes = {
        "that is mean(x[y]) only: subtract the mean of the negatives, mean(x[~y]).": x[y].mean(0),
        "the sign is reversed: the direction points from the negatives to the positives, "
        "mean(x[y]) - mean(x[~y]).": -want,
        "you subtracted the mean of all rows; subtract the mean of the negatives only.":
            x[y].mean(0) - x.mean(0),
        "you normalized the direction; return the raw difference (its norm matters for "
        "steering at a given strength).": want / np.linalg.norm(want),
    }
    checking.expect_close(name, got, want, mistakes, what="the direction")
    checking.passed(name)


def sparse_probe_data():
    """(codes_train, y_train, codes_test, y_test, k) of the sparse-probing exercise.

    40 non-negative sparse latents. Latent 0 fires more on positives, latent 5 less (a negative
    signal); latents 1 and 2 carry weaker signals, 1 the stronger on the training rows and 2 on
    the test rows, where all signals are weaker (a shift), so selecting on the wrong split is
    visible. The rest is noise.
    """
    rng = np.random.default_rng(99)

    def split(n, s0, s5, w1, w2):
        y = rng.uniform(size=n) < 0.3
        base = rng.exponential(size=(n, 40)) * (rng.uniform(size=(n, 40)) < 0.3)
        base[:, 0] += s0 * y * rng.uniform(0.5, 1.5, n)
        base[:, 5] += s5 * (~y) * rng.uniform(0.5, 1.5, n)
        base[:, 1] += w1 * y * rng.uniform(0.5, 1.5, n)
        base[:, 2] += w2 * y * rng.uniform(0.5, 1.5, n)
        return base, y

    x_tr, y_tr = split(300, 2.0, 2.5, 1.2, 0.3)
    x_te, y_te = split(300, 1.0, 1.2, 0.3, 1.2)
    return x_tr, y_tr, x_te, y_te, 3


def sparse_probe(fn: Callable) -> None:
    """Check ``fn(codes_train, y_train, codes_test, y_test, k) -> (indices, auroc)``. Chapter 9."""
    from saelab.probes import auroc, fit_sparse_probe, select_latents

    name = "sparse_probe"
    x_tr, y_tr, x_te, y_te, k = sparse_probe_data()
    out = checking.call_student(name, fn, x_tr.copy(), y_tr.copy(), x_te.copy(), y_te.copy(), k)
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise checking.ExerciseFailed(f"{name}: return a pair (indices, auroc), got "
                                      f"{type(out).__name__}")
    idx, got_auc = out
    got_idx = sorted(int(i) for i in np.asarray(checking.to_numpy(idx)).ravel())
    want_idx, probe = fit_sparse_probe(x_tr, y_tr, k)
    gap = x_tr[y_tr].mean(0) - x_tr[~y_tr].mean(0)
    wrong_sets = {
        "you kept the largest signed differences; a latent that fires *less* on positives is "
        "just as informative: rank by |mean difference|.": np.argsort(-gap)[:k],
        "you selected the latents on the test rows: select on the training rows only, or the "
        "held-out score is no longer held out.": select_latents(x_te, y_te, k),
        "you kept the k smallest differences; keep the largest.": np.argsort(np.abs(gap))[:k],
    }
    if got_idx != sorted(want_idx.tolist()):
        for hint, wrong in wrong_sets.items():
            if got_idx == sorted(int(i) for i in wrong):
                raise checking.ExerciseFailed(f"{name}: {hint}")
        raise checking.ExerciseFailed(f"{name}: the selected latents {got_idx} are not the {k} "
                                      f"with the largest |mean(codes[y]) - mean(codes[~y])| on "
                                      f"the training rows")
    want_auc = auroc(probe.score(x_te[:, want_idx]), y_te)
    train_auc = auroc(probe.score(x_tr[:, want_idx]), y_tr)
    checking.expect_close(name, got_auc, want_auc, {
        "that is the AUROC on the training rows; score the probe on the test rows.": train_auc,
        "that is 1 - AUROC: count the pairs where the positive scores higher, or flip the "
        "probe's sign.": 1 - want_auc,
    }, rtol=0, atol=0.02, what="the held-out AUROC")
    checking.passed(name)


def _reference_fit_power_law(n, loss):
    """(a, b) of ``loss ~ a * n**(-b)``, from the library's log-log fit."""
    from saelab.lm.scaling_laws import fit_power_law as fit

    result = fit(n, loss)
    return result.a, result.b


def _reference_diff_in_means_probe(x, y):
    from saelab.probes import diff_in_means

    return diff_in_means(x, y)


# Reference solutions of the exercises whose functions later cells use: a learner notebook falls
# back to them while the learner's own function is not written or does not pass its check.
REFERENCES = {"fit_power_law": _reference_fit_power_law,
              "diff_in_means_probe": _reference_diff_in_means_probe}
