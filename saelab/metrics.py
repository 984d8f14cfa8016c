"""How good is a sparse autoencoder? Pure metric functions.

The headline reconstruction metric is the fraction of variance unexplained,

    FVU = E ||x - x_hat||^2 / (E ||x||^2 - ||E x||^2),

with both expectations taken over the whole evaluation set (a ratio of sums, not a mean of
per-token ratios) and the variance measured about the data mean, accumulated in float64. Its
complement ``1 - FVU`` is the explained variance. Published evaluation code has got this wrong in
two ways: averaging per-token ratios (the "legacy" SAEBench formula; see SAEBench PR #61,
2025) and measuring variance about zero instead of about the mean (SAELens issue #659, 2026). The
wrong variants live here too, under names that start with ``fvu_wrong_``, so Chapter 5 can show
how much they move the score; never use them to report a result.

Also: L0 (mean number of active latents per token), firing density, dead and dense fractions,
the relative reconstruction bias ``E||x_hat||^2 / E[x . x_hat]`` that measures L1 shrinkage
(Rajamanoharan et al., 2024, arXiv:2404.16014), the mean max cosine similarity (MMCS) between
two dictionaries (Sharkey et al., 2022), and the downstream "CE loss recovered".

Every function takes NumPy arrays or torch tensors (on any device) and returns Python floats or
float64 NumPy arrays. Taught in Chapter 5; MMCS is introduced in Chapter 2 and shrinkage in
Chapter 4.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from saelab._checks import (check_finite, check_int_in_range, check_not_none, check_probability,
                            check_real)

__all__ = [
    "FVUAccumulator", "fvu", "explained_variance",
    "fvu_wrong_uncentered", "fvu_wrong_mean_of_squares", "fvu_wrong_per_token_ratio",
    "l0", "firing_density", "dead_fraction", "dense_fraction",
    "relative_reconstruction_bias", "MMCS", "mmcs", "ce_loss_recovered", "delta_ce_loss",
]


def _as_f64(name: str, array) -> np.ndarray:
    """Return ``array`` (ndarray or tensor, any device) as a float64 ndarray."""
    check_not_none(name, array, "an array")
    if hasattr(array, "detach"):  # torch tensor: MPS has no float64, so move to the CPU first
        array = array.detach().cpu().double().numpy()
    try:
        out = np.asarray(array, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {type(array).__name__}") from err
    if out.ndim == 0:
        raise ValueError(f"{name} must be an array, got a scalar {out}")
    if out.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {out.shape}")
    return out


def _pair(x, x_hat) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert an (input, reconstruction) pair of shape (batch, d_in)."""
    x, x_hat = _as_f64("x", x), _as_f64("x_hat", x_hat)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (batch, d_in), got {x.shape}")
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat must have the same shape as x {x.shape}, got {x_hat.shape}")
    check_finite("x", x)
    check_finite("x_hat", x_hat)
    return x, x_hat


def _safe_ratio(num: float, den: float, what: str) -> float:
    if den <= 0:
        raise ValueError(f"{what} is {den}: the data has no variance, so FVU is undefined")
    return float(num / den)


# ----------------------------------------------------------------------------------------------
# Fraction of variance unexplained
# ----------------------------------------------------------------------------------------------

def fvu(x, x_hat) -> float:
    """Fraction of variance unexplained, ``sum ||x - x_hat||^2 / sum ||x - mean(x)||^2``.

    Computed in one shot over the rows given, in float64. Introduced in Chapter 2, dissected in
    Chapter 5. For an evaluation set that does not fit in memory use :class:`FVUAccumulator`,
    which gives the same number batch by batch.

    Parameters
    ----------
    x, x_hat : ndarray or Tensor of shape (n, d_in)
        Inputs and their reconstructions.

    Returns
    -------
    float
        0 for a perfect reconstruction, 1 for predicting the mean of ``x``.
    """
    x, x_hat = _pair(x, x_hat)
    residual = np.sum((x - x_hat) ** 2)
    total = np.sum((x - x.mean(axis=0)) ** 2)
    return _safe_ratio(residual, total, "sum ||x - mean(x)||^2")


def explained_variance(x, x_hat) -> float:
    """``1 - fvu(x, x_hat)``: the fraction of the data's variance the reconstruction explains.

    Introduced in Chapter 5.
    """
    return 1.0 - fvu(x, x_hat)


class FVUAccumulator:
    """Streaming FVU over an evaluation set too large to hold at once, in float64.

    Call :meth:`update` with each batch, then read :attr:`value`. The total variance is
    accumulated with Chan et al.'s (1979) pairwise update of the mean and the centred sum of
    squares, which avoids the cancellation in ``E||x||^2 - ||E x||^2`` when the mean is large
    (as in a transformer's residual stream). Introduced in Chapter 5.

    Usage: ``acc = FVUAccumulator()``, then ``acc.update(x, x_hat)`` per batch, then ``acc.value``.
    """

    def __init__(self) -> None:
        self.n = 0  # rows seen so far
        self.residual = 0.0  # sum ||x - x_hat||^2
        self.centred = 0.0  # sum ||x - mean||^2, about the running mean
        self.mean: np.ndarray | None = None  # running mean of x, shape (d_in,)

    def update(self, x, x_hat) -> "FVUAccumulator":
        """Add one batch of shape (batch, d_in); returns ``self`` so calls can be chained."""
        x, x_hat = _pair(x, x_hat)
        if self.mean is not None and x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x must have d_in={self.mean.shape[0]} like earlier batches, "
                             f"got shape {x.shape}")
        m = x.shape[0]
        if m == 0:
            return self
        batch_mean = x.mean(axis=0)  # [d_in]
        batch_centred = float(np.sum((x - batch_mean) ** 2))
        self.residual += float(np.sum((x - x_hat) ** 2))
        if self.mean is None:
            self.mean, self.centred, self.n = batch_mean, batch_centred, m
            return self
        n = self.n + m
        delta = batch_mean - self.mean  # [d_in]
        self.centred += batch_centred + float(delta @ delta) * self.n * m / n
        self.mean = self.mean + delta * (m / n)
        self.n = n
        return self

    @property
    def value(self) -> float:
        """FVU over every row passed to :meth:`update` so far."""
        if self.n == 0:
            raise ValueError("FVUAccumulator has seen no data (n=0); call update() first")
        return _safe_ratio(self.residual, self.centred, "sum ||x - mean(x)||^2")


def fvu_wrong_uncentered(x, x_hat) -> float:
    """WRONG on purpose: variance measured about zero, ``E||x - x_hat||^2 / E||x||^2``.

    Deflates FVU (flatters the SAE) whenever the data has a large mean, because the
    denominator counts the mean, which ``b_dec`` alone already reconstructs. Shown in Chapter 5;
    do not report it.
    """
    x, x_hat = _pair(x, x_hat)
    return _safe_ratio(np.sum((x - x_hat) ** 2), np.sum(x ** 2), "sum ||x||^2")


def fvu_wrong_mean_of_squares(x, x_hat) -> float:
    """WRONG on purpose: the SAELens 6.x bug (issue #659), subtracting ``(mean_d E[x_d^2])^2``.

    The buggy code averaged ``x_d^2`` where it meant ``x_d`` and then collapsed the per-dimension
    means into one scalar before squaring, so the denominator became
    ``E||x||^2 - (mean_d E[x_d^2])^2``: for data scaled so that ``E||x||^2 = d_in`` that is
    ``d_in - 1``, close to the variance about zero, as in :func:`fvu_wrong_uncentered`; for
    data with mean square above ``d_in`` per dimension it even goes negative. Shown in
    Chapter 5; do not report it.
    """
    x, x_hat = _pair(x, x_hat)
    n = x.shape[0]
    mean_of_squares = np.mean(x ** 2)  # a scalar: mean over rows and dimensions of x_d^2
    denominator = np.sum(x ** 2) / n - mean_of_squares ** 2  # may even be negative
    if denominator == 0:
        raise ValueError("the buggy denominator is exactly 0; this wrong FVU is undefined here")
    return float(np.sum((x - x_hat) ** 2) / n / denominator)


def fvu_wrong_per_token_ratio(x, x_hat) -> float:
    """WRONG on purpose: the mean over tokens of ``||x_b - x_hat_b||^2 / ||x_b - mean(x)||^2``.

    The "legacy" SAEBench formula (SAEBench PR #61, 2025). Tokens close to the mean have tiny
    denominators, so a few of them dominate the average and the number depends on the batch
    composition. Shown in Chapter 5; do not report it.
    """
    x, x_hat = _pair(x, x_hat)
    per_token_total = np.sum((x - x.mean(axis=0)) ** 2, axis=1)  # [n]
    if np.any(per_token_total <= 0):
        raise ValueError("some token equals the mean exactly; the per-token ratio is undefined")
    return float(np.mean(np.sum((x - x_hat) ** 2, axis=1) / per_token_total))


# ----------------------------------------------------------------------------------------------
# Sparsity and latent health
# ----------------------------------------------------------------------------------------------

def _codes(f) -> np.ndarray:
    """Boolean ndarray of shape (batch, d_sae): which codes are non-zero.

    Tensors are compared on their own device and only the mask (1 byte per entry) is copied
    to the CPU, so codes for many tokens and a wide SAE do not need a float64 copy.
    """
    check_finite("f", f)
    if hasattr(f, "detach"):
        f = (f.detach() != 0).cpu().numpy()
    else:
        f = np.asarray(f) != 0
    if f.ndim != 2:
        raise ValueError(f"f must have shape (batch, d_sae), got {f.shape}")
    if f.shape[0] == 0:
        raise ValueError(f"f must hold at least one row, got shape {f.shape}")
    return f


def l0(f) -> float:
    """Mean number of non-zero latents per row of codes ``f`` of shape (batch, d_sae).

    Introduced in Chapter 2.
    """
    return float(np.mean(np.count_nonzero(_codes(f), axis=1)))


def firing_density(f) -> np.ndarray:
    """Fraction of rows on which each latent fires (is non-zero).

    Parameters
    ----------
    f : ndarray or Tensor of shape (n_tokens, d_sae)
        Codes over a window of tokens.

    Returns
    -------
    ndarray of shape (d_sae,)
        Firing frequency per latent, in [0, 1]. Chapter 5 plots ``log10`` of it.
    """
    f = _codes(f)
    return np.count_nonzero(f, axis=0) / f.shape[0]


def dead_fraction(f) -> float:
    """Fraction of latents that never fire on the rows of ``f`` (shape (n_tokens, d_sae)).

    "Dead" is relative to the window: pass codes for many tokens (millions, for a real model).
    Introduced in Chapter 2.
    """
    return float(np.mean(firing_density(f) == 0))


def dense_fraction(f, threshold: float = 0.01) -> float:
    """Fraction of latents firing on more than ``threshold`` of the rows of ``f``.

    Typical thresholds are 1% and 10% of tokens. Introduced in Chapter 5.
    """
    check_probability("threshold", threshold)
    return float(np.mean(firing_density(f) > threshold))


def relative_reconstruction_bias(x, x_hat) -> float:
    """Shrinkage measure ``gamma = E||x_hat||^2 / E[x . x_hat]`` (Rajamanoharan et al., 2024).

    It is the inverse of the factor that would best rescale ``x_hat`` onto ``x``: 1 means
    unbiased, below 1 means the reconstruction is shrunk towards zero (as the L1 penalty does).
    Introduced in Chapter 4.

    Parameters
    ----------
    x, x_hat : ndarray or Tensor of shape (n, d_in)
    """
    x, x_hat = _pair(x, x_hat)
    cross = np.sum(x * x_hat)
    if cross <= 0:
        raise ValueError(f"E[x . x_hat] must be positive for the bias to be defined, got {cross}")
    return float(np.sum(x_hat ** 2) / cross)


# ----------------------------------------------------------------------------------------------
# Dictionaries and downstream loss
# ----------------------------------------------------------------------------------------------

class MMCS(NamedTuple):
    """Mean max cosine similarity between the rows of two dictionaries ``a`` and ``b``."""

    a_to_b: float  # mean over rows of a of the best cosine with any row of b
    b_to_a: float  # mean over rows of b of the best cosine with any row of a
    best_for_a: np.ndarray  # shape (n_a,): each row of a's best cosine with b
    best_for_b: np.ndarray  # shape (n_b,): each row of b's best cosine with a


def mmcs(a, b, chunk: int = 1024) -> MMCS:
    """Mean max cosine similarity (MMCS) between dictionaries, in both directions.

    With ``a`` the learned decoder rows and ``b`` the true features, ``b_to_a`` answers "is every
    true feature found by some latent?" and ``a_to_b`` "does every latent match a true feature?".
    With two learned dictionaries it measures agreement across seeds. Introduced in Chapter 2.

    Parameters
    ----------
    a : ndarray or Tensor of shape (n_a, d)
    b : ndarray or Tensor of shape (n_b, d)
        Rows are directions; their norms do not matter (zero rows are rejected).
    chunk : int
        Rows of ``a`` per block, to bound memory for large dictionaries.

    Returns
    -------
    MMCS
    """
    a, b = _as_f64("a", a), _as_f64("b", b)
    for name, m in (("a", a), ("b", b)):
        if m.ndim != 2 or m.shape[0] == 0:
            raise ValueError(f"{name} must have shape (n_rows, d) with n_rows >= 1, got {m.shape}")
        check_finite(name, m)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have the same row length, got {a.shape} and {b.shape}")
    check_int_in_range("chunk", chunk, 1)
    a_norm, b_norm = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    if np.any(a_norm == 0) or np.any(b_norm == 0):
        raise ValueError("a and b must not contain zero rows: a zero row has no direction")
    a, b = a / a_norm[:, None], b / b_norm[:, None]
    best_for_a = np.empty(a.shape[0])
    best_for_b = np.full(b.shape[0], -np.inf)
    for start in range(0, a.shape[0], int(chunk)):
        cos = a[start:start + int(chunk)] @ b.T  # [chunk, n_b]
        best_for_a[start:start + cos.shape[0]] = cos.max(axis=1)
        best_for_b = np.maximum(best_for_b, cos.max(axis=0))
    return MMCS(float(best_for_a.mean()), float(best_for_b.mean()), best_for_a, best_for_b)


def ce_loss_recovered(ce_clean: float, ce_sae: float, ce_zero: float) -> float:
    """Fraction of the loss gap closed: ``(CE_zero - CE_sae) / (CE_zero - CE_clean)``.

    ``ce_clean`` is the language model's cross-entropy as is, ``ce_sae`` with the SAE's
    reconstruction spliced in at the hook, ``ce_zero`` with the activation zero-ablated. 1 means
    the SAE costs nothing; 0 means it is as bad as deleting the activation. Introduced in
    Chapter 5.
    """
    clean, sae, zero = (check_real(n, v) for n, v in (("ce_clean", ce_clean), ("ce_sae", ce_sae),
                                                       ("ce_zero", ce_zero)))
    if zero <= clean:
        raise ValueError(f"ce_zero must exceed ce_clean for the ratio to mean anything, "
                         f"got ce_zero={zero} and ce_clean={clean}")
    return (zero - sae) / (zero - clean)


def delta_ce_loss(ce_clean: float, ce_sae: float) -> float:
    """Extra cross-entropy (nats per token) from splicing in the SAE: ``CE_sae - CE_clean``.

    Typical SAEs add 0.05 to 0.2 nats. Introduced in Chapter 5.
    """
    clean, sae = check_real("ce_clean", ce_clean), check_real("ce_sae", ce_sae)
    return sae - clean
