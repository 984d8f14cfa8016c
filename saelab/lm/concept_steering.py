"""Steering with a concept direction, measured on the tokens that mark the concept (Chapter 9).

For a concept with labels on token windows, its *marker tokens* are the vocabulary entries that
carry the label at least ``min_rate`` of the time (and occur at least ``min_count`` times). A
direction v, added at a hook as ``act + alpha * v / ||v|| * norm`` (every position), writes the
concept if it raises the model's next-token probability mass on those markers:

    shift = mean over positions of  log P_steered(next in markers) - log P_clean(next in markers)

Directions are compared at the same norm, against random directions of that norm (the control).
This reads the effect off the logits of one forward pass instead of judging generated text.
"""
from __future__ import annotations

import numpy as np
import torch

from saelab._checks import (check_int_in_range, check_positive, check_probability, check_tensor,
                            check_token_ids)
from saelab.lm.models import check_hook_name

__all__ = ["marker_tokens", "marker_log_mass", "steering_shift"]


def marker_tokens(tokens, labels, valid, *, min_rate: float = 0.9,
                  min_count: int = 10) -> np.ndarray:
    """Token ids [n_markers] labelled positive in ``min_rate`` or more of their valid uses."""
    check_probability("min_rate", min_rate)
    check_int_in_range("min_count", min_count, 1)
    if tokens is None:
        raise TypeError("tokens must be token ids [n_windows, seq_len], got None")
    tok = np.asarray(tokens.cpu() if isinstance(tokens, torch.Tensor) else tokens)
    if tok.size == 0 or tok.dtype.kind not in "iu" or tok.min() < 0:
        raise ValueError(f"tokens must be non-empty non-negative integer token ids, got dtype "
                         f"{tok.dtype} and shape {tok.shape}")
    labels, valid = np.asarray(labels, dtype=bool), np.asarray(valid, dtype=bool)
    if not (tok.shape == labels.shape == valid.shape):
        raise ValueError(f"tokens, labels and valid must have one shape, got {tok.shape}, "
                         f"{labels.shape} and {valid.shape}")
    ids, v = tok[valid], labels[valid]
    size = int(tok.max()) + 1
    count = np.bincount(ids, minlength=size)
    pos = np.bincount(ids, weights=v, minlength=size)
    rate = np.divide(pos, count, out=np.zeros(size), where=count > 0)
    markers = np.flatnonzero((count >= min_count) & (rate >= min_rate))
    if markers.size == 0:
        raise ValueError(f"labels: no token is labelled positive in {min_rate:.0%} of at least "
                         f"{min_count} occurrences: lower min_rate or min_count")
    return markers


def _check_markers(markers, d_vocab: int) -> None:
    ids = np.asarray(markers) if markers is not None else np.zeros(0)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ValueError(f"markers must be a non-empty 1-d list of token ids, got {markers!r}")
    if ids.min() < 0 or ids.max() >= d_vocab:
        raise ValueError(f"markers must be token ids in 0..{d_vocab - 1}, got values in "
                         f"{ids.min()}..{ids.max()}")


@torch.no_grad()
def marker_log_mass(logits: torch.Tensor, markers) -> torch.Tensor:
    """log of the next-token probability on ``markers``, per position: [b, pos]."""
    check_tensor("logits", logits, finite=True)  # [..., d_vocab]
    _check_markers(markers, logits.shape[-1])
    return _log_mass(logits, markers)


def _log_mass(logits: torch.Tensor, markers) -> torch.Tensor:
    idx = torch.as_tensor(np.asarray(markers), dtype=torch.long, device=logits.device)
    logp = logits.double().log_softmax(-1)
    return logp[..., idx].logsumexp(-1)


@torch.no_grad()
def steering_shift(model, tokens: torch.Tensor, hook_name: str, direction, norm: float,
                   markers) -> float:
    """Mean change in ``marker_log_mass`` when ``norm * direction / ||direction||`` is added."""
    from saelab.lm.steering import steering_hook

    check_hook_name(model, hook_name)
    check_positive("norm", norm)
    check_token_ids("tokens", tokens, model.cfg.d_vocab)
    if tokens.ndim != 2 or not 2 <= tokens.shape[1] <= model.cfg.n_ctx:
        raise ValueError(f"tokens must be [batch, pos] with 2..n_ctx = {model.cfg.n_ctx} "
                         f"positions, got shape {tuple(tokens.shape)}")
    _check_markers(markers, model.cfg.d_vocab)
    v = torch.as_tensor(np.asarray(direction), dtype=torch.float32)
    if v.ndim != 1 or v.shape[0] != model.cfg.d_model:
        raise ValueError(f"direction must have shape ({model.cfg.d_model},) (d_model), got "
                         f"{tuple(v.shape)}")
    if not torch.isfinite(v).all() or v.norm() == 0:
        raise ValueError("direction must be finite and non-zero")
    v = v / v.norm() * norm
    clean = _log_mass(model(tokens), markers)
    hooks = [(hook_name, steering_hook(v, 1.0))]
    steered = _log_mass(model.run_with_hooks(tokens, fwd_hooks=hooks), markers)
    return float((steered - clean)[:, 1:].mean())  # position 0 is BOS
