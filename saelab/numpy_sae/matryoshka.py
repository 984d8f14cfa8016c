"""Matryoshka SAE in NumPy: every nested prefix of the dictionary must reconstruct x on its own.

Prefix sizes m_1 < m_2 < ... < m_n = d_sae (``cfg.prefix_sizes``). The codes f are BatchTopK's
(the paper's choice; ``cfg.activation = "topk"`` keeps k per row instead), computed once over all
d_sae latents. Prefix j reconstructs x from its first m_j latents only:

    x_hat_j = f[:, :m_j] @ W_dec[:m_j] + b_dec                    (batch, d_in), j = 1..n
    recon   = (1/n) sum_j mean_b ||x_b - x_hat_j,b||^2            the nested loss
    loss    = recon + aux_coeff * AuxK(x - x_hat_n)               AuxK on the full residual

The mean over prefixes (not the sum) keeps the loss on the scale of one reconstruction error, so
a one-prefix Matryoshka SAE (``prefix_sizes = (d_sae,)``) *is* a BatchTopK SAE (same loss, same
gradients) and the learning rate and AuxK weight carry over. A sum instead would only multiply
the gradient by n, which Adam almost entirely absorbs. The early latents are in every
term, so they are pushed to carry what matters most on their own (the coarse "parent"
directions); later latents only refine. ``SAEOutput.recon_loss`` is the nested loss; ``x_hat`` is
the full-width reconstruction ``x_hat_n = decode(f)``.

Prefix reconstructions are partial sums over groups of latents: with group t = latents
[m_{t-1}, m_t) (m_0 = 0), x_hat_j = b_dec + sum_{t <= j} f_t @ W_dec,t. Backward (B = batch):

    g_j    = (2 / (n B)) (x_hat_j - x)                            dL/dx_hat_j, (batch, d_in)
    R_t    = sum_{j >= t} g_j                                     what group t's latents feel
    dL/df_t     = R_t @ W_dec,t^T
    dL/dW_dec,t = f_t^T @ R_t
    dL/db_dec  += sum_b R_1                                       (b_dec is in every prefix)

then the activation backward, AuxK and the encoder gradients are BatchTopK's (inherited).
From Bussmann, Nabeshima, Karvonen & Nanda (2025), "Learning Multi-Level Features with
Matryoshka Sparse Autoencoders", arXiv:2503.17547 (independently Nabeshima 2024). Latents are not
reordered by firing frequency here: the prefix order is fixed at initialisation and the loss
itself makes early latents the frequent, general ones. Reads line by line against
``saelab/torch_sae/matryoshka.py``. Taught in Chapter 7.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_array, check_shape
from saelab.numpy_sae.base import BaseSAE
from saelab.numpy_sae.batchtopk import THRESHOLD_UNSET, BatchTopKSAE
from saelab.numpy_sae.topk import TopKSAE, topk_relu
from saelab.sae_config import MatryoshkaConfig
from saelab.sae_output import SAEOutput


def nested_recon_loss(x: np.ndarray, x_hats: np.ndarray) -> float:
    """Mean over prefixes of ``mean_b ||x_b - x_hat_j,b||^2`` (Chapter 7).

    Parameters
    ----------
    x : ndarray of shape (batch, d_in)
    x_hats : ndarray of shape (n_prefixes, batch, d_in)
        Reconstructions from each prefix (:meth:`MatryoshkaSAE.prefix_reconstructions`).
    """
    x = check_array("x", x, 2)
    x_hats = check_array("x_hats", x_hats, 3)
    check_shape("x_hats", x_hats, (None, *x.shape))
    return _nested_recon_loss(x, x_hats)


def _nested_recon_loss(x: np.ndarray, x_hats: np.ndarray) -> float:
    """:func:`nested_recon_loss` without input checks (the SAE's loss, once per step)."""
    return float(((x[None] - x_hats) ** 2).sum(axis=-1).mean())


class MatryoshkaSAE(BatchTopKSAE):
    """Matryoshka BatchTopK SAE with AuxK (Bussmann et al. 2025; Chapter 7).

    ``cfg`` is a :class:`MatryoshkaConfig`; ``rng``, ``dtype``, the parameters and ``threshold``
    are as in :class:`BatchTopKSAE` (the threshold is only estimated and used when
    ``cfg.activation == "batchtopk"``).
    """

    def __init__(self, cfg: MatryoshkaConfig, rng=None, dtype=np.float32) -> None:
        if not isinstance(cfg, MatryoshkaConfig):
            raise ValueError(f"cfg must be a MatryoshkaConfig, got {type(cfg).__name__}")
        BaseSAE.__init__(self, cfg, rng=rng, dtype=dtype)
        self.threshold = np.array(THRESHOLD_UNSET, dtype=dtype)  # ()
        self.training = True

    # ----- what differs from BatchTopK --------------------------------------------------------
    def activation(self, pre_acts: np.ndarray) -> np.ndarray:
        if self.cfg.activation == "topk":
            return topk_relu(pre_acts, self.cfg.k)  # (batch, d_sae), in both modes
        return super().activation(pre_acts)  # (batch, d_sae)

    def prefix_reconstructions(self, f: np.ndarray) -> np.ndarray:
        """``x_hat_j = f[:, :m_j] @ W_dec[:m_j] + b_dec`` for every prefix j, as partial sums.

        Parameters
        ----------
        f : ndarray of shape (batch, d_sae)

        Returns
        -------
        ndarray of shape (n_prefixes, batch, d_in); the last one equals ``decode(f)``.
        """
        parts = np.stack([f[:, a:b] @ self.W_dec[a:b] for a, b in self.cfg.groups()])
        return np.cumsum(parts, axis=0) + self.b_dec  # (n_prefixes, batch, d_in)

    def forward(self, x: np.ndarray, dead_mask: np.ndarray | None = None) -> SAEOutput:
        """BatchTopK's forward with ``recon_loss`` (and so ``loss``) the nested loss."""
        out = TopKSAE.forward(self, x, dead_mask)  # codes, full x_hat, AuxK on the full residual
        if self.training and self.cfg.activation == "batchtopk":
            self.update_threshold(out.f)
        recon = _nested_recon_loss(np.asarray(x), self.prefix_reconstructions(out.f))
        loss = recon + out.sparsity_loss + self.aux_coeff * out.aux_loss
        return out._replace(loss=loss, recon_loss=recon)

    __call__ = forward

    def recon_backward(self, x: np.ndarray, out: SAEOutput, grads) -> np.ndarray:
        """dL/df of the nested loss, (batch, d_sae); adds its W_dec and b_dec parts to ``grads``."""
        x_hats = self.prefix_reconstructions(out.f)  # (n, batch, d_in)
        n, batch = x_hats.shape[0], x.shape[0]
        g = (2.0 / (n * batch)) * (x_hats - x)  # (n, batch, d_in): dL/dx_hat_j
        R = np.cumsum(g[::-1], axis=0)[::-1]  # (n, batch, d_in): R_t = sum_{j >= t} g_j
        grad_f = np.empty_like(out.f)  # (batch, d_sae)
        for t, (a, b) in enumerate(self.cfg.groups()):
            grads["W_dec"][a:b] += out.f[:, a:b].T @ R[t]  # (m_t - m_{t-1}, d_in)
            grad_f[:, a:b] = R[t] @ self.W_dec[a:b].T  # (batch, m_t - m_{t-1})
        grads["b_dec"] += R[0].sum(axis=0)  # (d_in,)
        return grad_f
