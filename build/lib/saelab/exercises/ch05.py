"""Exercise checkers for Chapter 5 (evaluating an SAE).

Three exercises, each checked against the library on fixed inputs:

* ``fvu_streaming(batches)``: the fraction of variance unexplained over an evaluation set that
  arrives in batches and can be read only once,

      FVU = sum_b ||x_b - x_hat_b||^2 / sum_b ||x_b - mean(x)||^2,

  with the mean over the whole set, accumulated in float64. Compared with
  :class:`saelab.metrics.FVUAccumulator`. The inputs look like a residual stream: one dimension
  has a mean near 1000, and each batch (one "document") has its own offset.
* ``dead_fraction_in_window(code_batches, window)``: the fraction of latents that fire on none of
  the first ``window`` tokens, when the window ends inside a batch. Compared with
  :func:`saelab.metrics.dead_fraction` on those rows.
* ``mmcs(learned, true)``: the mean max cosine similarity in both directions, returned as
  ``(learned_to_true, true_to_learned)``. Compared with :func:`saelab.metrics.mmcs`. Rows have
  very different norms, and some learned rows point against a true feature.

A wrong answer is compared with the answers of common mistakes (variance about zero, the SAELens
issue #659 denominator, per-token ratios, per-batch means, float32 sums; a window rounded to whole
batches; unnormalised rows, swapped directions, absolute cosines, ...) and the message names the
one it matches. Taught in Chapter 5.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from saelab.exercises import checking
from saelab.exercises.checking import ExerciseFailed

__all__ = ["fvu_streaming", "dead_fraction_in_window", "mmcs"]

FVU_RTOL = 1e-5  # float64 answers agree to ~1e-12; float32 sums miss by ~1e-3 on these inputs
FLOAT32_HINT = (
    "you accumulated in float32. With a mean near 1000 in one dimension, sum ||x||^2 and "
    "n ||mean||^2 are both about 10^9 and their difference about 10^4, so float32 (7 significant "
    "digits) loses a good part of it. Convert each batch to float64 before summing.")


# ----------------------------------------------------------------------------------------------
# Exercise 1: FVU, streamed, in float64
# ----------------------------------------------------------------------------------------------

BATCH_SIZES = (300, 50, 700, 13, 450)  # uneven, as the last batch of a real evaluation set is


def _fvu_inputs() -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, x_hat) float32 batches of width 16, shaped like residual-stream activations.

    The mean is far from zero (one "massive" dimension near 1000, the others a few units), each
    batch has its own offset (a different document), and the reconstruction is b_dec plus a
    shrunk, noisy copy of x - b_dec, where b_dec is close to, but not exactly, the mean.
    """
    rng = np.random.default_rng(2005)
    d = 16
    mean = rng.normal(0.0, 3.0, d)
    mean[3] = 1000.0  # a massive-activation dimension
    scale = rng.uniform(0.5, 2.0, d)  # per-dimension spread
    b_dec = mean + rng.normal(0.0, 0.3, d)
    batches = []
    for size in BATCH_SIZES:
        offset = rng.normal(0.0, 1.0, d)  # this document's shift
        x = mean + offset + scale * rng.standard_normal((size, d))
        x_hat = b_dec + 0.8 * (x - b_dec) + 0.4 * rng.standard_normal((size, d))
        batches.append((x.astype(np.float32), x_hat.astype(np.float32)))
    return batches


class _ReadOnce:
    """An iterable of batches that can be iterated only once, like a stream of activations."""

    def __init__(self, batches) -> None:
        self._batches = list(batches)
        self._used = False

    def __iter__(self):
        if self._used:
            raise RuntimeError("batches can be read only once (it is a stream): accumulate "
                               "the sums you need in a single pass")
        self._used = True
        return iter(self._batches)


def _reference_fvu(batches) -> float:
    """The library's streaming FVU (saelab.metrics.FVUAccumulator) over the batches."""
    from saelab.metrics import FVUAccumulator

    acc = FVUAccumulator()
    for x, x_hat in batches:
        acc.update(x, x_hat)
    return acc.value


def _float32_fvu(batches) -> float:
    """FVU from E||x||^2 - ||E x||^2 with every sum kept in float32 (the cancellation mistake)."""
    n, residual, sq = 0, np.float32(0), np.float32(0)
    total = np.zeros(batches[0][0].shape[1], dtype=np.float32)
    for x, x_hat in batches:
        n += x.shape[0]
        residual += ((x - x_hat) ** 2).sum(dtype=np.float32)
        sq += (x ** 2).sum(dtype=np.float32)
        total += x.sum(axis=0, dtype=np.float32)
    mean = total / np.float32(n)
    return float(residual / (sq - np.float32(n) * (mean @ mean)))


def _fvu_mistakes(batches) -> dict[str, float]:
    """Hint -> the FVU that a common mistake produces (computed in float64)."""
    xs = [x.astype(np.float64) for x, _ in batches]
    hats = [h.astype(np.float64) for _, h in batches]
    x, x_hat = np.concatenate(xs), np.concatenate(hats)
    n = x.shape[0]
    residual = float(((x - x_hat) ** 2).sum())
    centred = x - x.mean(axis=0)
    total = float((centred ** 2).sum())
    mean_of_squares = float((x ** 2).mean())  # one scalar over rows and dimensions
    per_batch_total = sum(float(((b - b.mean(axis=0)) ** 2).sum()) for b in xs)
    per_batch_fvu = [float(((b - h) ** 2).sum()) / float(((b - b.mean(axis=0)) ** 2).sum())
                     for b, h in zip(xs, hats)]
    per_dim = ((x - x_hat) ** 2).sum(axis=0) / (centred ** 2).sum(axis=0)  # [d]
    last_x, last_hat = xs[-1], hats[-1]
    last_fvu = (float(((last_x - last_hat) ** 2).sum())
                / float(((last_x - last_x.mean(axis=0)) ** 2).sum()))
    return {
        "you measured the variance about zero, sum ||x||^2, instead of about the mean. "
        "Activations have a large mean that b_dec reconstructs for free, so this flatters the SAE. "
        "Subtract the mean over the whole set: sum ||x||^2 - n ||mean||^2.":
            residual / float((x ** 2).sum()),
        "this is the SAELens issue #659 denominator: you squared the mean of x^2 (one number) "
        "where the mean of x (one number per dimension) belongs. The total variance is "
        "sum ||x||^2 - n ||mean(x)||^2 with mean(x) of shape (d,).":
            (residual / n) / (float((x ** 2).sum()) / n - mean_of_squares ** 2),
        "you averaged per-token ratios ||x_b - x_hat_b||^2 / ||x_b - mean||^2 (the legacy "
        "SAEBench formula). Sum the numerators and the denominators separately, then divide once.":
            float(np.mean(((x - x_hat) ** 2).sum(1) / (centred ** 2).sum(1))),
        "each batch was centred on its own mean. The variance must be measured about the mean "
        "of the WHOLE set: accumulate sum x and sum ||x||^2 over every batch and subtract "
        "n ||mean||^2 at the end.":
            residual / per_batch_total,
        "you averaged the FVUs of the batches. Batches differ in size and in variance: "
        "accumulate the residual and the total over all batches, then divide once.":
            float(np.mean(per_batch_fvu)),
        "you averaged per-dimension ratios. FVU divides the total residual (summed over "
        "dimensions) by the total variance (summed over dimensions), once.":
            float(per_dim.mean()),
        "that is the explained variance, 1 - FVU. Return the fraction UNexplained.":
            1.0 - residual / total,
        "the numerator and the denominator are normalised differently (n versus n - 1): use "
        "the same count for both, or simply divide the two sums.":
            (residual / n) / (total / (n - 1)),
        "only the last batch counts: did you assign (=) where you meant to accumulate (+=)?":
            last_fvu,
        FLOAT32_HINT: _float32_fvu(batches),
    }


def fvu_streaming(fn: Callable) -> None:
    """Check ``fn(batches) -> float``: FVU over batches of ``(x, x_hat)`` read once, float64."""
    name = "fvu_streaming"
    batches = _fvu_inputs()
    got = checking.call_student(name, fn, _ReadOnce([(x.copy(), h.copy()) for x, h in batches]))
    want = _reference_fvu(batches)
    if got is None:
        raise ExerciseFailed(f"{name}: your function returned None; did you forget `return`?")
    try:
        value = float(np.asarray(checking.to_numpy(got)).reshape(()))
    except (TypeError, ValueError) as exc:
        raise ExerciseFailed(f"{name}: return one number (a float), got {type(got).__name__} "
                             f"{np.shape(got)}") from exc
    mistakes = _fvu_mistakes(batches)
    close = lambda a, b: bool(np.isclose(a, b, rtol=FVU_RTOL, atol=0.0))  # noqa: E731
    if (not close(value, want) and not any(close(value, v) for v in mistakes.values())
            and abs(value / want - 1.0) < 0.05):  # near, but no known mistake: lost precision
        raise ExerciseFailed(f"{name}: close, but off by a relative {abs(value / want - 1):.1e}; "
                             f"{FLOAT32_HINT}")
    checking.expect_close(name, value, want, mistakes, rtol=FVU_RTOL, atol=0.0, what="the FVU")
    checking.passed(name)


# ----------------------------------------------------------------------------------------------
# Exercise 2: dead fraction over a token window
# ----------------------------------------------------------------------------------------------

CODE_BATCH_SIZES = (256, 256, 100, 300, 500)  # the window of 700 ends inside the fourth batch
WINDOW = 700
D_SAE_CODES = 40


def _code_inputs() -> tuple[list[np.ndarray], int]:
    """Batches of non-negative float32 codes (n_tokens, 40) with latents placed on purpose.

    Latents 0-19 fire at random rates from 1e-3 to 0.2 per token; 20-27 never fire; 28-29 fire
    only inside the window's last, partial batch (rows 612-699; 29 exactly on row 699, the last
    row of the window); 30-32 fire only in that batch after the window (rows 700-911; 30 exactly
    on row 700); 33-35 fire only in the last batch; 36-39 fire in the first batch and once near the end.
    """
    rng = np.random.default_rng(2006)
    n = sum(CODE_BATCH_SIZES)
    rates = 10.0 ** rng.uniform(-3, np.log10(0.2), 20)
    f = np.zeros((n, D_SAE_CODES))
    f[:, :20] = (rng.random((n, 20)) < rates) * rng.uniform(0.1, 3.0, (n, 20))
    f[:30, :20] += rng.uniform(0.1, 1.0, (30, 20))  # every random-rate latent fires early
    f[650, 28], f[699, 29] = 1.3, 0.7  # inside the window, in its last (partial) batch
    f[700, 30], f[750, 31], f[905, 32] = 0.9, 2.0, 0.4  # same batch, after the window
    f[1000:, 33:36] = (rng.random((n - 1000, 3)) < 0.05) * 1.0
    f[:256, 36:40] = (rng.random((256, 4)) < 0.1) * 0.5
    f[5, 36:40] = 0.5  # make sure each of them fires at least once
    f[1300, 36:40] = 0.8  # and once more near the end (so the last 700 rows differ)
    edges = np.cumsum((0,) + CODE_BATCH_SIZES)
    return [f[a:b].astype(np.float32) for a, b in zip(edges[:-1], edges[1:])], WINDOW


def _reference_dead_fraction(batches, window) -> float:
    """The library's dead fraction (saelab.metrics.dead_fraction) of the first ``window`` rows."""
    from saelab.metrics import dead_fraction

    return dead_fraction(np.concatenate(batches)[:window])


def _dead_mistakes(batches, window) -> dict[str, float]:
    """Hint -> the value a common mistake produces."""
    f = np.concatenate(batches) != 0  # [n, d_sae]
    edges = np.cumsum((0,) + tuple(b.shape[0] for b in batches))
    up = edges[np.searchsorted(edges, window)]  # the window rounded up to a batch boundary
    down = edges[np.searchsorted(edges, window, side="right") - 1]  # rounded down

    def dead(rows):
        return float(np.mean(~rows.any(axis=0)))

    return {
        "you counted latents as dead over ALL the tokens. Only the first `window` tokens count: "
        "stop (or slice) once you have seen that many.": dead(f),
        "the window ends inside a batch, and you used that whole batch. Take only the first "
        "`window - seen` rows of the batch in which the window ends.": dead(f[:up]),
        "the window ends inside a batch, and you dropped that batch. Take its first "
        "`window - seen` rows instead of skipping it.": dead(f[:down]),
        "you returned the fraction of latents that fired (alive). Dead = never fired: "
        "return 1 minus that.": 1.0 - dead(f[:window]),
        "you returned the number of dead latents. Divide by the number of latents (d_sae) to "
        "get a fraction.": float((~f[:window].any(axis=0)).sum()),
        "you reduced over the wrong axis: that is the fraction of TOKENS on which no latent "
        "fires. Dead latents: for each latent (column), did it fire on any token (row)?":
            float(np.mean(~f[:window].any(axis=1))),
        "you averaged the dead fraction of each batch. A latent is dead only if it fires in "
        "none of the batches of the window: keep one boolean per latent across batches.":
            float(np.mean([np.mean(~f[a:min(b, window)].any(axis=0))
                           for a, b in zip(edges[:-1], edges[1:]) if a < window])),
        "you used the LAST `window` tokens. Here the window is the first `window` tokens.":
            dead(f[-window:]),
        "off by one: you used window - 1 tokens.": dead(f[:window - 1]),
        "off by one: you used window + 1 tokens.": dead(f[:window + 1]),
    }


def dead_fraction_in_window(fn: Callable) -> None:
    """Check ``fn(code_batches, window) -> float``: latents silent on the first ``window`` rows."""
    name = "dead_fraction_in_window"
    batches, window = _code_inputs()
    got = checking.call_student(name, fn, [b.copy() for b in batches], window)
    want = _reference_dead_fraction(batches, window)
    checking.expect_close(name, got, want, _dead_mistakes(batches, window), rtol=1e-9,
                          atol=1e-12, what="the dead fraction")
    checking.passed(name)


# ----------------------------------------------------------------------------------------------
# Exercise 3: MMCS in both directions
# ----------------------------------------------------------------------------------------------

def _mmcs_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Learned rows (20, 10) and true rows (12, 10), with norms from 0.2 to 5.

    Learned rows 0-7 are noisy copies of true features 0-7; rows 8-10 point AGAINST true
    features 8-10 (cosine near -0.9, larger in size than any positive cosine they have); rows
    11-19 are random. True feature 11 has no learned match.
    """
    rng = np.random.default_rng(2007)
    d = 10
    true = rng.standard_normal((12, d))
    true /= np.linalg.norm(true, axis=1, keepdims=True)
    learned = rng.standard_normal((20, d))
    learned[:8] = true[:8] + 0.3 * rng.standard_normal((8, d))
    learned[8:11] = -true[8:11] + 0.3 * rng.standard_normal((3, d))
    learned *= rng.uniform(0.2, 5.0, (20, 1))  # norms: an SAE's decoder rows need not be unit
    true *= rng.uniform(0.5, 2.0, (12, 1))
    return learned, true


def _reference_mmcs(learned, true) -> np.ndarray:
    """The library's MMCS (saelab.metrics.mmcs): [learned_to_true, true_to_learned]."""
    from saelab.metrics import mmcs as library_mmcs

    m = library_mmcs(learned, true)
    return np.array([m.a_to_b, m.b_to_a])


def _both(sim: np.ndarray) -> np.ndarray:
    """[mean of row maxima, mean of column maxima] of a (n_learned, n_true) similarity."""
    return np.array([sim.max(axis=1).mean(), sim.max(axis=0).mean()])


def _mmcs_mistakes(learned, true) -> dict[str, np.ndarray]:
    """Hint -> the (learned_to_true, true_to_learned) pair a common mistake produces."""
    unit = lambda a, axis=1: a / np.linalg.norm(a, axis=axis, keepdims=True)  # noqa: E731
    cos = unit(learned) @ unit(true).T  # [n_learned, n_true]
    return {
        "the two numbers are swapped: return (learned_to_true, true_to_learned). learned_to_true "
        "is the mean over LEARNED rows of their best cosine with a true row.": _both(cos)[::-1],
        "you used dot products, not cosines: divide each row by its norm first (decoder rows "
        "are not unit vectors).": _both(learned @ true.T),
        "only the learned rows were normalised: divide the true rows by their norms too.":
            _both(unit(learned) @ true.T),
        "only the true rows were normalised: divide the learned rows by their norms too.":
            _both(learned @ unit(true).T),
        "you normalised the columns (axis=0). Each ROW is a direction: divide by the row norms "
        "(axis=1).": _both(unit(learned, 0) @ unit(true, 0).T),
        "you took the absolute cosine. A latent's code is non-negative, so a decoder row that "
        "points against a feature (cosine near -1) writes the opposite direction: it does not "
        "match. Use the signed cosine.": _both(np.abs(cos)),
        "you averaged all the cosines. For each row take the BEST (max) cosine over the other "
        "set, then average those maxima.": np.array([cos.mean(), cos.mean()]),
    }


def mmcs(fn: Callable) -> None:
    """Check ``fn(learned, true) -> (learned_to_true, true_to_learned)``."""
    name = "mmcs"
    learned, true = _mmcs_inputs()
    got = checking.call_student(name, fn, learned.copy(), true.copy())
    want = _reference_mmcs(learned, true)
    if got is not None:
        try:
            arr = checking.to_numpy(got)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and arr.size == 1:
            which = [label for label, v in (("learned_to_true", want[0]),
                                            ("true_to_learned", want[1]))
                     if np.isclose(float(arr.reshape(())), v, rtol=1e-6, atol=1e-9)]
            found = f" (yours equals {which[0]})" if which else ""
            raise ExerciseFailed(f"{name}: you returned one number{found}; return both "
                                 f"directions as a pair (learned_to_true, true_to_learned).")
    checking.expect_close(name, got, want, _mmcs_mistakes(learned, true), rtol=1e-6, atol=1e-9,
                          what="the MMCS pair")
    checking.passed(name)
