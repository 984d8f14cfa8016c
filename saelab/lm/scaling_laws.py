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
``scripts/ch09_scaling_sweep.py``, cached in ``saelab/results/ch09_scaling.json``.

``split_share`` measures feature splitting between two widths by decoder geometry: the share of
a narrow SAE's latents that have at least two latents of a wider SAE with decoder cosine
>= threshold (``scripts/ch09_split_sweep.py``, ``saelab/results/ch09_splitting.json``). Chapter 9.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import torch

from saelab._checks import (check_array, check_int_in_range, check_positive, check_probability,
                            check_tensor)

__all__ = ["PowerLawFit", "fit_power_law", "split_share", "sweep_activations", "train_point"]


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
                seed: int = 0, return_sae: bool = False):
    """Train one TopK SAE on the first ``n_tokens`` rows of ``train_acts`` (one pass, shuffled).

    Activations must already be scaled (``saelab.lm.scaling.activation_scale``). Returns a dict
    with the held-out ``fvu``, the ``dead_fraction`` (latents that never fire on ``eval_acts``),
    the settings and the wall-clock ``seconds``. With ``return_sae=True`` it returns
    ``(point, sae, live)``: the dict, the trained SAE and a boolean array of the latents that
    fired at least once on ``eval_acts``.
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
    if not isinstance(return_sae, bool):
        raise TypeError(f"return_sae must be a bool, got {type(return_sae).__name__}")
    start = time.time()
    torch.manual_seed(seed)
    sae = TopKSAE(TopKConfig(d_in=d_in, d_sae=d_sae, k=k, k_aux=min(256, d_sae)))
    cfg = TrainConfig(n_steps=n_tokens // batch_size, batch_size=batch_size, lr=lr, seed=seed,
                      dead_window_tokens=min(50_000, n_tokens), log_every=10_000)
    train_sae(sae, train_acts[:n_tokens], cfg, progress=False)
    report = evaluate(sae, eval_acts)
    point = {"d_sae": d_sae, "k": k, "n_tokens": n_tokens, "fvu": round(float(report.fvu), 5),
             "dead_fraction": round(float(report.dead_fraction), 5),
             "seconds": round(time.time() - start, 1)}
    if return_sae:
        return point, sae, np.asarray(report.first_fire) >= 0
    return point


def _unit_rows(name: str, W) -> np.ndarray:
    W = check_array(name, W, 2)
    if W.shape[0] < 1 or W.shape[1] < 1:
        raise ValueError(f"{name} must be (n_latents, d_in) with both at least 1, got {W.shape}")
    norms = np.linalg.norm(W, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name} must have no all-zero rows (a decoder direction needs a norm), "
                         f"got zero rows at {np.flatnonzero(norms[:, 0] == 0)[:5].tolist()}")
    return W / norms


def _live_mask(name: str, live, n: int) -> np.ndarray:
    if live is None:
        return np.ones(n, dtype=bool)
    live = check_array(name, live, 1, floating=False)
    if live.dtype != bool or live.shape != (n,):
        raise ValueError(f"{name} must be a boolean array of shape ({n},), got dtype "
                         f"{live.dtype} and shape {live.shape}")
    return live


def split_share(W_dec_narrow, W_dec_wide, threshold: float = 0.7, *, live_narrow=None,
                live_wide=None, min_children: int = 2) -> float:
    """Share of the narrow SAE's live latents that split in the wide SAE (decoder geometry).

    A narrow latent ``i`` counts as split when at least two (live) wide latents ``j`` have
    ``cos(W_dec_narrow[i], W_dec_wide[j]) >= threshold``. Bricken et al. (2023, "Towards
    Monosemanticity") describe feature splitting as one latent of a small dictionary becoming a
    family of related latents in a larger one; this is a decoder-geometry proxy for that, not
    their procedure (they also compare what the latents fire on). ``W_dec_*`` are
    ``(n_latents, d_in)`` (rows are decoder directions; norms are ignored). ``live_narrow`` and
    ``live_wide`` are optional boolean masks of the latents to count (e.g. those that fire on
    held-out data); by default every latent is live. ``min_children=1`` gives instead the share
    of narrow latents that have any close wide latent (persist). Returns a float in [0, 1].
    Chapter 9.
    """
    a = _unit_rows("W_dec_narrow", W_dec_narrow)
    b = _unit_rows("W_dec_wide", W_dec_wide)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"W_dec_narrow and W_dec_wide must have the same d_in (columns), got "
                         f"{a.shape[1]} and {b.shape[1]}")
    t = check_probability("threshold", threshold)
    if not 0.0 < t < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    check_int_in_range("min_children", min_children, 1)
    keep_a = _live_mask("live_narrow", live_narrow, a.shape[0])
    keep_b = _live_mask("live_wide", live_wide, b.shape[0])
    if not keep_a.any():
        raise ValueError("live_narrow must mark at least one latent as live, got none")
    cos = a[keep_a] @ b[keep_b].T  # [n_live_narrow, n_live_wide]
    children = (cos >= t).sum(axis=1)  # [n_live_narrow]
    return float(np.mean(children >= min_children))


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
