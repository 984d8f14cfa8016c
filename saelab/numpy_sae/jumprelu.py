"""JumpReLU SAE in NumPy: a learned threshold per latent, an L0 penalty, hand-derived gradients.

    f             = z * H(z - theta)                      z = pre_acts, H = Heaviside step
    sparsity_loss = l0_coeff * mean_b sum_i H(z_bi - theta_i)

H has zero derivative almost everywhere, so theta is trained with straight-through
pseudo-gradients built from the rectangle kernel K(u) = 1[|u| < 1/2] of bandwidth eps:

    d f / d z     = H(z - theta)
    d f / d theta = -(theta / eps) K((z - theta) / eps)
    d H / d z     = 0
    d H / d theta = -(1 / eps) K((z - theta) / eps)

so, with B the batch size,

    dL/dz_bi     = dL/df_bi * H(z_bi - theta_i)
    dL/dtheta_i  = sum_b [ dL/df_bi * (-(theta_i / eps)) - l0_coeff / (B eps) ] K((z_bi - theta_i) / eps)

From Rajamanoharan et al. (2024), "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU
Sparse Autoencoders", arXiv:2407.14435. Decoder rows are kept at unit norm; after each optimizer
step ``apply_constraints`` also clamps theta to at least ``THRESHOLD_FLOOR`` so it stays positive.
Reads line by line against ``saelab/torch_sae/jumprelu.py``. Taught in Chapter 4.
"""
from __future__ import annotations

import numpy as np

from saelab._checks import check_array
from saelab.numpy_sae.base import BaseSAE
from saelab.sae_config import JumpReLUConfig

THRESHOLD_FLOOR = 1e-6  # theta never goes below this after a step: keeps f >= 0 and H meaningful


def rectangle(u: np.ndarray) -> np.ndarray:
    """Rectangle kernel K(u) = 1[|u| < 1/2], same shape and dtype as u (Chapter 4)."""
    u = check_array("u", u, finite=False, nonempty=False)
    return (np.abs(u) < 0.5).astype(u.dtype)


class JumpReLUSAE(BaseSAE):
    """JumpReLU SAE with an L0 penalty (Rajamanoharan et al. 2024; Chapter 4).

    ``cfg`` is a :class:`JumpReLUConfig`; ``rng``, ``dtype`` and the parameters ``W_enc``,
    ``b_enc``, ``W_dec``, ``b_dec`` are as in :class:`BaseSAE`.

    Attributes
    ----------
    threshold : ndarray of shape (d_sae,)
        Positive per-latent threshold theta, initialised to ``cfg.threshold_init``.
    """

    param_names = BaseSAE.param_names + ("threshold",)

    def __init__(self, cfg: JumpReLUConfig, rng=None, dtype=np.float32) -> None:
        if not isinstance(cfg, JumpReLUConfig):
            raise ValueError(f"cfg must be a JumpReLUConfig, got {type(cfg).__name__}")
        super().__init__(cfg, rng=rng, dtype=dtype)
        self.threshold = np.full_like(self.b_enc, cfg.threshold_init)  # (d_sae,)

    def activation(self, pre_acts: np.ndarray) -> np.ndarray:
        return pre_acts * (pre_acts > self.threshold)  # (batch, d_sae)

    def sparsity_loss(self, pre_acts: np.ndarray, f: np.ndarray) -> float:
        fires = (pre_acts > self.threshold).astype(pre_acts.dtype)  # (batch, d_sae)
        return float(self.cfg.l0_coeff * fires.sum(axis=-1).mean())

    def sparsity_backward(self, pre_acts, f, grads) -> float:
        eps = self.cfg.bandwidth
        kernel = rectangle((pre_acts - self.threshold) / eps)  # (batch, d_sae)
        grads["threshold"] += (-(1.0 / eps) * kernel).sum(axis=0) * (
            self.cfg.l0_coeff / pre_acts.shape[0]
        )  # (d_sae,)
        return 0.0  # dH/dz = 0: the L0 term sends no gradient to f or z

    def activation_backward(self, pre_acts, f, grad_f, grads) -> np.ndarray:
        eps = self.cfg.bandwidth
        kernel = rectangle((pre_acts - self.threshold) / eps)  # (batch, d_sae)
        grads["threshold"] += (-(self.threshold / eps) * kernel * grad_f).sum(axis=0)  # (d_sae,)
        return grad_f * (pre_acts > self.threshold)  # (batch, d_sae)

    def clamp_threshold(self) -> None:
        """Clamp theta to at least ``THRESHOLD_FLOOR`` (in place)."""
        np.maximum(self.threshold, THRESHOLD_FLOOR, out=self.threshold)

    def apply_constraints(self) -> None:
        super().apply_constraints()
        self.clamp_threshold()
