"""Chapter 6 exercise checkers: the right answer passes, each common mistake gets its own hint.

The "student" functions are written independently of the checkers' mistake generators.
"""
import pytest
import torch

from checker_helpers import assert_fails_with, assert_passes
from saelab.exercises import ch06


# ----------------------------------------------------------------------------------------------
# Exercise 1: FVU on a batch
# ----------------------------------------------------------------------------------------------

def make_fvu(mistake=None):
    def fvu_on_batch(x, x_hat):
        x, x_hat = x.double(), x_hat.double()
        err = ((x - x_hat) ** 2).sum()
        if mistake == "uncentered":
            return (err / (x ** 2).sum()).item()
        if mistake == "per_token":
            per = ((x - x_hat) ** 2).sum(1) / ((x - x.mean(0)) ** 2).sum(1)
            return per.mean().item()
        if mistake == "per_dim":
            per = ((x - x_hat) ** 2).sum(0) / ((x - x.mean(0)) ** 2).sum(0)
            return per.mean().item()
        fvu = (err / ((x - x.mean(0)) ** 2).sum()).item()
        if mistake == "ev":
            return 1 - fvu
        if mistake == "float32":  # a float32 answer is close enough to pass
            x, x_hat = x.float(), x_hat.float()
            return float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
        if mistake == "tensor":  # returning a 0-d tensor is fine too
            return err / ((x - x.mean(0)) ** 2).sum()
        return fvu

    return fvu_on_batch


@pytest.mark.parametrize("variant", [None, "float32", "tensor"])
def test_fvu_reference_passes(variant, capsys):
    assert_passes(ch06.fvu_on_batch, make_fvu(variant), "fvu_on_batch", capsys)


@pytest.mark.parametrize("mistake, hint", [
    ("uncentered", "variance about zero"),
    ("per_token", "one ratio per token"),
    ("per_dim", "one ratio per dimension"),
    ("ev", "explained variance"),
])
def test_fvu_mistakes_get_their_hint(mistake, hint):
    assert_fails_with(ch06.fvu_on_batch, make_fvu(mistake), hint)


def test_fvu_crash_and_missing_return():
    assert_fails_with(ch06.fvu_on_batch, lambda x, x_hat: x @ x_hat, "raised RuntimeError")
    assert_fails_with(ch06.fvu_on_batch, lambda x, x_hat: None, "returned None")


def test_fvu_not_implemented_propagates():
    def stub(x, x_hat):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        ch06.fvu_on_batch(stub)


# ----------------------------------------------------------------------------------------------
# Exercise 2: the splice hook
# ----------------------------------------------------------------------------------------------

def make_splice(mistake=None):
    def make_splice_hook(sae):
        def hook(act, hook):
            flat = act.reshape(-1, act.shape[-1])
            if mistake == "identity":
                return act
            if mistake == "zero":
                return torch.zeros_like(act)
            if mistake == "error":
                return (flat - sae(flat).x_hat).reshape(act.shape)
            if mistake == "no_b_dec":
                return (sae.encode(flat) @ sae.W_dec).reshape(act.shape)
            if mistake == "latents":
                return sae.encode(flat).reshape(*act.shape[:2], -1)
            return sae.decode(sae.encode(flat)).reshape(act.shape)
        return None if mistake == "no_return" else hook

    return make_splice_hook


def test_splice_reference_passes(capsys):
    assert_passes(ch06.make_splice_hook, make_splice(), "make_splice_hook", capsys)


@pytest.mark.parametrize("mistake, hint", [
    ("identity", "leaves the activation unchanged"),
    ("zero", "zero-ablation baseline"),
    ("error", "reconstruction error"),
    ("no_b_dec", "misses b_dec"),
    ("latents", "must return a tensor of the same shape"),
    ("no_return", "return the hook function itself"),
])
def test_splice_mistakes_get_their_hint(mistake, hint):
    assert_fails_with(ch06.make_splice_hook, make_splice(mistake), hint)


# ----------------------------------------------------------------------------------------------
# Exercise 3: the steering hook
# ----------------------------------------------------------------------------------------------

def make_steer(mistake=None):
    def make_steering_hook(direction, alpha):
        def hook(act, hook):
            if mistake == "no_alpha":
                return act + direction
            if mistake == "normalised":
                return act + alpha * direction / direction.norm()
            if mistake == "subtract":
                return act - alpha * direction
            if mistake == "last_only":
                out = act.clone()
                out[:, -1, :] = out[:, -1, :] + alpha * direction
                return out
            if mistake == "replace":
                return (alpha * direction).expand_as(act).clone()
            if mistake == "in_place":  # modifying act in place and returning it is fine
                act += alpha * direction
                return act
            return act + alpha * direction
        return hook

    return make_steering_hook


@pytest.mark.parametrize("variant", [None, "in_place"])
def test_steering_reference_passes(variant, capsys):
    assert_passes(ch06.make_steering_hook, make_steer(variant), "make_steering_hook", capsys)


@pytest.mark.parametrize("mistake, hint", [
    ("no_alpha", "without multiplying by alpha"),
    ("normalised", "normalised the direction"),
    ("subtract", "subtracted the direction"),
    ("last_only", "only at the last position"),
    ("replace", "replaced the activation"),
])
def test_steering_mistakes_get_their_hint(mistake, hint):
    assert_fails_with(ch06.make_steering_hook, make_steer(mistake), hint)
