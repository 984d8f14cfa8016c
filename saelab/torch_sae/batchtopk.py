"""BatchTopK SAE in torch: TopK over the whole batch in training, a running threshold at inference.

Training mode (``sae.training`` True; ``sae.train()``):

    f = ReLU(TopK_{k B}(pre_acts over all B rows at once))     keep k * B entries in the batch

Inference mode (``sae.eval()``): one global threshold theta (shape [], not per latent):

    f = ReLU(pre_acts) * 1[pre_acts > theta]

theta is a registered buffer (saved in ``state_dict`` and checkpoints, never trained by the
optimizer), estimated in training as an exponential moving average of the smallest kept positive
activation of each batch (decay ``cfg.threshold_decay``):

    theta <- decay * theta + (1 - decay) * min{f_bi : f_bi > 0}

It starts at ``THRESHOLD_UNSET`` (-1, "no estimate yet"); the first training batch sets it
directly, and until then inference is plain ReLU. The update happens inside ``forward`` in
training mode, like batch-norm's running statistics, never in ``encode``.

Backward and AuxK are TopK's, inherited from :class:`saelab.torch_sae.topk.TopKSAE`; decoder
rows are kept at unit norm. From Bussmann, Leask & Nanda (2024), "BatchTopK Sparse
Autoencoders", arXiv:2412.06410. Reads line by line against ``saelab/numpy_sae/batchtopk.py``.
Taught in Chapter 4.
"""
from __future__ import annotations

import torch

from saelab._checks import check_int_in_range, check_tensor
from saelab.sae_config import BatchTopKConfig
from saelab.sae_output import SAEOutput
from saelab.torch_sae.base import BaseSAE
from saelab.torch_sae.sparse import SparseOutput, _batch_topk_selection
from saelab.torch_sae.topk import TopKSAE, topk_relu

THRESHOLD_UNSET = -1.0  # theta before the first training batch: "no estimate", inference = ReLU


def batch_topk_relu(pre_acts: torch.Tensor, k: int) -> torch.Tensor:
    """ReLU of the ``k * batch`` largest entries of the whole batch: [batch, n] -> [batch, n].

    Gradient flows only through the kept, positive entries. Chapter 4.
    """
    check_tensor("pre_acts", pre_acts, 2, finite=False)
    check_int_in_range("k", k, 1, pre_acts.shape[1])
    flat = pre_acts.reshape(1, -1)  # [1, batch * n]
    return topk_relu(flat, k * pre_acts.shape[0]).reshape(pre_acts.shape)  # [batch, n]


class BatchTopKSAE(TopKSAE):
    """BatchTopK SAE with AuxK and an inference threshold (Bussmann et al. 2024; Chapter 4).

    Parameters: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in].
    Buffer: threshold [] (global inference threshold; ``THRESHOLD_UNSET`` until trained).
    """

    def __init__(self, cfg: BatchTopKConfig, device=None, dtype=None) -> None:
        if not isinstance(cfg, BatchTopKConfig):
            raise ValueError(f"cfg must be a BatchTopKConfig, got {type(cfg).__name__}")
        BaseSAE.__init__(self, cfg, device=device, dtype=dtype)  # TopKSAE's init only checks cfg
        self.register_buffer("threshold", torch.full((), THRESHOLD_UNSET, device=device,
                                                     dtype=self.W_dec.dtype))  # []

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        if self.training:
            return batch_topk_relu(pre_acts, self.cfg.k)  # [batch, d_sae]
        above = (pre_acts > self.threshold).to(pre_acts.dtype)  # [batch, d_sae]
        return torch.relu(pre_acts) * above  # [batch, d_sae]

    def _forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None) -> SAEOutput:
        """TopK's forward; in training mode also folds this batch into the threshold estimate."""
        out = super()._forward(x, dead_mask)
        if self.training:
            self.update_threshold(out.f)
        return out

    def select(self, pre: torch.Tensor):
        """Sparse-path selection: the ``k * batch`` largest entries of the whole batch."""
        return _batch_topk_selection(pre, self.cfg.k * pre.shape[0])

    def _forward_sparse(self, x: torch.Tensor, dead_mask: torch.Tensor | None) -> SparseOutput:
        if not self.training:
            raise ValueError("sparse_forward of a BatchTopK SAE needs training mode (sae.train()); "
                             "in eval mode its codes come from the threshold: use sae(x)")
        out = super()._forward_sparse(x, dead_mask)
        self.update_threshold(out.codes.values)
        return out

    @torch.no_grad()
    def update_threshold(self, f: torch.Tensor) -> None:
        """EMA update of ``threshold`` from the smallest positive code of ``f`` (any shape: the
        dense [batch, d_sae] codes, or the kept values [n] of the sparse path)."""
        # written with torch.where, so the device never waits for the host (no sync per step)
        smallest = torch.where(f > 0, f, float("inf")).amin()  # [] inf if nothing fired
        decay = self.cfg.threshold_decay
        ema = decay * self.threshold + (1 - decay) * smallest  # []
        new = torch.where(self.threshold < 0, smallest, ema)  # first estimate: the value itself
        # nothing fired: no information about the threshold, keep it
        self.threshold.copy_(torch.where(torch.isfinite(smallest), new, self.threshold))
