"""Gated SAE in torch: a gate path decides which latents fire, a magnitude path how strongly.

Both paths share the encoder matrix W_enc (c = x - b_dec):

    u        = c @ W_enc                                  # [batch, d_sae]
    pi_gate  = u + b_gate                                 # [batch, d_sae] = ``pre_acts``
    gate     = 1[pi_gate > 0]                             Heaviside: zero gradient
    mag      = ReLU(exp(r_mag) * u + b_mag)               # [batch, d_sae]
    f        = gate * mag;   x_hat = f @ W_dec + b_dec

    loss = mean_b ||x_b - x_hat_b||^2                                       recon
         + l1_coeff * mean_b sum_i ReLU(pi_gate_bi) ||W_dec,i||             sparsity (gate only)
         + mean_b ||x_b - (ReLU(pi_gate_b) @ sg(W_dec) + sg(b_dec))||^2     aux (sg = detach)

The L1 penalty sits on the gate path only, so the magnitudes are not shrunk; the gate path
learns from the sparsity term and the auxiliary reconstruction through a frozen decoder.
Mapping to the paper: W_gate = W_enc, W_mag = exp(r_mag) * W_enc, b_gate, b_mag, b_dec the same.
Decoder rows are kept at unit norm (as in the paper), so ||W_dec,i|| = 1 in training; the factor
stays in the penalty (SAELens's form) so the loss is also right for rows that are not normalised.
Gated has no ``b_enc`` (b_gate and b_mag replace it).

From Rajamanoharan et al. (2024), "Improving Dictionary Learning with Gated Sparse Autoencoders",
arXiv:2404.16014. Reads line by line against ``saelab/numpy_sae/gated.py``. Taught in Chapter 4.
"""
from __future__ import annotations

import torch
from torch import nn

from saelab.sae_config import GatedConfig
from saelab.torch_sae.base import BaseSAE, recon_loss


class GatedSAE(BaseSAE):
    """Gated SAE (Rajamanoharan et al. 2024; Chapter 4).

    Parameters: W_enc [d_in, d_sae] (the paper's W_gate), b_gate [d_sae], r_mag [d_sae],
    b_mag [d_sae], W_dec [d_sae, d_in], b_dec [d_in].
    """

    def __init__(self, cfg: GatedConfig, device=None, dtype=None) -> None:
        if not isinstance(cfg, GatedConfig):
            raise ValueError(f"cfg must be a GatedConfig, got {type(cfg).__name__}")
        super().__init__(cfg, device=device, dtype=dtype)
        del self.b_enc  # replaced by the two path biases
        self.b_gate = nn.Parameter(torch.zeros_like(self.W_enc[0]))  # [d_sae]
        self.r_mag = nn.Parameter(torch.zeros_like(self.W_enc[0]))  # [d_sae], exp(0) = 1
        self.b_mag = nn.Parameter(torch.zeros_like(self.W_enc[0]))  # [d_sae]

    @property
    def aux_coeff(self) -> float:
        return 1.0  # the paper adds the auxiliary reconstruction with weight 1

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """Gate pre-activations ``(x - b_dec) @ W_enc + b_gate``: [batch, d_sae]."""
        return (x - self.b_dec) @ self.W_enc + self.b_gate  # [batch, d_sae]

    def magnitude_pre(self, pre_acts: torch.Tensor) -> torch.Tensor:
        """Magnitude pre-activations ``exp(r_mag) * u + b_mag``, u = pre_acts - b_gate."""
        return torch.exp(self.r_mag) * (pre_acts - self.b_gate) + self.b_mag  # [batch, d_sae]

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        gate = (pre_acts > 0).to(pre_acts.dtype)  # [batch, d_sae], no gradient
        return gate * torch.relu(self.magnitude_pre(pre_acts))  # [batch, d_sae]

    def sparsity_loss(self, pre_acts: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        norms = self.W_dec.norm(dim=1)  # [d_sae]
        return self.cfg.l1_coeff * (torch.relu(pre_acts) * norms).sum(dim=-1).mean()  # []

    def aux_loss(self, x, x_hat, pre_acts, dead_mask) -> torch.Tensor:
        x_gate = torch.relu(pre_acts) @ self.W_dec.detach() + self.b_dec.detach()  # [batch, d_in]
        return recon_loss(x, x_gate)  # []
