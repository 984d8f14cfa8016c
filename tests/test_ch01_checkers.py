"""Tests for saelab.exercises.ch01: the reference passes, known-wrong answers get their hint."""
import numpy as np
import pytest

from saelab.exercises import ch01

from checker_helpers import assert_fails_with, assert_passes
from saelab.geometry import feature_dimensionality, interference_formula
from saelab.toy import toy_forward, toy_loss




# ---- reference solutions, written the way a student would -------------------------------------

def student_forward(W, b, x):
    return np.maximum(x @ W.T @ W + b, 0)


def student_loss(x, x_hat, importance):
    return np.mean(np.sum(importance * (x - x_hat) ** 2, axis=1))


def student_dimensionality(W):
    norm2 = (W ** 2).sum(0)
    overlap = ((W.T @ W) ** 2).sum(1)
    return np.where(overlap > 0, norm2 ** 2 / np.where(overlap > 0, overlap, 1), 0.0)


def student_interference(F, p):
    G = F.T @ F
    np.fill_diagonal(G, 0)
    return p * (G ** 2).sum(1)


@pytest.mark.parametrize("checker, fn, name", [
    (ch01.toy_forward, student_forward, "toy_forward"),
    (ch01.toy_forward, toy_forward, "toy_forward"),
    (ch01.toy_loss, student_loss, "toy_loss"),
    (ch01.toy_loss, toy_loss, "toy_loss"),
    (ch01.feature_dimensionality, student_dimensionality, "feature_dimensionality"),
    (ch01.feature_dimensionality, feature_dimensionality, "feature_dimensionality"),
    (ch01.interference_estimate, student_interference, "interference_estimate"),
    (ch01.interference_estimate, interference_formula, "interference_estimate"),
])
def test_referenceassert_passes(checker, fn, name, capsys):
    assert_passes(checker, fn, name, capsys)


def test_torch_answers_are_accepted(capsys):
    import torch

    def torch_forward(W, b, x):
        W, b, x = (torch.tensor(a) for a in (W, b, x))
        return torch.relu(x @ W.T @ W + b)

    assert_passes(ch01.toy_forward, torch_forward, "toy_forward", capsys)


@pytest.mark.parametrize("checker", [ch01.toy_forward, ch01.toy_loss, ch01.feature_dimensionality,
                                     ch01.interference_estimate])
def test_not_implemented_propagates(checker):
    def todo(*args):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        checker(todo)


def test_returning_none_is_explained():
    assert_fails_with(ch01.toy_loss, lambda x, x_hat, imp: None, "forget `return`")


# ---- known-wrong answers -> specific hints ------------------------------------------------------

@pytest.mark.parametrize("fn, hint", [
    (lambda W, b, x: x @ W.T @ W + b, "forgot the ReLU"),
    (lambda W, b, x: np.maximum(x @ W.T @ W, 0), "forgot the bias"),
    (lambda W, b, x: np.maximum(x @ W.T @ W, 0) + b, "the bias goes inside the ReLU"),
    (lambda W, b, x: np.maximum(np.maximum(x @ W.T, 0) @ W + b, 0), "the hidden layer is linear"),
    (lambda W, b, x: x @ W.T, "that is the hidden layer h = W x"),
    (lambda W, b, x: np.maximum(x @ W @ W.T + b, 0), "W @ W.T is (d, d)"),
])
def test_toy_forward_wrong_variants(fn, hint):
    assert_fails_with(ch01.toy_forward, fn, hint)


@pytest.mark.parametrize("fn, hint", [
    (lambda x, xh, I: np.mean(np.sum((x - xh) ** 2, axis=1)), "forgot the importance"),
    (lambda x, xh, I: np.mean(I * (x - xh) ** 2), "averaged over features"),
    (lambda x, xh, I: np.sum(I * (x - xh) ** 2), "summed over the batch"),
    (lambda x, xh, I: np.mean(np.sum((I * (x - xh)) ** 2, axis=1)), "squared after weighting"),
    (lambda x, xh, I: np.mean(np.sum(np.sqrt(I) * (x - xh) ** 2, axis=1)), "weighted by sqrt(I_i)"),
    (lambda x, xh, I: np.mean(np.sum(I * (x - xh), axis=1)), "forgot to square"),
    (lambda x, xh, I: np.sum(I * (x - xh) ** 2, axis=1), "one value per example"),
])
def test_toy_loss_wrong_variants(fn, hint):
    assert_fails_with(ch01.toy_loss, fn, hint)


def _dim_no_guard(W):
    with np.errstate(invalid="ignore", divide="ignore"):
        return (W ** 2).sum(0) ** 2 / ((W.T @ W) ** 2).sum(1)


def _dim_unnormalised(W):
    norm2 = (W ** 2).sum(0)
    overlap = ((W.T @ W) ** 2).sum(1)
    return np.where(overlap > 0, norm2 / np.where(overlap > 0, overlap, 1), 0.0)


def _dim_exclude_self(W):
    norm2 = (W ** 2).sum(0)
    G = W.T @ W
    np.fill_diagonal(G, 0)
    overlap = (G ** 2).sum(1)
    return np.where(overlap > 0, norm2 ** 2 / np.where(overlap > 0, overlap, 1), 0.0)


def _dim_rows(W):
    return student_dimensionality(W.T)


@pytest.mark.parametrize("fn, hint", [
    (_dim_no_guard, "dimensionality 0"),
    (_dim_unnormalised, "did not normalise W_i"),
    (_dim_exclude_self, "left out the j = i term"),
    (_dim_rows, "is the column W[:, i]"),
])
def test_dimensionality_wrong_variants(fn, hint):
    assert_fails_with(ch01.feature_dimensionality, fn, hint)


def _interf_with_self(F, p):
    return p * ((F.T @ F) ** 2).sum(1)


def _interf_no_p(F, p):
    return student_interference(F, p) / p


def _interf_square_of_sum(F, p):
    G = F.T @ F
    np.fill_diagonal(G, 0)
    return p * G.sum(1) ** 2


@pytest.mark.parametrize("fn, hint", [
    (_interf_with_self, "you included j = i"),
    (_interf_no_p, "forgot the factor p"),
    (_interf_square_of_sum, "squared the sum"),
    (lambda F, p: np.full(F.shape[1], p * (F.shape[1] - 1) / F.shape[0]), "random-vector approximation"),
])
def test_interference_wrong_variants(fn, hint):
    assert_fails_with(ch01.interference_estimate, fn, hint)


def test_unrecognised_wrong_answer_gets_generic_hint():
    assert_fails_with(ch01.toy_forward, lambda W, b, x: np.maximum(x @ W.T @ W + b, 0) + 0.1,
                "largest absolute error")
