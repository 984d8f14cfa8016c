"""Splice evaluation: the language model's loss with an SAE's reconstruction in place of a hook.

    CE_clean  = mean next-token cross-entropy of the model as is
    CE_sae    = the same with act[hook] replaced by sae(act[hook]).x_hat
    CE_zero   = the same with act[hook] replaced by 0
    CE loss recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean);  delta loss = CE_sae - CE_clean

The downstream test of an SAE (Cunningham et al. 2023, arXiv:2309.08600; Gao et al. 2024,
arXiv:2406.04093): a reconstruction with low FVU can still lose what the next layers need. BOS
and padding positions, which harvesting drops, keep their clean activation in both replacements,
and targets that are padding are left out of the mean. The ratios live in ``saelab.metrics``.
Taught in Chapter 6 (the metrics in Chapter 5).
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from saelab import metrics
from saelab._checks import check_instance, check_int_in_range, check_tensor
from saelab.lm.harvesting import _special_ids, keep_mask
from saelab.lm.hooks import check_hook_name, hook_width

__all__ = ["CELosses", "reconstruct", "splice_hook", "ce_losses", "ce_loss_recovered",
           "delta_ce_loss", "check_sae_width"]


class CELosses(NamedTuple):
    """Mean next-token cross-entropy in nats: clean, SAE spliced in, hook zero-ablated."""

    clean: float
    spliced: float
    zero_ablated: float


def _check_sae_module(sae) -> None:
    """Any callable module that maps activations to an ``SAEOutput`` (or a reconstruction)."""
    if not callable(sae):
        got = "None" if sae is None else type(sae).__name__
        raise TypeError(f"sae must be an SAE module (saelab.torch_sae) or a callable returning "
                        f"the reconstruction, got {got}")


def check_sae_width(model, sae, hook_name: str) -> None:
    """Raise ValueError if the SAE's ``d_in`` differs from the width of ``hook_name``."""
    _check_sae_module(sae)
    d_in = getattr(getattr(sae, "cfg", None), "d_in", None)
    width = hook_width(model, hook_name)
    if d_in is not None and d_in != width:
        raise ValueError(f"sae has d_in = {d_in} but hook {hook_name!r} has width {width}; "
                         f"train the SAE on this hook's activations")


def reconstruct(sae, x: torch.Tensor) -> torch.Tensor:
    """The SAE's reconstruction of rows x [n, d] in x's dtype: ``sae(x).x_hat`` (or ``sae(x)``)."""
    _check_sae_module(sae)
    check_tensor("x", x, 2, finite=False)
    dtype = getattr(getattr(sae, "W_enc", None), "dtype", x.dtype)
    out = sae(x.to(dtype))
    x_hat = out.x_hat if hasattr(out, "x_hat") else out  # [n, d]
    return x_hat.to(x.dtype)


def splice_hook(sae, keep: torch.Tensor | None = None):
    """A TransformerLens hook replacing the activation by its reconstruction where ``keep``."""

    _check_sae_module(sae)
    if keep is not None:
        check_instance("keep", keep, torch.Tensor, "a bool tensor [b, pos] or None")
    def hook(act, hook):
        flat = act.reshape(*act.shape[:2], -1)  # [b, pos, d]
        x_hat = reconstruct(sae, flat.reshape(-1, flat.shape[-1])).reshape(flat.shape)
        if keep is not None:
            x_hat = torch.where(keep[..., None], x_hat, flat)
        return x_hat.reshape(act.shape)

    return hook


def _zero_hook(keep):
    def hook(act, hook):
        mask = keep.reshape(*keep.shape, *([1] * (act.ndim - 2)))
        return torch.where(mask, torch.zeros_like(act), act)

    return hook


def _mean_ce(model, tokens, target_keep, fwd_hooks) -> tuple[float, int]:
    logits = model.run_with_hooks(tokens, fwd_hooks=fwd_hooks)  # [b, pos, vocab]
    per_token = model.loss_fn(logits, tokens, per_token=True)  # [b, pos - 1]
    w = target_keep[:, 1:].to(per_token.dtype)
    return float((per_token * w).sum()), int(w.sum())


@torch.no_grad()
def ce_losses(model, sae, tokens: torch.Tensor, hook_name: str = "blocks.6.hook_resid_pre", *,
              batch_size: int = 16, bos_token_id="auto", pad_token_id="auto") -> CELosses:
    """Cross-entropy clean, with ``sae`` spliced in at ``hook_name``, and zero-ablated (Chapter 6).

    Parameters
    ----------
    model : HookedTransformer
    sae : saelab.torch_sae.BaseSAE, or any module mapping [n, d] to an SAEOutput or a tensor
    tokens : LongTensor of shape (n_windows, seq_len)
        Token windows, BOS first (``saelab.lm.token_windows``).
    batch_size : int
        Windows per forward pass.
    bos_token_id, pad_token_id : int, None or "auto"
        As in ``iter_activations``: those positions (and position 0) keep their clean activation;
        padding targets are not scored.
    """
    check_hook_name(model, hook_name)
    check_int_in_range("batch_size", batch_size, 1)
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.ndim != 2:
        raise ValueError("tokens must be a LongTensor [n_windows, seq_len]")
    if tokens.shape[1] > model.cfg.n_ctx or tokens.shape[1] < 2:
        raise ValueError(f"tokens must have 2..n_ctx = {model.cfg.n_ctx} positions, "
                         f"got {tokens.shape[1]}")
    check_sae_width(model, sae, hook_name)
    bos, pad = _special_ids(model, bos_token_id, pad_token_id)
    was_training = sae.training
    sae.eval()
    sums, count = [0.0, 0.0, 0.0], 0
    try:
        for s in range(0, tokens.shape[0], batch_size):
            toks = tokens[s:s + batch_size].to(model.cfg.device)  # [b, seq_len]
            keep = keep_mask(toks, bos, pad)  # [b, seq_len]
            target_keep = keep_mask(toks, None, pad, drop_first=False)  # score BOS-led windows
            hooks = ([], [(hook_name, splice_hook(sae, keep))], [(hook_name, _zero_hook(keep))])
            for i, fwd_hooks in enumerate(hooks):
                total, n = _mean_ce(model, toks, target_keep, fwd_hooks)
                sums[i] += total
            count += n
    finally:
        sae.train(was_training)
    if count == 0:
        raise ValueError("tokens hold no scored positions (all padding?)")
    return CELosses(*(v / count for v in sums))


def ce_loss_recovered(losses: CELosses) -> float:
    """``(CE_zero - CE_sae) / (CE_zero - CE_clean)`` of a ``CELosses`` (saelab.metrics)."""
    check_instance("losses", losses, CELosses, "a CELosses (from ce_losses)")
    return metrics.ce_loss_recovered(losses.clean, losses.spliced, losses.zero_ablated)


def delta_ce_loss(losses: CELosses) -> float:
    """``CE_sae - CE_clean`` of a ``CELosses``, nats per token (saelab.metrics)."""
    check_instance("losses", losses, CELosses, "a CELosses (from ce_losses)")
    return metrics.delta_ce_loss(losses.clean, losses.spliced)
