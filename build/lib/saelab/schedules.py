"""Learning-rate and sparsity-coefficient schedules for SAE training, as pure functions.

With steps counted from 0 to ``n_steps - 1``:

* learning rate: linear warm-up over the first ``warmup_steps`` steps, constant, then linear
  decay to zero over the last ``decay_frac`` of training,

      lr_t = lr * min(1, (t + 1) / warmup_steps) * min(1, (n_steps - t) / n_decay),
      n_decay = ceil(decay_frac * n_steps);

* sparsity coefficient: a factor that rises linearly from ``1 / n_warm`` to 1 over the first
  ``warmup_frac`` of training (``n_warm = ceil(warmup_frac * n_steps)``) and stays at 1.

Both follow Anthropic's April 2024 training update ("Circuits Updates - April 2024": lambda
warm-up over the first 5% of steps, learning-rate decay over the last 20%). Starting with a weak
penalty lets latents find directions before the penalty pushes them to zero, which reduces dead
latents. Taught in Chapter 2.
"""
from __future__ import annotations

import math

from saelab._checks import check_int_in_range, check_positive, check_probability

__all__ = ["lr_at", "sparsity_factor_at"]


def _check_step(step: int, n_steps: int) -> None:
    check_int_in_range("n_steps", n_steps, 1)
    check_int_in_range("step", step, 0, n_steps - 1)


def lr_at(step: int, n_steps: int, lr: float, warmup_steps: int = 0,
          decay_frac: float = 0.2) -> float:
    """Learning rate at ``step`` (0-based) of ``n_steps``: warm-up, plateau, linear decay.

    Introduced in Chapter 2.

    Parameters
    ----------
    step, n_steps : int
        Current step in ``0 .. n_steps - 1`` and the length of training.
    lr : float
        Peak learning rate.
    warmup_steps : int
        Steps of linear warm-up from ``lr / warmup_steps`` to ``lr`` (0: none).
    decay_frac : float
        Fraction of training, at the end, over which the rate falls linearly towards 0
        (the last step uses ``lr / n_decay``, never exactly 0).
    """
    _check_step(step, n_steps)
    check_positive("lr", lr)
    check_int_in_range("warmup_steps", warmup_steps, 0)
    check_probability("decay_frac", decay_frac)
    factor = 1.0
    if warmup_steps > 0:
        factor = min(factor, (step + 1) / warmup_steps)
    n_decay = math.ceil(decay_frac * n_steps)
    if n_decay > 0:
        factor = min(factor, (n_steps - step) / n_decay)
    return lr * factor


def sparsity_factor_at(step: int, n_steps: int, warmup_frac: float = 0.05) -> float:
    """Multiplier in (0, 1] for the sparsity coefficient at ``step`` (0-based) of ``n_steps``.

    Linear warm-up over the first ``warmup_frac`` of training, then 1. Introduced in Chapter 2.
    """
    _check_step(step, n_steps)
    check_probability("warmup_frac", warmup_frac)
    n_warm = math.ceil(warmup_frac * n_steps)
    if n_warm == 0:
        return 1.0
    return min(1.0, (step + 1) / n_warm)
