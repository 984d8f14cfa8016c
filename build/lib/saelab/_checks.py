"""Input checks shared by the whole package.

Every public function in saelab rejects impossible input with a ``ValueError`` that names the
argument and the value it got, so a learner sees ``sparsity must be in [0, 1], got 1.5`` instead
of a silent wrong answer or a shape error deep inside a matrix product.

The checks accept Python numbers, NumPy arrays and torch tensors alike (torch is only imported
when a tensor is passed).
"""
from __future__ import annotations

import math
import numbers

import numpy as np


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _as_float(name: str, value) -> float:
    if not _is_number(value):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(name: str, value) -> float:
    """Return ``value`` as a float if it is finite and strictly positive."""
    v = _as_float(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return v


def check_nonnegative(name: str, value) -> float:
    """Return ``value`` as a float if it is finite and at least zero."""
    v = _as_float(name, value)
    if v < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return v


def check_probability(name: str, value) -> float:
    """Return ``value`` as a float if it lies in [0, 1]."""
    v = _as_float(name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return v


def check_int_in_range(name: str, value, lo: int, hi: int | None = None) -> int:
    """Return ``value`` if it is an integer with ``lo <= value <= hi`` (``hi=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f"at least {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def _shape_of(array) -> tuple[int, ...]:
    return tuple(int(s) for s in array.shape)


def check_finite(name: str, array) -> None:
    """Raise if ``array`` (ndarray or tensor) holds NaN or infinite entries."""
    if hasattr(array, "detach"):  # torch tensor
        import torch

        bad = int((~torch.isfinite(array.detach())).sum().item())
    else:
        bad = int((~np.isfinite(np.asarray(array))).sum())
    if bad:
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s) (shape {_shape_of(array)}); "
            "check the data that produced it"
        )


def check_shape(name: str, array, expected: tuple) -> None:
    """Raise if ``array.shape`` does not match ``expected``; ``None`` entries match any size."""
    shape = _shape_of(array)
    ok = len(shape) == len(expected) and all(
        e is None or e == s for s, e in zip(shape, expected)
    )
    if not ok:
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {shape}")
