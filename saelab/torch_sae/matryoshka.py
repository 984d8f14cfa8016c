"""Matryoshka SAE in torch: every nested prefix of the dictionary must reconstruct x on its own.

Prefix sizes m_1 < m_2 < ... < m_n = d_sae (``cfg.prefix_sizes``). The codes f are BatchTopK's
(the paper's choice; ``cfg.activation = "topk"`` keeps k per row instead):

    x_hat_j = f[:, :m_j] @ W_dec[:m_j] + b_dec                    # [batch, d_in], j = 1..n
    recon   = (1/n) sum_j mean_b ||x_b - x_hat_j,b||^2            the nested loss
    loss    = recon + aux_coeff * AuxK(x - x_hat_n)               AuxK on the full residual

The mean over prefixes keeps the loss on one reconstruction error's scale: a one-prefix
Matryoshka SAE is a BatchTopK SAE. ``SAEOutput.recon_loss`` is the nested loss; ``x_hat`` is the
full-width reconstruction ``decode(f)``. All prefix reconstructions come from one method,
:meth:`MatryoshkaSAE.prefix_reconstructions`, as partial sums of each group's contribution
``f[:, m_{t-1}:m_t] @ W_dec[m_{t-1}:m_t]`` (dense here; a sparse decode of the kept latents can
replace it without touching the loss). Gradients come from autograd; the NumPy twin derives them.

From Bussmann, Nabeshima, Karvonen & Nanda (2025), "Learning Multi-Level Features with
Matryoshka Sparse Autoencoders", arXiv:2503.17547. Reads line by line against
``saelab/numpy_sae/matryoshka.py``. Taught in Chapter 7.
"""
from __future__ import annotations

import torch

from saelab._checks import check_shape, check_tensor
from saelab.sae_config import MatryoshkaConfig
from saelab.sae_output import SAEOutput
from saelab.torch_sae.base import BaseSAE
from saelab.torch_sae.batchtopk import THRESHOLD_UNSET, BatchTopKSAE
from saelab.torch_sae.sparse import SparseOutput, _decode_sparse
from saelab.torch_sae.topk import TopKSAE, topk_relu


def nested_recon_loss(x: torch.Tensor, x_hats: torch.Tensor) -> torch.Tensor:
    """Mean over prefixes of ``mean_b ||x_b - x_hat_j,b||^2`` (Chapter 7).

    x: [batch, d_in]; x_hats: [n_prefixes, batch, d_in] from ``prefix_reconstructions``.
    """
    check_tensor("x", x, 2)
    check_tensor("x_hats", x_hats, 3)
    check_shape("x_hats", x_hats, (None, *x.shape))
    return _nested_recon_loss(x, x_hats)


def _nested_recon_loss(x: torch.Tensor, x_hats: torch.Tensor) -> torch.Tensor:
    """:func:`nested_recon_loss` without input checks (the SAE's loss, once per step)."""
    return (x[None] - x_hats).pow(2).sum(dim=-1).mean()  # []


class MatryoshkaSAE(BatchTopKSAE):
    """Matryoshka BatchTopK SAE with AuxK (Bussmann et al. 2025; Chapter 7).

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in].
    Buffer: threshold [] (BatchTopK's inference threshold; used when activation is "batchtopk").
    """

    def __init__(self, cfg: MatryoshkaConfig, device=None, dtype=None) -> None:
        if not isinstance(cfg, MatryoshkaConfig):
            raise ValueError(f"cfg must be a MatryoshkaConfig, got {type(cfg).__name__}")
        BaseSAE.__init__(self, cfg, device=device, dtype=dtype)
        self.register_buffer("threshold", torch.full((), THRESHOLD_UNSET, device=device,
                                                     dtype=self.W_dec.dtype))  # []

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        if self.cfg.activation == "topk":
            return topk_relu(pre_acts, self.cfg.k)  # [batch, d_sae], in both modes
        return super().activation(pre_acts)  # [batch, d_sae]

    def prefix_reconstructions(self, f: torch.Tensor) -> torch.Tensor:
        """``x_hat_j = f[:, :m_j] @ W_dec[:m_j] + b_dec`` for every prefix j, as partial sums.

        f: [batch, d_sae] -> [n_prefixes, batch, d_in]; the last one equals ``decode(f)``.
        """
        parts = torch.stack([f[:, a:b] @ self.W_dec[a:b] for a, b in self.cfg.groups()])
        return parts.cumsum(dim=0) + self.b_dec  # [n_prefixes, batch, d_in]

    def _forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None) -> SAEOutput:
        """BatchTopK's forward with ``recon_loss`` (and so ``loss``) the nested loss.

        ``forward`` (the base's) checks the input and calls this; the training loop calls it
        directly on batches it has already checked.
        """
        out = TopKSAE._forward(self, x, dead_mask)  # codes, full x_hat, AuxK on the full residual
        if self.training and self.cfg.activation == "batchtopk":
            self.update_threshold(out.f)
        recon = _nested_recon_loss(x, self.prefix_reconstructions(out.f))  # []
        loss = recon + out.sparsity_loss + self.aux_coeff * out.aux_loss  # []
        return out._replace(loss=loss, recon_loss=recon)

    # ----- sparse path (saelab/torch_sae/sparse.py): the same numbers from the kept entries ------
    def select(self, pre: torch.Tensor):
        """Sparse-path selection: per row (TopK) or over the whole batch (BatchTopK)."""
        if self.cfg.activation == "topk":
            return TopKSAE.select(self, pre)
        return super().select(pre)

    def _forward_sparse(self, x: torch.Tensor, dead_mask: torch.Tensor | None) -> SparseOutput:
        """The nested loss from prefix partial sums of the kept codes (``decode_sparse(limit=m)``)."""
        if self.cfg.activation == "topk":
            out = TopKSAE._forward_sparse(self, x, dead_mask)
        else:  # checks training mode and updates the threshold, as BatchTopK's does
            out = super()._forward_sparse(x, dead_mask)
        inner = [_decode_sparse(out.codes, self.W_dec, limit=m) + self.b_dec
                 for m in self.cfg.prefix_sizes[:-1]]  # each [batch, d_in]
        x_hats = torch.stack(inner + [out.x_hat])  # [n_prefixes, batch, d_in]
        recon = _nested_recon_loss(x, x_hats)  # []
        return out._replace(loss=recon + self.aux_coeff * out.aux_loss, recon_loss=recon)
