"""Ground-truth data for dictionary learning: sparse codes over a known random dictionary.

Each sample is a sparse non-negative combination of unit-norm feature directions,

    x = sum_i c_i d_i  (+ optional Gaussian noise),   c_i >= 0, about ``n_active`` of them non-zero,

with the dictionary ``D`` (rows ``d_i``, shape (n_features, d_in)) drawn uniformly on the unit
sphere. Because the true features are known, how well an SAE recovers them can be measured with
the mean max cosine similarity (:func:`saelab.metrics.mmcs`), as in Sharkey et al. (2022,
"Taking features out of superposition with sparse autoencoders"). With ``n_features > d_in`` the
directions cannot all be orthogonal: the data lives in superposition.

The codes come from :func:`saelab.feature_sampling.sample_sparse_codes` (Chapter 1); each feature is
active independently with probability ``n_active / n_features``. Everything is drawn on the CPU
from one seeded generator, so a seed gives the same data on every device.

Taught in Chapter 2; reused in Chapters 3 to 5.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import check_int_in_range, check_nonnegative, check_positive
from saelab.feature_sampling import make_generator, sample_sparse_codes

__all__ = ["SyntheticData", "random_dictionary", "make_sparse_data", "MAGNITUDES"]

MAGNITUDES = ("uniform", "one", "exponential")


class SyntheticData(NamedTuple):
    """Samples with their ground truth; all tensors, or all ndarrays with ``as_numpy=True``."""

    x: torch.Tensor  # [n_samples, d_in] the data an SAE sees
    codes: torch.Tensor  # [n_samples, n_features] true sparse non-negative codes
    dictionary: torch.Tensor  # [n_features, d_in] true feature directions, unit-norm rows


def random_dictionary(n_features: int, d_in: int, seed: int | None = None,
                      generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Draw ``n_features`` directions uniformly on the unit sphere in ``d_in`` dimensions.

    Normalised Gaussian rows, drawn on the CPU. Introduced in Chapter 2.

    Returns
    -------
    Tensor of shape [n_features, d_in]
        Unit-norm rows.
    """
    check_int_in_range("n_features", n_features, 1)
    check_int_in_range("d_in", d_in, 1)
    g = make_generator(seed, generator)
    w = torch.randn(n_features, d_in, generator=g, dtype=torch.float64)  # [n_features, d_in]
    return (w / w.norm(dim=1, keepdim=True)).to(dtype)


def make_sparse_data(
    n_samples: int,
    d_in: int = 64,
    n_features: int = 512,
    n_active: float = 5.0,
    magnitude: str = "uniform",
    noise_std: float = 0.0,
    dictionary: torch.Tensor | np.ndarray | None = None,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    as_numpy: bool = False,
) -> SyntheticData:
    """Sample ``x = codes @ dictionary (+ noise)`` with sparse non-negative codes.

    Introduced in Chapter 2.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    d_in, n_features : int
        Data dimension and number of true features (``n_features > d_in`` gives superposition).
        Ignored in favour of the shape of ``dictionary`` when one is given.
    n_active : float
        Expected number of active features per sample; each is active with probability
        ``n_active / n_features``, so the count varies from sample to sample.
    magnitude : {"uniform", "one", "exponential"}
        Distribution of an active code: uniform in [0, 1], exactly 1, or exponential with mean 1.
    noise_std : float
        Standard deviation of isotropic Gaussian noise added to ``x``.
    dictionary : Tensor or ndarray of shape (n_features, d_in), optional
        Reuse a dictionary (for example to draw a held-out set from the same features). Its
        rows are normalised. By default a new one is drawn with :func:`random_dictionary`.
    seed : int or None
        Seed for everything drawn here (None: torch's global random state).
    device, dtype
        Where and in what precision to return tensors.
    as_numpy : bool
        Return float ndarrays instead of tensors.

    Returns
    -------
    SyntheticData
        ``x`` of shape (n_samples, d_in), ``codes`` of shape (n_samples, n_features),
        ``dictionary`` of shape (n_features, d_in).
    """
    check_int_in_range("n_samples", n_samples, 1)
    check_nonnegative("noise_std", noise_std)
    if magnitude not in MAGNITUDES:
        raise ValueError(f"magnitude must be one of {MAGNITUDES}, got {magnitude!r}")
    g = make_generator(seed)
    if dictionary is None:
        dictionary = random_dictionary(n_features, d_in, generator=g, dtype=torch.float64)
    else:
        dictionary = torch.as_tensor(np.asarray(dictionary) if not torch.is_tensor(dictionary)
                                     else dictionary).detach().cpu().to(torch.float64)
        if dictionary.ndim != 2:
            raise ValueError(f"dictionary must have shape (n_features, d_in), "
                             f"got {tuple(dictionary.shape)}")
        norms = dictionary.norm(dim=1, keepdim=True)
        if bool((norms == 0).any()) or not bool(torch.isfinite(dictionary).all()):
            raise ValueError("dictionary must have finite, non-zero rows")
        dictionary = dictionary / norms
    n_features, d_in = dictionary.shape
    check_positive("n_active", n_active)
    if n_active > n_features:
        raise ValueError(f"n_active must be at most n_features={n_features}, got {n_active}")
    p = n_active / n_features
    base = "one" if magnitude == "exponential" else magnitude
    codes = sample_sparse_codes(n_samples, n_features, p, magnitude=base, generator=g,
                                dtype=torch.float64)  # [n_samples, n_features]
    if magnitude == "exponential":
        exp = torch.empty(n_samples, n_features, dtype=torch.float64).exponential_(generator=g)
        codes = codes * exp
    x = codes @ dictionary  # [n_samples, d_in]
    if noise_std > 0:
        x = x + noise_std * torch.randn(x.shape, generator=g, dtype=torch.float64)
    out = [t.to(dtype) for t in (x, codes, dictionary)]
    if as_numpy:
        return SyntheticData(*(t.numpy() for t in out))
    return SyntheticData(*(t.to(device) for t in out))
