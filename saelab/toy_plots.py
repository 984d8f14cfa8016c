"""Drawing a trained toy model of superposition (Elhage et al., 2022): feature directions in the
plane and the Gram matrix ``W^T W``. Re-exported by :mod:`saelab.toy`. Taught in Chapter 1.
"""
from __future__ import annotations

import numpy as np
import torch

from saelab._checks import check_numeric

__all__ = ["plot_features_2d", "plot_gram"]


def _is_torch(a) -> bool:
    return isinstance(a, torch.Tensor)


def _check_ax_and_W(ax, W) -> np.ndarray:
    if not hasattr(ax, "imshow"):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    W = check_numeric("W", W, 2)
    return W.detach().cpu().numpy() if _is_torch(W) else W


def plot_features_2d(ax, W, importance=None, title: str | None = None) -> None:
    """Draw the columns of a 2-D ``W`` (shape (2, n_features)) as arrows from the origin.

    Arrow colour encodes importance (bright = important) when ``importance`` is given; a grey
    polygon through the arrow tips (in angular order) makes pentagons easy to spot. Features with
    ``||W_i|| <= 0.1`` are listed as dropped instead of drawn. Introduced in Chapter 1.
    """
    import matplotlib.pyplot as plt

    W = _check_ax_and_W(ax, W)
    if W.ndim != 2 or W.shape[0] != 2:
        raise ValueError(f"W must have shape (2, n_features) to be drawn in the plane, got {W.shape}")
    m = W.shape[1]
    imp = np.ones(m) if importance is None else np.asarray(
        importance.detach().cpu() if _is_torch(importance) else importance, dtype=float)
    colors = plt.cm.viridis(imp / imp.max() if imp.max() > 0 else imp)
    order = np.argsort(np.arctan2(W[1], W[0]))
    live = order[np.linalg.norm(W[:, order], axis=0) > 0.1]  # ignore dropped features
    if len(live) > 2:
        ax.plot(*np.concatenate([W[:, live], W[:, live[:1]]], axis=1), color="0.8", lw=1, zorder=1)
    norms = np.linalg.norm(W, axis=0)
    for i in range(m):
        if norms[i] <= 0.1:  # dropped: an arrow of length ~0 would only clutter the origin
            continue
        ax.annotate("", xy=(W[0, i], W[1, i]), xytext=(0, 0), zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color=colors[i], lw=2))
        ax.text(*(W[:, i] * 1.12), str(i), ha="center", va="center", fontsize=8)
    dropped = [str(i) for i in range(m) if norms[i] <= 0.1]
    if dropped:
        ax.text(0.5, 0.03, "dropped: " + ", ".join(dropped), transform=ax.transAxes,
                ha="center", va="bottom", fontsize=7, color="0.4")
    lim = max(1.3, 1.2 * float(np.abs(W).max()))
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.9", lw=0.5, zorder=0)
    ax.axvline(0, color="0.9", lw=0.5, zorder=0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def plot_gram(ax, W, title: str | None = None, vmax: float = 1.3):
    """Show ``W^T W`` (shape (n_features, n_features)) as a red-blue heatmap; return the image.

    Diagonal: squared norms (is the feature represented?); off-diagonal: overlaps (interference).
    Introduced in Chapter 1.
    """
    W = _check_ax_and_W(ax, W)
    gram = W.T @ W  # [m, m]
    im = ax.imshow(gram, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(gram.shape[0]))
    ax.set_yticks(range(gram.shape[0]))
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return im
