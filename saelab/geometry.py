"""Geometry of features in superposition: dimensionality, interference, capacity.

* Feature dimensionality (Elhage et al., 2022): for feature directions W_i (columns of W),
  ``D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2``, where the sum includes ``j = i``. An orthogonal,
  embedded feature has ``D_i = 1``; an antipodal pair shares one dimension (1/2 each); the
  pentagon in 2D gives 2/5 each; a dropped feature (``W_i = 0``) has ``D_i = 0``.
* Interference: with unit features f_j active with codes z_j, feature i reads
  ``sum_{j != i} z_j c_j`` with ``c_j = f_i . f_j``. Its mean square is
  ``E[z^2] sum_{j != i} c_j^2 + E[z]^2 sum_{j != k} c_j c_k``. For codes that are 1 with
  probability p the first term is ``p sum_{j != i} c_j^2`` (about ``p (m - 1) / d`` for random unit
  vectors, whose squared inner products average 1/d); the cross term vanishes for zero-mean
  (signed) codes and is second order in p otherwise.
* Capacity: how many unit vectors fit in R^d with pairwise ``|cos| < eps`` (grows exponentially
  in d, as in the Johnson-Lindenstrauss lemma), and the Welch (1974) bound: any m unit vectors in
  R^d have coherence ``max_{i != j} |f_i . f_j| >= sqrt((m - d) / (d (m - 1)))``.

Taught in Chapter 1.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import check_int_in_range, check_numeric, check_positive, check_probability
from saelab.feature_sampling import MAGNITUDES, make_generator, sample_sparse_codes

__all__ = [
    "feature_dimensionality",
    "random_unit_vectors",
    "coherence",
    "interference_formula",
    "InterferenceResult",
    "simulate_interference",
    "greedy_packing",
    "greedy_packing_count",
    "welch_bound",
    "welch_max_vectors",
]


def feature_dimensionality(W):
    """Fractional dimensionality of every feature, ``D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2``.

    Works on NumPy arrays or torch tensors, for one model or a batch of instances. A zero column
    has dimensionality 0 (not NaN). Introduced in Chapter 1.

    Parameters
    ----------
    W : array of shape (d_hidden, n_features) or (n_instances, d_hidden, n_features)
        Column i is feature i's direction.

    Returns
    -------
    array of shape (n_features,) or (n_instances, n_features)
    """
    W = check_numeric("W", W, (2, 3))
    norm2 = (W ** 2).sum(-2)  # [..., m]: ||W_i||^2
    gram = W.swapaxes(-1, -2) @ W  # [..., m, m]: W_i . W_j
    overlap = (gram ** 2).sum(-1)  # [..., m]: sum_j (W_i . W_j)^2 = ||W_i||^2 sum_j (W_i_hat . W_j)^2
    # D_i = ||W_i||^2 / (overlap / ||W_i||^2) = ||W_i||^4 / overlap; overlap = 0 only if W_i = 0
    if isinstance(W, torch.Tensor):
        safe = torch.where(overlap > 0, overlap, torch.ones_like(overlap))
        return torch.where(overlap > 0, norm2 ** 2 / safe, torch.zeros_like(overlap))
    safe = np.where(overlap > 0, overlap, 1.0)
    return np.where(overlap > 0, norm2 ** 2 / safe, 0.0)


def random_unit_vectors(n_vectors: int, d: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    """``n_vectors`` independent uniformly random unit vectors in R^d, as columns ``[d, n_vectors]``.

    Introduced in Chapter 1.
    """
    check_int_in_range("n_vectors", n_vectors, 1)
    check_int_in_range("d", d, 1)
    g = make_generator(seed)
    F = torch.randn(d, n_vectors, generator=g, dtype=dtype)  # [d, n]
    return F / F.norm(dim=0, keepdim=True)


def coherence(F) -> float:
    """Largest ``|cos|`` between two different columns of ``F`` (array of shape (d, m)).

    Introduced in Chapter 1.
    """
    F = torch.as_tensor(check_numeric("F", F), dtype=torch.float64)
    if F.ndim != 2 or F.shape[1] < 2:
        raise ValueError(f"F must have shape (d, m) with m >= 2 columns, got {tuple(F.shape)}")
    U = F / F.norm(dim=0, keepdim=True)
    cos = (U.T @ U).abs()  # [m, m]
    cos.fill_diagonal_(0.0)
    return float(cos.max())


def interference_formula(F, p: float):
    """First-order expected squared interference ``p * sum_{j != i} (f_i . f_j)^2`` per feature.

    Exact for codes that are +-1 with probability p (zero mean); the reference of the Chapter 1
    exercise. Works on NumPy arrays or torch tensors.

    Parameters
    ----------
    F : array of shape (d, m)
        Unit feature directions as columns.
    p : float
        Probability that a feature is active.

    Returns
    -------
    array of shape (m,)
    """
    check_probability("p", p)
    gram = F.T @ F  # [m, m]
    off = (gram ** 2).sum(-1) - (F ** 2).sum(0) ** 2  # [m]: drop j = i, whose term is ||f_i||^4
    return p * off


class InterferenceResult(NamedTuple):
    """Output of :func:`simulate_interference`; arrays have shape (m,), one entry per feature."""

    simulated: np.ndarray  # Monte Carlo estimate of E[(sum_{j != i} z_j c_ij)^2]
    std_error: np.ndarray  # standard error of `simulated`
    formula: np.ndarray  # E[z^2] sum_{j != i} c_ij^2 (p sum c^2 for unit codes)
    exact: np.ndarray  # formula + E[z]^2 sum_{j != k} c_ij c_ik (cross terms)
    approximation: float  # E[z^2] (m - 1) / d: random unit vectors, E[c^2] = 1/d
    simulated_mean: float  # `simulated` averaged over features
    std_error_mean: float  # standard error of `simulated_mean`


def simulate_interference(
    F,
    p: float,
    n_samples: int = 100_000,
    magnitude: str = "one",
    signed: bool = False,
    seed: int = 0,
    chunk: int = 20_000,
) -> InterferenceResult:
    """Monte Carlo check of the interference formulas for features ``F`` (columns, shape (d, m)).

    Draws ``n_samples`` codes z (:func:`saelab.feature_sampling.sample_sparse_codes`) and measures, for every
    feature i, the mean of ``(sum_{j != i} z_j f_i . f_j)^2``. Introduced in Chapter 1.
    """
    check_probability("p", p)
    check_int_in_range("n_samples", n_samples, 2)
    check_int_in_range("chunk", chunk, 1)
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    F = torch.as_tensor(check_numeric("F", F), dtype=torch.float64).cpu()
    if F.ndim != 2:
        raise ValueError(f"F must have shape (d, m), got {tuple(F.shape)}")
    d, m = F.shape
    C = F.T @ F  # [m, m]
    C.fill_diagonal_(0.0)  # interference only: j != i
    g = make_generator(seed)
    total = torch.zeros(m, dtype=torch.float64)
    total_sq = torch.zeros(m, dtype=torch.float64)
    mean_total = 0.0
    mean_total_sq = 0.0
    done = 0
    while done < n_samples:
        n = min(chunk, n_samples - done)
        z = sample_sparse_codes(n, m, p, magnitude, signed, generator=g, dtype=torch.float64)
        sq = (z @ C) ** 2  # [n, m]: (sum_j z_j c_ij)^2; C is symmetric
        total += sq.sum(0)
        total_sq += (sq ** 2).sum(0)
        per_sample = sq.mean(1)  # [n]
        mean_total += float(per_sample.sum())
        mean_total_sq += float((per_sample ** 2).sum())
        done += n
    sim = total / n_samples
    var = (total_sq / n_samples - sim ** 2).clamp(min=0) * n_samples / (n_samples - 1)
    sim_mean = mean_total / n_samples
    var_mean = max(mean_total_sq / n_samples - sim_mean ** 2, 0.0) * n_samples / (n_samples - 1)

    mu2 = p if magnitude == "one" else p / 3.0  # E[z^2]
    mu1 = 0.0 if signed else (p if magnitude == "one" else p / 2.0)  # E[z]
    sum_sq = (C ** 2).sum(1)  # [m]: sum_{j != i} c_ij^2
    cross = C.sum(1) ** 2 - sum_sq  # [m]: sum_{j != k} c_ij c_ik
    formula = mu2 * sum_sq
    return InterferenceResult(
        simulated=sim.numpy(),
        std_error=(var / n_samples).sqrt().numpy(),
        formula=formula.numpy(),
        exact=(formula + mu1 ** 2 * cross).numpy(),
        approximation=mu2 * (m - 1) / d,
        simulated_mean=sim_mean,
        std_error_mean=math.sqrt(var_mean / n_samples),
    )


def greedy_packing(d: int, eps: float, budget: int = 20_000, seed: int = 0,
                   batch: int = 512, device=None) -> torch.Tensor:
    """Greedily pack random unit vectors in R^d with pairwise ``|cos| < eps``; return them.

    Draws up to ``budget`` candidates, ``batch`` at a time, and keeps each one whose ``|cos|``
    with every vector kept so far is below ``eps``. The number kept is a lower bound on the true
    capacity that grows with the budget (slowly: about logarithmically); compare counts at a fixed
    budget. Introduced in Chapter 1.

    Returns
    -------
    Tensor of shape [d, n_kept] (float64), the kept unit vectors as columns.
    """
    check_int_in_range("d", d, 1)
    check_positive("eps", eps)
    if eps > 1:
        raise ValueError(f"eps must be in (0, 1], got {eps}")
    check_int_in_range("budget", budget, 1)
    check_int_in_range("batch", batch, 1)
    g = make_generator(seed)
    kept = torch.empty(0, d, dtype=torch.float64, device=device)  # [k, d]
    drawn = 0
    while drawn < budget:
        n = min(batch, budget - drawn)
        drawn += n
        cand = torch.randn(n, d, generator=g, dtype=torch.float64).to(device)  # [n, d]
        cand = cand / cand.norm(dim=1, keepdim=True)
        if kept.shape[0]:
            ok = ((cand @ kept.T).abs() < eps).all(1)  # [n]: compatible with all kept vectors
            cand = cand[ok]
        if cand.shape[0] == 0:
            continue
        clash = ((cand @ cand.T).abs() >= eps).cpu().numpy()  # [n', n']
        accepted = np.zeros(cand.shape[0], dtype=bool)
        for j in range(cand.shape[0]):  # greedy, in draw order, among this batch's survivors
            accepted[j] = not clash[j, :j][accepted[:j]].any()
        kept = torch.cat([kept, cand[torch.from_numpy(accepted).to(cand.device)]])
    return kept.T


def greedy_packing_count(d: int, eps: float, budget: int = 20_000, seed: int = 0,
                         batch: int = 512, device=None) -> int:
    """How many vectors :func:`greedy_packing` keeps. Introduced in Chapter 1."""
    return int(greedy_packing(d, eps, budget, seed, batch, device).shape[1])


def welch_bound(m: int, d: int) -> float:
    """Welch lower bound on the coherence of m unit vectors in R^d: ``sqrt((m - d) / (d (m - 1)))``.

    Zero for ``m <= d`` (orthonormal vectors fit). Met with equality by equiangular tight frames,
    e.g. the d + 1 vertices of a regular simplex (coherence 1/d). Introduced in Chapter 1.
    """
    check_int_in_range("m", m, 2)
    check_int_in_range("d", d, 1)
    if m <= d:
        return 0.0
    return math.sqrt((m - d) / (d * (m - 1)))


def welch_max_vectors(d: int, eps: float) -> float:
    """Most unit vectors in R^d the Welch bound allows with coherence ``<= eps``.

    Solving ``eps >= sqrt((m - d) / (d (m - 1)))`` for m gives ``m <= d (1 - eps^2) / (1 - d eps^2)``
    when ``d eps^2 < 1``; otherwise the bound allows any m and this returns ``inf``.
    Introduced in Chapter 1.
    """
    check_int_in_range("d", d, 1)
    check_positive("eps", eps)
    check_probability("eps", eps)  # a coherence is a |cosine|, at most 1
    if d * eps ** 2 >= 1:
        return math.inf
    return d * (1 - eps ** 2) / (1 - d * eps ** 2)
