"""Every number quoted on the pen-and-paper problems page (``book/problems.md``).

The page's worked solutions quote the values these functions compute, and
``tests/test_problems.py`` checks that the page and this file agree, so neither can drift.

1. Size of an SAE: overcomplete factor ``m / d``, active fraction ``L0 / m``, parameters
   ``2 m d + m + d``, and the work of a sparse decode relative to a dense one.
2. The fixed-dictionary SAE objective is the non-negative LASSO (no numbers).
3. L1 shrinkage for an orthonormal dictionary: ``z = max(a - lam / 2, 0)`` (see
   :func:`saelab.lasso.orthonormal_lasso`).
4. TopK forward and backward on a small vector (Gao et al. 2024).
5. Welch-bound capacity (Welch, 1974) for d = 4096, via :mod:`saelab.geometry`.

Taught on the problems page; the solvers and bounds themselves come from Chapters 1 and 3.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from saelab._checks import check_int_in_range, check_nonnegative, check_real
from saelab.geometry import welch_bound, welch_max_vectors

__all__ = [
    "overcomplete_factor",
    "active_fraction",
    "sae_parameter_count",
    "sparse_decode_speedup",
    "l1_shrunk_code",
    "l1_optimal_loss",
    "TopKPass",
    "topk_forward_backward",
    "welch_capacity",
    "welch_critical_eps",
    "random_coherence_estimate",
    "sae_welch_coherence",
    "log10_supports",
    "PROBLEM_1",
    "PROBLEM_3",
    "PROBLEM_4",
    "PROBLEM_5",
]

# The inputs of each problem, as stated on the page.
PROBLEM_1 = dict(m=16_384, d=768, l0=64)
PROBLEM_3 = dict(a=1.0, lam=0.3, a_small=0.1)
PROBLEM_4 = dict(pre=(0.9, -0.3, 2.1, 1.4, 0.2, 1.7), k=3, grad_f=(0.5, -1.0, 0.25, 2.0, -0.5, 1.0))
PROBLEM_5 = dict(d=4096, eps=(0.01, 0.015), m_sae=16_384)


# ---- Problem 1 --------------------------------------------------------------------------------

def overcomplete_factor(m: int, d: int) -> float:
    """Latents per input dimension, ``m / d``."""
    check_int_in_range("m", m, 1)
    check_int_in_range("d", d, 1)
    return m / d


def active_fraction(l0: float, m: int) -> float:
    """Fraction of latents active on an average input, ``L0 / m``."""
    check_int_in_range("m", m, 1)
    check_nonnegative("l0", l0)
    if l0 > m:
        raise ValueError(f"l0 must be at most m = {m}, got {l0}")
    return l0 / m


def sae_parameter_count(m: int, d: int) -> int:
    """Parameters of an SAE: ``W_enc`` (d, m), ``W_dec`` (m, d), ``b_enc`` (m,), ``b_dec`` (d,)."""
    check_int_in_range("m", m, 1)
    check_int_in_range("d", d, 1)
    return 2 * m * d + m + d


def sparse_decode_speedup(m: int, l0: float) -> float:
    """Multiply-adds of a dense decode (``m d``) over a sparse one (``L0 d``): ``m / L0``."""
    check_int_in_range("m", m, 1)
    if not l0 > 0:
        raise ValueError(f"l0 must be positive, got {l0}")
    return m / l0


def log10_supports(m: int, l0: int) -> float:
    """``log10`` of the number of ways to choose ``l0`` active latents out of ``m``, ``C(m, l0)``."""
    check_int_in_range("m", m, 1)
    check_int_in_range("l0", l0, 0, m)
    return (math.lgamma(m + 1) - math.lgamma(l0 + 1) - math.lgamma(m - l0 + 1)) / math.log(10)


# ---- Problem 3 --------------------------------------------------------------------------------

def l1_shrunk_code(a: float, lam: float) -> float:
    """Optimal non-negative code of ``x = a d_i`` on an orthonormal dictionary: ``max(a - lam/2, 0)``."""
    check_nonnegative("lam", lam)
    a = check_real("a", a)
    return max(a - lam / 2.0, 0.0)


def l1_optimal_loss(a: float, lam: float) -> float:
    """``||x - z d_i||^2 + lam z`` at the optimal z for ``x = a d_i`` (orthonormal dictionary)."""
    z = l1_shrunk_code(a, lam)
    return (a - z) ** 2 + lam * z


# ---- Problem 4 --------------------------------------------------------------------------------

class TopKPass(NamedTuple):
    """Forward and backward of ``f = TopK(pre)`` for one input vector."""

    f: np.ndarray  # (m,) kept pre-activations, zeros elsewhere
    mask: np.ndarray  # (m,) bool, True on the k kept entries
    grad_pre: np.ndarray  # (m,) dL/dpre = dL/df on kept entries, 0 elsewhere


def topk_forward_backward(pre, k: int, grad_f) -> TopKPass:
    """TopK (no ReLU) on a vector and its backward pass given the upstream gradient ``dL/df``.

    Away from ties, the kept set is constant in a neighbourhood of ``pre``, so f is locally the
    linear map ``pre * mask`` and its Jacobian is ``diag(mask)``.
    """
    pre = np.asarray(pre, dtype=np.float64)
    grad_f = np.asarray(grad_f, dtype=np.float64)
    if pre.ndim != 1 or grad_f.shape != pre.shape:
        raise ValueError(f"pre and grad_f must be vectors of the same length, got {pre.shape} "
                         f"and {grad_f.shape}")
    check_int_in_range("k", k, 1, pre.size)
    mask = np.zeros(pre.size, dtype=bool)
    mask[np.argsort(-pre, kind="stable")[:k]] = True
    return TopKPass(np.where(mask, pre, 0.0), mask, np.where(mask, grad_f, 0.0))


# ---- Problem 5 --------------------------------------------------------------------------------

def welch_capacity(d: int, eps: float) -> float:
    """Most unit vectors with coherence ``<= eps`` the Welch bound allows (``inf`` if unbounded)."""
    return welch_max_vectors(d, eps)


def welch_critical_eps(d: int) -> float:
    """``1 / sqrt(d)``: from this coherence on, the Welch bound allows any number of vectors."""
    check_int_in_range("d", d, 1)
    return 1.0 / math.sqrt(d)


def random_coherence_estimate(m: int, d: int) -> float:
    """Rough coherence of m random unit vectors in R^d: ``sqrt(4 ln(m) / d)``.

    Heuristic: a random pair has ``|cos| > t`` with probability about ``2 exp(-d t^2 / 2)``; with
    about ``m^2 / 2`` pairs, the largest reaches t where ``m^2 exp(-d t^2 / 2) = 1``.
    """
    check_int_in_range("m", m, 2)
    check_int_in_range("d", d, 1)
    return math.sqrt(4.0 * math.log(m) / d)


def sae_welch_coherence() -> float:
    """Welch lower bound on the coherence of an SAE's ``m_sae`` decoder rows in d = 4096."""
    return welch_bound(PROBLEM_5["m_sae"], PROBLEM_5["d"])
