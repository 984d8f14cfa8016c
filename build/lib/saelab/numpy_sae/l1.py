"""L1 SAE in NumPy: ReLU codes, an L1 penalty, and their hand-derived gradients.

    f             = ReLU(pre_acts)                                  (batch, d_sae)
    sparsity_loss = l1_coeff * mean_b sum_i f_bi * ||W_dec,i||      (decoder_norm="weighted")
    sparsity_loss = l1_coeff * mean_b sum_i f_bi                    (decoder_norm="unit")

Backward (B = batch size, n_i = ||W_dec,i||):

    dL/dpre_bi   = dL/df_bi * 1[pre_bi > 0]
    dsparsity/df_bi     = (l1_coeff / B) * n_i            ("unit": n_i = 1)
    dsparsity/dW_dec,i  = (l1_coeff / B) * (sum_b f_bi) * W_dec,i / n_i   ("weighted" only)

The ReLU SAE with an L1 penalty is from Bricken et al. (2023), "Towards Monosemanticity"; the
decoder-norm-weighted penalty with an unconstrained decoder is Anthropic's April 2024 update
("Circuits Updates - April 2024"). With "unit", decoder rows are kept at unit norm instead.
Reads line by line against ``saelab/torch_sae/l1.py``. Taught in Chapter 2.
"""
from __future__ import annotations

import numpy as np

from saelab.numpy_sae.base import BaseSAE
from saelab.sae_config import L1Config


class L1SAE(BaseSAE):
    """ReLU SAE trained with an L1 penalty on the codes (Chapter 2).

    ``cfg`` is a :class:`L1Config`; ``rng``, ``dtype`` and the parameters ``W_enc``,
    ``b_enc``, ``W_dec``, ``b_dec`` are as in :class:`BaseSAE`.
    """

    def __init__(self, cfg: L1Config, rng=None, dtype=np.float32) -> None:
        if not isinstance(cfg, L1Config):
            raise ValueError(f"cfg must be an L1Config, got {type(cfg).__name__}")
        super().__init__(cfg, rng=rng, dtype=dtype)

    @property
    def unit_norm_decoder(self) -> bool:
        return self.cfg.decoder_norm == "unit"

    def activation(self, pre_acts: np.ndarray) -> np.ndarray:
        return np.maximum(pre_acts, 0)  # (batch, d_sae)

    def sparsity_loss(self, pre_acts: np.ndarray, f: np.ndarray) -> float:
        if self.cfg.decoder_norm == "weighted":
            f = f * np.linalg.norm(self.W_dec, axis=1)  # (batch, d_sae)
        return float(self.cfg.l1_coeff * f.sum(axis=-1).mean())

    def sparsity_backward(self, pre_acts, f, grads) -> np.ndarray:
        scale = self.cfg.l1_coeff / f.shape[0]
        if self.cfg.decoder_norm == "unit":
            return np.full(f.shape[1], scale, dtype=f.dtype)  # (d_sae,), broadcasts over batch
        norms = np.linalg.norm(self.W_dec, axis=1)  # (d_sae,)
        grads["W_dec"] += (scale * f.sum(axis=0) / norms)[:, None] * self.W_dec  # (d_sae, d_in)
        return scale * norms  # (d_sae,), broadcasts over batch

    def activation_backward(self, pre_acts, f, grad_f, grads) -> np.ndarray:
        return grad_f * (pre_acts > 0)  # (batch, d_sae)
