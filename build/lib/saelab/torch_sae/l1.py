"""L1 SAE in torch: ReLU codes and an L1 penalty.

    f             = ReLU(pre_acts)                                  # [batch, d_sae]
    sparsity_loss = l1_coeff * mean_b sum_i f_bi * ||W_dec,i||      (decoder_norm="weighted")
    sparsity_loss = l1_coeff * mean_b sum_i f_bi                    (decoder_norm="unit")

The ReLU SAE with an L1 penalty is from Bricken et al. (2023), "Towards Monosemanticity"; the
decoder-norm-weighted penalty with an unconstrained decoder is Anthropic's April 2024 update
("Circuits Updates - April 2024"). With "unit", decoder rows are kept at unit norm instead.
Reads line by line against ``saelab/numpy_sae/l1.py``. Taught in Chapter 2.
"""
from __future__ import annotations

import torch

from saelab.sae_config import L1Config
from saelab.torch_sae.base import BaseSAE


class L1SAE(BaseSAE):
    """ReLU SAE trained with an L1 penalty on the codes (Chapter 2).

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in].
    """

    def __init__(self, cfg: L1Config, device=None, dtype=None) -> None:
        if not isinstance(cfg, L1Config):
            raise ValueError(f"cfg must be an L1Config, got {type(cfg).__name__}")
        super().__init__(cfg, device=device, dtype=dtype)

    @property
    def unit_norm_decoder(self) -> bool:
        return self.cfg.decoder_norm == "unit"

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre_acts)  # [batch, d_sae]

    def sparsity_loss(self, pre_acts: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if self.cfg.decoder_norm == "weighted":
            f = f * self.W_dec.norm(dim=1)  # [batch, d_sae]
        return self.cfg.l1_coeff * f.sum(dim=-1).mean()  # []
