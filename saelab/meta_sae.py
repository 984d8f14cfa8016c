"""Meta-SAEs: a small SAE trained on the decoder rows of another SAE.

Each decoder row of an SAE is a direction; if many rows share a part (all the child latents of
one parent write the parent direction too, as absorbing latents do), a sparse dictionary of those
parts reconstructs the rows with few active "meta-latents". With unit rows d_i = W_dec,i / ||.||,

    m_i    = ReLU(TopK_k(d_i @ W_enc^meta + b_enc^meta))          (n_meta,)
    d_hat_i = m_i @ W_dec^meta                                     no decoder bias

The decoder bias is fixed at zero: the inputs are a small set of directions, and a shared offset
(which an SAE's b_dec is) would soak up one family's direction and hide it from the meta-latents.
Meta-SAEs are from Bussmann, Pearce, Leask et al. (2024, "Showing SAE latents are not atomic
using meta-SAEs") and Leask et al. (2025, arXiv:2502.04878). Taught in Chapter 7.
"""
from __future__ import annotations

import torch

from saelab._checks import check_finite, check_int_in_range, check_positive
from saelab.sae_config import TopKConfig
from saelab.torch_sae import TopKSAE

__all__ = ["unit_rows", "train_meta_sae"]


def unit_rows(W_dec) -> torch.Tensor:
    """The rows of ``W_dec`` [n, d] scaled to unit norm (float32, detached). Chapter 7."""
    try:
        W = torch.as_tensor(W_dec).detach().float()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"W_dec must be a 2-D array or tensor of numbers, got "
                         f"{type(W_dec).__name__}") from err
    if W.ndim != 2 or W.shape[0] == 0:
        raise ValueError(f"W_dec must have shape (n_rows, d) with n_rows >= 1, "
                         f"got {tuple(W.shape)}")
    check_finite("W_dec", W)
    norms = W.norm(dim=1, keepdim=True)  # [n, 1]
    if bool((norms == 0).any()):
        raise ValueError("W_dec must have no zero rows (a zero row has no direction)")
    return W / norms


def train_meta_sae(W_dec, n_meta: int, k: int = 1, n_steps: int = 500, lr: float = 1e-2,
                   seed: int = 0) -> TopKSAE:
    """Train a TopK meta-SAE with ``n_meta`` latents on the unit rows of ``W_dec`` (Chapter 7).

    Full-batch Adam for ``n_steps`` steps, unit-norm meta-decoder rows, ``b_dec`` fixed at zero.
    Returns the meta-SAE in inference mode; ``meta.encode(unit_rows(W_dec))`` gives each row's
    meta-latents [n_rows, n_meta].
    """
    rows = unit_rows(W_dec)  # [n, d]
    check_int_in_range("n_meta", n_meta, 1)
    check_int_in_range("k", k, 1, n_meta)
    check_int_in_range("n_steps", n_steps, 1)
    check_positive("lr", lr)
    torch.manual_seed(seed)
    meta = TopKSAE(TopKConfig(d_in=rows.shape[1], d_sae=n_meta, k=k, k_aux=n_meta))
    meta.b_dec.requires_grad_(False)  # stays at zero
    opt = torch.optim.Adam([p for p in meta.parameters() if p.requires_grad], lr=lr)
    for _ in range(n_steps):
        opt.zero_grad()
        meta(rows).loss.backward()
        meta.remove_parallel_grad()
        opt.step()
        meta.apply_constraints()
    return meta.eval()
