"""Hook points of a TransformerLens model: checking a hook name, its width, and reading the
activations at a hook without running the layers after it.

Hook names are module paths (``blocks.6.hook_resid_pre``); ``check_hook_name`` rejects unknown
names and lists the valid ones that are close. ``run_to_hook`` is the one forward pass every
Chapter 6 tool uses (harvesting, splicing, dashboards). Taught in Chapter 6.
"""
from __future__ import annotations

import difflib

import torch

from saelab._checks import check_not_none, check_token_ids

__all__ = ["run_to_hook", "check_hook_name", "default_hook_name", "hook_width"]

# Hooks whose activations are not indexed [batch, pos, ...]: no per-token SAE input.
_NOT_PER_TOKEN = ("hook_attn_scores", "hook_pattern")


def _check_model(model) -> None:
    check_not_none("model", model, "a TransformerLens HookedTransformer (see saelab.lm.load_model)")
    if not hasattr(model, "hook_dict") or not hasattr(model, "cfg"):
        raise TypeError(f"model must be a TransformerLens HookedTransformer, got "
                        f"{type(model).__name__}")


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass at the hook's layer."""


@torch.no_grad()
def run_to_hook(model, tokens: torch.Tensor, hook_name: str) -> torch.Tensor:
    """Activations at ``hook_name`` for ``tokens`` [b, pos]; the layers after it never run.

    Returns [b, pos, d]: trailing dims of per-head hooks (``hook_z`` [b, pos, head, d_head]) are
    flattened into one.
    """
    check_hook_name(model, hook_name)
    check_token_ids("tokens", tokens, model.cfg.d_vocab)
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be 2-dimensional [batch, pos], got shape "
                         f"{tuple(tokens.shape)}")
    store = {}

    def grab(act, hook):
        store["act"] = act.detach()
        raise _StopForward

    try:
        model.run_with_hooks(tokens, fwd_hooks=[(hook_name, grab)])
    except _StopForward:
        pass
    if "act" not in store:
        raise ValueError(f"hook_name {hook_name!r} did not fire in the forward pass")
    act = store["act"]
    return act.reshape(*act.shape[:2], -1)  # [b, pos, d]


def default_hook_name(model) -> str:
    """The middle residual stream, ``blocks.{n_layers // 2}.hook_resid_pre``: the site Chapter 6 uses.

    For GPT-2 small (12 layers) this is ``blocks.6.hook_resid_pre``, for saelab-tiny (4 layers)
    ``blocks.2.hook_resid_pre``.
    """
    _check_model(model)
    return f"blocks.{model.cfg.n_layers // 2}.hook_resid_pre"


def check_hook_name(model, hook_name: str) -> str:
    """Return ``hook_name`` if ``model`` has that hook point and its activations are per token.

    Unknown names raise ``ValueError`` listing the valid names that are close (difflib).
    """
    _check_model(model)
    if not isinstance(hook_name, str) or hook_name not in model.hook_dict:
        close = difflib.get_close_matches(str(hook_name), list(model.hook_dict), n=5, cutoff=0.5)
        hint = f"close valid names: {close}" if close else (
            f"valid names look like {list(model.hook_dict)[:3]} (see model.hook_dict)")
        raise ValueError(f"hook_name {hook_name!r} is not a hook of this model; {hint}")
    if hook_name.endswith(_NOT_PER_TOKEN):
        raise ValueError(f"hook_name {hook_name!r} holds attention scores [batch, head, query, "
                         f"key], not one vector per token; choose a residual, MLP or attention "
                         f"output hook")
    return hook_name


@torch.no_grad()
def hook_width(model, hook_name: str) -> int:
    """Width of one token's activation at ``hook_name`` (trailing dims flattened), by a probe pass."""
    check_hook_name(model, hook_name)
    probe = torch.zeros(1, 1, dtype=torch.long, device=model.cfg.device)
    return int(run_to_hook(model, probe, hook_name).shape[-1])
