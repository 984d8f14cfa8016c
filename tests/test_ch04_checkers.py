"""Chapter 4 exercise checkers: the right answer passes, each common mistake gets its own hint.

The "student" functions are written independently of the checker's mistake generator (loops and
plain NumPy), so a hint is reported only when the checker really recognises the mistake.
"""
import numpy as np
import pytest

from saelab.exercises import ch04
from saelab.exercises.checking import ExerciseFailed


# ----------------------------------------------------------------------------------------------
# Exercise 1: TopK backward
# ----------------------------------------------------------------------------------------------

def make_topk_backward(mistake=None):
    def topk_backward(pre_acts, k, grad_f):
        out = np.zeros_like(grad_f)
        for b in range(pre_acts.shape[0]):
            row = pre_acts[b]
            kept = np.argsort(row)[:k] if mistake == "smallest" else np.argsort(row)[-k:]
            for i in kept:
                if mistake == "no_relu" or row[i] > 0:
                    out[b, i] = 1.0 if mistake == "mask_only" else grad_f[b, i]
        if mistake == "no_mask":
            return grad_f.copy()
        if mistake == "relu_only":
            return grad_f * (pre_acts > 0)
        if mistake == "batch_axis":
            out = np.zeros_like(grad_f)
            for i in range(pre_acts.shape[1]):
                for b in np.argsort(pre_acts[:, i])[-k:]:
                    if pre_acts[b, i] > 0:
                        out[b, i] = grad_f[b, i]
        return out

    return topk_backward


def test_topk_backward_reference_passes(capsys):
    ch04.topk_backward(make_topk_backward())
    assert capsys.readouterr().out == "passed: topk_backward\n"


@pytest.mark.parametrize("mistake, hint", [
    ("no_mask", "passes through every entry"),
    ("relu_only", "ignores the TopK selection"),
    ("no_relu", "ReLU is missing"),
    ("batch_axis", "along the batch axis"),
    ("mask_only", "returned the mask itself"),
    ("smallest", "k smallest"),
])
def test_topk_backward_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch04.topk_backward(make_topk_backward(mistake))


def test_topk_backward_other_errors():
    with pytest.raises(ExerciseFailed, match="shape"):
        ch04.topk_backward(lambda pre, k, g: g[:, :k])
    with pytest.raises(ExerciseFailed, match="returned None"):
        ch04.topk_backward(lambda pre, k, g: None)
    with pytest.raises(ExerciseFailed, match="raised ZeroDivisionError"):
        ch04.topk_backward(lambda pre, k, g: 1 / 0)
    with pytest.raises(NotImplementedError):
        ch04.topk_backward(lambda pre, k, g: (_ for _ in ()).throw(NotImplementedError))


def test_topk_backward_reference_is_the_library():
    from saelab.numpy_sae import topk_relu

    pre, k, g = ch04._topk_inputs()
    want = ch04._reference_topk_backward(pre, k, g)
    np.testing.assert_array_equal(want, g * (topk_relu(pre, k) > 0))
    assert ((topk_relu(pre, k) > 0).sum(axis=1) < k).any()  # rows where the ReLU matters


# ----------------------------------------------------------------------------------------------
# Exercise 2: JumpReLU threshold pseudo-gradient
# ----------------------------------------------------------------------------------------------

def make_jump_grad(mistake=None):
    def jumprelu_threshold_grad(z, theta, bandwidth, grad_f, l0_coeff):
        batch, d_sae = z.shape
        out = np.zeros(d_sae)
        for i in range(d_sae):
            for b in range(batch):
                u = z[b, i] - theta[i]
                if mistake != "no_window_scale":
                    u = u / bandwidth
                if abs(u) >= 0.5:
                    continue
                height = {"height_one": 1.0, "height_z": z[b, i]}.get(mistake, theta[i])
                act = -height / bandwidth * grad_f[b, i]
                l0 = -l0_coeff / (bandwidth * (1 if mistake == "l0_sum" else batch))
                if mistake == "no_l0":
                    l0 = 0.0
                if mistake == "only_l0":
                    act = 0.0
                out[i] += act + l0
        return -out if mistake == "sign" else out

    return jumprelu_threshold_grad


def test_jump_grad_reference_passes(capsys):
    ch04.jumprelu_threshold_grad(make_jump_grad())
    assert capsys.readouterr().out == "passed: jumprelu_threshold_grad\n"


@pytest.mark.parametrize("mistake, hint", [
    ("height_one", "jump height 1"),
    ("height_z", "uses z as the jump height"),
    ("no_window_scale", "not scaled by the bandwidth"),
    ("sign", "sign is flipped"),
    ("l0_sum", "B times too large"),
    ("no_l0", "L0 penalty's gradient is missing"),
    ("only_l0", "only the L0 term"),
])
def test_jump_grad_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch04.jumprelu_threshold_grad(make_jump_grad(mistake))


def test_jump_grad_other_errors():
    with pytest.raises(ExerciseFailed, match="shape"):
        ch04.jumprelu_threshold_grad(lambda z, t, e, g, l: np.zeros_like(z))
    with pytest.raises(ExerciseFailed, match="is wrong"):
        ch04.jumprelu_threshold_grad(lambda z, t, e, g, l: np.ones_like(t))


def test_jump_grad_reference_matches_torch_autograd_function():
    """The checker's reference equals the torch twin's autograd.Function pseudo-gradients."""
    import torch

    from saelab.torch_sae import JumpReLUFunction, StepFunction

    z, theta, eps, grad_f, l0 = ch04._jump_inputs()
    zt = torch.tensor(z)
    tt = torch.tensor(theta, requires_grad=True)
    f = JumpReLUFunction.apply(zt, tt, eps)
    h = StepFunction.apply(zt, tt, eps)
    loss = (f * torch.tensor(grad_f)).sum() + l0 * h.sum(dim=1).mean()
    loss.backward()
    np.testing.assert_allclose(ch04._reference_jump_grad(z, theta, eps, grad_f, l0),
                               tt.grad.numpy(), rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Exercise 3: BatchTopK forward
# ----------------------------------------------------------------------------------------------

def make_batch_topk(mistake=None):
    def batch_topk_relu(pre_acts, k):
        n_keep = k if mistake == "k_total" else k * pre_acts.shape[0]
        if mistake == "per_row":
            out = np.zeros_like(pre_acts)
            for b, row in enumerate(pre_acts):
                for i in np.argsort(row)[-k:]:
                    out[b, i] = max(row[i], 0.0)
            return out
        key = np.abs(pre_acts) if mistake == "abs" else pre_acts
        flat_idx = np.argsort(key, axis=None)[-n_keep:]
        out = np.zeros(pre_acts.size)
        out[flat_idx] = pre_acts.ravel()[flat_idx]
        out = out.reshape(pre_acts.shape)
        return out if mistake == "no_relu" else np.maximum(out, 0.0)

    return batch_topk_relu


def test_batch_topk_reference_passes(capsys):
    ch04.batch_topk_relu(make_batch_topk())
    assert capsys.readouterr().out == "passed: batch_topk_relu\n"


@pytest.mark.parametrize("mistake, hint", [
    ("per_row", "that is TopK"),
    ("k_total", "only k entries in the whole batch"),
    ("no_relu", "ReLU is missing"),
    ("abs", "absolute value"),
])
def test_batch_topk_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch04.batch_topk_relu(make_batch_topk(mistake))
