"""TopK SAE in NumPy, with the AuxK loss for dead latents and their hand-derived gradients.

    f     = ReLU(TopK_k(pre_acts))             keep the k largest entries per row, zero the rest
    e     = stopgrad(x - x_hat)                                   (batch, d_in)
    e_hat = TopK_{k_aux}(pre_acts over dead latents) @ W_dec   (no b_dec, no ReLU)
    aux_loss = mean_b ||e_b - e_hat_b||^2                       on recon_loss's scale
    loss  = recon_loss + aux_coeff * aux_loss

Backward (B = batch size; e is a constant because it is stopgrad; f_aux = the dead codes):

    dL/dpre_bi   = dL/df_bi * 1[f_bi > 0]        (only kept, positive entries pass gradient)
    g            = aux_coeff * (2 / B) (e_hat - e)                     (batch, d_in)
    dL/dW_dec   += f_aux^T g
    dL/dpre     += (g W_dec^T) * 1[entry among the top k_aux dead]

The AuxK codes keep their sign (as in SAELens' ``calculate_topk_aux_acts``): with a ReLU, a dead
latent whose pre-activations are negative on every input would get no gradient and stay dead;
without it, reconstructing the residual pulls its pre-activations up where that helps.
aux_loss is a sum of squares like recon_loss (as in SAELens), so ``aux_coeff`` weighs one term
against the other whatever the data's scale; dividing it by the residual's variance (saelab before
issue 19) made AuxK stronger as the residual shrank, raised the held-out FVU and left more latents
dead on issue 19's synthetic setting (book/training_at_scale.md).

From Gao et al. (2024), "Scaling and evaluating sparse autoencoders", arXiv:2406.04093.
Sparsity is exact (at most k non-zeros), so there is no sparsity penalty; decoder rows are kept at
unit norm. If k_aux exceeds the number of dead latents, all dead latents are used.
Reads line by line against ``saelab/torch_sae/topk.py``. Taught in Chapter 4.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_array, check_int_in_range
from saelab.numpy_sae.base import BaseSAE, _check_pair
from saelab.sae_config import TopKConfig


def topk_relu(pre_acts: np.ndarray, k: int) -> np.ndarray:
    """ReLU of the k largest entries of each row, zeros elsewhere (Chapter 4).

    Parameters
    ----------
    pre_acts : ndarray of shape (batch, n)
    k : int, 1 <= k <= n

    Returns
    -------
    ndarray of shape (batch, n)

    ``-inf`` entries are allowed (they mark latents that must not be chosen); NaN is not.
    """
    pre_acts = check_array("pre_acts", pre_acts, 2, finite=False)
    if np.isnan(pre_acts).any():
        raise ValueError(f"pre_acts contains NaN (shape {pre_acts.shape})")
    k = check_int_in_range("k", k, 1, pre_acts.shape[1])
    indices = np.argpartition(pre_acts, -k, axis=-1)[:, -k:]  # (batch, k)
    values = np.take_along_axis(pre_acts, indices, axis=-1)  # (batch, k)
    f = np.zeros_like(pre_acts)  # (batch, n)
    np.put_along_axis(f, indices, np.maximum(values, 0), axis=-1)
    return f


def auxk_loss(e: np.ndarray, e_hat: np.ndarray) -> float:
    """AuxK loss ``mean_b ||e_b - e_hat_b||^2``, on the reconstruction loss's scale (Chapter 4).

    Parameters
    ----------
    e, e_hat : ndarray of shape (batch, d_in)
        Residual ``x - x_hat`` (a constant) and its reconstruction from dead latents.
    """
    _check_pair(e, e_hat, ("e", "e_hat"))
    return float(((e - e_hat) ** 2).sum(axis=-1).mean())


class TopKSAE(BaseSAE):
    """TopK SAE with AuxK (Gao et al. 2024; Chapter 4).

    ``cfg`` is a :class:`TopKConfig`; ``rng``, ``dtype`` and the parameters ``W_enc``,
    ``b_enc``, ``W_dec``, ``b_dec`` are as in :class:`BaseSAE`.
    """

    def __init__(self, cfg: TopKConfig, rng=None, dtype=np.float32) -> None:
        if not isinstance(cfg, TopKConfig):
            raise ValueError(f"cfg must be a TopKConfig, got {type(cfg).__name__}")
        super().__init__(cfg, rng=rng, dtype=dtype)

    @property
    def aux_coeff(self) -> float:
        return self.cfg.aux_coeff

    def activation(self, pre_acts: np.ndarray) -> np.ndarray:
        return topk_relu(pre_acts, self.cfg.k)  # (batch, d_sae)

    def sparsity_loss(self, pre_acts: np.ndarray, f: np.ndarray) -> float:
        return 0.0  # TopK needs no penalty

    def dead_selection(self, pre_acts: np.ndarray, dead_mask: np.ndarray) -> np.ndarray:
        """Bool (batch, d_sae): the top-k_aux dead latents of each row (AuxK's entries)."""
        k_aux = min(self.cfg.k_aux, int(dead_mask.sum()))
        dead_pre = np.where(dead_mask, pre_acts, -np.inf)  # (batch, d_sae)
        indices = np.argpartition(dead_pre, -k_aux, axis=-1)[:, -k_aux:]  # (batch, k_aux)
        chosen = np.zeros(pre_acts.shape, dtype=bool)  # (batch, d_sae)
        np.put_along_axis(chosen, indices, True, axis=-1)
        return chosen

    def dead_codes(self, pre_acts: np.ndarray, dead_mask: np.ndarray) -> np.ndarray:
        """Pre-activations of the top-k_aux dead latents, shape (batch, d_sae); zeros elsewhere.

        No ReLU: a dead latent whose pre-activations are all negative still gets a gradient.
        """
        return np.where(self.dead_selection(pre_acts, dead_mask), pre_acts, 0.0)

    def aux_loss(self, x, x_hat, pre_acts, dead_mask) -> float:
        if dead_mask is None or not np.any(dead_mask):
            return 0.0
        f_aux = self.dead_codes(pre_acts, dead_mask)  # (batch, d_sae)
        e = x - x_hat  # (batch, d_in), a constant for the gradient
        e_hat = f_aux @ self.W_dec  # (batch, d_in)
        return auxk_loss(e, e_hat)

    def sparsity_backward(self, pre_acts, f, grads) -> float:
        return 0.0

    def activation_backward(self, pre_acts, f, grad_f, grads) -> np.ndarray:
        return grad_f * (f > 0)  # (batch, d_sae): kept and positive entries only

    def aux_backward(self, x, out, dead_mask, grads) -> np.ndarray | float:
        if dead_mask is None or not np.any(dead_mask):
            return 0.0
        chosen = self.dead_selection(out.pre_acts, dead_mask)  # (batch, d_sae)
        f_aux = np.where(chosen, out.pre_acts, 0.0)  # (batch, d_sae)
        e = x - out.x_hat  # (batch, d_in)
        e_hat = f_aux @ self.W_dec  # (batch, d_in)
        g = self.aux_coeff * (2.0 / x.shape[0]) * (e_hat - e)  # (batch, d_in)
        grads["W_dec"] += f_aux.T @ g  # (d_sae, d_in)
        return (g @ self.W_dec.T) * chosen  # (batch, d_sae)
