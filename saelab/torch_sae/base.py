"""Shared base of the torch SAEs: parameters, encode, decode, reconstruction loss, decoder norms.

    pre_acts = (x - b_dec) @ W_enc + b_enc           # [batch, d_sae]
    f        = activation(pre_acts)                   # [batch, d_sae], family-specific
    x_hat    = f @ W_dec + b_dec                      # [batch, d_in]
    loss     = mean_b ||x_b - x_hat_b||^2 + sparsity_loss + aux_coeff * aux_loss

The architecture is the one of Bricken et al. (2023), "Towards Monosemanticity". Rows of W_dec are
the dictionary atoms. Families with unit-norm decoder rows (as in Gao et al. 2024) remove the
gradient component parallel to each row before the optimizer step (``remove_parallel_grad``) and
renormalise the rows after it (``normalize_decoder``).

This file reads line by line against ``saelab/numpy_sae/base.py``. Taught in Chapter 2
(the torch twin of the NumPy SAE); the other families in Chapter 4.
"""
from __future__ import annotations

import torch
from torch import nn

from saelab._checks import check_float_dtype, check_shape, check_tensor
from saelab.numpy_sae.base import _check_pair
from saelab.sae_output import SAEOutput

WEIGHTED_INIT_NORM = 0.1  # decoder row norm at init for the "weighted" L1 SAE (Anthropic, April 2024)


def recon_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Reconstruction loss ``mean_b ||x_b - x_hat_b||^2`` (sum over d_in). Chapter 2."""
    _check_pair(x, x_hat)
    return (x - x_hat).pow(2).sum(dim=-1).mean()  # []


class BaseSAE(nn.Module):
    """Parameters and the shared forward pass of every torch SAE (Chapter 2).

    Subclasses set ``activation``, ``sparsity_loss`` and, for TopK, ``aux_loss``/``aux_coeff``.
    """

    def __init__(self, cfg, device=None, dtype=None) -> None:
        check_float_dtype("dtype", dtype, device=device)
        super().__init__()
        if getattr(cfg, "family", None) is None or not hasattr(cfg, "d_sae"):
            raise TypeError(f"cfg must be an SAE config (L1Config, TopKConfig, ...), got "
                            f"{type(cfg).__name__}")
        self.cfg = cfg
        d_in, d_sae = cfg.d_in, cfg.d_sae
        kw = dict(device=device, dtype=dtype)  # dtype=None: torch's default dtype
        W_dec = torch.randn(d_sae, d_in, **kw)  # [d_sae, d_in]
        W_dec = W_dec / W_dec.norm(dim=1, keepdim=True) * self._init_row_norm()
        self.W_enc = nn.Parameter(W_dec.T.clone())  # [d_in, d_sae]
        self.b_enc = nn.Parameter(torch.zeros(d_sae, **kw))  # [d_sae]
        self.W_dec = nn.Parameter(W_dec)  # [d_sae, d_in]
        self.b_dec = nn.Parameter(torch.zeros(d_in, **kw))  # [d_in]

    # ----- family hooks -------------------------------------------------------------------------
    def _init_row_norm(self) -> float:
        """Norm of each decoder row at initialisation (1 for unit-norm families)."""
        return 1.0 if self.unit_norm_decoder else WEIGHTED_INIT_NORM

    @property
    def unit_norm_decoder(self) -> bool:
        """True if this family keeps decoder rows at unit norm (training calls the projections)."""
        return True

    @property
    def aux_coeff(self) -> float:
        """Weight of ``aux_loss`` in the total loss (0 for families without one)."""
        return 0.0

    def activation(self, pre_acts: torch.Tensor) -> torch.Tensor:
        """Family activation: pre_acts [batch, d_sae] -> f [batch, d_sae]."""
        raise NotImplementedError

    def sparsity_loss(self, pre_acts: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """Coefficient times the family's sparsity penalty, averaged over the batch."""
        raise NotImplementedError

    def aux_loss(self, x, x_hat, pre_acts, dead_mask) -> torch.Tensor:
        """Unweighted auxiliary loss; zero unless the family defines one (TopK: AuxK)."""
        return x.new_zeros(())  # []

    # ----- shared forward -----------------------------------------------------------------------
    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder pre-activations ``(x - b_dec) @ W_enc + b_enc``: [batch, d_in] -> [batch, d_sae].

        Computed as ``x @ W_enc + (b_enc - b_dec @ W_enc)`` (as in the NumPy twin): the same
        value, but the backward needs no dense product for the gradient of ``x - b_dec``.
        """
        return x @ self.W_enc + (self.b_enc - self.b_dec @ self.W_enc)  # [batch, d_sae]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes f for inputs x: [batch, d_in] -> [batch, d_sae]."""
        self._check_x(x)
        return self.activation(self.pre_activation(x))  # [batch, d_sae]

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``f @ W_dec + b_dec``: [batch, d_sae] -> [batch, d_in].

        ``f`` is user input here, so NaN/inf are rejected (the forward pass skips this check).
        """
        check_tensor("f", f, finite=True)
        check_shape("f", f, (None, self.cfg.d_sae))
        self._check_dtype("f", f)
        return self._decode(f)

    def _decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec  # [batch, d_in]

    def forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None = None) -> SAEOutput:
        """Full forward pass with all loss terms.

        x: [batch, d_in], finite. dead_mask: optional bool [d_sae], True for latents that have
        not fired recently (used by TopK's AuxK loss; validated and ignored by other families).
        """
        self._check_x(x)
        self._check_dead_mask(dead_mask)
        return self._forward(x, dead_mask)

    def _forward(self, x: torch.Tensor, dead_mask: torch.Tensor | None) -> SAEOutput:
        """``forward`` without the input checks (the training loop checks its batches once)."""
        pre_acts = self.pre_activation(x)  # [batch, d_sae]
        f = self.activation(pre_acts)  # [batch, d_sae]
        x_hat = self._decode(f)  # [batch, d_in]
        recon = recon_loss(x, x_hat)  # []
        sparsity = self.sparsity_loss(pre_acts, f)  # []
        aux = self.aux_loss(x, x_hat, pre_acts, dead_mask)  # []
        loss = recon + sparsity + self.aux_coeff * aux  # []
        return SAEOutput(x_hat, f, pre_acts, loss, recon, sparsity, aux)

    # ----- decoder-norm handling ----------------------------------------------------------------
    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Remove from ``W_dec.grad`` the component parallel to each decoder row (in place).

        Call between ``loss.backward()`` and ``optimizer.step()`` for unit-norm families, so the
        step moves rows tangentially to the unit sphere.
        """
        grad = self.W_dec.grad  # [d_sae, d_in]
        if grad is None:
            return
        W = self.W_dec  # [d_sae, d_in]
        coef = torch.linalg.vecdot(grad, W, dim=1) / torch.linalg.vecdot(W, W, dim=1)  # [d_sae]
        grad.addcmul_(W, coef[:, None], value=-1.0)  # grad -= coef * W, without a temporary

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every row of ``W_dec`` to unit norm (in place); call after the optimizer step."""
        norms = self.W_dec.norm(dim=1, keepdim=True)  # [d_sae, 1]
        self.W_dec /= norms.clamp_min(torch.finfo(norms.dtype).tiny)

    def apply_constraints(self) -> None:
        """Restore every parameter constraint after an optimizer step.

        Unit-norm families renormalise decoder rows; JumpReLU also clamps the threshold.
        """
        if self.unit_norm_decoder:
            self.normalize_decoder()

    # ----- input checks -------------------------------------------------------------------------
    def _check_x(self, x: torch.Tensor) -> None:
        # Shapes and dtypes cost nothing; NaN/inf are checked on CPU only, because on an
        # accelerator the check would synchronise the device once per batch (check_tensor).
        check_tensor("x", x)
        check_shape("x", x, (None, self.cfg.d_in))
        self._check_dtype("x", x)

    def _check_dtype(self, name: str, t: torch.Tensor) -> None:
        if t.dtype != self.W_enc.dtype:
            raise ValueError(f"{name} must have the SAE's dtype {self.W_enc.dtype}, got {t.dtype}; "
                             f"convert it with {name}.to({self.W_enc.dtype})")

    def _check_dead_mask(self, dead_mask) -> None:
        if dead_mask is None:
            return
        check_tensor("dead_mask", dead_mask, floating=False)
        check_shape("dead_mask", dead_mask, (self.cfg.d_sae,))
        if dead_mask.dtype != torch.bool:
            raise ValueError(f"dead_mask must have dtype torch.bool, got {dead_mask.dtype}")

    def extra_repr(self) -> str:
        return repr(self.cfg)
