"""The one return type of every SAE forward pass, NumPy or torch.

    loss = recon_loss + sparsity_loss + aux_coeff * aux_loss
    recon_loss = mean_b ||x_b - x_hat_b||^2

``sparsity_loss`` already contains its coefficient (lambda * L1 or lambda * L0); ``aux_loss`` is
the unweighted AuxK loss of Gao et al. (2024), so that it can be logged on its own scale.
Introduced in Chapter 2 (L1 SAE); the TopK and JumpReLU fields are used from Chapter 4.
"""
from __future__ import annotations

from typing import Any, NamedTuple


class SAEOutput(NamedTuple):
    """Everything one forward pass computes (Chapter 2).

    NumPy twin: arrays and Python floats. torch twin: tensors (losses are 0-d tensors).
    A family without a term reports it as ``0.0`` (NumPy) or a zero tensor (torch).

    Attributes
    ----------
    x_hat : array of shape (batch, d_in)
        Reconstruction ``f @ W_dec + b_dec``.
    f : array of shape (batch, d_sae)
        Codes (latent activations) after the family's activation.
    pre_acts : array of shape (batch, d_sae)
        Pre-activations ``(x - b_dec) @ W_enc + b_enc``.
    loss : scalar
        Total training loss ``recon_loss + sparsity_loss + aux_coeff * aux_loss``.
    recon_loss : scalar
        ``mean_b ||x_b - x_hat_b||^2`` (sum over d_in, mean over the batch).
    sparsity_loss : scalar
        Coefficient times the family's sparsity penalty (L1 or L0); 0 for TopK.
    aux_loss : scalar
        Unweighted AuxK loss (TopK with a dead mask); 0 otherwise.
    """

    x_hat: Any
    f: Any
    pre_acts: Any
    loss: Any
    recon_loss: Any
    sparsity_loss: Any
    aux_loss: Any
