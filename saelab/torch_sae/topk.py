"""TopK SAE in torch, with the AuxK loss for dead latents.

    f     = ReLU(TopK_k(pre_acts))             keep the k largest entries per row, zero the rest
    e     = stopgrad(x - x_hat)                                   # [batch, d_in]
    e_hat = TopK_{k_aux}(pre_acts over dead latents) @ W_dec   (no b_dec, no ReLU)
    aux_loss = mean_b ||e_b - e_hat_b||^2                       on recon_loss's scale
    loss  = recon_loss + aux_coeff * aux_loss

From Gao et al. (2024), "Scaling and evaluating sparse autoencoders", arXiv:2406.04093.
Sparsity is exact (at most k non-zeros), so there is no sparsity penalty; decoder rows are kept at
unit norm. If k_aux exceeds the number of dead latents, all dead latents are used.
The AuxK codes keep their sign (as in SAELens' ``calculate_topk_aux_acts``): with a ReLU, a dead
latent whose pre-activations are negative on every input would get no gradient and stay dead.
aux_loss is a sum of squares like recon_loss (as in SAELens; sparsify divides both by the same
variance), so ``aux_coeff`` weighs one term against the other whatever the data's scale. saelab
used to divide it by the residual's own variance, which made AuxK about 1/Var(e) times stronger
once the residual was small: on issue 19's synthetic setting that raised the held-out FVU and
left more latents dead (book/training_at_scale.md, bench/ablate_dead_latents.py).
Reads line by line against ``saelab/numpy_sae/topk.py``. Taught in Chapter 4.
"""
from __future__ import annotations

import torch

from saelab._checks import check_int_in_range, check_tensor
from saelab.sae_config import TopKConfig
from saelab.numpy_sae.base import _check_pair
from saelab.torch_sae.base import BaseSAE, recon_loss
from saelab.torch_sae.sparse import (SparseOutput, _auxk_decode, _auxk_decode_no_sync,
                                     _decode_sparse, _dense_pre_acts, _sparse_codes,
                                     _topk_selection)

AUX_WITHOUT_SYNC = False  # True: the accelerator's AuxK also on the CPU (tests compare the two)


def topk_relu(pre_acts: torch.Tensor, k: int) -> torch.Tensor:
    """ReLU of the k largest entries of each row, zeros elsewhere: [batch, n] -> [batch, n].

    Gradient flows only through the kept, positive entries. Chapter 4.
    """
    check_tensor("pre_acts", pre_acts, 2, finite=False)  # -inf marks excluded entries
    k = check_int_in_range("k", k, 1, pre_acts.shape[1])
    values, indices = pre_acts.topk(k, dim=-1)  # [batch, k]
    return torch.zeros_like(pre_acts).scatter(-1, indices, torch.relu(values))  # [batch, n]


def auxk_loss(e: torch.Tensor, e_hat: torch.Tensor) -> torch.Tensor:
    """AuxK loss ``mean_b ||e_b - e_hat_b||^2``, on the reconstruction loss's scale (Chapter 4).

    e: [batch, d_in], already detached; e_hat: [batch, d_in].
    """
    _check_pair(e, e_hat, ("e", "e_hat"))
    return (e - e_hat).pow(2).sum(dim=-1).mean()  # []


def _dead_topk_codes(pre_acts: torch.Tensor, dead_mask: torch.Tensor, k_aux: int) -> torch.Tensor:
    """AuxK's codes: each row's ``min(k_aux, n_dead)`` largest pre-activations among the dead
    latents, sign kept, zeros elsewhere: [batch, d_sae] (Chapter 4; also transcoder.py)."""
    dead_mask = dead_mask.to(pre_acts.device)  # [d_sae]
    k_aux = min(k_aux, int(dead_mask.sum()))
    dead_pre = pre_acts.masked_fill(~dead_mask, float("-inf"))  # [batch, d_sae]
    values, indices = dead_pre.topk(k_aux, dim=-1)  # [batch, k_aux]
    return torch.zeros_like(pre_acts).scatter(-1, indices, values)  # [batch, d_sae]


class TopKSAE(BaseSAE):
    """TopK SAE with AuxK (Gao et al. 2024; Chapter 4).

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in].
    """

    def __init__(self, cfg: TopKConfig, device=None, dtype=None) -> None:
        if not isinstance(cfg, TopKConfig):
            raise ValueError(f"cfg must be a TopKConfig, got {type(cfg).__name__}")
        super().__init__(cfg, device=device, dtype=dtype)

    @property
    def aux_coeff(self) -> float:
        return self.cfg.aux_coeff

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        return topk_relu(pre_acts, self.cfg.k)  # [batch, d_sae]

    def sparsity_loss(self, pre_acts: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return pre_acts.new_zeros(())  # [] TopK needs no penalty

    def dead_codes(self, pre_acts: torch.Tensor, dead_mask: torch.Tensor) -> torch.Tensor:
        """Pre-activations of the top-k_aux dead latents [batch, d_sae], zeros elsewhere.

        No ReLU: a dead latent whose pre-activations are all negative still gets a gradient.
        """
        return _dead_topk_codes(pre_acts, dead_mask, self.cfg.k_aux)

    def _aux_applies(self, x, dead_mask) -> bool:
        return dead_mask is not None and bool(dead_mask.any())

    def aux_loss(self, x, x_hat, pre_acts, dead_mask) -> torch.Tensor:
        if not self._aux_applies(x, dead_mask):
            return x.new_zeros(())  # []
        f_aux = self.dead_codes(pre_acts, dead_mask)  # [batch, d_sae]
        e = (x - x_hat).detach()  # [batch, d_in], stopgrad
        e_hat = f_aux @ self.W_dec  # [batch, d_in]
        return auxk_loss(e, e_hat)

    # ----- sparse path (same numbers, only the kept entries; saelab/torch_sae/sparse.py) -----
    def select(self, pre: torch.Tensor):
        """Sparse-path selection: the k largest entries of each row of pre [batch, d_sae]."""
        return _topk_selection(pre, self.cfg.k)

    def sparse_forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None = None):
        """``forward`` on the sparse path: the same losses and ``x_hat``, and the kept codes as a
        :class:`~saelab.torch_sae.sparse.SparseCodes` instead of the dense ``f`` (Chapter 4).

        Gradients reach every parameter exactly as in ``forward``, but cost O(k d_in) per row
        instead of dense [batch x d_in x d_sae] products. Returns a ``SparseOutput``.
        """
        self._check_x(x)
        self._check_dead_mask(dead_mask)
        return self._forward_sparse(x, dead_mask)

    def _forward_sparse(self, x: torch.Tensor, dead_mask: torch.Tensor | None) -> SparseOutput:
        params = (self.W_enc, self.b_enc, self.b_dec)
        pre = _dense_pre_acts(x, *params)  # [batch, d_sae], no graph
        codes = _sparse_codes(x, *params, *self.select(pre))  # n kept entries
        x_hat = _decode_sparse(codes, self.W_dec) + self.b_dec  # [batch, d_in]
        recon = recon_loss(x, x_hat)  # []
        aux = x.new_zeros(())  # []
        if dead_mask is not None and (pre.device.type != "cpu" or AUX_WITHOUT_SYNC):
            e_hat, any_dead = _auxk_decode_no_sync(x, pre, dead_mask.to(pre.device),
                                                   self.cfg.k_aux, *params, self.W_dec)
            aux = auxk_loss((x - x_hat).detach(), e_hat) * any_dead  # 0 when none is dead
        elif self._aux_applies(x, dead_mask):  # CPU: syncs are free, the dead columns known
            dead = dead_mask.to(pre.device).nonzero().squeeze(1)  # [n_dead]
            k_aux = min(self.cfg.k_aux, int(dead.numel()))
            e_hat = _auxk_decode(x, pre, dead, k_aux, *params, self.W_dec)  # [batch, d_in]
            aux = auxk_loss((x - x_hat).detach(), e_hat)  # residual under stopgrad
        loss = recon + self.aux_coeff * aux  # []
        return SparseOutput(x_hat, codes, loss, recon, x.new_zeros(()), aux)
