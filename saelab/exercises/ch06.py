"""Exercise checkers for Chapter 6 (an SAE on a real language model).

Three exercises, each run on fixed inputs and compared with the library:

* ``fvu_on_batch(x, x_hat)``: the fraction of variance unexplained of one batch of residual-stream
  activations [batch, d_model], centred by the batch mean, in float64, compared with
  :func:`saelab.metrics.fvu`. Residual streams have a large mean, so the wrong variants land far
  from the right value.
* ``make_splice_hook(sae)``: a TransformerLens hook that replaces the activation [batch, pos, d]
  by the SAE's reconstruction, compared with :func:`saelab.lm.splice_hook` through the logits of
  a small GPT-2-shaped model.
* ``make_steering_hook(direction, alpha)``: a hook that adds ``alpha * direction`` at every
  position, compared with :func:`saelab.lm.steering_hook` the same way.

Taught in Chapter 6.
"""
from __future__ import annotations

import numpy as np
import torch

from saelab import metrics
from saelab.exercises import checking
from saelab.exercises.checking import ExerciseFailed

__all__ = ["fvu_on_batch", "make_splice_hook", "make_steering_hook"]

HOOK = "blocks.1.hook_resid_pre"  # where the checkers' small model is spliced and steered


def _reference_fvu_on_batch(x, x_hat) -> float:
    """The reference answer to ``fvu_on_batch``: :func:`saelab.metrics.fvu` in float64."""
    return float(metrics.fvu(checking.to_numpy(x), checking.to_numpy(x_hat)))


def _reference_splice_hook(sae):
    from saelab.lm import splice_hook
    return splice_hook(sae)


def _reference_steering_hook(direction, alpha):
    from saelab.lm import steering_hook
    return steering_hook(direction, alpha)


#: Reference solutions, used by learner notebooks when later cells need an exercise's function
#: and the learner has not solved it yet (see checking.yours_or_reference).
REFERENCES = {
    "fvu_on_batch": _reference_fvu_on_batch,
    "make_splice_hook": _reference_splice_hook,
    "make_steering_hook": _reference_steering_hook,
}


def _residual_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Activations with a large shared mean (as in a residual stream) and a noisy reconstruction."""
    g = torch.Generator().manual_seed(6001)
    mean = 4.0 * torch.randn(16, generator=g)
    x = mean + torch.randn(64, 16, generator=g) * torch.linspace(0.3, 2.0, 16)  # [64, 16]
    x_hat = x + 0.5 * torch.randn(64, 16, generator=g)
    return x.float(), x_hat.float()


def fvu_on_batch(fn) -> None:
    """Check ``fn(x, x_hat) -> float``: sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 over a batch."""
    name = "fvu_on_batch"
    x, x_hat = _residual_batch()
    got = checking.call_student(name, fn, x.clone(), x_hat.clone())
    x64, xh64 = x.double().numpy(), x_hat.double().numpy()
    per_dim = float(np.mean(((x64 - xh64) ** 2).sum(0) / ((x64 - x64.mean(0)) ** 2).sum(0)))
    checking.expect_close(name, got, metrics.fvu(x64, xh64), {
        "you divided by sum ||x||^2, the variance about zero: centre x by its mean over the batch "
        "(the residual stream's large mean makes this look far too good)":
            metrics.fvu_wrong_uncentered(x64, xh64),
        "the denominator subtracts the square of the mean of squares: subtract the mean vector "
        "first, then square": metrics.fvu_wrong_mean_of_squares(x64, xh64),
        "you averaged one ratio per token: sum the errors over the batch and divide by the summed "
        "variance once": metrics.fvu_wrong_per_token_ratio(x64, xh64),
        "you averaged one ratio per dimension: divide the total error by the total variance":
            per_dim,
        "you returned the explained variance (1 - FVU)": 1 - metrics.fvu(x64, xh64),
    }, rtol=1e-6, atol=1e-9, what="the FVU")
    checking.passed(name)


def _model_and_sae():
    from saelab.lm import gpt2_like_config
    from saelab.sae_config import TopKConfig
    from saelab.torch_sae import TopKSAE
    from transformer_lens import HookedTransformer

    model = HookedTransformer(gpt2_like_config(n_layers=2, d_model=32, n_heads=4, n_ctx=16,
                                               d_vocab=64, seed=6002))
    model.eval()
    torch.manual_seed(6003)
    sae = TopKSAE(TopKConfig(d_in=32, d_sae=64, k=4))
    with torch.no_grad():
        sae.b_dec.normal_()  # a non-zero b_dec: forgetting it changes the reconstruction
    tokens = torch.randint(1, 64, (3, 12), generator=torch.Generator().manual_seed(6004))
    return model, sae, tokens


def _logits(model, tokens, hook):
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=[(HOOK, hook)])


def _student_hook(name, make, *args):
    hook = checking.call_student(name, make, *args)
    if not callable(hook):
        raise ExerciseFailed(f"{name}: return the hook function itself (a function of "
                             f"(act, hook)), got {type(hook).__name__}")
    return hook


def _check_logits(name, model, tokens, hook, want, wrong):
    try:
        got = _logits(model, tokens, hook)
    except Exception as exc:
        raise ExerciseFailed(
            f"{name}: running the model with your hook raised {type(exc).__name__}: {exc}. The "
            f"hook receives act of shape [batch, pos, d_model] and must return a tensor of the "
            f"same shape") from exc
    checking.expect_close(name, got, want, wrong, rtol=1e-4, atol=1e-4,
                          what="the model's output")


def make_splice_hook(fn) -> None:
    """Check ``fn(sae) -> hook``: the hook returns ``sae``'s reconstruction of ``act``, same shape."""
    from saelab.lm import splice_hook

    name = "make_splice_hook"
    model, sae, tokens = _model_and_sae()
    hook = _student_hook(name, fn, sae)

    def variant(transform):
        def h(act, hook):
            flat = act.reshape(-1, act.shape[-1])
            return transform(flat).reshape(act.shape)
        return _logits(model, tokens, h)

    with torch.no_grad():
        wrong = {
            "your hook leaves the activation unchanged: return the reconstruction x_hat":
                _logits(model, tokens, lambda act, hook: act),
            "you returned the reconstruction error x - x_hat; return x_hat itself":
                variant(lambda x: x - sae(x).x_hat),
            "the reconstruction misses b_dec: use sae(x).x_hat (or decode(encode(x)), which adds "
            "b_dec)": variant(lambda x: sae.encode(x) @ sae.W_dec),
            "you zeroed the activation: that is the zero-ablation baseline, not the splice":
                _logits(model, tokens, lambda act, hook: torch.zeros_like(act)),
        }
        _check_logits(name, model, tokens, hook, _logits(model, tokens, splice_hook(sae)), wrong)
    checking.passed(name)


def make_steering_hook(fn) -> None:
    """Check ``fn(direction, alpha) -> hook``: the hook adds ``alpha * direction`` everywhere."""
    from saelab.lm import steering_hook

    name = "make_steering_hook"
    model, sae, tokens = _model_and_sae()
    direction, alpha = sae.W_dec[5].detach() * 3.0, 2.5  # norm 3, not 1: normalising shows
    hook = _student_hook(name, fn, direction.clone(), alpha)

    def at_last(act, hook):
        act = act.clone()
        act[:, -1] += alpha * direction
        return act

    with torch.no_grad():
        wrong = {
            "you added the direction without multiplying by alpha":
                _logits(model, tokens, steering_hook(direction, 1.0)),
            "you added the direction only at the last position: add it at every position "
            "(broadcast over batch and pos)": _logits(model, tokens, at_last),
            "you normalised the direction: add alpha * direction as given":
                _logits(model, tokens, steering_hook(direction / direction.norm(), alpha)),
            "you subtracted the direction: steering adds it": _logits(
                model, tokens, steering_hook(direction, -alpha)),
            "you replaced the activation by alpha * direction: add it to the activation": _logits(
                model, tokens, lambda act, hook: (alpha * direction).expand_as(act).clone()),
        }
        _check_logits(name, model, tokens, hook,
                      _logits(model, tokens, steering_hook(direction, alpha)), wrong)
    checking.passed(name)
