"""Exercise checkers for Chapter 4 (shrinkage, TopK and JumpReLU).

* ``topk_backward(pre_acts, k, grad_f)``: the gradient of the loss w.r.t. the pre-activations
  of ``f = ReLU(TopK_k(pre_acts))`` given ``grad_f = dL/df``: it passes only through entries that
  are both in the row's top k and positive. Compared with
  :meth:`saelab.numpy_sae.TopKSAE.activation_backward`.
* ``jumprelu_threshold_grad(z, theta, bandwidth, grad_f, l0_coeff)``: the pseudo-gradient of

      L = (terms through f = z * H(z - theta)) + l0_coeff * mean_b sum_i H(z_bi - theta_i)

  w.r.t. theta (Rajamanoharan et al. 2024, arXiv:2407.14435), with the rectangle kernel
  K(u) = 1[|u| < 1/2]:

      dL/dtheta_i = sum_b [-(theta_i / eps) grad_f_bi - l0_coeff / (B eps)] K((z_bi - theta_i) / eps)

  Compared with :class:`saelab.numpy_sae.JumpReLUSAE`'s backward.
* ``batch_topk_relu(pre_acts, k)``: BatchTopK's training activation (Bussmann et al. 2024):
  keep the k * batch largest pre-activations of the whole batch, ReLU, zeros elsewhere.
  Compared with :func:`saelab.numpy_sae.batch_topk_relu`.

A wrong answer is compared with the answers of common mistakes and the message names the one it
matches. Taught in Chapter 4.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from saelab.exercises import checking

__all__ = ["topk_backward", "jumprelu_threshold_grad", "batch_topk_relu"]


# ----------------------------------------------------------------------------------------------
# TopK backward
# ----------------------------------------------------------------------------------------------

def _topk_inputs() -> tuple[np.ndarray, int, np.ndarray]:
    """Continuous pre-activations (some rows with fewer than k positives) and upstream grads."""
    rng = np.random.default_rng(4004)
    batch, d_sae, k = 8, 12, 3
    shift = np.array([0.8, 0.0, -0.6, -1.5, 0.3, -2.5, 1.0, 0.5])[:, None]  # rows 3, 5: < k > 0
    pre = rng.standard_normal((batch, d_sae)) + shift
    return pre, k, rng.standard_normal((batch, d_sae))


def _topk_mask(pre: np.ndarray, k: int, axis: int = -1) -> np.ndarray:
    """1 where an entry is among the k largest along ``axis``, else 0 (no ReLU)."""
    order = np.argsort(-pre, axis=axis, kind="stable")
    ranks = np.argsort(order, axis=axis, kind="stable")
    return (ranks < k).astype(pre.dtype)


def _reference_topk_backward(pre, k, grad_f) -> np.ndarray:
    from saelab.numpy_sae import TopKSAE, topk_relu
    from saelab.sae_config import TopKConfig

    sae = TopKSAE(TopKConfig(d_in=1, d_sae=pre.shape[1], k=k), rng=0, dtype=np.float64)
    return sae.activation_backward(pre, topk_relu(pre, k), grad_f, grads={})


def _topk_backward_mistakes(pre, k, grad_f) -> dict[str, np.ndarray]:
    mask = _topk_mask(pre, k)
    return {
        "the gradient passes through every entry. f depends only on the kept entries: multiply "
        "grad_f by a mask that is 1 for the top-k, positive pre-activations and 0 elsewhere.":
            grad_f,
        "the mask ignores the TopK selection: an entry outside the top k is zeroed in the "
        "forward pass, so it gets no gradient even when it is positive.": grad_f * (pre > 0),
        "the ReLU is missing from the mask: in a row with fewer than k positive pre-activations "
        "some kept entries are negative, the ReLU zeroes them, and they pass no gradient.":
            grad_f * mask,
        "you selected the top k along the batch axis (axis=0); TopK picks k latents per input, "
        "along the last axis.": grad_f * _topk_mask(pre, k, axis=0) * (pre > 0),
        "you returned the mask itself; multiply it by grad_f.": mask * (pre > 0),
        "you kept the k smallest pre-activations; the forward pass keeps the k largest.":
            grad_f * _topk_mask(-pre, k) * (pre > 0),
    }


def topk_backward(fn: Callable) -> None:
    """Check ``fn(pre_acts, k, grad_f) -> grad_pre_acts`` (shape (batch, d_sae)). Chapter 4."""
    name = "topk_backward"
    pre, k, grad_f = _topk_inputs()
    got = checking.call_student(name, fn, pre.copy(), k, grad_f.copy())
    want = _reference_topk_backward(pre, k, grad_f)
    checking.expect_close(name, got, want, _topk_backward_mistakes(pre, k, grad_f),
                          what="dL/dpre_acts")
    checking.passed(name)


# ----------------------------------------------------------------------------------------------
# JumpReLU threshold pseudo-gradient
# ----------------------------------------------------------------------------------------------

JUMP_BANDWIDTH = 0.4  # wide enough that about a fifth of the entries fall in the kernel window
JUMP_L0_COEFF = 0.3  # large enough that a wrong L0 term shows next to the activation term


def _jump_inputs() -> tuple[np.ndarray, np.ndarray, float, np.ndarray, float]:
    rng = np.random.default_rng(4005)
    batch, d_sae = 10, 7
    theta = rng.uniform(0.2, 0.8, d_sae)
    z = theta + rng.uniform(-0.6, 0.6, (batch, d_sae))
    u = np.abs(z - theta) / JUMP_BANDWIDTH
    assert np.abs(u - 0.5).min() > 1e-3, "pick another seed: an entry sits on the kernel edge"
    return z, theta, JUMP_BANDWIDTH, rng.standard_normal((batch, d_sae)), JUMP_L0_COEFF


def _jump_grad(z, theta, eps, grad_f, l0, *, height="theta", window=True, sign=1.0,
               l0_mean=True, l0_term=True, act_term=True) -> np.ndarray:
    """dL/dtheta with every switch at its default; each switch flipped is one known mistake."""
    batch = z.shape[0]
    u = (z - theta) / eps if window else (z - theta)
    kernel = (np.abs(u) < 0.5).astype(z.dtype)  # (batch, d_sae)
    jump = {"theta": theta, "z": z, "one": 1.0}[height]
    per_entry = np.zeros_like(z)
    if act_term:
        per_entry = per_entry - (jump / eps) * grad_f
    if l0_term:
        per_entry = per_entry - l0 / ((batch if l0_mean else 1) * eps)
    return sign * (per_entry * kernel).sum(axis=0)  # (d_sae,)


_JUMP_MISTAKES: tuple[tuple[str, dict], ...] = (
    ("the activation term uses the jump height 1: f = z H(z - theta) jumps by theta at z = theta, "
     "so d f / d theta = -(theta / eps) K((z - theta) / eps), with the factor theta.",
     dict(height="one")),
    ("the activation term uses z as the jump height; the pseudo-gradient uses theta, the height "
     "of the jump at the threshold: -(theta / eps) K((z - theta) / eps).", dict(height="z")),
    ("the kernel window is not scaled by the bandwidth: evaluate K at (z - theta) / eps, "
     "so only entries with |z - theta| < eps / 2 contribute.", dict(window=False)),
    ("the sign is flipped: raising theta switches latents off, which lowers f and the L0 count, "
     "so both terms carry a minus sign.", dict(sign=-1.0)),
    ("the L0 term is B times too large: the penalty is a mean over the batch, so each entry in "
     "the window contributes -l0_coeff / (B eps).", dict(l0_mean=False)),
    ("the L0 penalty's gradient is missing: l0_coeff * mean_b sum_i H(z_bi - theta_i) also "
     "depends on theta, through d H / d theta = -(1/eps) K((z - theta) / eps).",
     dict(l0_term=False)),
    ("only the L0 term is there: the reconstruction also depends on theta through "
     "f = z H(z - theta); add sum_b -(theta / eps) K((z - theta) / eps) grad_f.",
     dict(act_term=False)),
)


def _reference_jump_grad(z, theta, eps, grad_f, l0) -> np.ndarray:
    """dL/dtheta from the library's JumpReLU backward hooks (saelab.numpy_sae.JumpReLUSAE)."""
    from saelab.numpy_sae import JumpReLUSAE
    from saelab.sae_config import JumpReLUConfig

    cfg = JumpReLUConfig(d_in=1, d_sae=z.shape[1], l0_coeff=l0, bandwidth=eps)
    sae = JumpReLUSAE(cfg, rng=0, dtype=np.float64)
    sae.threshold[...] = theta
    grads = {"threshold": np.zeros_like(theta)}
    sae.sparsity_backward(z, None, grads)
    sae.activation_backward(z, None, grad_f, grads)
    return grads["threshold"]


def jumprelu_threshold_grad(fn: Callable) -> None:
    """Check ``fn(z, theta, bandwidth, grad_f, l0_coeff) -> dL/dtheta`` (shape (d_sae,))."""
    name = "jumprelu_threshold_grad"
    z, theta, eps, grad_f, l0 = _jump_inputs()
    got = checking.call_student(name, fn, z.copy(), theta.copy(), eps, grad_f.copy(), l0)
    want = _reference_jump_grad(z, theta, eps, grad_f, l0)
    variants = {hint: _jump_grad(z, theta, eps, grad_f, l0, **sw) for hint, sw in _JUMP_MISTAKES}
    checking.expect_close(name, got, want, variants, what="dL/dtheta")
    checking.passed(name)


# ----------------------------------------------------------------------------------------------
# BatchTopK forward
# ----------------------------------------------------------------------------------------------

def _batch_topk_inputs() -> tuple[np.ndarray, int]:
    """Rows of very different scale, so the top k * B is spread unevenly; the ReLU matters."""
    rng = np.random.default_rng(4006)
    batch, d_sae, k = 6, 10, 2
    scale = np.array([2.0, 0.3, 1.0, 0.1, 1.5, 0.6])[:, None]
    return rng.standard_normal((batch, d_sae)) * scale - 0.9, k  # fewer than k * batch positive


def _keep_largest(pre: np.ndarray, n: int) -> np.ndarray:
    """Zero all but the n largest entries of the whole array (no ReLU)."""
    flat = pre.ravel()
    out = np.zeros_like(flat)
    idx = np.argsort(-flat, kind="stable")[:n]
    out[idx] = flat[idx]
    return out.reshape(pre.shape)


def _batch_topk_mistakes(pre, k) -> dict[str, np.ndarray]:
    from saelab.numpy_sae import topk_relu as per_row

    batch = pre.shape[0]
    return {
        "you kept the top k of each row: that is TopK. BatchTopK ranks the whole batch at once "
        "and keeps k * batch entries, so a row may keep more or fewer than k.": per_row(pre, k),
        "you kept only k entries in the whole batch; BatchTopK keeps k per input on average, "
        "k * batch in all.": np.maximum(_keep_largest(pre, k), 0),
        "the ReLU is missing: kept entries that are negative must become 0.":
            _keep_largest(pre, k * batch),
        "you ranked by absolute value; rank by the signed pre-activation.":
            np.maximum(_keep_largest(np.abs(pre), k * batch) * np.sign(pre), 0),
    }


def batch_topk_relu(fn: Callable) -> None:
    """Check ``fn(pre_acts, k) -> f``: ReLU of the k * batch largest entries of the batch."""
    from saelab.numpy_sae import batch_topk_relu as reference

    name = "batch_topk_relu"
    pre, k = _batch_topk_inputs()
    got = checking.call_student(name, fn, pre.copy(), k)
    checking.expect_close(name, got, reference(pre, k), _batch_topk_mistakes(pre, k), what="f")
    checking.passed(name)
