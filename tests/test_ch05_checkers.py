"""Chapter 5 exercise checkers: the right answer passes, each common mistake gets its own hint.

The "student" functions are written independently of the checker's mistake generators (loops and
plain NumPy, the way a student would write them), so a hint is reported only when the checker
really recognises the mistake.
"""
import itertools

import numpy as np
import pytest

from checker_helpers import assert_fails_with, assert_passes
from saelab.exercises import ch05
from saelab.exercises.checking import ExerciseFailed

# ----------------------------------------------------------------------------------------------
# Exercise 1: streaming FVU
# ----------------------------------------------------------------------------------------------


def make_fvu(mistake=None):
    """A student's one-pass FVU over (x, x_hat) batches, optionally with one mistake."""

    def fvu_streaming(batches):
        dtype = np.float32 if mistake == "float32" else np.float64
        n, residual, sum_sq = 0, dtype(0), dtype(0)
        sum_x = None
        per_batch, per_token, batch_centred = [], [], 0.0
        stored = []
        for x, x_hat in batches:
            x, x_hat = x.astype(dtype), x_hat.astype(dtype)
            r = ((x - x_hat) ** 2).sum()
            if mistake == "overwrite":
                n, residual, sum_sq, sum_x = 0, dtype(0), dtype(0), None
            n += x.shape[0]
            residual += r
            sum_sq += (x ** 2).sum()
            sum_x = x.sum(axis=0) if sum_x is None else sum_x + x.sum(axis=0)
            c = ((x - x.mean(axis=0)) ** 2).sum()
            batch_centred += c
            per_batch.append(r / c)
            stored.append((x, x_hat))
        mean = sum_x / n
        total = sum_sq - n * (mean @ mean)
        if mistake == "uncentred":
            return float(residual / sum_sq)
        if mistake == "saelens_659":
            mean_sq = sum_sq / (n * mean.shape[0])
            return float((residual / n) / (sum_sq / n - mean_sq ** 2))
        if mistake == "per_token":
            for x, x_hat in stored:
                per_token.extend(((x - x_hat) ** 2).sum(1) / ((x - mean) ** 2).sum(1))
            return float(np.mean(per_token))
        if mistake == "batch_mean":
            return float(residual / batch_centred)
        if mistake == "mean_of_batches":
            return float(np.mean(per_batch))
        if mistake == "explained":
            return float(1 - residual / total)
        if mistake == "n_minus_1":
            return float((residual / n) / (total / (n - 1)))
        return float(residual / total)

    return fvu_streaming


def test_fvu_reference_passes(capsys):
    assert_passes(ch05.fvu_streaming, make_fvu(), "fvu_streaming", capsys)


def test_fvu_welford_passes(capsys):
    """A Welford-style running mean and centred sum (float64) passes too."""

    def fvu_streaming(batches):
        n, mean, m2, residual = 0, None, 0.0, 0.0
        for x, x_hat in batches:
            x, x_hat = x.astype(np.float64), x_hat.astype(np.float64)
            residual += ((x - x_hat) ** 2).sum()
            for row in x:
                n += 1
                if mean is None:
                    mean = row.copy()
                    continue
                delta = row - mean
                mean += delta / n
                m2 += delta @ (row - mean)
        return residual / m2

    assert_passes(ch05.fvu_streaming, fvu_streaming, "fvu_streaming", capsys)


@pytest.mark.parametrize("mistake, hint", [
    ("uncentred", "variance about zero"),
    ("saelens_659", "SAELens issue #659"),
    ("per_token", "averaged per-token ratios"),
    ("batch_mean", "each batch was centred on its own mean"),
    ("mean_of_batches", "averaged the FVUs of the batches"),
    ("explained", "that is the explained variance"),
    ("n_minus_1", "(n versus n - 1)"),
    ("overwrite", "only the last batch counts"),
    ("float32", "accumulated in float32"),
])
def test_fvu_mistakes_get_their_hint(mistake, hint):
    assert_fails_with(ch05.fvu_streaming, make_fvu(mistake), hint)


def test_fvu_batches_can_be_read_only_once():
    def two_pass(batches):
        xs = [x for x, _ in batches]
        return float(len(list(batches)) + len(xs))

    assert_fails_with(ch05.fvu_streaming, two_pass, "can be read only once")


def test_fvu_float32_band_catches_other_float32_sums():
    """float32 sums done another way miss the exact variant but still get the float32 hint."""

    def fvu_streaming(batches):
        n, residual, sq, sx = 0, 0.0, 0.0, 0.0
        for x, x_hat in batches:  # float32 sums per batch, added to Python floats
            n += x.shape[0]
            residual += float(((x - x_hat) ** 2).sum())
            sq += float((x ** 2).sum())
            sx = sx + x.sum(axis=0)
        mean = sx / n
        return residual / (sq - n * float(mean @ mean))

    assert_fails_with(ch05.fvu_streaming, fvu_streaming, "accumulated in float32")


def test_fvu_not_a_number_and_none():
    assert_fails_with(ch05.fvu_streaming, lambda batches: None, "returned None")
    assert_fails_with(ch05.fvu_streaming, lambda batches: [0.1, 0.2], "return one number")
    with pytest.raises(NotImplementedError):
        ch05.fvu_streaming(lambda batches: (_ for _ in ()).throw(NotImplementedError()))


# ----------------------------------------------------------------------------------------------
# Exercise 2: dead fraction over a window
# ----------------------------------------------------------------------------------------------


def make_dead(mistake=None):
    def dead_fraction_in_window(code_batches, window):
        if mistake == "suffix":
            allrows = np.concatenate(code_batches)[-window:]
            return float(np.mean(~(allrows != 0).any(axis=0)))
        if mistake == "off_by_one":
            window = window - 1
        fired, seen, per_batch, tokens_silent = None, 0, [], []
        for f in code_batches:
            if seen >= window and mistake != "all_tokens":
                break
            if mistake == "drop_partial" and seen + f.shape[0] > window:
                break
            if mistake not in ("whole_batch", "all_tokens"):
                f = f[:window - seen]
            seen += f.shape[0]
            now = (f != 0).any(axis=0)
            fired = now if fired is None else fired | now
            per_batch.append(np.mean(~now))
            tokens_silent.extend(~(f != 0).any(axis=1))
        if mistake == "per_batch":
            return float(np.mean(per_batch))
        if mistake == "wrong_axis":
            return float(np.mean(tokens_silent))
        if mistake == "alive":
            return float(np.mean(fired))
        if mistake == "count":
            return int((~fired).sum())
        return float(np.mean(~fired))

    return dead_fraction_in_window


def test_dead_reference_passes(capsys):
    assert_passes(ch05.dead_fraction_in_window, make_dead(), "dead_fraction_in_window", capsys)


@pytest.mark.parametrize("mistake, hint", [
    ("all_tokens", "over ALL the tokens"),
    ("whole_batch", "you used that whole batch"),
    ("drop_partial", "you dropped that batch"),
    ("alive", "fraction of latents that fired (alive)"),
    ("count", "number of dead latents"),
    ("wrong_axis", "wrong axis"),
    ("per_batch", "averaged the dead fraction of each batch"),
    ("suffix", "the LAST `window` tokens"),
    ("off_by_one", "window - 1 tokens"),
])
def test_dead_mistakes_get_their_hint(mistake, hint):
    assert_fails_with(ch05.dead_fraction_in_window, make_dead(mistake), hint)


def test_dead_inputs_place_the_window_inside_a_batch():
    batches, window = ch05._code_inputs()
    edges = np.cumsum([0] + [b.shape[0] for b in batches])
    assert window not in edges  # the window ends mid-batch, so rounding it changes the answer
    assert all(b.dtype == np.float32 and (b >= 0).all() for b in batches)


# ----------------------------------------------------------------------------------------------
# Exercise 3: MMCS
# ----------------------------------------------------------------------------------------------


def make_mmcs(mistake=None):
    def mmcs(learned, true):
        def norm_rows(a):
            return a / np.sqrt((a ** 2).sum(axis=1, keepdims=True))

        a = learned if mistake in ("no_norm", "norm_true_only") else norm_rows(learned)
        b = true if mistake in ("no_norm", "norm_learned_only") else norm_rows(true)
        if mistake == "columns":
            a = learned / np.linalg.norm(learned, axis=0)
            b = true / np.linalg.norm(true, axis=0)
        sim = np.zeros((a.shape[0], b.shape[0]))
        for i in range(a.shape[0]):
            for j in range(b.shape[0]):
                sim[i, j] = a[i] @ b[j]
        if mistake == "abs":
            sim = np.abs(sim)
        if mistake == "mean":
            return sim.mean(), sim.mean()
        l2t = np.mean([sim[i].max() for i in range(sim.shape[0])])
        t2l = np.mean([sim[:, j].max() for j in range(sim.shape[1])])
        if mistake == "swapped":
            return t2l, l2t
        if mistake == "one_number":
            return t2l
        return l2t, t2l

    return mmcs


def test_mmcs_reference_passes(capsys):
    assert_passes(ch05.mmcs, make_mmcs(), "mmcs", capsys)


@pytest.mark.parametrize("mistake, hint", [
    ("swapped", "the two numbers are swapped"),
    ("no_norm", "dot products, not cosines"),
    ("norm_learned_only", "only the learned rows were normalised"),
    ("norm_true_only", "only the true rows were normalised"),
    ("columns", "normalised the columns"),
    ("abs", "absolute cosine"),
    ("mean", "averaged all the cosines"),
    ("one_number", "(yours equals true_to_learned)"),
])
def test_mmcs_mistakes_get_their_hint(mistake, hint):
    assert_fails_with(ch05.mmcs, make_mmcs(mistake), hint)


def test_mmcs_crash_becomes_a_hint():
    assert_fails_with(ch05.mmcs, lambda learned, true: learned @ true, "raised ValueError")


# ----------------------------------------------------------------------------------------------
# The mistake generators themselves
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inputs, reference, mistakes", [
    (lambda: (ch05._fvu_inputs(),), ch05._reference_fvu, ch05._fvu_mistakes),
    (ch05._code_inputs, ch05._reference_dead_fraction, ch05._dead_mistakes),
    (ch05._mmcs_inputs, ch05._reference_mmcs, ch05._mmcs_mistakes),
], ids=["fvu", "dead", "mmcs"])
def test_every_mistake_differs_from_the_answer_and_from_each_other(inputs, reference, mistakes):
    """Otherwise a wrong answer could pass, or get another mistake's hint."""
    args = inputs()
    values = [np.atleast_1d(reference(*args))]
    values += [np.atleast_1d(v) for v in mistakes(*args).values()]
    for (i, a), (j, b) in itertools.combinations(enumerate(values), 2):
        assert not np.allclose(a, b, rtol=1e-4, atol=1e-9), (i, j, a, b)


def test_reference_fvu_is_the_one_shot_fvu():
    from saelab.metrics import fvu

    batches = ch05._fvu_inputs()
    x = np.concatenate([b[0] for b in batches])
    x_hat = np.concatenate([b[1] for b in batches])
    assert ch05._reference_fvu(batches) == pytest.approx(fvu(x, x_hat), rel=1e-10)
    assert isinstance(ExerciseFailed("x"), AssertionError)
