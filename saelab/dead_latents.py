"""Dead latents: tracking them over a token window, and resampling them (L1 SAEs).

A latent is *dead* when it has not fired (``f_i != 0``) on any of the last ``window_tokens``
training tokens. :class:`DeadLatentTracker` keeps, per latent, the number of tokens seen since it
last fired (at the resolution of one batch: a latent that fires anywhere in a batch resets to 0
at the end of that batch), and turns it into the boolean ``dead_mask`` that the training loop
passes to the SAE's forward (TopK uses it for the AuxK loss, Gao et al. 2024).

:func:`resample_dead_latents` revives dead latents of an L1 SAE the way Bricken et al. (2023,
"Towards Monosemanticity", appendix on neuron resampling) describe:

1. score a pool of inputs by their squared reconstruction error ``||x - x_hat||^2`` and draw one
   input per dead latent with probability proportional to the *square* of that loss, so badly
   reconstructed inputs are favoured (without replacement when the pool is large enough);
2. point the dead latent's decoder row along ``x - b_dec`` (the vector the encoder sees),
   normalised to unit norm (or, for the unconstrained "weighted" L1 decoder, to the mean norm
   of the live rows, so the new latent sits on the same scale as the others);
3. set its encoder column to the same direction with norm ``0.2 *`` the mean norm of the live
   encoder columns, and its encoder bias to 0, so it starts weakly and competes its way in;
4. zero Adam's running moments for exactly those rows and columns, so stale momentum from the
   dead latent's past does not push the new direction around.

Taught in Chapter 2 (dead latents and resampling) and Chapter 4 (AuxK).
"""
from __future__ import annotations

import torch

from saelab._checks import (check_int_in_range, check_positive, check_sae, check_shape,
                            check_tensor)

__all__ = ["DeadLatentTracker", "resample_dead_latents", "ENCODER_NORM_SCALE"]

ENCODER_NORM_SCALE = 0.2  # new encoder column norm / mean live column norm (Bricken et al. 2023)


class DeadLatentTracker:
    """Tokens since each latent last fired, and the resulting dead mask (Chapter 2).

    Parameters
    ----------
    d_sae : int
        Number of latents.
    window_tokens : int
        A latent silent for at least this many tokens is dead.
    device : optional
        Where the counters live (the SAE's device).
    """

    def __init__(self, d_sae: int, window_tokens: int, device=None) -> None:
        check_int_in_range("d_sae", d_sae, 1)
        check_int_in_range("window_tokens", window_tokens, 1)
        self.window_tokens = int(window_tokens)
        self.tokens_since_fired = torch.zeros(d_sae, dtype=torch.long, device=device)  # [d_sae]

    @torch.no_grad()
    def update(self, f: torch.Tensor) -> None:
        """Account for one batch of codes ``f`` of shape [batch, d_sae] (or its bool mask
        ``f != 0``, which the training loop has already computed)."""
        check_tensor("f", f, 2, finite=False, nonempty=False, floating=False)
        check_shape("f", f, (None, self.tokens_since_fired.shape[0]))
        fired = (f != 0).any(dim=0)  # [d_sae]
        self.tokens_since_fired += f.shape[0]
        self.tokens_since_fired.masked_fill_(fired, 0)

    @torch.no_grad()
    def update_fired(self, latents: torch.Tensor, n_tokens: int) -> None:
        """Account for one batch of ``n_tokens`` rows in which ``latents`` fired: long [n]
        indices (repeats allowed; the sparse path's kept latents) or a bool [d_sae] mask."""
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[latents] = 0

    @property
    def dead_mask(self) -> torch.Tensor:
        """Bool [d_sae]: True where the latent has been silent for ``window_tokens`` tokens."""
        return self.tokens_since_fired >= self.window_tokens

    def reset(self, mask: torch.Tensor) -> None:
        """Give the latents in ``mask`` (bool [d_sae]) a fresh window, e.g. after resampling."""
        self.tokens_since_fired.masked_fill_(mask, 0)


def _reset_adam_rows(optimizer: torch.optim.Optimizer, param: torch.Tensor, index, dim: int):
    """Zero Adam's moment estimates of ``param`` at ``index`` along ``dim`` (no-op if unset)."""
    state = optimizer.state.get(param, {})
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state:
            state[key].index_fill_(dim, index, 0.0)


@torch.no_grad()
def resample_dead_latents(sae, optimizer: torch.optim.Optimizer, dead_mask: torch.Tensor,
                          x_pool: torch.Tensor, generator: torch.Generator | None = None,
                          encoder_norm_scale: float = ENCODER_NORM_SCALE) -> int:
    """Re-initialise the dead latents of an L1 SAE towards badly reconstructed inputs.

    Follows Bricken et al. (2023); see the module docstring for the four steps. Introduced in
    Chapter 2.

    Parameters
    ----------
    sae : saelab.torch_sae.L1SAE
        Modified in place: columns of ``W_enc``, entries of ``b_enc``, rows of ``W_dec``.
    optimizer : torch.optim.Adam
        Its moment estimates for the resampled rows are zeroed.
    dead_mask : Tensor of shape [d_sae], bool
        Latents to resample.
    x_pool : Tensor of shape [n_pool, d_in]
        Inputs to score and draw directions from.
    generator : torch.Generator, optional
        CPU generator for the draw (for reproducibility).
    encoder_norm_scale : float
        New encoder column norm as a multiple of the mean live column norm.

    Returns
    -------
    int
        Number of latents resampled (0 if none were dead or the pool is reconstructed exactly).
    """
    check_sae("sae", sae)
    check_tensor("dead_mask", dead_mask, 1, floating=False, nonempty=False)
    if dead_mask.dtype != torch.bool or dead_mask.shape[0] != sae.cfg.d_sae:
        raise ValueError(f"dead_mask must be a bool tensor of shape ({sae.cfg.d_sae},), got "
                         f"{dead_mask.dtype} {tuple(dead_mask.shape)}")
    check_tensor("x_pool", x_pool, 2)
    check_positive("encoder_norm_scale", encoder_norm_scale)
    dead = dead_mask.nonzero().squeeze(1)  # [n_dead]
    n_dead = int(dead.numel())
    if n_dead == 0:
        return 0
    out = sae(x_pool)
    per_input = (x_pool - out.x_hat).pow(2).sum(dim=-1)  # [n_pool]
    weights = per_input.detach().cpu().double().pow(2)  # [n_pool] probability ~ loss^2
    if not bool(weights.sum() > 0):
        return 0
    replace = n_dead > int((weights > 0).sum())
    pick = torch.multinomial(weights, n_dead, replacement=replace, generator=generator)
    v = x_pool[pick.to(x_pool.device)] - sae.b_dec  # [n_dead, d_in]
    v = v / v.norm(dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)  # unit rows

    alive = ~dead_mask  # [d_sae]
    ref = alive if bool(alive.any()) else torch.ones_like(alive)
    if sae.unit_norm_decoder:
        dec_norm = 1.0
    else:
        dec_norm = sae.W_dec[ref].norm(dim=1).mean()  # []
    enc_norm = encoder_norm_scale * sae.W_enc[:, ref].norm(dim=0).mean()  # []

    sae.W_dec[dead] = v * dec_norm  # [n_dead, d_in]
    sae.W_enc[:, dead] = (v * enc_norm).T  # [d_in, n_dead]
    sae.b_enc[dead] = 0.0
    _reset_adam_rows(optimizer, sae.W_dec, dead, dim=0)
    _reset_adam_rows(optimizer, sae.W_enc, dead, dim=1)
    _reset_adam_rows(optimizer, sae.b_enc, dead, dim=0)
    return n_dead
