"""Linear probes against SAE latents: which reads a concept best? (Chapter 9)

For activations x [n, d] with binary concept labels y:

- difference in means:   w = mean(x | y = 1) - mean(x | y = 0),   score = x . w
- logistic regression:   min_{w, b} mean_i BCE(sigmoid(x_i . w + b), y_i) + l2 ||w||^2
  (full-batch L-BFGS in float64, on standardized features; the weights are mapped back)
- best single latent:    the SAE latent whose activation alone ranks the training set best
- k-sparse probe:        the k latents with the largest |difference in mean activation|, then
                         logistic regression on those k only (the selection of Gao et al. 2024
                         and of Kantamneni et al. 2025's sparse probing baseline)

Every score is the area under the ROC curve (AUROC) on held-out rows, which does not depend on
the class balance: 0.5 is chance, 1 a perfect ranking. A probe trained on fewer examples than
dimensions can separate any labelling, so it warns.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import check_int_in_range, check_nonnegative

__all__ = ["LinearProbe", "auroc", "diff_in_means", "fit_logistic", "latent_aurocs",
           "select_latents", "fit_sparse_probe"]


def _labels(name: str, y) -> np.ndarray:
    from saelab.lm.concepts import check_labels

    return check_labels(name, np.asarray(y))


def _features(name: str, x, n: int | None = None) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n > 0, d), got {x.shape}")
    if n is not None and x.shape[0] != n:
        raise ValueError(f"{name} has {x.shape[0]} rows but y has {n} labels")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite")
    return x.astype(np.float64)


def auroc(scores, y) -> float:
    """Area under the ROC curve of ``scores`` [n] for labels ``y`` [n] (ties count one half).

    Equals P(score of a random positive > score of a random negative): the Mann-Whitney U
    statistic divided by n_pos * n_neg, computed from average ranks.
    """
    from scipy.stats import rankdata

    y = _labels("y", y)
    if scores is None:
        raise TypeError("scores must be an array of numbers [n], got None")
    s = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores,
                   dtype=np.float64)
    if s.shape != y.shape:
        raise ValueError(f"scores must have the shape of y {y.shape}, got {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"scores must be finite, got {int((~np.isfinite(s)).sum())} NaN or "
                         f"infinite value(s)")
    ranks = rankdata(s)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def latent_aurocs(codes, y) -> np.ndarray:
    """AUROC of every column of ``codes`` [n, m] as a score for ``y``, all at once: [m]."""
    from scipy.stats import rankdata

    y = _labels("y", y)
    c = _features("codes", codes, len(y))
    ranks = rankdata(c, axis=0)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return (ranks[y].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def diff_in_means(x, y) -> np.ndarray:
    """``mean(x[y == 1]) - mean(x[y == 0])`` [d], the difference-in-means direction."""
    y = _labels("y", y)
    x = _features("x", x, len(y))
    return x[y].mean(0) - x[~y].mean(0)


class LinearProbe(NamedTuple):
    """``score(x) = x . w + b`` (a logit for logistic probes)."""

    w: np.ndarray
    b: float

    def score(self, x) -> np.ndarray:
        """Scores [n] of rows ``x`` [n, d]."""
        return _features("x", x) @ self.w + self.b


def fit_logistic(x, y, l2: float = 1e-4, max_iter: int = 200) -> LinearProbe:
    """Logistic-regression probe (L2 penalty ``l2`` on standardized weights), by L-BFGS.

    Warns when there are fewer examples than dimensions: the probe can then fit any labels.
    """
    y = _labels("y", y)
    x = _features("x", x, len(y))
    check_nonnegative("l2", l2)
    check_int_in_range("max_iter", max_iter, 1)
    n, d = x.shape
    if n < d:
        warnings.warn(f"fit_logistic: {n} examples for {d} dimensions (fewer examples than "
                      f"dimensions): the probe can separate any labelling; its training score "
                      f"means nothing, look at held-out scores only", stacklevel=2)
    mu, sd = x.mean(0), x.std(0) + 1e-8
    X = torch.from_numpy((x - mu) / sd)
    t = torch.from_numpy(y.astype(np.float64))
    w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(X @ w + b, t)
        loss = loss + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_raw = w.detach().numpy() / sd
    return LinearProbe(w_raw, float(b.detach()) - float(mu @ w_raw))


def select_latents(codes, y, k: int) -> np.ndarray:
    """Indices of the ``k`` latents with the largest |mean(codes | y=1) - mean(codes | y=0)|."""
    y = _labels("y", y)
    c = _features("codes", codes, len(y))
    gap = np.abs(diff_in_means(c, y))
    check_int_in_range("k", k, 1, gap.shape[0])
    return np.argsort(-gap, kind="stable")[:k]


def fit_sparse_probe(codes, y, k: int, l2: float = 1e-4) -> tuple[np.ndarray, LinearProbe]:
    """k-sparse probe: ``select_latents`` then ``fit_logistic`` on those columns only.

    Returns ``(indices, probe)``; score new codes with ``probe.score(codes[:, indices])``.
    """
    idx = select_latents(codes, y, k)
    return idx, fit_logistic(_features("codes", codes)[:, idx], y, l2=l2)
