"""Gated SAE in NumPy: a gate path decides which latents fire, a magnitude path how strongly.

Both paths share the encoder matrix W_enc (B = batch size, c = x - b_dec):

    u        = c @ W_enc                                  (batch, d_sae)
    pi_gate  = u + b_gate                                 (batch, d_sae)  = ``pre_acts``
    gate     = 1[pi_gate > 0]                             Heaviside: zero gradient
    mag      = ReLU(exp(r_mag) * u + b_mag)               (batch, d_sae)
    f        = gate * mag;   x_hat = f @ W_dec + b_dec

    loss = mean_b ||x_b - x_hat_b||^2                                       recon
         + l1_coeff * mean_b sum_i ReLU(pi_gate_bi) ||W_dec,i||             sparsity (gate only)
         + mean_b ||x_b - (ReLU(pi_gate_b) @ sg(W_dec) + sg(b_dec))||^2     aux (sg = stopgrad)

The L1 penalty sits on the gate path only, so the magnitudes are not shrunk. The gate's step has
zero gradient; the gate path learns from the sparsity term and from the auxiliary reconstruction,
which sees the decoder frozen (no gradient to W_dec or b_dec from it). Mapping to the paper's
notation: W_gate = W_enc, W_mag = exp(r_mag) * W_enc (rescaled per latent), b_gate, b_mag,
b_dec the same; "x_hat_frozen" is our ``sg(W_dec), sg(b_dec)``. Decoder rows are kept at unit norm
(as in the paper), so ||W_dec,i|| = 1 in training; the factor stays in the penalty (SAELens's
form) so the loss is also right for rows that are not normalised, e.g. right after loading.

Backward (g_x = dL/dx_hat = (2/B)(x_hat - x), n_i = ||W_dec,i||, x_gate = the aux reconstruction):

    dL/dW_dec   = f^T g_x + (l1_coeff / B) (sum_b ReLU(pi_gate_bi)) W_dec,i / n_i
    g_mag       = (g_x W_dec^T) * gate * 1[exp(r_mag) u + b_mag > 0]
    dL/db_mag   = sum_b g_mag;   dL/dr_mag = exp(r_mag) * sum_b g_mag * u
    g_pi        = ((l1_coeff / B) n + (2/B)(x_gate - x) W_dec^T) * 1[pi_gate > 0]
    dL/db_gate  = sum_b g_pi;    g_u = exp(r_mag) g_mag + g_pi
    dL/dW_enc   = c^T g_u;       dL/db_dec = sum_b g_x - W_enc sum_b g_u

Gated has no ``b_enc`` (b_gate and b_mag replace it), so it writes its own ``backward``.
From Rajamanoharan et al. (2024), "Improving Dictionary Learning with Gated Sparse Autoencoders",
arXiv:2404.16014. Reads line by line against ``saelab/torch_sae/gated.py``. Taught in Chapter 4.
"""
from __future__ import annotations

import numpy as np

from saelab.numpy_sae.base import BaseSAE, recon_loss
from saelab.sae_config import GatedConfig


class GatedSAE(BaseSAE):
    """Gated SAE (Rajamanoharan et al. 2024; Chapter 4).

    Parameters
    ----------
    cfg : GatedConfig
    rng : None, int or numpy.random.Generator
    dtype : numpy dtype, default float32

    Attributes
    ----------
    W_enc : ndarray of shape (d_in, d_sae)
        Shared encoder (the paper's W_gate).
    b_gate : ndarray of shape (d_sae,)
    r_mag : ndarray of shape (d_sae,)
        Log of the per-latent rescaling of W_enc used by the magnitude path.
    b_mag : ndarray of shape (d_sae,)
    W_dec : ndarray of shape (d_sae, d_in)
    b_dec : ndarray of shape (d_in,)
    """

    param_names = ("W_enc", "b_gate", "r_mag", "b_mag", "W_dec", "b_dec")

    def __init__(self, cfg: GatedConfig, rng=None, dtype=np.float32) -> None:
        if not isinstance(cfg, GatedConfig):
            raise ValueError(f"cfg must be a GatedConfig, got {type(cfg).__name__}")
        super().__init__(cfg, rng=rng, dtype=dtype)
        del self.b_enc  # replaced by the two path biases
        self.b_gate = np.zeros(cfg.d_sae, dtype=dtype)  # (d_sae,)
        self.r_mag = np.zeros(cfg.d_sae, dtype=dtype)  # (d_sae,), exp(0) = 1: paths agree at init
        self.b_mag = np.zeros(cfg.d_sae, dtype=dtype)  # (d_sae,)

    @property
    def aux_coeff(self) -> float:
        return 1.0  # the paper adds the auxiliary reconstruction with weight 1

    def pre_activation(self, x: np.ndarray) -> np.ndarray:
        """Gate pre-activations ``(x - b_dec) @ W_enc + b_gate``, shape (batch, d_sae)."""
        return (x - self.b_dec) @ self.W_enc + self.b_gate  # (batch, d_sae)

    def magnitude_pre(self, pre_acts: np.ndarray) -> np.ndarray:
        """Magnitude pre-activations ``exp(r_mag) * u + b_mag``, u = pre_acts - b_gate."""
        return np.exp(self.r_mag) * (pre_acts - self.b_gate) + self.b_mag  # (batch, d_sae)

    def activation(self, pre_acts: np.ndarray) -> np.ndarray:
        gate = pre_acts > 0  # (batch, d_sae)
        return gate * np.maximum(self.magnitude_pre(pre_acts), 0)  # (batch, d_sae)

    def sparsity_loss(self, pre_acts: np.ndarray, f: np.ndarray) -> float:
        norms = np.linalg.norm(self.W_dec, axis=1)  # (d_sae,)
        return float(self.cfg.l1_coeff * (np.maximum(pre_acts, 0) * norms).sum(axis=-1).mean())

    def gate_reconstruction(self, pre_acts: np.ndarray) -> np.ndarray:
        """The aux path's ``ReLU(pi_gate) @ W_dec + b_dec`` (decoder frozen in backward)."""
        return np.maximum(pre_acts, 0) @ self.W_dec + self.b_dec  # (batch, d_in)

    def aux_loss(self, x, x_hat, pre_acts, dead_mask) -> float:
        return recon_loss(x, self.gate_reconstruction(pre_acts))

    def backward(self, x: np.ndarray, out, dead_mask=None) -> dict[str, np.ndarray]:
        """Hand-derived gradient of ``out.loss`` w.r.t. every parameter (see module docstring)."""
        x = self._check_x(x)
        self._check_dead_mask(dead_mask)
        grads = {name: np.zeros_like(p) for name, p in self.parameters().items()}
        batch, pre, l1 = x.shape[0], out.pre_acts, self.cfg.l1_coeff
        # decoder, as in the base
        grad_x_hat = (2.0 / batch) * (out.x_hat - x)  # (batch, d_in)
        grads["W_dec"] += out.f.T @ grad_x_hat  # (d_sae, d_in)
        grads["b_dec"] += grad_x_hat.sum(axis=0)  # (d_in,)
        # magnitude path
        u = pre - self.b_gate  # (batch, d_sae)
        scale = np.exp(self.r_mag)  # (d_sae,)
        grad_mag = (grad_x_hat @ self.W_dec.T) * (pre > 0) * (self.magnitude_pre(pre) > 0)
        grads["b_mag"] += grad_mag.sum(axis=0)  # (d_sae,)
        grads["r_mag"] += scale * (grad_mag * u).sum(axis=0)  # (d_sae,)
        # gate path: sparsity penalty and the auxiliary reconstruction through a frozen decoder
        relu_pi = np.maximum(pre, 0)  # (batch, d_sae)
        norms = np.linalg.norm(self.W_dec, axis=1)  # (d_sae,)
        grads["W_dec"] += ((l1 / batch) * relu_pi.sum(axis=0) / norms)[:, None] * self.W_dec
        grad_gate_recon = self.aux_coeff * (2.0 / batch) * (self.gate_reconstruction(pre) - x)
        grad_pi = ((l1 / batch) * norms + grad_gate_recon @ self.W_dec.T) * (pre > 0)
        grads["b_gate"] += grad_pi.sum(axis=0)  # (d_sae,)
        # shared encoder
        grad_u = scale * grad_mag + grad_pi  # (batch, d_sae)
        grads["W_enc"] += (x - self.b_dec).T @ grad_u  # (d_in, d_sae)
        grads["b_dec"] -= self.W_enc @ grad_u.sum(axis=0)  # (d_in,)
        return grads
