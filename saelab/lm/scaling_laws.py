"""Scaling laws of SAE loss: train TopK SAEs over widths, k and token budgets, and fit power laws.

Gao et al. (2024, "Scaling and evaluating sparse autoencoders", arXiv:2406.04093) fit the
reconstruction loss (normalized MSE) of TopK SAEs trained to convergence as

    L(n)      = a * n^(-b)              (number of latents n, fixed k)
    L(n)      = a * n^(-b) + c          (with an irreducible loss c)
    L(k)      = a * k^(-b)              (fixed n)

Here ``L`` is the held-out FVU (Chapter 5) of TopK SAEs on saelab-tiny's middle residual stream.
``fit_power_law`` fits in log space without ``c`` (ordinary least squares on log L = log a -
b log n) and with scipy's ``curve_fit`` with ``c``; standard errors come from the fit's covariance
matrix (they assume independent, equal-variance errors, which a handful of points barely
supports: read them as rough). ``train_point`` trains one SAE of the sweep; the sweep itself is
``scripts/ch09_scaling_sweep.py``, cached in ``saelab/results/ch09_scaling.json``. Chapter 9.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import check_int_in_range, check_positive, check_tensor

__all__ = ["PowerLawFit", "fit_power_law", "sweep_activations", "train_point"]


class PowerLawFit(NamedTuple):
    """``L = a * x^(-b) + c``; ``*_err`` are one-standard-error estimates from the covariance."""

    a: float
    b: float
    c: float
    a_err: float
    b_err: float
    c_err: float

    def predict(self, x) -> np.ndarray:
        """The fitted curve at ``x``."""
        return self.a * np.asarray(x, dtype=float) ** (-self.b) + self.c


def _check_xy(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D arrays of equal length, got shapes "
                         f"{x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a power law (log-log fit)")
    return x, y


def fit_power_law(x, y, irreducible: bool = False) -> PowerLawFit:
    """Fit ``y = a x^(-b)`` (log-space least squares) or ``y = a x^(-b) + c`` (``curve_fit``).

    Needs at least 3 points without ``c`` and 4 with it (one more than the parameters, so the
    standard errors exist).
    """
    x, y = _check_xy(x, y)
    need = 4 if irreducible else 3
    if len(x) < need:
        raise ValueError(f"x must have at least {need} points for this fit, got {len(x)}")
    if len(np.unique(x)) < 2:
        raise ValueError("x must contain at least two distinct values")
    lx, ly = np.log(x), np.log(y)
    A = np.stack([np.ones_like(lx), -lx], axis=1)
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    resid = ly - A @ coef
    sigma2 = resid @ resid / (len(x) - 2)
    cov = sigma2 * np.linalg.inv(A.T @ A)
    log_a, b = coef
    a, a_err, b_err = np.exp(log_a), np.exp(log_a) * np.sqrt(cov[0, 0]), np.sqrt(cov[1, 1])
    if not irreducible:
        return PowerLawFit(float(a), float(b), 0.0, float(a_err), float(b_err), 0.0)
    from scipy.optimize import curve_fit

    def model(t, a_, b_, c_):
        return a_ * t ** (-b_) + c_

    p0 = (a, max(b, 1e-3), 0.5 * y.min())
    params, pcov = curve_fit(model, x, y, p0=p0, bounds=([0, 0, 0], [np.inf, 10, y.min()]),
                             maxfev=20_000)
    errs = np.sqrt(np.clip(np.diag(pcov), 0, None))
    return PowerLawFit(*(float(v) for v in params), *(float(e) for e in errs))


def train_point(train_acts: torch.Tensor, eval_acts: torch.Tensor, d_sae: int, k: int,
                n_tokens: int, *, batch_size: int = 512, lr: float = 1e-3,
                seed: int = 0) -> dict:
    """Train one TopK SAE on the first ``n_tokens`` rows of ``train_acts`` (one pass, shuffled).

    Activations must already be scaled (``saelab.lm.scaling.activation_scale``). Returns a dict
    with the held-out ``fvu``, the ``dead_fraction`` (latents that never fire on ``eval_acts``),
    the settings and the wall-clock ``seconds``.
    """
    from saelab.evaluation import evaluate
    from saelab.sae_config import TopKConfig
    from saelab.torch_sae import TopKSAE
    from saelab.train import TrainConfig, train_sae

    check_tensor("train_acts", train_acts, 2)
    check_tensor("eval_acts", eval_acts, 2)
    if train_acts.shape[1] != eval_acts.shape[1] or train_acts.shape[1] != eval_acts.shape[1]:
        raise ValueError(f"train_acts and eval_acts must be (n, d_in) with the same d_in, got "
                         f"{tuple(train_acts.shape)} and {tuple(eval_acts.shape)}")
    d_in = train_acts.shape[1]
    check_int_in_range("d_sae", d_sae, d_in)  # narrower than the stream is no dictionary
    check_int_in_range("k", k, 1, d_sae)
    check_int_in_range("batch_size", batch_size, 1)
    check_int_in_range("n_tokens", n_tokens, batch_size, train_acts.shape[0])
    check_positive("lr", lr)
    start = time.time()
    torch.manual_seed(seed)
    sae = TopKSAE(TopKConfig(d_in=d_in, d_sae=d_sae, k=k, k_aux=min(256, d_sae)))
    cfg = TrainConfig(n_steps=n_tokens // batch_size, batch_size=batch_size, lr=lr, seed=seed,
                      dead_window_tokens=min(50_000, n_tokens), log_every=10_000)
    train_sae(sae, train_acts[:n_tokens], cfg, progress=False)
    report = evaluate(sae, eval_acts)
    return {"d_sae": d_sae, "k": k, "n_tokens": n_tokens, "fvu": round(float(report.fvu), 5),
            "dead_fraction": round(float(report.dead_fraction), 5),
            "seconds": round(time.time() - start, 1)}


def sweep_activations(model, n_train: int,
                      seq_len: int = 128) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Scaled activations for the sweep: the first ``n_train`` training rows, all held-out rows.

    Both come from the default hook of ``model`` (saelab-tiny: ``blocks.2.hook_resid_pre``) over
    the shipped corpus, in corpus order, multiplied by the scale ``s`` of the first 20,000
    training rows. Returns ``(train, heldout, s)``. The same ``n_train`` gives the same rows.
    """
    from saelab import lm
    from saelab.lm.scaling import activation_scale

    check_int_in_range("n_train", n_train, 1)
    hook = lm.default_hook_name(model)
    # max_tokens counts BOS too, so ask for a margin and cut exactly n_train rows below
    train = lm.harvest(model, lm.shipped_texts("train"), hook, seq_len=seq_len,
                       max_tokens=n_train + n_train // (seq_len - 1) + seq_len, progress=False)
    if train.shape[0] < n_train:
        raise ValueError(f"n_train must be at most {train.shape[0]} (the training corpus), "
                         f"got {n_train}")
    heldout = lm.harvest(model, lm.shipped_texts("heldout"), hook, seq_len=seq_len,
                         progress=False)
    scale = activation_scale(train[:20_000])
    return scale * train[:n_train], scale * heldout, scale
