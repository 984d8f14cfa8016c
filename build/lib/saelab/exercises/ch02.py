"""Exercise checkers for Chapter 2 (a sparse autoencoder from scratch).

Three exercises, each checked against the library on fixed float64 inputs:

* ``l1_sae_backward(x, params, l1_coeff)``: the hand-derived gradients of the L1 SAE loss

      L = mean_b ||x_b - x_hat_b||^2 + l1_coeff * mean_b sum_i f_bi ||W_dec,i||

  (the decoder-norm-weighted penalty of Anthropic's April 2024 update), compared with
  :meth:`saelab.numpy_sae.L1SAE.backward`.
* ``project_decoder_grad(W_dec, grad_W_dec)``: remove from each row of the decoder gradient its
  component along that decoder row, compared with :meth:`saelab.numpy_sae.BaseSAE.remove_parallel_grad`.
* ``topk_relu(pre_acts, k)``: keep the k largest pre-activations of each row, ReLU, zeros
  elsewhere (Gao et al. 2024), compared with :func:`saelab.numpy_sae.topk_relu`.

A wrong answer is compared with answers produced by common mistakes (a missing ReLU mask, b_dec's
forgotten encoder path, a sum where the mean belongs, a projection along columns, the smallest
instead of the largest pre-activations, ...) and the message names the one it matches.
Taught in Chapter 2.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from saelab.exercises import checking
from saelab.exercises.checking import ExerciseFailed

__all__ = ["l1_sae_backward", "project_decoder_grad", "topk_relu"]

PARAM_ORDER = ("W_dec", "b_dec", "b_enc", "W_enc")  # order in which a wrong gradient is diagnosed
L1_COEFF = 0.3  # lambda for the backward exercise: large enough that a wrong L1 term shows


# ----------------------------------------------------------------------------------------------
# Fixed inputs
# ----------------------------------------------------------------------------------------------

def _l1_inputs() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A small float64 problem: about half the pre-activations negative, none near the kink."""
    rng = np.random.default_rng(2002)
    batch, d_in, d_sae = 8, 6, 10
    x = rng.standard_normal((batch, d_in))
    W_dec = rng.standard_normal((d_sae, d_in))
    W_dec *= rng.uniform(0.5, 2.0, size=(d_sae, 1)) / np.linalg.norm(W_dec, axis=1, keepdims=True)
    params = {
        "W_enc": 0.5 * rng.standard_normal((d_in, d_sae)),
        "b_enc": 0.3 * rng.standard_normal(d_sae),
        "W_dec": W_dec,  # row norms in [0.5, 2]: a penalty that ignores them is visibly wrong
        "b_dec": 0.5 * rng.standard_normal(d_in),
    }
    pre = (x - params["b_dec"]) @ params["W_enc"] + params["b_enc"]
    assert np.abs(pre).min() > 1e-3, "pick another seed: a pre-activation sits on the ReLU kink"
    return x, params


def _projection_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Decoder rows of different norms (not unit) and a non-square shape."""
    rng = np.random.default_rng(2003)
    d_sae, d_in = 7, 5
    W_dec = rng.standard_normal((d_sae, d_in))
    W_dec *= rng.uniform(0.5, 2.0, size=(d_sae, 1)) / np.linalg.norm(W_dec, axis=1, keepdims=True)
    return W_dec, rng.standard_normal((d_sae, d_in))


def _topk_inputs() -> tuple[np.ndarray, int]:
    """Continuous pre-activations; some rows have fewer than k positive entries."""
    rng = np.random.default_rng(2004)
    batch, d_sae, k = 8, 12, 3
    shift = np.array([0.8, 0.0, -0.6, -1.5, 0.3, -2.5, 1.0, 0.5])[:, None]  # rows 3, 5: < k > 0
    pre = rng.standard_normal((batch, d_sae)) + shift
    return pre, k


# ----------------------------------------------------------------------------------------------
# Gradients of the L1 SAE, with switches that reproduce common mistakes
# ----------------------------------------------------------------------------------------------

def _l1_grads(x, p, l1_coeff, *, relu_mask=True, b_dec_encoder_path=1.0, recon_sign=1.0,
              batch_mean=True, factor_two=True, scale_l1_by_norm=True, norm_term_in_W_dec=True,
              centre_x=True) -> dict[str, np.ndarray]:
    """dL/dparam with every switch at its default; each switch flipped is one known mistake."""
    batch = x.shape[0]
    x_c = x - p["b_dec"]  # (batch, d_in)
    pre = x_c @ p["W_enc"] + p["b_enc"]  # (batch, d_sae)
    f = np.maximum(pre, 0.0)  # (batch, d_sae)
    x_hat = f @ p["W_dec"] + p["b_dec"]  # (batch, d_in)
    norms = np.linalg.norm(p["W_dec"], axis=1)  # (d_sae,)
    scale = 1.0 / batch if batch_mean else 1.0
    grad_x_hat = recon_sign * (2.0 if factor_two else 1.0) * scale * (x_hat - x)  # (batch, d_in)
    g = {"W_dec": f.T @ grad_x_hat, "b_dec": grad_x_hat.sum(axis=0)}
    grad_f = grad_x_hat @ p["W_dec"].T + l1_coeff * scale * (norms if scale_l1_by_norm else 1.0)
    if norm_term_in_W_dec:
        g["W_dec"] = g["W_dec"] + l1_coeff * scale * f.sum(axis=0)[:, None] * p["W_dec"] / norms[:, None]
    grad_pre = grad_f * (pre > 0) if relu_mask else grad_f  # (batch, d_sae)
    g["W_enc"] = (x_c if centre_x else x).T @ grad_pre  # (d_in, d_sae)
    g["b_enc"] = grad_pre.sum(axis=0)  # (d_sae,)
    g["b_dec"] = g["b_dec"] - b_dec_encoder_path * (p["W_enc"] @ grad_pre.sum(axis=0))
    return g


_L1_MISTAKES: tuple[tuple[str, dict], ...] = (
    ("the gradients are B times too large (B = batch size): the loss is a mean over the batch, "
     "so every term carries a 1/B. Did you sum over the batch instead of averaging?",
     dict(batch_mean=False)),
    ("the reconstruction gradient has the wrong sign: dL/dx_hat = (2/B) (x_hat - x), not "
     "(2/B) (x - x_hat).", dict(recon_sign=-1.0)),
    ("the reconstruction part is half the right size: the derivative of ||x - x_hat||^2 with "
     "respect to x_hat is 2 (x_hat - x); keep the factor 2.", dict(factor_two=False)),
    ("the encoder gradients ignore the ReLU: multiply dL/df by the mask 1[pre_acts > 0] to get "
     "dL/dpre_acts. A latent that is off passes no gradient back to W_enc and b_enc.",
     dict(relu_mask=False)),
    ("dL/db_dec only has the decoder path. b_dec also enters the encoder through (x - b_dec), "
     "so add -W_enc @ sum_b dL/dpre_acts (note the minus sign).", dict(b_dec_encoder_path=0.0)),
    ("the encoder path of b_dec has the wrong sign: pre_acts = (x - b_dec) W_enc + b_enc, so "
     "that term is -W_enc @ sum_b dL/dpre_acts.", dict(b_dec_encoder_path=-1.0)),
    ("dL/dW_enc uses x, but the encoder sees x - b_dec: dL/dW_enc = (x - b_dec)^T dL/dpre_acts.",
     dict(centre_x=False)),
    ("the L1 term is treated as if every decoder row had norm 1. With the weighted penalty "
     "lambda * mean_b sum_i f_bi ||W_dec,i||, dL/df gets lambda ||W_dec,i|| / B and dL/dW_dec gets "
     "lambda/B * (sum_b f_bi) W_dec,i / ||W_dec,i||.",
     dict(scale_l1_by_norm=False, norm_term_in_W_dec=False)),
    ("dL/dW_dec is missing the sparsity term: the penalty lambda * mean_b sum_i f_bi ||W_dec,i|| "
     "depends on W_dec too. Add lambda/B * (sum_b f_bi) * W_dec,i / ||W_dec,i|| to row i.",
     dict(norm_term_in_W_dec=False)),
    ("the L1 term in dL/df is not scaled by the decoder norms: it is lambda * ||W_dec,i|| / B "
     "for latent i, not lambda / B.", dict(scale_l1_by_norm=False)),
)


def _reference_l1_grads(x, params, l1_coeff) -> dict[str, np.ndarray]:
    """The library's hand-derived backward (saelab.numpy_sae.L1SAE.backward) on these weights."""
    from saelab.numpy_sae import L1SAE
    from saelab.sae_config import L1Config

    d_in, d_sae = params["W_enc"].shape
    sae = L1SAE(L1Config(d_in=d_in, d_sae=d_sae, l1_coeff=l1_coeff, decoder_norm="weighted"),
                rng=0, dtype=np.float64)
    sae.load_parameters(params)
    return sae.backward(x, sae(x))


def _as_grad_dict(name: str, got, expected_keys) -> dict:
    if got is None:
        raise ExerciseFailed(f"{name}: your function returned None; did you forget `return grads`?")
    if not isinstance(got, Mapping):
        raise ExerciseFailed(
            f"{name}: return a dict mapping each parameter name to its gradient, "
            f"got {type(got).__name__}"
        )
    missing = [k for k in expected_keys if k not in got]
    if missing:
        raise ExerciseFailed(
            f"{name}: the returned dict has no gradient for {missing}; expected the keys "
            f"{list(expected_keys)}"
        )
    return got


def _grads_close(got: Mapping, want: Mapping, rtol=1e-5, atol=1e-6) -> bool:
    for key in want:
        g, w = checking.to_numpy(got[key]), checking.to_numpy(want[key])
        if g.shape != w.shape or not np.allclose(g, w, rtol=rtol, atol=atol):
            return False
    return True


def l1_sae_backward(fn: Callable) -> None:
    """Check ``fn(x, params, l1_coeff) -> {"W_enc": ..., "b_enc": ..., "W_dec": ..., "b_dec": ...}``.

    The loss is the L1 SAE loss with the decoder-norm-weighted penalty (Chapter 2).
    """
    name = "l1_sae_backward"
    x, params = _l1_inputs()
    got = checking.call_student(name, fn, x.copy(), {k: v.copy() for k, v in params.items()},
                                L1_COEFF)
    want = _reference_l1_grads(x, params, L1_COEFF)
    got = _as_grad_dict(name, got, PARAM_ORDER)
    try:
        got = {key: checking.to_numpy(got[key]) for key in PARAM_ORDER}
    except (TypeError, ValueError) as exc:
        raise ExerciseFailed(f"{name}: every gradient should be a numeric array ({exc})") from exc
    if _grads_close(got, want):
        checking.passed(name)
        return
    variants = [(hint, _l1_grads(x, params, L1_COEFF, **switches)) for hint, switches in _L1_MISTAKES]
    for hint, wrong in variants:  # a whole answer that matches one known mistake
        if _grads_close(got, wrong):
            raise ExerciseFailed(f"{name}: {hint}")
    for key in PARAM_ORDER:  # otherwise: the first wrong gradient, diagnosed on its own
        checking.expect_close(
            name, got[key], want[key],
            {f"dL/d{key} is wrong: {hint}": wrong[key] for hint, wrong in variants},
            what=f"dL/d{key}",
        )
    raise AssertionError("unreachable: some gradient differs but none was reported")


# ----------------------------------------------------------------------------------------------
# Unit-norm projection of the decoder gradient
# ----------------------------------------------------------------------------------------------

def _reference_projection(W_dec, grad) -> np.ndarray:
    """The library's ``remove_parallel_grad`` applied to a copy of ``grad``."""
    from saelab.numpy_sae import L1SAE
    from saelab.sae_config import L1Config

    d_sae, d_in = W_dec.shape
    sae = L1SAE(L1Config(d_in=d_in, d_sae=d_sae, decoder_norm="unit"), rng=0, dtype=np.float64)
    sae.W_dec[...] = W_dec
    grads = {name: np.zeros_like(p) for name, p in sae.parameters().items()}
    grads["W_dec"] = grad.copy()
    return sae.remove_parallel_grad(grads)["W_dec"]


def project_decoder_grad(fn: Callable) -> None:
    """Check ``fn(W_dec, grad_W_dec) -> grad`` with each row's component along W_dec,i removed."""
    name = "project_decoder_grad"
    W, g = _projection_inputs()
    got = checking.call_student(name, fn, W.copy(), g.copy())
    want = _reference_projection(W, g)
    checking.expect_close(name, got, want, _projection_mistakes(W, g),
                          what="the projected gradient")
    checking.passed(name)


def _projection_mistakes(W, g) -> dict[str, np.ndarray]:
    """Hint -> the projected gradient that a common mistake produces."""
    row_sq = (W**2).sum(axis=1, keepdims=True)  # (d_sae, 1)
    row_dot = (g * W).sum(axis=1, keepdims=True)  # (d_sae, 1)
    col_coef = (g * W).sum(axis=0, keepdims=True) / (W**2).sum(axis=0, keepdims=True)  # (1, d_in)
    return {
        "you projected along the columns of W_dec (axis=0). The atoms are the ROWS of W_dec "
        "(shape (d_sae, d_in)): take dot products and norms over axis=1, one per latent.":
            g - col_coef * W,
        "the rows of W_dec here are not unit norm: divide the dot product g_i . W_i by "
        "||W_i||^2 so that you remove exactly the component along W_i.":
            g - row_dot * W,
        "divide by the squared norm ||W_i||^2, not by the norm ||W_i||: the component of g_i along "
        "W_i is (g_i . W_i / ||W_i||^2) W_i.":
            g - row_dot / np.sqrt(row_sq) * W,
        "you returned the parallel component (g_i . W_i / ||W_i||^2) W_i; the projected gradient "
        "is what is left: g_i minus that component.":
            row_dot / row_sq * W,
        "sign error: subtract the parallel component from the gradient, do not add it.":
            g + row_dot / row_sq * W,
    }


# ----------------------------------------------------------------------------------------------
# TopK forward
# ----------------------------------------------------------------------------------------------

def _keep_topk(values, key, k, axis=-1) -> np.ndarray:
    """Zero everything except the k entries of ``values`` with the largest ``key`` along ``axis``."""
    idx = np.argsort(-key, axis=axis, kind="stable")
    idx = idx[:, :k] if axis in (-1, 1) else idx[:k, :]
    out = np.zeros_like(values)
    np.put_along_axis(out, idx, np.take_along_axis(values, idx, axis=axis), axis=axis)
    return out


def _reference_topk(pre, k) -> np.ndarray:
    """The library's TopK activation (:func:`saelab.numpy_sae.topk_relu`) on these pre-activations."""
    from saelab.numpy_sae import topk_relu as library_topk_relu

    return library_topk_relu(pre, k)


def topk_relu(fn: Callable) -> None:
    """Check ``fn(pre_acts, k) -> f``: ReLU of the k largest entries per row, zeros elsewhere."""
    name = "topk_relu"
    pre, k = _topk_inputs()
    got = checking.call_student(name, fn, pre.copy(), k)
    want = _reference_topk(pre, k)
    got_arr = None if got is None else checking.to_numpy(got)
    if got_arr is not None and got_arr.shape == (pre.shape[0], k):
        raise ExerciseFailed(
            f"{name}: you returned the k kept values, shape {got_arr.shape}. f must keep the shape "
            f"of pre_acts {pre.shape}, with zeros at the latents that are not in the top k."
        )
    checking.expect_close(name, got, want, _topk_mistakes(pre, k), what="f")
    checking.passed(name)


def _topk_mistakes(pre, k) -> dict[str, np.ndarray]:
    """Hint -> the f that a common TopK mistake produces on ``pre``."""
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    return {
        "you kept the k SMALLEST pre-activations; TopK keeps the k largest (sort descending, or "
        "take the last k of an ascending argsort).": relu(_keep_topk(pre, -pre, k)),
        "you ranked by absolute value: a large negative pre-activation must not displace a "
        "positive one. Rank by the signed value.": relu(_keep_topk(pre, np.abs(pre), k)),
        "you ranked by absolute value and skipped the ReLU. Rank by the signed value, then apply "
        "ReLU to the kept entries.": _keep_topk(pre, np.abs(pre), k),
        "the ReLU is missing: when a row has fewer than k positive pre-activations, some kept "
        "entries are negative and must become 0.": _keep_topk(pre, pre, k),
        "you chose the top k along the batch axis (axis=0). TopK picks k latents for each input: "
        "rank along the last axis (axis=-1).": relu(_keep_topk(pre, pre, k, axis=0)),
        "off by one: you kept k - 1 entries per row.": relu(_keep_topk(pre, pre, k - 1)),
        "off by one: you kept k + 1 entries per row.": relu(_keep_topk(pre, pre, k + 1)),
        "you applied ReLU but did not zero the entries outside the top k.": relu(pre),
    }
