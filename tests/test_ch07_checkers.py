"""Chapter 7 exercise checkers: the right answer passes, each common mistake gets its own hint.

The "student" functions are written independently of the checkers' mistake generators (loops over
prefixes and latents), so a hint is reported only when the checker really recognises the mistake.
"""
import numpy as np
import pytest

from saelab.exercises import ch07
from saelab.exercises.checking import ExerciseFailed


def make_nested_loss(mistake=None):
    def nested_recon_loss(x, f, W_dec, b_dec, prefix_sizes):
        sizes = [prefix_sizes[-1]] if mistake == "full_only" else prefix_sizes
        total = 0.0
        for m in sizes:
            if mistake == "suffix":
                x_hat = f[:, -m:] @ W_dec[-m:] + b_dec
            else:
                x_hat = f[:, :m] @ W_dec[:m] + (0.0 if mistake == "no_bias" else b_dec)
            err = ((x - x_hat) ** 2)
            total += err.mean() if mistake == "mean_d" else err.sum(axis=1).mean()
        return total if mistake == "sum" else total / len(sizes)

    return nested_recon_loss


def test_nested_loss_reference_passes(capsys):
    ch07.nested_recon_loss(make_nested_loss())
    assert capsys.readouterr().out == "passed: nested_recon_loss\n"


@pytest.mark.parametrize("mistake, hint", [
    ("sum", "summed over the prefixes"), ("full_only", "full dictionary only"),
    ("no_bias", "left out b_dec"), ("mean_d", "over d_in too"), ("suffix", "last m latents"),
])
def test_nested_loss_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch07.nested_recon_loss(make_nested_loss(mistake))


def make_grad(mistake=None):
    def nested_loss_grad_W_dec(x, f, W_dec, b_dec, prefix_sizes):
        n, batch = len(prefix_sizes), x.shape[0]
        grad = np.zeros_like(W_dec)
        for j, m in enumerate(prefix_sizes):
            if mistake == "full_only" and j < n - 1:
                continue
            scale = (2.0 if mistake != "no_two" else 1.0) / batch
            scale /= 1 if mistake in ("no_n", "full_only") else n
            g = scale * (f[:, :m] @ W_dec[:m] + b_dec - x)  # dL/dx_hat_j
            for i in range(W_dec.shape[0]):
                first = next(t for t, mm in enumerate(prefix_sizes) if i < mm)  # i's group
                inside = {"own": j == first, "smaller": j <= first}.get(mistake, i < m)
                if mistake == "full_only":
                    inside = True
                if inside:
                    grad[i] += f[:, i] @ g
        return grad.T if mistake == "transposed" else grad

    return nested_loss_grad_W_dec


def test_grad_reference_passes(capsys):
    ch07.nested_loss_grad_W_dec(make_grad())
    assert capsys.readouterr().out == "passed: nested_loss_grad_W_dec\n"


@pytest.mark.parametrize("mistake, hint", [
    ("full_only", "only from the full reconstruction"), ("own", "only the prefix where"),
    ("smaller", "wrong way round"), ("no_n", "1/n"), ("no_two", "factor 2"),
    ("transposed", "transposed"),
])
def test_grad_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch07.nested_loss_grad_W_dec(make_grad(mistake))


def make_rate(mistake=None):
    def full_absorption_rate(f, W_dec, x, present, P, parent_latent, min_share=0.4,
                             min_absorber_cos=0.025):
        count = 0
        for b in range(len(x)):
            if not present[b] or f[b, parent_latent] != 0:
                continue
            probe = np.linalg.norm(x[b]) if mistake == "norm" else x[b] @ P
            proj = [f[b, i] * (W_dec[i] @ P) for i in range(len(W_dec))]
            top = int(np.argmax(f[b])) if mistake == "by_activation" else int(np.argmax(proj))
            cos = W_dec[top] @ P / np.linalg.norm(W_dec[top])
            if probe > 0 and cos >= min_absorber_cos and (
                    mistake == "no_share" or proj[top] >= min_share * probe):
                count += 1
        silent = sum(1 for b in range(len(x)) if present[b] and f[b, parent_latent] == 0)
        den = {"all": len(x), "silent": silent}.get(mistake, int(np.sum(present)))
        return count / den

    return full_absorption_rate


def test_rate_reference_passes(capsys):
    ch07.full_absorption_rate(make_rate())
    assert capsys.readouterr().out == "passed: full_absorption_rate\n"


@pytest.mark.parametrize("mistake, hint", [
    ("no_share", "every input where the parent latent is silent"), ("all", "divided by all"),
    ("silent", "where the parent latent is silent; divide"), ("by_activation", "by activation"),
    ("norm", "compared with"),
])
def test_rate_mistakes_get_hints(mistake, hint):
    with pytest.raises(ExerciseFailed, match=hint):
        ch07.full_absorption_rate(make_rate(mistake))


def test_checkers_turn_crashes_into_hints():
    def broken(*args):
        raise KeyError("oops")

    for checker in (ch07.nested_recon_loss, ch07.nested_loss_grad_W_dec,
                    ch07.full_absorption_rate):
        with pytest.raises(ExerciseFailed):
            checker(broken)
