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

from saelab._checks import check_positive


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
    grads = {}
    for name, p in params.items():
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
        grads[name] = g
    return grads


def relative_error(a, b) -> float:
    """Symmetric relative error ``||a - b|| / (||a|| + ||b||)`` (0 when both are zero)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    scale = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0
