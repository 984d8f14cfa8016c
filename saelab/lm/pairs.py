"""Transcoder data and splicing on a language model (Chapter 8).

    x = act[blocks.L.ln2.hook_normalized]      MLP input  (after LayerNorm's centring and scaling)
    y = act[blocks.L.hook_mlp_out]             MLP output
    rows = [x | y] at positions that are neither BOS nor padding    # [n_tokens, d_in + d_out]

Both hooks are read in one forward pass that stops after the later one. A row keeps the input
and its target side by side, so the rows go through ``ActivationBuffer`` (which shuffles rows)
without separating pairs, and ``saelab.train.train_sae`` splits them again. Splicing a transcoder
replaces the MLP's output with the transcoder's prediction from that layer's MLP input; the CE
losses are those of ``saelab.lm.splice`` (Cunningham et al. 2023; Gao et al. 2024), with the MLP
output zero-ablated as the baseline. Transcoders: Dunefsky, Chlenski and Nanda (2024),
arXiv:2406.11944.
"""
from __future__ import annotations

from typing import Iterator

import torch
from tqdm.auto import tqdm

from saelab._checks import check_int_in_range, check_tensor, check_token_ids
from saelab.lm.harvesting import _as_windows, _special_ids, keep_mask
from saelab.lm.models import check_hook_name, hook_width
from saelab.lm.splice import CELosses, _mean_ce, _zero_hook

__all__ = ["mlp_hook_names", "run_to_hooks", "iter_activation_pairs", "harvest_pairs",
           "check_transcoder_widths", "transcoder_splice_hooks", "transcoder_ce_losses"]


def _check_windows(name: str, model, tokens) -> None:
    """``tokens`` must be token ids [b, pos] of ``model``'s vocabulary, at most n_ctx long."""
    check_token_ids(name, tokens, model.cfg.d_vocab)
    if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= model.cfg.n_ctx:
        raise ValueError(f"{name} must be token ids [batch, pos] with 1..n_ctx = "
                         f"{model.cfg.n_ctx} positions, got shape {tuple(tokens.shape)}")


def _check_pair_hook(name: str, model, hook: str) -> None:
    try:
        check_hook_name(model, hook)
    except ValueError as err:
        raise ValueError(f"{name}: {err}") from None


class _StopForward(Exception):
    """Raised once every wanted hook has fired."""


def mlp_hook_names(layer: int) -> tuple[str, str]:
    """(MLP input hook, MLP output hook) of block ``layer``: a transcoder reads one, predicts
    the other."""
    check_int_in_range("layer", layer, 0)
    return f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"


@torch.no_grad()
def run_to_hooks(model, tokens: torch.Tensor, hook_names) -> list[torch.Tensor]:
    """Activations [b, pos, d] at each of ``hook_names`` from one forward pass that stops as soon
    as all of them have fired."""
    if isinstance(hook_names, str) or not hasattr(hook_names, "__iter__"):
        raise TypeError(f"hook_names must be a list of hook names, got {hook_names!r}")
    names = list(hook_names)
    if not names:
        raise ValueError("hook_names must name at least one hook, got an empty list")
    for name in names:
        check_hook_name(model, name)
    _check_windows("tokens", model, tokens)
    return _run_to_hooks(model, tokens, names)


@torch.no_grad()
def _run_to_hooks(model, tokens, names) -> list[torch.Tensor]:
    store = {}

    def grab(act, hook):
        store[hook.name] = act.detach()
        if len(store) == len(set(names)):
            raise _StopForward

    try:
        model.run_with_hooks(tokens, fwd_hooks=[(n, grab) for n in set(names)])
    except _StopForward:
        pass
    return [store[n].reshape(*store[n].shape[:2], -1) for n in names]


def iter_activation_pairs(model, corpus, in_hook: str, out_hook: str, *, seq_len: int = 128,
                          batch_size: int = 32, max_tokens: int | None = None,
                          bos_token_id="auto", pad_token_id="auto", progress: bool = True,
                          text_column: str = "text") -> Iterator[torch.Tensor]:
    """Rows ``[act[in_hook] | act[out_hook]]`` [n_kept, d_in + d_out], one forward batch at a time.

    Arguments as in ``saelab.lm.iter_activations``; BOS and padding positions are dropped from
    both sides together. Feed the iterator to ``ActivationBuffer`` to shuffle in bounded memory.
    """
    _check_pair_hook("in_hook", model, in_hook)
    _check_pair_hook("out_hook", model, out_hook)
    check_int_in_range("batch_size", batch_size, 1)
    if max_tokens is not None:
        check_int_in_range("max_tokens", max_tokens, 1)
    windows = _as_windows(model, corpus, seq_len, max_tokens, text_column)  # [n, seq_len]
    bos, pad = _special_ids(model, bos_token_id, pad_token_id)
    return _pair_batches(model, windows, in_hook, out_hook, batch_size, bos, pad, progress)


def _pair_batches(model, windows, in_hook, out_hook, batch_size, bos, pad, progress):
    starts = range(0, windows.shape[0], batch_size)
    for s in tqdm(starts, desc=f"harvest {in_hook} -> {out_hook}", unit="batch",
                  disable=not progress):
        toks = windows[s:s + batch_size].to(model.cfg.device)  # [b, seq_len]
        x, y = _run_to_hooks(model, toks, [in_hook, out_hook])  # checked once by the caller  # [b, seq_len, d_in], [.., d_out]
        keep = keep_mask(toks, bos, pad)  # [b, seq_len]
        yield torch.cat([x[keep], y[keep]], dim=1)  # [n_kept, d_in + d_out]


def harvest_pairs(model, corpus, in_hook: str, out_hook: str,
                  **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs as two tensors (x [n, d_in], y [n, d_out]).

    Takes the arguments of ``iter_activation_pairs``.
    """
    _check_pair_hook("in_hook", model, in_hook)
    d_in = hook_width(model, in_hook)
    rows = list(iter_activation_pairs(model, corpus, in_hook, out_hook, **kwargs))
    rows = torch.cat(rows) if rows else torch.empty(0)
    if rows.shape[0] == 0:
        raise ValueError("corpus yielded no activations (every position was BOS or padding)")
    return rows[:, :d_in], rows[:, d_in:]


def check_transcoder_widths(model, transcoder, layer: int) -> None:
    """Raise ValueError if the transcoder's d_in or d_out differs from block ``layer``'s MLP."""
    if not hasattr(getattr(transcoder, "cfg", None), "d_out"):
        raise ValueError(f"transcoder must be a saelab Transcoder, got {type(transcoder).__name__}")
    check_int_in_range("layer", layer, 0, model.cfg.n_layers - 1)
    in_hook, out_hook = mlp_hook_names(layer)
    for side, hook in (("d_in", in_hook), ("d_out", out_hook)):
        want, have = hook_width(model, hook), getattr(transcoder.cfg, side)
        if want != have:
            raise ValueError(f"transcoder has {side} = {have} but hook {hook!r} has width "
                             f"{want}; train the transcoder on layer {layer}'s MLP")


def transcoder_splice_hooks(transcoder, layer: int, keep: torch.Tensor | None = None):
    """Forward hooks replacing block ``layer``'s MLP output by the transcoder's prediction from
    the MLP input of the same pass (positions outside ``keep`` [b, pos] stay clean)."""
    if not hasattr(getattr(transcoder, "cfg", None), "d_out"):
        raise TypeError(f"transcoder must be a saelab Transcoder, got {type(transcoder).__name__}")
    check_int_in_range("layer", layer, 0)
    if keep is not None:
        check_tensor("keep", keep, 2, floating=False)
        if keep.dtype != torch.bool:
            raise TypeError(f"keep must be a bool mask [batch, pos], got dtype {keep.dtype}")
    in_hook, out_hook = mlp_hook_names(layer)
    store = {}

    def read_input(act, hook):
        store["x"] = act
        return act

    def replace_output(act, hook):
        x = store.pop("x")  # [b, pos, d_in]
        dtype = transcoder.W_enc.dtype
        y_hat = transcoder.predict(x.reshape(-1, x.shape[-1]).to(dtype)).reshape(act.shape)
        y_hat = y_hat.to(act.dtype)
        return y_hat if keep is None else torch.where(keep[..., None], y_hat, act)

    return [(in_hook, read_input), (out_hook, replace_output)]


@torch.no_grad()
def transcoder_ce_losses(model, transcoder, tokens: torch.Tensor, layer: int, *,
                         batch_size: int = 16, bos_token_id="auto",
                         pad_token_id="auto") -> CELosses:
    """CE clean, with block ``layer``'s MLP replaced by ``transcoder``, and with its MLP output
    zero-ablated (BOS, padding and position 0 stay clean, as in ``saelab.lm.ce_losses``)."""
    check_transcoder_widths(model, transcoder, layer)
    check_int_in_range("batch_size", batch_size, 1)
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long or tokens.ndim != 2:
        raise ValueError("tokens must be a LongTensor [n_windows, seq_len]")
    if not 2 <= tokens.shape[1] <= model.cfg.n_ctx:
        raise ValueError(f"tokens must have 2..n_ctx = {model.cfg.n_ctx} positions, "
                         f"got {tokens.shape[1]}")
    check_token_ids("tokens", tokens, model.cfg.d_vocab)
    bos, pad = _special_ids(model, bos_token_id, pad_token_id)
    out_hook = mlp_hook_names(layer)[1]
    sums, count = [0.0, 0.0, 0.0], 0
    for s in range(0, tokens.shape[0], batch_size):
        toks = tokens[s:s + batch_size].to(model.cfg.device)  # [b, seq_len]
        keep = keep_mask(toks, bos, pad)
        target_keep = keep_mask(toks, None, pad, drop_first=False)
        hooks = ([], transcoder_splice_hooks(transcoder, layer, keep),
                 [(out_hook, _zero_hook(keep))])
        for i, fwd_hooks in enumerate(hooks):
            total, n = _mean_ce(model, toks, target_keep, fwd_hooks)
            sums[i] += total
        count += n
    if count == 0:
        raise ValueError("tokens hold no scored positions (all padding?)")
    return CELosses(*(v / count for v in sums))
