"""What one SAE latent means: the contexts where it fires, how often, how strongly, and what it
writes to the logits.

    acts[w, t]     = f_i(act[hook] of window w at position t)       (0 at BOS and padding)
    density_i      = #{(w, t) kept : acts[w, t] > 0} / #kept
    logit effect_i = W_dec[i] @ W_U                                 # [d_vocab]

the feature dashboard of Bricken et al. (2023), "Towards Monosemanticity": top-activating
contexts with per-token activations, the activation histogram, firing density, and the tokens
whose logits the latent's decoder direction promotes or suppresses through the unembedding
(ignoring the final LayerNorm and later layers, as the dashboards do). Taught in Chapter 6.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

from saelab._checks import check_int_in_range, check_not_none, check_tensor
from saelab.lm.harvesting import _special_ids, keep_mask
from saelab.lm.hooks import check_hook_name, run_to_hook
from saelab.lm.splice import check_sae_width

__all__ = ["Context", "Histogram", "LogitEffect", "latent_activations", "top_contexts",
           "latent_density", "activation_histogram", "logit_effect", "token_strings"]


class Context(NamedTuple):
    """One top-activating context of a latent (Chapter 6)."""

    window: int  # index of the window in the token tensor
    position: int  # position of the peak within that window
    activation: float  # the latent's activation at the peak
    tokens: list  # token ids of the context, peak included
    acts: list  # the latent's activation on each of those tokens
    strings: list  # each token as text ("<id>" without a tokenizer)
    peak: int  # index of the peak within ``tokens``


class Histogram(NamedTuple):
    """Histogram of a latent's non-zero activations: ``counts[j]`` in ``[edges[j], edges[j+1])``."""

    counts: np.ndarray  # int array of shape (bins,)
    edges: np.ndarray  # float array of shape (bins + 1,)


class LogitEffect(NamedTuple):
    """Top-k tokens whose logits ``W_dec[i] @ W_U`` raises most and lowers most (Chapter 6)."""

    promoted_ids: list
    promoted_values: list
    promoted_strings: list
    suppressed_ids: list
    suppressed_values: list
    suppressed_strings: list


def token_strings(model, ids) -> list[str]:
    """Each token id as its text (``"<id>"`` when the model has no tokenizer)."""
    check_not_none("ids", ids, "a sequence of token ids")
    try:
        ids = [int(i) for i in ids]
    except (TypeError, ValueError) as err:
        raise TypeError(f"ids must be a sequence of integer token ids, got {ids!r}") from err
    if getattr(model, "tokenizer", None) is None:
        return [f"<{i}>" for i in ids]
    return [model.tokenizer.decode([i]) for i in ids]


@torch.no_grad()
def latent_activations(model, sae, tokens: torch.Tensor, hook_name: str, latents: Sequence[int],
                       *, batch_size: int = 16, bos_token_id="auto",
                       pad_token_id="auto") -> torch.Tensor:
    """Activations of the chosen latents on every token: [n_windows, seq_len, len(latents)].

    BOS and padding positions (and position 0) read 0, as they are never harvested.
    """
    check_hook_name(model, hook_name)
    check_sae_width(model, sae, hook_name)
    latents = [check_int_in_range("latents", int(i), 0, sae.cfg.d_sae - 1) for i in latents]
    bos, pad = _special_ids(model, bos_token_id, pad_token_id)
    dtype = sae.W_enc.dtype
    out = []
    for s in range(0, tokens.shape[0], batch_size):
        toks = tokens[s:s + batch_size].to(model.cfg.device)  # [b, seq_len]
        act = run_to_hook(model, toks, hook_name)  # [b, seq_len, d]
        f = sae.encode(act.reshape(-1, act.shape[-1]).to(dtype))  # [b * seq_len, d_sae]
        f = f[:, latents].reshape(*toks.shape, len(latents))  # [b, seq_len, n_latents]
        out.append(f * keep_mask(toks, bos, pad)[..., None])
    return torch.cat(out).cpu()  # [n_windows, seq_len, n_latents]


def top_contexts(model, tokens: torch.Tensor, acts: torch.Tensor, k: int = 10,
                 left: int = 8, right: int = 2) -> list[Context]:
    """The ``k`` positions where one latent is largest, each with ``left``/``right`` neighbours.

    ``acts`` is [n_windows, seq_len] (one latent's column of ``latent_activations``). Positions
    where the latent is 0 are never returned, so fewer than ``k`` contexts may come back.
    """
    if acts.shape != tokens.shape:
        raise ValueError(f"acts must have the shape of tokens {tuple(tokens.shape)}, "
                         f"got {tuple(acts.shape)}")
    check_int_in_range("k", k, 1)
    flat = acts.reshape(-1)
    values, idx = flat.topk(min(k, flat.numel()))
    contexts = []
    for v, i in zip(values.tolist(), idx.tolist()):
        if v <= 0:
            break
        w, t = divmod(i, acts.shape[1])
        lo, hi = max(0, t - left), min(acts.shape[1], t + right + 1)
        ids = tokens[w, lo:hi].tolist()
        contexts.append(Context(w, t, v, ids, acts[w, lo:hi].tolist(),
                                token_strings(model, ids), t - lo))
    return contexts


def latent_density(acts: torch.Tensor, keep: torch.Tensor) -> float:
    """Fraction of kept tokens (``keep`` bool, same shape as ``acts``) where the latent fires."""
    check_tensor("acts", acts, finite=False)
    check_tensor("keep", keep, floating=False)
    if keep.dtype != torch.bool or keep.shape != acts.shape:
        raise ValueError(f"keep must be a bool tensor of the shape of acts {tuple(acts.shape)}, "
                         f"got {keep.dtype} {tuple(keep.shape)}")
    n = int(keep.sum())
    if n == 0:
        raise ValueError("keep selects no tokens")
    return float(((acts > 0) & keep).sum()) / n


def activation_histogram(acts: torch.Tensor, bins: int = 30) -> Histogram:
    """Histogram of a latent's non-zero activations (zeros would swamp it; see the density)."""
    check_int_in_range("bins", bins, 1)
    check_tensor("acts", acts, finite=False, nonempty=False)
    nz = acts[acts > 0].double().cpu().numpy()
    if nz.size == 0:
        return Histogram(np.zeros(bins, dtype=np.int64), np.linspace(0.0, 1.0, bins + 1))
    counts, edges = np.histogram(nz, bins=bins)
    return Histogram(counts, edges)


@torch.no_grad()
def logit_effect(model, sae, latent: int, k: int = 10) -> LogitEffect:
    """Tokens whose logits latent ``latent``'s decoder row promotes and suppresses: ``W_dec[i] @ W_U``."""
    check_int_in_range("latent", latent, 0, sae.cfg.d_sae - 1)
    check_int_in_range("k", k, 1, model.cfg.d_vocab)
    if sae.cfg.d_in != model.W_U.shape[0]:
        raise ValueError(f"sae has d_in = {sae.cfg.d_in} but the unembedding reads d_model = "
                         f"{model.W_U.shape[0]}: the logit effect needs a residual-stream SAE")
    W_U = model.W_U
    effect = sae.W_dec[latent].to(W_U) @ W_U  # [d_vocab]
    up_v, up_i = effect.topk(k)
    down_v, down_i = (-effect).topk(k)
    return LogitEffect(up_i.tolist(), up_v.tolist(), token_strings(model, up_i.tolist()),
                       down_i.tolist(), (-down_v).tolist(), token_strings(model, down_i.tolist()))
