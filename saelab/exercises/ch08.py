"""Exercise checkers for Chapter 8 (transcoders and attribution graphs).

* ``transcoder_loss(x, y, W_enc, b_enc, W_dec, b_dec, k)``: the TopK transcoder's loss
  ``mean_b ||y_b - (ReLU(TopK_k(x_b W_enc + b_enc)) W_dec + b_dec)||^2``. Compared with
  :class:`saelab.torch_sae.Transcoder`.
* ``edge_weight(a_s, d_s, w_enc_t, sigma_q, alpha, sigma1_p, W_OV, same_position)``: the direct
  edge from a latent (activation a_s, decoder row d_s) to a later latent's pre-activation
  (encoder column w_enc_t) through the residual stream and one attention head with a frozen
  pattern weight alpha, LayerNorm scales frozen. Compared with autograd in torch.
* ``ablation_summary(predicted, measured, top_change, random_changes)``: the Pearson correlation
  of predicted and measured effects, and |top_change| / mean |random change|.

Each wrong answer is compared with common mistakes and the message names the one it matches.
Taught in Chapter 8.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from saelab.exercises import checking

__all__ = ["transcoder_loss", "edge_weight", "ablation_summary"]


def _transcoder_inputs():
    rng = np.random.default_rng(8008)
    batch, d_in, d_sae, d_out = 12, 6, 10, 4  # d_out != d_in on purpose
    return (rng.standard_normal((batch, d_in)), rng.standard_normal((batch, d_out)),
            rng.standard_normal((d_in, d_sae)), 0.3 * rng.standard_normal(d_sae) - 2.0,
            rng.standard_normal((d_sae, d_out)), 0.5 * rng.standard_normal(d_out), 3)


def _np_loss(x, y, W_enc, b_enc, W_dec, b_dec, k, topk=True, relu=True, bias=True,
             by_abs=False):
    pre = x @ W_enc + b_enc
    f = np.zeros_like(pre)
    score = np.abs(pre) if by_abs else pre
    idx = np.argsort(-score, axis=1)[:, :k] if topk else np.tile(np.arange(pre.shape[1]),
                                                                   (len(pre), 1))
    rows = np.arange(len(pre))[:, None]
    f[rows, idx] = np.maximum(pre[rows, idx], 0) if relu else pre[rows, idx]
    y_hat = f @ W_dec + (b_dec if bias else 0)
    return ((y - y_hat) ** 2).sum(axis=1).mean()


def transcoder_loss(fn: Callable) -> None:
    """Check ``fn(x, y, W_enc, b_enc, W_dec, b_dec, k) -> float``. Chapter 8."""
    from saelab.torch_sae.transcoder import Transcoder, TranscoderConfig

    name = "transcoder_loss"
    x, y, W_enc, b_enc, W_dec, b_dec, k = _transcoder_inputs()
    got = checking.call_student(name, fn, x.copy(), y.copy(), W_enc.copy(), b_enc.copy(),
                                W_dec.copy(), b_dec.copy(), k)
    tc = Transcoder(TranscoderConfig(d_in=6, d_sae=10, d_out=4, k=k), dtype=torch.float64)
    with torch.no_grad():
        for pname, value in (("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec),
                             ("b_dec", b_dec)):
            getattr(tc, pname).copy_(torch.from_numpy(value))
        want = tc(torch.from_numpy(x), target=torch.from_numpy(y)).recon_loss
    args = (x, y, W_enc, b_enc, W_dec, b_dec, k)
    mistakes = {
        "you kept every latent: keep only the k largest pre-activations per row (TopK).":
            _np_loss(*args, topk=False),
        "you left out the ReLU: a kept pre-activation that is negative must become 0.":
            _np_loss(*args, relu=False),
        "you chose the k largest |pre-activations|; TopK keeps the k largest values.":
            _np_loss(*args, by_abs=True),
        "you left out b_dec: the prediction is f @ W_dec + b_dec.": _np_loss(*args, bias=False),
        "you averaged the squared error over d_out too; sum over d_out, mean over the batch.":
            _np_loss(*args) / y.shape[1],
    }
    checking.expect_close(name, got, want, mistakes, what="the transcoder loss")
    checking.passed(name)


def _edge_inputs():
    rng = np.random.default_rng(8118)
    d = 8
    return dict(a_s=2.5, d_s=rng.standard_normal(d), w_enc_t=rng.standard_normal(d),
                sigma_q=1.7, alpha=0.4, sigma1_p=2.2, W_OV=0.5 * rng.standard_normal((d, d)),
                same_position=True)


def _edge_reference(a_s, d_s, w_enc_t, sigma_q, alpha, sigma1_p, W_OV, same_position):
    """Autograd through the frozen computation: latent -> residual -> (head) -> LN2 -> encoder."""
    f = torch.tensor(a_s, dtype=torch.float64, requires_grad=True)
    d_s, w, W = (torch.as_tensor(v, dtype=torch.float64) for v in (d_s, w_enc_t, W_OV))
    write = f * d_s  # what the source latent adds to the residual stream at its position
    centre = lambda v: v - v.mean()  # noqa: E731  LayerNorm's centring (scale frozen)
    head = alpha * (centre(write) / sigma1_p) @ W  # frozen pattern weight, LN1 scale frozen
    resid_q = (write if same_position else 0) + head
    pre = (centre(resid_q) / sigma_q) @ w
    (grad,) = torch.autograd.grad(pre, f)
    return float(grad) * a_s


def _edge_variant(a_s, d_s, w_enc_t, sigma_q, alpha, sigma1_p, W_OV, same_position,
                  centre=True, scale=True, head=True, resid=True, act=True):
    c = (lambda v: v - v.mean()) if centre else (lambda v: v)
    s1, sq = (sigma1_p, sigma_q) if scale else (1.0, 1.0)
    v = (d_s if same_position and resid else 0 * d_s) + (alpha * (c(d_s) / s1) @ W_OV if head
                                                          else 0 * d_s)
    return (a_s if act else 1.0) * float((c(v) / sq) @ w_enc_t)


def edge_weight(fn: Callable) -> None:
    """Check ``fn(a_s, d_s, w_enc_t, sigma_q, alpha, sigma1_p, W_OV, same_position)``. Ch. 8."""
    name = "edge_weight"
    for same in (True, False):
        kw = {**_edge_inputs(), "same_position": same}
        got = checking.call_student(name, fn, **{k: (v.copy() if isinstance(v, np.ndarray)
                                                     else v) for k, v in kw.items()})
        want = _edge_reference(**kw)
        mistakes = {
            "you left out LayerNorm's centring: subtract the mean over d_model before the "
            "frozen scale (the scale is frozen, the centring is still linear).":
                _edge_variant(**kw, centre=False),
            "you left out a frozen LayerNorm scale (divide by sigma1_p before the head and by "
            "sigma_q before the encoder).": _edge_variant(**kw, scale=False),
            "you left out the attention path: the head moves alpha * LN1(d_s) @ W_OV to the "
            "target position.": _edge_variant(**kw, head=False),
            "you left out the residual path: at the same position the decoder row reaches the "
            "target directly.": _edge_variant(**kw, resid=False),
            "an edge is the activation times the derivative: multiply by a_s.":
                _edge_variant(**kw, act=False),
        }
        checking.expect_close(name, got, want, mistakes, what=f"the edge (same_position={same})")
    checking.passed(name)


def _ablation_inputs():
    rng = np.random.default_rng(8228)
    predicted = rng.standard_normal(20)
    measured = 0.6 * predicted + 0.5 * rng.standard_normal(20)
    return predicted, measured, -3.2, rng.normal(0.0, 0.2, 30)


def _reference_ablation_summary(predicted, measured, top_change, random_changes):
    """(corr(predicted, measured), |top_change| / mean |random change|): the reference."""
    corr = float(np.corrcoef(predicted, measured)[0, 1])
    return corr, abs(top_change) / float(np.abs(random_changes).mean())


def ablation_summary(fn: Callable) -> None:
    """Check ``fn(predicted, measured, top_change, random_changes) -> (corr, ratio)``. Ch. 8."""
    name = "ablation_summary"
    p, m, top, rand = _ablation_inputs()
    got = checking.call_student(name, fn, p.copy(), m.copy(), top, rand.copy())
    want = np.array(_reference_ablation_summary(p, m, top, rand))
    corr = want[0]
    mistakes = {
        "you averaged the random changes with their signs, so they cancel: use the mean of "
        "their absolute values.": np.array([corr, abs(top) / abs(rand.mean())]),
        "np.corrcoef returns a 2x2 matrix; the correlation is the off-diagonal entry [0, 1].":
            np.array([1.0, want[1]]),
        "you correlated absolute values; the sign of an effect is part of the prediction.":
            np.array([np.corrcoef(np.abs(p), np.abs(m))[0, 1], want[1]]),
        "you divided by the largest random change; the control is the mean |random change|.":
            np.array([corr, abs(top) / np.abs(rand).max()]),
    }
    checking.expect_close(name, np.asarray(got, dtype=np.float64).ravel(), want, mistakes,
                          what="(correlation, ratio)")
    checking.passed(name)


# Reference solutions of the exercises whose functions later cells use: a learner notebook falls
# back to them while the learner's own function is not written or does not pass its check.
REFERENCES = {"ablation_summary": _reference_ablation_summary}
