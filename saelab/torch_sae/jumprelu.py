"""JumpReLU SAE in torch: a learned threshold per latent and an L0 penalty.

    f             = z * H(z - theta)                      z = pre_acts, H = Heaviside step
    sparsity_loss = l0_coeff * mean_b sum_i H(z_bi - theta_i)

H has zero derivative almost everywhere, so theta is trained with straight-through
pseudo-gradients built from the rectangle kernel K(u) = 1[|u| < 1/2] of bandwidth eps:

    d f / d z     = H(z - theta)
    d f / d theta = -(theta / eps) K((z - theta) / eps)
    d H / d z     = 0
    d H / d theta = -(1 / eps) K((z - theta) / eps)

From Rajamanoharan et al. (2024), "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
Sparse Autoencoders", arXiv:2407.14435. Decoder rows are kept at unit norm; after each optimizer
step ``apply_constraints`` also clamps theta to at least ``THRESHOLD_FLOOR`` so it stays positive.
Reads line by line against ``saelab/numpy_sae/jumprelu.py``. Taught in Chapter 4.
"""
from __future__ import annotations

import torch
from torch import nn

from saelab.sae_config import JumpReLUConfig
from saelab.torch_sae.base import BaseSAE

THRESHOLD_FLOOR = 1e-6  # theta never goes below this after a step: keeps f >= 0 and H meaningful


def rectangle_times(u: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """K(u) * grad for the rectangle kernel K(u) = 1[|u| < 1/2] (Chapter 4), as a select: K is 0
    or 1, so this is grad where |u| < 1/2 and 0 elsewhere, with no float copy of K and no
    multiplication pass over [batch, d_sae]. (The NumPy twin builds K itself: ``rectangle``.)"""
    return torch.where(u.abs() < 0.5, grad, 0.0)  # [batch, d_sae]


class JumpReLUFunction(torch.autograd.Function):
    """f = z * H(z - theta) with the pseudo-gradient for theta (Chapter 4)."""

    @staticmethod
    def forward(ctx, z, threshold, bandwidth: float):
        # z: [batch, d_sae], threshold: [d_sae]
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return z * (z > threshold).to(z.dtype)  # [batch, d_sae]

    @staticmethod
    def backward(ctx, grad_f):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_z = torch.where(z > threshold, grad_f, 0.0)  # [batch, d_sae]: grad_f * H(z - theta)
        in_kernel = rectangle_times((z - threshold) / eps, grad_f)  # [batch, d_sae]
        grad_threshold = (-(threshold / eps) * in_kernel).sum(dim=0)
        return grad_z, grad_threshold, None  # grad_threshold: [d_sae]


class StepFunction(torch.autograd.Function):
    """H(z - theta) with zero gradient for z and the pseudo-gradient for theta (Chapter 4)."""

    @staticmethod
    def forward(ctx, z, threshold, bandwidth: float):
        # z: [batch, d_sae], threshold: [d_sae]
        ctx.save_for_backward(z, threshold)
        ctx.bandwidth = bandwidth
        return (z > threshold).to(z.dtype)  # [batch, d_sae]

    @staticmethod
    def backward(ctx, grad_h):
        z, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        in_kernel = rectangle_times((z - threshold) / eps, grad_h)  # [batch, d_sae]
        grad_threshold = (-(1.0 / eps) * in_kernel).sum(dim=0)
        return None, grad_threshold, None  # None: d H / d z = 0, without a tensor of zeros


class JumpReLUSAE(BaseSAE):
    """JumpReLU SAE with an L0 penalty (Rajamanoharan et al. 2024; Chapter 4).

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in],
    threshold [d_sae] (positive, initialised to ``cfg.threshold_init``).
    """

    def __init__(self, cfg: JumpReLUConfig, device=None, dtype=None) -> None:
        if not isinstance(cfg, JumpReLUConfig):
            raise ValueError(f"cfg must be a JumpReLUConfig, got {type(cfg).__name__}")
        super().__init__(cfg, device=device, dtype=dtype)
        self.threshold = nn.Parameter(torch.full_like(self.b_enc, cfg.threshold_init))  # [d_sae]

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        return JumpReLUFunction.apply(pre_acts, self.threshold, self.cfg.bandwidth)  # [batch, d_sae]

    def sparsity_loss(self, pre_acts: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        fires = StepFunction.apply(pre_acts, self.threshold, self.cfg.bandwidth)  # [batch, d_sae]
        return self.cfg.l0_coeff * fires.sum(dim=-1).mean()  # []

    @torch.no_grad()
    def clamp_threshold(self) -> None:
        """Clamp theta to at least ``THRESHOLD_FLOOR`` (in place)."""
        self.threshold.clamp_(min=THRESHOLD_FLOOR)

    def apply_constraints(self) -> None:
        super().apply_constraints()
        self.clamp_threshold()
