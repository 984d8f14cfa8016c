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


# ----- arrays, tensors, dtypes, names ------------------------------------------------------------
def check_not_none(name: str, value, expected: str):
    """Return ``value`` unless it is ``None``; ``expected`` says what should have been passed."""
    if value is None:
        raise TypeError(f"{name} must be {expected}, got None")
    return value


def check_array(name: str, value, ndim: int | None = None, *, finite: bool = True,
                nonempty: bool = True, floating: bool = True) -> np.ndarray:
    """Return ``value`` as an ndarray after checking type, rank, emptiness, dtype and NaN/inf.

    ``floating=True`` rejects integer and bool arrays (a learner who passes ``np.arange(4)``
    gets a message, not a silently truncated result).
    """
    check_not_none(name, value, "an array")
    if hasattr(value, "detach"):  # a torch tensor: copy to host NumPy
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from err
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(f"{name} must be an array of numbers, got dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if nonempty and array.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {array.shape}")
    if floating and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {array.dtype}")
    if finite and array.dtype.kind in "fc":
        check_finite(name, array)
    return array


def check_tensor(name: str, value, ndim: int | None = None, *, finite: bool | None = None,
                 nonempty: bool = True, floating: bool = True):
    """Check a torch tensor's type, rank, emptiness and dtype; return it unchanged.

    ``finite=None`` (the default) checks NaN/inf only for CPU tensors, where the check costs one
    pass over the data and no device synchronisation; on an accelerator it would stall the
    stream once per call, so hot paths leave it to the training loop's logging steps.
    ``finite=True`` always checks (for user input on cold paths, e.g. loading weights).
    """
    import torch

    check_not_none(name, value, "a torch.Tensor")
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {tuple(value.shape)}")
    if nonempty and value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if finite is None:
        finite = value.device.type == "cpu"
    if finite and value.is_floating_point():
        check_finite(name, value)
    return value


def check_float_dtype(name: str, dtype, *, allow_half_on_cpu: bool = False, device=None):
    """Reject integer, bool and (for torch on the CPU) float16 parameter dtypes; return ``dtype``.

    Works for NumPy dtypes and torch dtypes; ``None`` passes (the library's default).
    """
    if dtype is None:
        return dtype
    import torch

    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point dtype, got {dtype}")
        on_cpu = device is None or torch.device(device).type == "cpu"
        if dtype == torch.float16 and on_cpu and not allow_half_on_cpu:
            raise TypeError(f"{name} {dtype} is not supported on the CPU (half-precision matrix "
                            f"products are missing or slow there); use torch.float32")
        return dtype
    try:
        np_dtype = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"{name} must be a floating-point dtype, got {dtype!r}") from err
    if not np.issubdtype(np_dtype, np.floating):
        raise TypeError(f"{name} must be a floating-point dtype, got {np_dtype}")
    return np_dtype


def check_choice(name: str, value, choices) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise name the close ones."""
    import difflib

    choices = list(choices)
    if value in choices:
        return value
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=5, cutoff=0.5)
    hint = f"close names: {close}" if close else f"valid: {choices[:8]}"
    raise ValueError(f"{name} must be one of the known names, got {value!r}; {hint}")


def check_token_ids(name: str, tokens, d_vocab: int | None = None):
    """Check that ``tokens`` is an integer tensor of ids in ``0..d_vocab-1``; return it."""
    import torch

    check_not_none(name, tokens, "a LongTensor of token ids")
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(tokens).__name__}")
    if tokens.is_floating_point() or tokens.dtype == torch.bool or tokens.is_complex():
        raise TypeError(f"{name} must hold integer token ids (torch.long), got dtype "
                        f"{tokens.dtype}; convert with {name}.long() if they are whole numbers")
    if tokens.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(tokens.shape)}")
    if d_vocab is not None:
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= d_vocab:
            raise ValueError(f"{name} ids must lie in 0..{d_vocab - 1}, got values in {lo}..{hi}")
    return tokens


def check_numeric(name: str, value, ndims=None, *, finite: bool = True, nonempty: bool = True):
    """Check an ndarray or a torch tensor (whichever was passed) and return it unconverted.

    ``ndims``: allowed numbers of dimensions (an int or a tuple), ``None`` for any. Integer
    NumPy input is converted to float64 (it is data, not weights); torch tensors must be float.
    """
    if hasattr(value, "detach"):
        t = check_tensor(name, value, finite=finite, nonempty=nonempty)
        ndim = t.ndim
    else:
        check_not_none(name, value, "an array")
        value = np.asarray(value) if not isinstance(value, np.ndarray) else value
        if value.dtype.kind in "iub":
            value = value.astype(np.float64)
        value = check_array(name, value, finite=finite, nonempty=nonempty)
        ndim = value.ndim
    if ndims is not None:
        allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
        if ndim not in allowed:
            want = " or ".join(str(n) for n in allowed)
            raise ValueError(f"{name} must be {want}-dimensional, got shape "
                             f"{tuple(value.shape)}")
    return value


def check_nonnegative_entries(name: str, value) -> None:
    """Raise if any entry of ``value`` (ndarray or tensor) is negative."""
    if bool((value < 0).any()):
        raise ValueError(f"{name} must have non-negative entries, got minimum "
                         f"{float(value.min()):g}")


def check_instance(name: str, value, types, expected: str):
    """Return ``value`` if it is an instance of ``types``; else ``TypeError`` saying ``expected``."""
    if not isinstance(value, types):
        got = "None" if value is None else type(value).__name__
        raise TypeError(f"{name} must be {expected}, got {got}")
    return value


def check_sae(name: str, sae):
    """Return ``sae`` if it is a saelab torch SAE (an ``nn.Module`` with a family config)."""
    import torch

    if not isinstance(sae, torch.nn.Module) or not hasattr(getattr(sae, "cfg", None), "family"):
        got = "None" if sae is None else type(sae).__name__
        raise TypeError(f"{name} must be a saelab torch SAE (saelab.torch_sae), got {got}")
    return sae


def check_real(name: str, value) -> float:
    """Return ``value`` as a float if it is a finite real number (any sign)."""
    return _as_float(name, value)
