"""Normalising the scale of harvested activations, and folding the scale back into the SAE.

Residual-stream norms differ by model and layer (GPT-2 small's mid-layer residual norm is in the
tens), so SAE hyperparameters tuned on one site do not carry to another. As in SAELens and
Gao et al. (2024), the SAE trains on scaled activations

    x_s = s * x,    s = sqrt(d_in / E||x||^2)        so that E||x_s||^2 = d_in,

and afterwards ``s`` is folded into the weights, so the SAE reads raw activations and writes raw
reconstructions (which is what splicing it into the model needs):

    (s x - b_dec) W_enc = (x - b_dec / s)(s W_enc)         encoder:  W_enc <- s W_enc,  b_dec <- b_dec / s
    (f W_dec + b_dec) / s = f (W_dec / s) + b_dec / s      decoder:  W_dec <- W_dec / s

``b_enc`` and the JumpReLU threshold act on pre-activations, which do not change. Taught in
Chapter 6.
"""
from __future__ import annotations

import math

import torch

from saelab._checks import check_finite, check_positive

__all__ = ["activation_scale", "fold_input_scale"]


@torch.no_grad()
def activation_scale(acts: torch.Tensor) -> float:
    """``s = sqrt(d_in / mean_b ||x_b||^2)`` for activations [n, d_in], accumulated in float64."""
    if acts.ndim != 2 or acts.shape[0] == 0:
        raise ValueError(f"acts must have shape (n > 0, d_in), got {tuple(acts.shape)}")
    check_finite("acts", acts)
    mean_sq = acts.double().pow(2).sum(dim=1).mean().item()
    if mean_sq == 0:
        raise ValueError("acts are all zero; there is no scale to normalise")
    return math.sqrt(acts.shape[1] / mean_sq)


@torch.no_grad()
def fold_input_scale(sae, scale: float):
    """Make ``sae``, trained on ``scale * x``, read ``x`` and reconstruct ``x`` (in place; returns it).

    Afterwards the decoder rows have norm ``1 / scale`` instead of 1; fold once, after training.
    """
    check_positive("scale", scale)
    sae.W_enc.mul_(scale)
    sae.b_dec.div_(scale)
    sae.W_dec.div_(scale)
    return sae
