"""Exercise checkers for Chapter 7 (feature hierarchies and Matryoshka SAEs).

* ``nested_recon_loss(x, f, W_dec, b_dec, prefix_sizes)``: the Matryoshka reconstruction loss,
  the mean over prefixes m_j of ``mean_b ||x_b - (f[b, :m_j] @ W_dec[:m_j] + b_dec)||^2``.
  Compared with :func:`saelab.numpy_sae.nested_recon_loss`.
* ``nested_loss_grad_W_dec(x, f, W_dec, b_dec, prefix_sizes)``: its gradient w.r.t. ``W_dec``
  with the codes f held fixed: latent i gets ``f[:, i]^T sum_{j : m_j > i} g_j`` with
  ``g_j = 2 / (n B) (x_hat_j - x)``. Compared with
  :meth:`saelab.numpy_sae.MatryoshkaSAE.recon_backward`.
* ``full_absorption_rate(f, W_dec, x, present, P, parent_latent, min_share, min_absorber_cos)``:
  SAEBench's full-absorption rate of one parent feature. Compared with
  :func:`saelab.absorption.full_absorption`.

A wrong answer is compared with the answers of common mistakes and the message names the one it
matches. Taught in Chapter 7.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from saelab.exercises import checking
from saelab.sae_output import SAEOutput

__all__ = ["nested_recon_loss", "nested_loss_grad_W_dec", "full_absorption_rate"]

PREFIXES = (2, 5, 12)  # three nested prefixes of a 12-latent dictionary


def _nested_inputs():
    """x (16, 6), sparse non-negative codes f (16, 12), W_dec (12, 6), b_dec (6,)."""
    rng = np.random.default_rng(7007)
    batch, d_in, d_sae = 16, 6, 12
    f = np.maximum(rng.standard_normal((batch, d_sae)), 0)
    f = f * (rng.uniform(size=(batch, d_sae)) < 0.5)  # about half the codes are zero
    return (rng.standard_normal((batch, d_in)), f, rng.standard_normal((d_sae, d_in)),
            0.5 * rng.standard_normal(d_in))


def _prefix_errors(x, f, W, b, sizes, bias=True) -> np.ndarray:
    """(n,) mean_b ||x - x_hat_j||^2 for each prefix (optionally without b_dec)."""
    return np.array([((x - f[:, :m] @ W[:m] - (b if bias else 0)) ** 2).sum(1).mean()
                     for m in sizes])


def _reference_sae(x, f, W, b, sizes):
    from saelab.numpy_sae import MatryoshkaSAE
    from saelab.sae_config import MatryoshkaConfig

    cfg = MatryoshkaConfig(d_in=W.shape[1], d_sae=W.shape[0], k=1, prefix_sizes=sizes)
    sae = MatryoshkaSAE(cfg, rng=0, dtype=np.float64)
    sae.W_dec[...], sae.b_dec[...] = W, b
    return sae


def nested_recon_loss(fn: Callable) -> None:
    """Check ``fn(x, f, W_dec, b_dec, prefix_sizes) -> float``. Chapter 7."""
    from saelab.numpy_sae import nested_recon_loss as reference

    name = "nested_recon_loss"
    x, f, W, b = _nested_inputs()
    got = checking.call_student(name, fn, x.copy(), f.copy(), W.copy(), b.copy(), PREFIXES)
    want = reference(x, _reference_sae(x, f, W, b, PREFIXES).prefix_reconstructions(f))
    errs = _prefix_errors(x, f, W, b, PREFIXES)
    mistakes = {
        "you summed over the prefixes; the course's loss is their mean (divide by the number of "
        "prefixes), so a one-prefix Matryoshka SAE is an ordinary SAE.": errs.sum(),
        "that is the ordinary loss of the full dictionary only: add the error of every prefix "
        "f[:, :m] @ W_dec[:m] + b_dec.": errs[-1],
        "you left out b_dec: every prefix reconstruction adds the decoder bias.":
            _prefix_errors(x, f, W, b, PREFIXES, bias=False).mean(),
        "you averaged the squared error over d_in too; sum over d_in, mean over the batch.":
            errs.mean() / x.shape[1],
        "you used the last m latents (W_dec[-m:]); a prefix is the first m.":
            np.mean([((x - f[:, -m:] @ W[-m:] - b) ** 2).sum(1).mean() for m in PREFIXES]),
    }
    checking.expect_close(name, got, want, mistakes, what="the nested loss")
    checking.passed(name)


def nested_loss_grad_W_dec(fn: Callable) -> None:
    """Check ``fn(x, f, W_dec, b_dec, prefix_sizes) -> dL/dW_dec`` (12, 6). Chapter 7."""
    name = "nested_loss_grad_W_dec"
    x, f, W, b = _nested_inputs()
    got = checking.call_student(name, fn, x.copy(), f.copy(), W.copy(), b.copy(), PREFIXES)
    sae = _reference_sae(x, f, W, b, PREFIXES)
    grads = {"W_dec": np.zeros_like(W), "b_dec": np.zeros_like(b)}
    sae.recon_backward(x, SAEOutput(None, f, None, 0.0, 0.0, 0.0, 0.0), grads)  # reads f only
    want = grads["W_dec"]
    n, batch = len(PREFIXES), x.shape[0]
    x_hats = np.stack([f[:, :m] @ W[:m] + b for m in PREFIXES])  # (n, batch, d_in)
    g = 2.0 / (n * batch) * (x_hats - x)
    starts = (0,) + PREFIXES[:-1]

    def by_group(weights) -> np.ndarray:
        """W_dec gradient when group t's latents feel sum_j weights[t][j] g_j."""
        out_ = np.zeros_like(W)
        for t, (a, stop) in enumerate(zip(starts, PREFIXES)):
            R = sum(w * g[j] for j, w in enumerate(weights[t]))
            out_[a:stop] = f[:, a:stop].T @ R
        return out_

    own = [[1.0 if j == t else 0.0 for j in range(n)] for t in range(n)]
    prefix = [[1.0 if j <= t else 0.0 for j in range(n)] for t in range(n)]
    mistakes = {
        "every latent got gradient only from the full reconstruction (the ordinary SAE's "
        "f^T g): a latent in the first prefix is in every prefix's reconstruction, so it "
        "collects g_j from every prefix j that contains it.":
            f.T @ (2.0 / batch * (x_hats[-1] - x)),
        "you counted only the prefix where each latent first appears; a latent stays in every "
        "larger prefix too, so it collects g_j for all j with m_j > i.": by_group(own),
        "you summed the wrong way round: latent i appears in the prefixes that are *larger* "
        "than its position (j >= its group), not the smaller ones.": by_group(prefix),
        "the 1/n of the mean over prefixes is missing.": n * want,
        "the factor 2 from d/dx ||x||^2 = 2x is missing.": want / 2,
        "you returned the gradient for W_dec transposed; it has W_dec's shape (d_sae, d_in).":
            want.T,
    }
    checking.expect_close(name, got, want, mistakes, what="dL/dW_dec")
    checking.passed(name)


def _absorption_inputs():
    """Codes and decoder of a hand-built SAE on one parent with 3 children (orthonormal, d=8)."""
    from saelab.hierarchy import make_hierarchical_data

    data = make_hierarchical_data(400, d_in=8, n_parents=1, n_children=3, p_parent=0.6,
                                  p_child=0.7, orthogonal=True, seed=7)
    rng = np.random.default_rng(7008)
    P = data.parent_dictionary[0].double().numpy()  # (8,)
    C = data.child_dictionary.double().numpy()  # (3, 8)
    W = np.concatenate([P[None], (P + C) / np.sqrt(2), C[:1]])  # (5, 8): parent, absorbers, C_0
    W[4] *= 2.0  # a child-only latent of norm 2: its cosine with P is 0
    present = (data.parent_codes[:, 0] > 0).numpy()
    child = (data.child_codes > 0).numpy()  # (n, 3)
    f = np.zeros((len(present), 5))
    f[present & ~child.any(1), 0] = 1.0  # parent alone: the parent latent fires
    for c in range(3):
        rows = np.flatnonzero(child[:, c])
        keep = rng.uniform(size=rows.size) < 0.3  # the parent latent still fires on 30%
        f[rows[keep], 0] = 1.0
        f[rows, 1 + c] = rng.uniform(0.2, 1.6, rows.size)  # some absorbers too weak (< 0.566)
    f[child[:, 0], 4] = 0.9  # the child-only latent fires with child 0, never the top projector
    return f, W, data.x.double().numpy(), present, P, data


def _rate(f, W, x, present, P, latent, share, cos_min, *, top_by="projection",
          denominator="present", use_share=True, probe="dot") -> float:
    """The full-absorption rate with every switch at its default; each flip is one mistake."""
    dots = W @ P  # (d_sae,)
    cos = dots / np.linalg.norm(W, axis=1)
    proj = f * dots  # (n, d_sae)
    top = (proj if top_by == "projection" else f).argmax(1)
    top_proj = proj[np.arange(len(top)), top]
    xp = x @ P if probe == "dot" else np.linalg.norm(x, axis=1)
    absorbed = present & (f[:, latent] == 0) & (xp > 0) & (cos[top] >= cos_min)
    if use_share:
        absorbed &= top_proj >= share * xp
    den = {"present": present.sum(), "all": len(present),
           "silent": (present & (f[:, latent] == 0)).sum()}[denominator]
    return absorbed.sum() / den


def full_absorption_rate(fn: Callable) -> None:
    """Check ``fn(f, W_dec, x, present, P, parent_latent, min_share, min_absorber_cos)``."""
    from saelab.absorption import full_absorption

    name = "full_absorption_rate"
    f, W, x, present, P, data = _absorption_inputs()
    share, cos_min = 0.4, 0.025
    got = checking.call_student(name, fn, f.copy(), W.copy(), x.copy(), present.copy(), P.copy(),
                                0, share, cos_min)
    ref = full_absorption(torch.from_numpy(f), torch.from_numpy(W), data, min_share=share,
                          min_absorber_cos=cos_min)
    assert ref.parent_latent[0] == 0
    want = float(ref.rates[0])
    args = (f, W, x, present, P, 0, share, cos_min)
    mistakes = {
        "you counted every input where the parent latent is silent; full absorption also needs "
        "one latent that carries at least min_share of x . P.": _rate(*args, use_share=False),
        "you divided by all inputs; the rate is over the inputs where the parent is present.":
            _rate(*args, denominator="all"),
        "you divided by the inputs where the parent latent is silent; divide by every input "
        "where the parent is present (that is what makes it differ from the course's rate).":
            _rate(*args, denominator="silent"),
        "you picked the top latent by activation; pick it by its projection on the parent "
        "direction, f_i * (W_dec[i] . P).": _rate(*args, top_by="activation"),
        "you compared with ||x||; the share is of the input's projection on the parent, x . P.":
            _rate(*args, probe="norm"),
    }
    checking.expect_close(name, got, want, mistakes, what="the full-absorption rate")
    checking.passed(name)
