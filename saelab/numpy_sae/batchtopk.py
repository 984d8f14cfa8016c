"""BatchTopK SAE in NumPy: TopK over the whole batch in training, a running threshold at inference.

Training mode (``sae.training`` True, the default; ``sae.train()``):

    f = ReLU(TopK_{k B}(pre_acts over all B rows at once))     keep k * B entries in the batch

so each row keeps as many latents as it needs and the batch keeps k per row on average.
Inference mode (``sae.eval()``): no batch to rank against, so a single global threshold theta
(shape (), not per latent) decides:

    f = ReLU(pre_acts) * 1[pre_acts > theta]

theta is estimated during training as an exponential moving average of the smallest kept positive
activation of each training batch (decay ``cfg.threshold_decay``):

    theta <- decay * theta + (1 - decay) * min{f_bi : f_bi > 0}

It starts at ``THRESHOLD_UNSET`` (-1, "no estimate yet"); the first training batch sets it
directly, and until then inference is plain ReLU. The update happens inside ``forward`` in
training mode, as a running statistic (like batch-norm's running mean), never in ``encode``.
theta is state, not a trained weight: ``parameters()`` lists it (so it is copied and saved with
the weights) but ``backward`` gives it a zero gradient, so Adam leaves it unchanged. The torch
twin keeps it as a registered buffer.

Backward and AuxK are TopK's (the kept, positive entries pass gradient), inherited from
:class:`saelab.numpy_sae.topk.TopKSAE`; decoder rows are kept at unit norm.
From Bussmann, Leask & Nanda (2024), "BatchTopK Sparse Autoencoders", arXiv:2412.06410.
Reads line by line against ``saelab/torch_sae/batchtopk.py``. Taught in Chapter 4.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_array, check_int_in_range
from saelab.numpy_sae.base import BaseSAE
from saelab.numpy_sae.topk import TopKSAE, topk_relu
from saelab.sae_config import BatchTopKConfig
from saelab.sae_output import SAEOutput

THRESHOLD_UNSET = -1.0  # theta before the first training batch: "no estimate", inference = ReLU


def batch_topk_relu(pre_acts: np.ndarray, k: int) -> np.ndarray:
    """ReLU of the ``k * batch`` largest entries of the whole batch, zeros elsewhere (Chapter 4).

    Parameters
    ----------
    pre_acts : ndarray of shape (batch, n)
    k : int, 1 <= k <= n
        Average number of entries kept per row.

    Returns
    -------
    ndarray of shape (batch, n)
    """
    pre_acts = check_array("pre_acts", pre_acts, 2, finite=False)
    check_int_in_range("k", k, 1, pre_acts.shape[1])
    flat = pre_acts.reshape(1, -1)  # (1, batch * n)
    return topk_relu(flat, k * pre_acts.shape[0]).reshape(pre_acts.shape)


class BatchTopKSAE(TopKSAE):
    """BatchTopK SAE with AuxK and an inference threshold (Bussmann et al. 2024; Chapter 4).

    ``cfg`` is a :class:`BatchTopKConfig`; ``rng``, ``dtype`` and the parameters ``W_enc``,
    ``b_enc``, ``W_dec``, ``b_dec`` are as in :class:`BaseSAE`.

    Attributes
    ----------
    threshold : ndarray of shape ()
        Global inference threshold theta (running estimate; ``THRESHOLD_UNSET`` until trained).
    training : bool
        True: batch TopK and threshold updates; False (after ``eval()``): the threshold rule.
    """

    param_names = BaseSAE.param_names + ("threshold",)

    def __init__(self, cfg: BatchTopKConfig, rng=None, dtype=np.float32) -> None:
        if not isinstance(cfg, BatchTopKConfig):
            raise ValueError(f"cfg must be a BatchTopKConfig, got {type(cfg).__name__}")
        BaseSAE.__init__(self, cfg, rng=rng, dtype=dtype)  # TopKSAE's init only checks the cfg
        self.threshold = np.array(THRESHOLD_UNSET, dtype=dtype)  # ()
        self.training = True

    # ----- mode, as in torch.nn.Module --------------------------------------------------------
    def train(self, mode: bool = True) -> "BatchTopKSAE":
        """Training mode (batch TopK, threshold updates) or, with ``mode=False``, inference."""
        self.training = bool(mode)
        return self

    def eval(self) -> "BatchTopKSAE":
        """Inference mode: ``f = ReLU(pre_acts) * 1[pre_acts > threshold]``, row by row."""
        return self.train(False)

    # ----- what differs from TopK -------------------------------------------------------------
    def activation(self, pre_acts: np.ndarray) -> np.ndarray:
        if self.training:
            return batch_topk_relu(pre_acts, self.cfg.k)  # (batch, d_sae)
        return np.maximum(pre_acts, 0) * (pre_acts > self.threshold)  # (batch, d_sae)

    def forward(self, x: np.ndarray, dead_mask: np.ndarray | None = None) -> SAEOutput:
        """TopK's forward; in training mode also folds this batch into the threshold estimate."""
        out = super().forward(x, dead_mask)
        if self.training:
            self.update_threshold(out.f)
        return out

    __call__ = forward

    def update_threshold(self, f: np.ndarray) -> None:
        """EMA update of ``threshold`` from the smallest positive code of ``f`` (batch, d_sae)."""
        # the torch twin's form, written with where so that a GPU never waits for the host
        smallest = np.where(f > 0, f, np.inf).min()  # inf if nothing fired
        decay = self.cfg.threshold_decay
        ema = decay * self.threshold + (1 - decay) * smallest
        new = np.where(self.threshold < 0, smallest, ema)  # first estimate: the value itself
        # nothing fired: no information about the threshold, keep it
        self.threshold[...] = np.where(np.isfinite(smallest), new, self.threshold)

    # backward: TopKSAE.activation_backward (grad_f * 1[f > 0]) holds in both modes, and the
    # threshold's gradient entry stays zero because no hook writes to it.
