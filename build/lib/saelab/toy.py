"""The toy model of superposition (Elhage et al., 2022, "Toy Models of Superposition").

``m`` features ``x`` in R^m are squeezed through ``d < m`` hidden dimensions and read back out::

    h  = W x                     W: [d_hidden, n_features]; column W_i is feature i's direction
    x' = ReLU(W^T W x + b)       b: [n_features]
    L  = E_x  sum_i I_i (x_i - x'_i)^2

with importance ``I_i`` decaying geometrically (``I_i = decay ** i``). Each feature is zero with
probability S (the sparsity) and otherwise uniform in [0, 1] (:mod:`saelab.features`).
:func:`toy_forward` and :func:`toy_loss` are the single-instance references (NumPy or torch);
:func:`plot_features_2d` and :func:`plot_gram` draw a trained model.

:class:`ToyModel` holds ``n_instances`` independent copies of the model in one tensor,
``W: [n_instances, d_hidden, n_features]``, so a whole sweep over sparsity (or importance) trains as
one batched computation. The optimizer minimises the sum over instances of each instance's loss
(mean over the batch); instances share no parameters, so they train independently.

Taught in Chapter 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from saelab._checks import check_int_in_range, check_positive, check_probability
from saelab.features import _draw_toy_features, make_generator, probability_tensor

__all__ = [
    "ToyConfig",
    "ToyModel",
    "toy_forward",
    "toy_loss",
    "geometric_importance",
    "sparsity_sweep",
    "train_toy",
    "plot_features_2d",
    "plot_gram",
]


@dataclass
class ToyConfig:
    """Sizes and data settings of a batch of toy models. Introduced in Chapter 1."""

    n_features: int = 5  # m: features to represent; 5 in 2 dims gives the pentagon
    d_hidden: int = 2  # d < m forces superposition; 2 so the geometry can be drawn
    n_instances: int = 10  # independent models trained together, one per sweep value
    importance_decay: float = 0.9  # I_i = decay ** i: later features matter less
    max_sparsity: float = 0.99  # sweep of S from 0 (dense) up to this (very sparse)

    def __post_init__(self):
        check_int_in_range("n_features", self.n_features, 1)
        check_int_in_range("d_hidden", self.d_hidden, 1)
        check_int_in_range("n_instances", self.n_instances, 1)
        check_positive("importance_decay", self.importance_decay)
        check_probability("max_sparsity", self.max_sparsity)

    def importance(self) -> torch.Tensor:
        """Importance vector ``[n_features]`` with ``I_i = importance_decay ** i``."""
        return geometric_importance(self.n_features, self.importance_decay)

    def feature_probability(self) -> torch.Tensor:
        """Feature probabilities ``[n_instances]`` (``1 - S``) of the default sparsity sweep."""
        return 1.0 - sparsity_sweep(self.n_instances, self.max_sparsity)


def geometric_importance(n_features: int, decay: float = 0.9) -> torch.Tensor:
    """Importance ``I_i = decay ** i`` for ``i = 0..n_features-1``, shape ``[n_features]``.

    Introduced in Chapter 1.
    """
    check_int_in_range("n_features", n_features, 1)
    check_positive("decay", decay)
    return decay ** torch.arange(n_features, dtype=torch.float32)


def sparsity_sweep(n_instances: int, max_sparsity: float = 0.99) -> torch.Tensor:
    """Sparsities ``S`` from 0 up to ``max_sparsity``, evenly spaced in ``log(1 - S)``.

    Spacing in log feature probability puts as many instances between S = 0.9 and 0.99 as between
    0 and 0.9, which is where the interesting geometry lives. Shape ``[n_instances]``.
    Introduced in Chapter 1.
    """
    check_int_in_range("n_instances", n_instances, 1)
    check_probability("max_sparsity", max_sparsity)
    if max_sparsity >= 1.0:
        raise ValueError(f"max_sparsity must be below 1 (S = 1 means no data), got {max_sparsity}")
    if n_instances == 1:
        return torch.zeros(1)
    log_p = torch.linspace(0.0, float(np.log(1.0 - max_sparsity)), n_instances)
    return (1.0 - torch.exp(log_p)).clamp(min=0.0)


def _is_torch(a) -> bool:
    return isinstance(a, torch.Tensor)


def toy_forward(W, b, x):
    """Reference forward pass of ONE toy model: ``x' = ReLU(x W^T W + b)``, row by row.

    Works on NumPy arrays or torch tensors. Introduced in Chapter 1 (exercise reference).

    Parameters
    ----------
    W : array of shape (d_hidden, n_features)
    b : array of shape (n_features,)
    x : array of shape (batch, n_features)

    Returns
    -------
    array of shape (batch, n_features)
    """
    h = x @ W.T  # [batch, d]: h = W x for each row
    pre = h @ W + b  # [batch, m]: W^T h + b
    return torch.relu(pre) if _is_torch(pre) else np.maximum(pre, 0.0)


def toy_loss(x, x_hat, importance):
    """Importance-weighted squared error, summed over features and averaged over the batch.

    ``L = mean_batch sum_i I_i (x_i - x'_i)^2``. Works on NumPy arrays or torch tensors, for one
    instance (``x: [batch, m]`` -> scalar) or many (``x: [batch, n_instances, m]`` ->
    ``[n_instances]``). Introduced in Chapter 1.

    Parameters
    ----------
    x, x_hat : array of shape (batch, m) or (batch, n_instances, m)
    importance : array of shape (m,) or (n_instances, m)
    """
    if tuple(x.shape) != tuple(x_hat.shape):
        raise ValueError(f"x_hat must have the shape of x {tuple(x.shape)}, got {tuple(x_hat.shape)}")
    if importance.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"importance must have length n_features={x.shape[-1]}, got shape {tuple(importance.shape)}"
        )
    return (importance * (x - x_hat) ** 2).sum(-1).mean(0)


class ToyModel(nn.Module):
    """``n_instances`` toy models of superposition in one module: ``x' = ReLU(W^T W x + b)``.

    Parameters ``W: [n_instances, d_hidden, n_features]`` (column ``W[k, :, i]`` is feature i's
    direction in instance k) and ``b: [n_instances, n_features]``. ``W`` is initialised with
    Xavier-normal scale, ``b`` at zero. Introduced in Chapter 1.
    """

    def __init__(self, config: ToyConfig, seed: int | None = None, device=None):
        super().__init__()
        self.config = config
        g = make_generator(seed)  # CPU generator: the same seed gives the same init everywhere
        n, d, m = config.n_instances, config.d_hidden, config.n_features
        std = (2.0 / (d + m)) ** 0.5
        W = torch.randn(n, d, m, generator=g) * std
        self.W = nn.Parameter(W.to(device))  # [inst, d, m]
        self.b = nn.Parameter(torch.zeros(n, m, device=device))  # [inst, m]

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """``h = W x``: ``[batch, inst, m]`` -> ``[batch, inst, d]``."""
        return torch.einsum("kdm,bkm->bkd", self.W, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x' = ReLU(W^T W x + b)``: ``[batch, inst, m]`` -> ``[batch, inst, m]``."""
        gram = self.W.transpose(1, 2) @ self.W  # [inst, m, m]: W^T W, cheaper than two products
        out = torch.bmm(x.transpose(0, 1), gram).transpose(0, 1) + self.b  # [batch, inst, m]
        return torch.relu(out)


def train_toy(
    model: ToyModel,
    feature_probability,
    importance,
    steps: int = 5000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> torch.Tensor:
    """Train every instance of ``model`` at once with Adam; return the loss history.

    One optimizer step draws a fresh batch ``[batch_size, n_instances, n_features]`` (each instance
    with its own feature probability), and minimises ``sum_k L_k``, the sum of the instances'
    losses (:func:`toy_loss`). Runs on the model's device. Introduced in Chapter 1.

    Parameters
    ----------
    model : ToyModel
    feature_probability : float, or tensor [n_instances] or [n_instances, n_features]
        Probability ``1 - S`` that a feature is non-zero.
    importance : tensor [n_features] or [n_instances, n_features]
        Importance weights ``I_i`` (see :func:`geometric_importance`).
    steps, batch_size : int
        Optimizer steps and samples per step.
    lr : float
        Adam learning rate.
    seed : int
        Seeds the data stream (the initial weights come from the model's own seed).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Tensor of shape [steps, n_instances] (on CPU)
        Each instance's training loss at every step.
    """
    cfg = model.config
    n, m = cfg.n_instances, cfg.n_features
    check_int_in_range("steps", steps, 1)
    check_int_in_range("batch_size", batch_size, 1)
    check_positive("lr", lr)
    device = model.W.device
    p = probability_tensor("feature_probability", feature_probability, n, m, device)  # [inst, m]
    imp = torch.as_tensor(importance, dtype=torch.float32)
    if imp.ndim == 1 and imp.shape[0] != m:
        raise ValueError(f"importance must have length n_features={m}, got {imp.shape[0]}")
    if imp.ndim == 2 and tuple(imp.shape) != (n, m):
        raise ValueError(f"importance must have shape ({n}, {m}), got {tuple(imp.shape)}")
    if imp.ndim not in (1, 2):
        raise ValueError(f"importance must be 1-D or 2-D, got shape {tuple(imp.shape)}")
    if bool((imp < 0).any()) or not bool(torch.isfinite(imp).all()):
        raise ValueError(f"importance must be finite and non-negative, got {imp.tolist()}")
    imp = imp.to(device)

    g = make_generator(seed, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = torch.empty(steps, n, device=device)  # [steps, inst]
    bar = tqdm(range(steps), desc="training toy models", disable=not progress, mininterval=0.5)
    for step in bar:
        x = _draw_toy_features(batch_size, p, g)  # [batch, inst, m]
        per_instance = toy_loss(x, model(x), imp)  # [inst]
        opt.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        opt.step()
        history[step] = per_instance.detach()
        if progress and (step + 1) % 500 == 0:
            bar.set_postfix(mean_loss=f"{history[step].mean().item():.4f}")
    return history.cpu()


def plot_features_2d(ax, W, importance=None, title: str | None = None) -> None:
    """Draw the columns of a 2-D ``W`` (shape (2, n_features)) as arrows from the origin.

    Arrow colour encodes importance (bright = important) when ``importance`` is given; a grey
    polygon through the arrow tips (in angular order) makes pentagons easy to spot. Features with
    ``||W_i|| <= 0.1`` are listed as dropped instead of drawn. Introduced in Chapter 1.
    """
    import matplotlib.pyplot as plt

    W = W.detach().cpu().numpy() if _is_torch(W) else np.asarray(W)
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
    W = W.detach().cpu().numpy() if _is_torch(W) else np.asarray(W)
    gram = W.T @ W  # [m, m]
    im = ax.imshow(gram, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(gram.shape[0]))
    ax.set_yticks(range(gram.shape[0]))
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return im
