"""The geometric median, used to initialise the decoder bias ``b_dec``.

The geometric median of points ``x_1..x_n`` minimises the sum of Euclidean distances,

    m* = argmin_m  sum_i ||x_i - m||,

and, unlike the mean, is barely moved by a few outlying points. Bricken et al. (2023, "Towards
Monosemanticity") initialise ``b_dec`` to it, so that at the start of training ``x - b_dec`` is
centred on the bulk of the data. There is no closed form; Weiszfeld's algorithm (1937) iterates
a re-weighted mean,

    m_{t+1} = sum_i w_i x_i / sum_i w_i,   w_i = 1 / max(||x_i - m_t||, eps),

which decreases the objective at every step. The ``eps`` floor handles an iterate landing on a
data point (where the weight would be infinite); it moves the answer by at most ``eps``.

Taught in Chapter 2.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import check_finite, check_int_in_range, check_numeric, check_positive

__all__ = ["GeometricMedian", "geometric_median"]


class GeometricMedian(NamedTuple):
    """Result of :func:`geometric_median`."""

    median: torch.Tensor  # [d] (an ndarray when the points were an ndarray)
    n_iter: int  # Weiszfeld steps taken
    converged: bool  # True if the last step moved less than the tolerance


def geometric_median(points, tol: float = 1e-6, max_iter: int = 200,
                     eps: float = 1e-8) -> GeometricMedian:
    """Weiszfeld's algorithm for the geometric median of the rows of ``points``.

    Computed in float64, starting from the mean. Introduced in Chapter 2.

    Parameters
    ----------
    points : Tensor or ndarray of shape (n, d)
        One point per row.
    tol : float
        Stop when a step moves the estimate by less than ``tol * (1 + ||estimate||)``
        (relative to the scale of the answer, absolute near zero).
    max_iter : int
        At most this many steps; ``converged`` says whether the tolerance was met.
    eps : float
        Floor on distances, guarding against division by zero at a data point.

    Returns
    -------
    GeometricMedian
        ``median`` of shape (d,), same type, device and dtype as ``points``.
    """
    check_positive("tol", tol)
    check_int_in_range("max_iter", max_iter, 1)
    check_positive("eps", eps)
    points = check_numeric("points", points, finite=False)  # shape and NaN: checked below
    is_numpy = not torch.is_tensor(points)
    pts = torch.as_tensor(np.asarray(points)) if is_numpy else points.detach()
    if pts.ndim != 2 or pts.shape[0] == 0:
        raise ValueError(f"points must have shape (n, d) with n >= 1, got {tuple(pts.shape)}")
    check_finite("points", pts)
    out_dtype, device = pts.dtype, pts.device
    work = torch.float64 if device.type != "mps" else torch.float32  # MPS has no float64
    pts = pts.to(work)  # [n, d]
    m = pts.mean(dim=0)  # [d]
    converged, n_iter = False, 0
    for n_iter in range(1, max_iter + 1):
        w = 1.0 / (pts - m).norm(dim=1).clamp_min(eps)  # [n]
        new = (w[:, None] * pts).sum(dim=0) / w.sum()  # [d]
        step = float((new - m).norm())
        m = new
        if step <= tol * (1.0 + float(m.norm())):
            converged = True
            break
    median = m.to(out_dtype)
    if is_numpy:
        return GeometricMedian(median.cpu().numpy(), n_iter, converged)
    return GeometricMedian(median, n_iter, converged)
