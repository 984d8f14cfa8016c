"""Tests for saelab.exercises.ch03: the reference passes, known-wrong answers get their hint."""
import numpy as np
import pytest

from saelab import lasso
from saelab.exercises import ch03

from checker_helpers import assert_fails_with, assert_passes


# ---- reference solutions, written the way a student would -------------------------------------

def student_threshold(v, t):
    return np.maximum(v - t, 0)


def student_ista_step(x, D, z, lam, eta):
    grad = 2 * (z @ D - x) @ D.T
    return np.maximum(z - eta * grad - eta * lam, 0)


def student_encoder(D, lam, eta):
    return 2 * eta * D.T, -eta * lam * np.ones(D.shape[0])


@pytest.mark.parametrize("checker, fn, name", [
    (ch03.nonneg_soft_threshold, student_threshold, "nonneg_soft_threshold"),
    (ch03.nonneg_soft_threshold, lasso.nonneg_soft_threshold, "nonneg_soft_threshold"),
    (ch03.ista_step, student_ista_step, "ista_step"),
    (ch03.ista_step, lasso.ista_step, "ista_step"),
    (ch03.ista_encoder, student_encoder, "ista_encoder"),
    (ch03.ista_encoder, lasso.ista_encoder_weights, "ista_encoder"),
    (ch03.ista_encoder, lambda D, lam, eta: (2 * eta * D.T, -eta * lam), "ista_encoder"),
])
def test_referenceassert_passes(checker, fn, name, capsys):
    assert_passes(checker, fn, name, capsys)


def test_torch_answers_are_accepted(capsys):
    import torch

    def torch_step(x, D, z, lam, eta):
        x, D, z = (torch.tensor(a) for a in (x, D, z))
        return torch.relu(z - eta * 2 * (z @ D - x) @ D.T - eta * lam)

    assert_passes(ch03.ista_step, torch_step, "ista_step", capsys)


@pytest.mark.parametrize("checker", [ch03.nonneg_soft_threshold, ch03.ista_step, ch03.ista_encoder])
def test_not_implemented_propagates(checker):
    def todo(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        checker(todo)


@pytest.mark.parametrize("checker", [ch03.nonneg_soft_threshold, ch03.ista_step, ch03.ista_encoder])
def test_returning_none_is_explained(checker):
    assert_fails_with(checker, lambda *args: None, "forget `return")


# ---- known-wrong answers -> specific hints ------------------------------------------------------

@pytest.mark.parametrize("fn, hint", [
    (lambda v, t: np.sign(v) * np.maximum(np.abs(v) - t, 0), "signed soft threshold"),
    (lambda v, t: np.maximum(v, 0) - t, "subtracted t after the ReLU"),
    (lambda v, t: np.maximum(v, 0), "forgot the threshold"),
    (lambda v, t: np.maximum(v + t, 0), "you added t"),
    (lambda v, t: v - t, "forgot to clip at zero"),
    (lambda v, t: v * (v > t), "hard thresholding"),
    (lambda v, t: np.maximum(v - t / 2, 0), "thresholded at t/2"),
])
def test_threshold_wrong_variants(fn, hint):
    assert_fails_with(ch03.nonneg_soft_threshold, fn, hint)


def _step(x, D, z, lam, eta, *, two=2.0, sign=1.0, eta_grad=True, eta_thr=True, thr_scale=1.0,
          relu=True, from_zero=False):
    grad = two * (z @ D - x) @ D.T
    start = 0 * z if from_zero else z
    v = start - sign * (eta if eta_grad else 1.0) * grad
    v = v - (eta if eta_thr else 1.0) * lam * thr_scale
    return np.maximum(v, 0) if relu else v


@pytest.mark.parametrize("kwargs, hint", [
    (dict(two=1.0), "forgot the factor 2"),
    (dict(sign=-1.0), "wrong sign"),
    (dict(eta_thr=False), "threshold is missing the step size"),
    (dict(eta_grad=False), "gradient is missing the step size"),
    (dict(thr_scale=0.5), "eta * lam / 2"),
    (dict(relu=False), "forgot the ReLU"),
    (dict(from_zero=True), "forgot the current z"),
    (dict(thr_scale=0.0), "forgot the threshold"),
])
def test_ista_step_wrong_variants(kwargs, hint):
    assert_fails_with(ch03.ista_step, lambda x, D, z, lam, eta: _step(x, D, z, lam, eta, **kwargs), hint)


def test_ista_step_signed_threshold():
    def signed(x, D, z, lam, eta):
        v = z - eta * 2 * (z @ D - x) @ D.T
        return np.sign(v) * np.maximum(np.abs(v) - eta * lam, 0)

    assert_fails_with(ch03.ista_step, signed, "signed soft threshold")


def test_ista_step_transposed_dictionary_gets_shape_hint():
    assert_fails_with(ch03.ista_step,
                lambda x, D, z, lam, eta: np.maximum(z - eta * 2 * (z @ D.T - x) @ D - eta * lam, 0),
                "atoms as rows")


@pytest.mark.parametrize("fn, hint", [
    (lambda D, lam, eta: (eta * D.T, -eta * lam), "missing the factor 2"),
    (lambda D, lam, eta: (2 * D.T, -eta * lam), "missing the step size eta"),
    (lambda D, lam, eta: (-2 * eta * D.T, -eta * lam), "W_enc has the wrong sign"),
    (lambda D, lam, eta: (2 * eta * D, -eta * lam), "it is built from D^T, not D"),
    (lambda D, lam, eta: (2 * eta * D.T, -lam), "b_enc is missing the step size"),
    (lambda D, lam, eta: (2 * eta * D.T, eta * lam), "b_enc has the wrong sign"),
    (lambda D, lam, eta: (2 * eta * D.T, -eta * lam / 2), "b_enc is half"),
    (lambda D, lam, eta: (2 * eta * D.T, -2 * eta * lam), "extra factor 2"),
    (lambda D, lam, eta: 2 * eta * D.T, "return two things"),
])
def test_encoder_wrong_variants(fn, hint):
    assert_fails_with(ch03.ista_encoder, fn, hint)


def test_unrecognised_wrong_answer_gets_generic_hint():
    assert_fails_with(ch03.ista_step,
                lambda x, D, z, lam, eta: student_ista_step(x, D, z, lam, eta) + 0.1,
                "largest absolute error")
