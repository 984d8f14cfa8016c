"""Building blocks for exercise checkers.

A checker takes the student's function, runs it on fixed inputs, and compares the result with the
reference implementation in saelab. When the answer is wrong it raises :class:`ExerciseFailed`,
whose message is a hint about the likely mistake: the checker computes a few known-wrong variants
(a missing ReLU, a sum where a mean belongs, a transposed matrix) and names the one the student's
answer matches. Introduced in Chapter 1; every chapter's checker module uses these helpers.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from saelab._checks import check_nonnegative

PASS_PREFIX = "passed:"


__all__ = ["ExerciseFailed", "passed", "to_numpy", "call_student", "expect_close"]

class ExerciseFailed(AssertionError):
    """The student's answer is wrong; the message is a hint about why."""


def passed(name: str) -> None:
    """Print the one line that tells the student (and the grader) an exercise passed."""
    if not isinstance(name, str):
        raise TypeError(f"name must be the exercise name (a str), got {type(name).__name__}")
    print(f"{PASS_PREFIX} {name}")


def to_numpy(value) -> np.ndarray:
    """Convert a tensor, array or number to a float64 ndarray for comparison."""
    if value is None:
        raise TypeError("value must be a tensor, array or number, got None")
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def call_student(name: str, fn: Callable, *args, **kwargs):
    """Call the student's function, turning a crash into a hint.

    ``NotImplementedError`` propagates unchanged: the exercise has not been attempted yet.
    """
    if not callable(fn):
        raise ExerciseFailed(f"{name}: expected a function, got {type(fn).__name__}")
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise
    except Exception as exc:  # the student's code crashed: show what happened
        raise ExerciseFailed(
            f"{name}: your function raised {type(exc).__name__}: {exc}. "
            "Check the shapes of the arrays you multiply (print them) and the axis you reduce over."
        ) from exc


def _matches(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    return got.shape == want.shape and np.allclose(got, want, rtol=rtol, atol=atol)


def expect_close(
    name: str,
    got,
    want,
    wrong_variants: Mapping[str, object] | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    what: str = "the result",
) -> None:
    """Raise :class:`ExerciseFailed` unless ``got`` matches ``want``.

    Parameters
    ----------
    name : str
        Exercise name, used in the message.
    got, want : array-like
        The student's answer and the reference answer.
    wrong_variants : mapping from hint to array-like, optional
        Answers produced by common mistakes. If ``got`` matches one of them, its hint is the
        message. Variants are tried in order.
    what : str
        What is being compared, for the message (e.g. ``"the loss"``).
    """
    check_nonnegative("rtol", rtol)
    check_nonnegative("atol", atol)
    if got is None:
        raise ExerciseFailed(f"{name}: your function returned None; did you forget `return`?")
    try:
        got_arr = to_numpy(got)
    except (TypeError, ValueError) as exc:
        raise ExerciseFailed(
            f"{name}: {what} should be numeric, got {type(got).__name__}"
        ) from exc
    want_arr = to_numpy(want)
    if _matches(got_arr, want_arr, rtol, atol):
        return
    for hint, variant in (wrong_variants or {}).items():
        if _matches(got_arr, to_numpy(variant), rtol, atol):
            raise ExerciseFailed(f"{name}: {hint}")
    if got_arr.shape != want_arr.shape:
        raise ExerciseFailed(
            f"{name}: {what} has shape {got_arr.shape}, expected {want_arr.shape}. "
            "Check which axis you sum over and the order of the matrix product."
        )
    if not np.all(np.isfinite(got_arr)):
        raise ExerciseFailed(f"{name}: {what} contains NaN or infinite values.")
    err = float(np.max(np.abs(got_arr - want_arr)))
    raise ExerciseFailed(
        f"{name}: {what} is wrong (largest absolute error {err:.3g}). "
        "Re-read the formula in the text above the exercise, one term at a time."
    )
