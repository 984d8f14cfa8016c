"""The Chapter 2 NumPy training loop, with a divergence guard.

Each step draws a batch of rows from ``x`` (with replacement), runs the hand-derived backward
pass, and takes one Adam step:

    out   = sae(x_b);  grads = sae.backward(x_b, out)
    grads = remove_parallel_grad(grads)            (unit-norm families only)
    adam.step(grads);  sae.apply_constraints()

The guard stops training with ``TrainingDivergedError`` (from ``saelab.train``) when the loss or
any parameter stops being finite, or when the fraction of variance unexplained on the training
batch, ``FVU = recon_loss / mean_b ||x_b - mean(x_b)||^2``, grows past ``max_fvu``; the SAE is
first restored to the weights of the last step that passed the check (a copy is kept every
``log_every`` steps, so keeping it costs one parameter copy per ``log_every`` steps). A
``KeyboardInterrupt`` re-applies the constraints and returns the log so far, with a warning.
Taught in Chapter 2.
"""
from __future__ import annotations

import warnings

import numpy as np
from tqdm.auto import tqdm

from saelab._checks import check_array, check_int_in_range, check_positive, check_shape
from saelab.metrics import l0
from saelab.numpy_sae.adam import Adam
from saelab.numpy_sae.base import BaseSAE

__all__ = ["MAX_FVU", "train_numpy_sae"]

MAX_FVU = 100.0  # an untrained SAE has FVU near 1; 100x that means the steps are blowing up


def _finite_params(sae: BaseSAE) -> bool:
    return all(np.isfinite(p).all() for p in sae.parameters().values())


def train_numpy_sae(sae: BaseSAE, x, steps: int = 300, batch_size: int = 256, lr: float = 3e-3,
                    seed: int = 0, log_every: int = 10, max_fvu: float = MAX_FVU,
                    progress: bool = True) -> dict[str, list]:
    """Train a NumPy SAE with Adam on rows of ``x``; return the log (Chapter 2).

    Parameters
    ----------
    sae : saelab.numpy_sae.BaseSAE
        Trained in place.
    x : ndarray of shape (n, d_in)
        Finite training data; each step samples ``batch_size`` rows with replacement.
    steps, batch_size, log_every : int
        Optimizer steps, rows per step, and how often to log (the last step is always logged).
    lr : float
        Adam learning rate.
    seed : int
        Seeds the batch sampling.
    max_fvu : float
        The guard's bound on the training batch's FVU.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    dict with lists ``"step"``, ``"recon"``, ``"sparsity"``, ``"l0"`` (one entry per logged step).

    Raises
    ------
    saelab.train.TrainingDivergedError
        With ``.step`` (1-based) and ``.history`` (the log so far); the SAE holds the last weights
        that passed the check.
    """
    from saelab.train import TrainingDivergedError

    if not isinstance(sae, BaseSAE):
        raise TypeError(f"sae must be a saelab.numpy_sae SAE, got {type(sae).__name__}")
    x = check_array("x", x, 2)
    check_shape("x", x, (None, sae.cfg.d_in))
    check_int_in_range("steps", steps, 1)
    check_int_in_range("batch_size", batch_size, 1)
    check_int_in_range("log_every", log_every, 1)
    check_int_in_range("seed", seed, 0)
    check_positive("max_fvu", max_fvu)
    opt = Adam(sae.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    log = {"step": [], "recon": [], "sparsity": [], "l0": []}
    good = {name: p.copy() for name, p in sae.parameters().items()}  # last checked weights

    def diverged(step: int, why: str):
        sae.load_parameters(good)
        return TrainingDivergedError(
            f"training diverged at step {step}: {why}; the SAE holds the weights of the last "
            f"check that passed. Lower lr (now {opt.lr:g}) or check the data.", step, log)

    step = 0
    try:
        for step in tqdm(range(steps), desc="NumPy SAE", disable=not progress):
            x_b = x[rng.integers(0, len(x), batch_size)]  # (batch, d_in)
            out = sae(x_b)
            variance = float(((x_b - x_b.mean(axis=0)) ** 2).sum(axis=-1).mean())
            fvu = out.recon_loss / max(variance, np.finfo(np.float64).tiny)
            if not np.isfinite(out.loss):
                raise diverged(step + 1, f"the loss is {out.loss}")
            if fvu > max_fvu:
                raise diverged(step + 1, f"FVU on the training batch is {fvu:.3g} > max_fvu")
            grads = sae.backward(x_b, out)
            if sae.unit_norm_decoder:
                sae.remove_parallel_grad(grads)
            opt.step(grads)  # rejects NaN/inf gradients before touching the weights
            sae.apply_constraints()
            if step % log_every == 0 or step == steps - 1:
                if not _finite_params(sae):
                    raise diverged(step + 1, "a parameter became NaN or infinite")
                for key, value in zip(log, (step, out.recon_loss, out.sparsity_loss, l0(out.f))):
                    log[key].append(value)
                good = {name: p.copy() for name, p in sae.parameters().items()}
    except ValueError as err:  # Adam's check of the gradients
        if "NaN or infinite" not in str(err):
            raise
        raise diverged(step + 1, str(err)) from err
    except KeyboardInterrupt:
        sae.apply_constraints()
        if not _finite_params(sae):
            sae.load_parameters(good)
        warnings.warn(f"training interrupted at step {step + 1} of {steps}; returning the log "
                      f"so far", stacklevel=2)
    return log
