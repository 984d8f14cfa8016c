"""Steering: add a latent's decoder direction to the residual stream and watch the output change.

    act[hook] <- act[hook] + alpha * W_dec[i]          at every position, during generation
    control:    act[hook] <- act[hook] + alpha * r,    r random with ||r|| = ||W_dec[i]||

Activation addition (Turner et al. 2023, arXiv:2308.10248) with SAE directions, as in Templeton
et al. (2024), "Scaling Monosemanticity". The random direction of equal norm is the control: a
latent that means something moves the output toward its promoted tokens, noise of the same size
does not. Taught in Chapter 6.
"""
from __future__ import annotations

import torch

from saelab._checks import check_int_in_range, check_real, check_tensor
from saelab.lm.hooks import check_hook_name

__all__ = ["steering_hook", "random_direction", "steered_logits", "generate_steered"]


def steering_hook(direction: torch.Tensor, alpha: float):
    """A TransformerLens hook adding ``alpha * direction`` [d] to the activation at every position."""

    check_tensor("direction", direction, 1, finite=True)
    alpha = check_real("alpha", alpha)
    def hook(act, hook):
        return act + alpha * direction.to(act)  # [b, pos, d]

    return hook


def random_direction(direction: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A uniformly random direction with the norm of ``direction`` (the steering control)."""
    check_tensor("direction", direction, 1, finite=True)
    check_int_in_range("seed", seed, 0)
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(direction.shape, generator=g, dtype=torch.float64)
    r = r / r.norm() * direction.detach().double().cpu().norm()
    return r.to(direction)


def _check(model, hook_name, direction):
    check_hook_name(model, hook_name)
    check_tensor("direction", direction, finite=True)
    if direction.ndim != 1 or direction.shape[0] != model.cfg.d_model:
        raise ValueError(f"direction must have shape ({model.cfg.d_model},) (d_model), "
                         f"got {tuple(direction.shape)}")


@torch.no_grad()
def steered_logits(model, tokens: torch.Tensor, hook_name: str, direction: torch.Tensor,
                   alpha: float) -> torch.Tensor:
    """Logits [b, pos, d_vocab] with ``alpha * direction`` added at ``hook_name``."""
    _check(model, hook_name, direction)
    return model.run_with_hooks(tokens, fwd_hooks=[(hook_name, steering_hook(direction, alpha))])


@torch.no_grad()
def generate_steered(model, prompt, hook_name: str, direction: torch.Tensor, alpha: float, *,
                     max_new_tokens: int = 20, do_sample: bool = False, temperature: float = 1.0,
                     seed: int = 0, **generate_kwargs):
    """``model.generate`` with ``alpha * direction`` added at ``hook_name`` (Chapter 6).

    ``prompt`` is a string (needs a tokenizer) or tokens [b, pos]; the return type follows
    ``model.generate`` (a string for a string prompt, tokens otherwise). ``do_sample=False`` is
    greedy; with sampling, ``seed`` makes the text reproducible. ``alpha=0`` is the unsteered run.
    """
    _check(model, hook_name, direction)
    check_int_in_range("max_new_tokens", max_new_tokens, 1)
    if isinstance(prompt, str) and model.tokenizer is None:
        raise ValueError("model has no tokenizer: pass the prompt as tokens [b, pos]")
    generate_kwargs.setdefault("stop_at_eos", model.tokenizer is not None)  # no EOS id without one
    torch.manual_seed(seed)
    with model.hooks(fwd_hooks=[(hook_name, steering_hook(direction, alpha))]):
        return model.generate(prompt, max_new_tokens=max_new_tokens, do_sample=do_sample,
                              temperature=temperature, verbose=False, **generate_kwargs)
