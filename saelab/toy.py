"""The toy model of superposition (Elhage et al., 2022, "Toy Models of Superposition").

``m`` features ``x`` in R^m are squeezed through ``d < m`` hidden dimensions and read back out::

    h  = W x                     W: [d_hidden, n_features]; column W_i is feature i's direction
    x' = ReLU(W^T W x + b)       b: [n_features]
    L  = E_x  sum_i I_i (x_i - x'_i)^2

with importance ``I_i`` decaying geometrically (``I_i = decay ** i``). Each feature is zero with
probability S (the sparsity) and otherwise uniform in [0, 1] (:mod:`saelab.feature_sampling`).
:func:`toy_forward` and :func:`toy_loss` are the single-instance references (NumPy or torch);
:func:`plot_features_2d` and :func:`plot_gram` draw a trained model.

:class:`ToyModel` holds ``n_instances`` independent copies of the model in one tensor,
``W: [n_instances, d_hidden, n_features]``, so a whole sweep over sparsity (or importance) trains as
one batched computation. The optimizer minimises the sum over instances of each instance's loss
(mean over the batch); instances share no parameters, so they train independently.

Taught in Chapter 1.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from saelab._checks import (check_instance, check_int_in_range, check_nonnegative_entries,
                            check_not_none, check_numeric, check_positive, check_probability)
from saelab.feature_sampling import _draw_toy_features, make_generator, probability_tensor
from saelab.toy_plots import plot_features_2d, plot_gram

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
    W = check_numeric("W", W, 2)
    b = check_numeric("b", b, 1)
    x = check_numeric("x", x, 2)
    if b.shape[0] != W.shape[1] or x.shape[1] != W.shape[1]:
        raise ValueError(f"W has {W.shape[1]} features, so b must have shape ({W.shape[1]},) and "
                         f"x shape (batch, {W.shape[1]}); got b {tuple(b.shape)}, "
                         f"x {tuple(x.shape)}")
    if _is_torch(W) != _is_torch(x) or _is_torch(b) != _is_torch(x):
        raise TypeError("W, b and x must be all NumPy arrays or all torch tensors")
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
        Non-negative weights (a negative one would reward error).
    """
    x = check_numeric("x", x, (2, 3))
    x_hat = check_numeric("x_hat", x_hat, (2, 3))
    importance = check_numeric("importance", importance, (1, 2))
    check_nonnegative_entries("importance", importance)
    if _is_torch(x) != _is_torch(x_hat) or _is_torch(x) != _is_torch(importance):
        raise TypeError("x, x_hat and importance must be all NumPy arrays or all torch tensors")
    if tuple(x.shape) != tuple(x_hat.shape):
        raise ValueError(f"x_hat must have the shape of x {tuple(x.shape)}, got {tuple(x_hat.shape)}")
    if importance.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"importance must have length n_features={x.shape[-1]}, got shape {tuple(importance.shape)}"
        )
    return _weighted_error(x, x_hat, importance)


def _weighted_error(x, x_hat, importance):
    return (importance * (x - x_hat) ** 2).sum(-1).mean(0)


class ToyModel(nn.Module):
    """``n_instances`` toy models of superposition in one module: ``x' = ReLU(W^T W x + b)``.

    Parameters ``W: [n_instances, d_hidden, n_features]`` (column ``W[k, :, i]`` is feature i's
    direction in instance k) and ``b: [n_instances, n_features]``. ``W`` is initialised with
    Xavier-normal scale, ``b`` at zero. Introduced in Chapter 1.
    """

    def __init__(self, config: ToyConfig, seed: int | None = None, device=None):
        check_instance("config", config, ToyConfig, "a ToyConfig")
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
    check_every: int = 100,
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
    check_every : int
        Guard interval: every ``check_every`` steps and after the last, the weights and losses
        must be finite and no loss above ``TOY_MAX_LOSS_GROWTH`` times its first value; the
        weights that pass are kept (a copy of W and b, which are tiny).

    Returns
    -------
    Tensor of shape [steps, n_instances] (on CPU)
        Each instance's training loss at every step. After a ``KeyboardInterrupt`` the rows of
        the steps taken so far are returned, with a warning.

    Raises
    ------
    saelab.train.TrainingDivergedError
        When the guard trips; the model is restored to the last weights that passed, and the
        exception's ``history`` holds the loss rows up to them.
    """
    from saelab.train import TrainingDivergedError

    if not isinstance(model, ToyModel):
        raise TypeError(f"model must be a ToyModel, got {type(model).__name__}")
    check_int_in_range("check_every", check_every, 1)
    cfg = model.config
    n, m = cfg.n_instances, cfg.n_features
    check_int_in_range("steps", steps, 1)
    check_int_in_range("batch_size", batch_size, 1)
    check_positive("lr", lr)
    device = model.W.device
    p = probability_tensor("feature_probability", feature_probability, n, m, device)  # [inst, m]
    check_not_none("importance", importance, "a tensor [n_features] or [n_instances, n_features]")
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
    good, good_step, step = _snapshot(model), 0, -1
    try:
        for step in bar:
            x = _draw_toy_features(batch_size, p, g)  # [batch, inst, m]
            per_instance = _weighted_error(x, model(x), imp)  # [inst]
            opt.zero_grad(set_to_none=True)
            per_instance.sum().backward()
            opt.step()
            history[step] = per_instance.detach()
            if (step + 1) % check_every == 0 or step == steps - 1:
                why = _toy_divergence(model, history[step], history[0])
                if why:
                    model.load_state_dict(good)
                    raise TrainingDivergedError(
                        f"toy training diverged by step {step + 1}: {why}; the model holds the "
                        f"weights of step {good_step}. Lower lr (now {lr:g}).",
                        step + 1, history[:good_step].cpu())
                good, good_step = _snapshot(model), step + 1
            if progress and (step + 1) % 500 == 0:
                bar.set_postfix(mean_loss=f"{history[step].mean().item():.4f}")
    except KeyboardInterrupt:
        if not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()):
            model.load_state_dict(good)
        warnings.warn(f"toy training interrupted at step {step + 1} of {steps}; returning the "
                      f"loss history so far", stacklevel=2)
        return history[:max(step, 0)].cpu()
    return history.cpu()


TOY_MAX_LOSS_GROWTH = 100.0  # a loss 100x its first value means the steps are blowing up


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _toy_divergence(model: nn.Module, loss, first_loss) -> str:
    """Why the toy model counts as diverged ("" if it does not): one device sync per check."""
    if not all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()):
        return "a weight became NaN or infinite"
    if not bool(torch.isfinite(loss).all()):
        return "the loss is not finite"
    if bool((loss > TOY_MAX_LOSS_GROWTH * first_loss.clamp_min(1e-12)).any()):
        return f"a loss grew past {TOY_MAX_LOSS_GROWTH:g} times its first value"
    return ""
