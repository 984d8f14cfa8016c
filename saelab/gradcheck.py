"""Check a hand-derived gradient against central finite differences.

For a scalar objective L(theta) and every entry theta_k of every parameter array,

    dL/dtheta_k  ~=  ( L(theta + eps e_k) - L(theta - eps e_k) ) / (2 eps),

with an error of order eps^2 (plus rounding of order machine-epsilon / eps), so in float64 with
eps = 1e-6 agreement to about 1e-8 is expected where L is smooth. Near a kink (a ReLU at zero,
a TopK tie) the two evaluations can straddle it: choose inputs away from kinks.
Taught in Chapter 2, where it checks the NumPy SAE's backward pass.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from saelab._checks import check_not_none, check_positive

__all__ = ["central_differences", "relative_error"]


def central_differences(
    objective: Callable[[], float], params: dict[str, np.ndarray], eps: float = 1e-6
) -> dict[str, np.ndarray]:
    """Finite-difference gradient of ``objective()`` with respect to every entry of ``params``.

    Parameters
    ----------
    objective : callable with no arguments returning a float
        Reads the current values of the arrays in ``params`` (for an SAE:
        ``lambda: sae(x).loss``).
    params : dict of name -> ndarray
        The live parameter arrays. Each entry is perturbed in place and restored.
    eps : float
        Half the step of the central difference.

    Returns
    -------
    dict of name -> ndarray, same shapes as ``params``.
    """
    check_positive("eps", eps)
    if not callable(objective):
        raise TypeError(f"objective must be a callable with no arguments, got "
                        f"{type(objective).__name__}")
    if not isinstance(params, dict) or not params:
        raise TypeError(f"params must be a non-empty dict of name -> ndarray, got "
                        f"{type(params).__name__}")
    grads = {}
    for name, p in params.items():
        if not isinstance(p, np.ndarray):
            raise TypeError(f"params[{name!r}] must be an ndarray, got {type(p).__name__}")
        if not np.issubdtype(p.dtype, np.floating):
            raise ValueError(f"params[{name!r}] must be a floating-point array, got {p.dtype}")
        g = np.zeros_like(p)
        for k in np.ndindex(p.shape):
            old = p[k]
            p[k] = old + eps
            up = objective()
            p[k] = old - eps
            down = objective()
            p[k] = old
            g[k] = (up - down) / (2 * eps)
            if not np.isfinite(g[k]):
                raise ValueError(f"objective is not finite around params[{name!r}]{list(k)} "
                                 f"(values {up} and {down}); a gradient check needs a finite "
                                 f"objective")
        grads[name] = g
    return grads


def _where_not_finite(name: str, x: np.ndarray) -> str:
    bad = np.argwhere(~np.isfinite(x))
    first = [tuple(int(i) for i in idx) for idx in bad[:3]]
    return f"{name} has {len(bad)} NaN or infinite entries (first at {first})"


def relative_error(a, b) -> float:
    """Symmetric relative error ``||a - b|| / (||a|| + ||b||)`` (0 when both are zero).

    NaN or infinite entries in ``a`` or ``b`` raise ``ValueError`` saying where they are: a
    backward pass that produces NaN must fail a gradient check, never pass it.
    """
    check_not_none("a", a, "an array")
    check_not_none("b", b, "an array")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    problems = [_where_not_finite(n, v) for n, v in (("a", a), ("b", b))
                if not np.isfinite(v).all()]
    if problems:
        raise ValueError("gradient check failed: " + "; ".join(problems))
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0
