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
SHOWN_ENTRIES = 4  # how many leading entries of an array a hint shows

# The arguments of the last call of each exercise (by name), recorded by call_student so that
# expect_close's fallback hint can show the input next to the expected and received values.
_LAST_INPUTS: dict[str, tuple[tuple, dict]] = {}


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
    _LAST_INPUTS[name] = (args, kwargs)
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
        f"{name}: {what} is wrong (largest absolute error {err:.3g}) and does not match a "
        "mistake the checker knows.\n" + _io_report(name, want, got)
    )


def describe(value) -> str:
    """A short description of a value for a hint: type, dtype, shape and the first few entries.

    ``describe(np.arange(6.0).reshape(2, 3))`` is ``"NumPy array float64 of shape (2, 3):
    [0, 1, 2, 3, ...]"``; tensors say ``torch tensor``; dicts describe each value.
    """
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in value.items()) + "}"
    if hasattr(value, "detach") and hasattr(value, "shape"):
        kind, dtype = "torch tensor", str(value.dtype).replace("torch.", "")
        flat = value.detach().cpu().double().reshape(-1).numpy()
    elif isinstance(value, np.ndarray):
        kind, dtype, flat = "NumPy array", str(value.dtype), value.reshape(-1)
    elif isinstance(value, (int, float, np.number, bool)):
        return f"{type(value).__name__} {float(value):.6g}"
    else:
        return type(value).__name__
    entries = ", ".join(f"{float(v):.4g}" for v in flat[:SHOWN_ENTRIES])
    more = ", ..." if flat.size > SHOWN_ENTRIES else ""
    return f"{kind} {dtype} of shape {tuple(value.shape)}: [{entries}{more}]"


def _io_report(name: str, want, got) -> str:
    """Input (when call_student recorded it), expected and received values, one per line."""
    lines = []
    args, kwargs = _LAST_INPUTS.get(name, ((), {}))
    for i, arg in enumerate(args):
        lines.append(f"  input {i + 1}: {describe(arg)}")
    lines += [f"  input {key}: {describe(arg)}" for key, arg in kwargs.items()]
    lines.append(f"  expected: {describe(want)}")
    lines.append(f"  received: {describe(got)}")
    return "\n".join(lines) + "\nCompare the two on this input by hand, one term of the formula at a time."


def yours_or_reference(checker_module, name: str, fn: Callable) -> Callable:
    """Return ``fn`` if it passes its exercise's check, else the module's reference solution.

    Learner notebooks call this after an exercise whose function later cells use, so that the
    chapter runs on whether or not the exercise is done. ``checker_module`` is the chapter's
    checker module (``saelab.exercises.chNN``); its ``REFERENCES`` dict maps ``name`` to the
    reference implementation.
    """
    references = getattr(checker_module, "REFERENCES", {})
    if name not in references:
        raise ValueError(f"name={name!r}: {getattr(checker_module, '__name__', checker_module)} "
                         f"has no REFERENCES entry for it (expected one of {sorted(references)})")
    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            getattr(checker_module, name)(fn)
    except NotImplementedError:
        reason = "yours is not written yet"
    except ExerciseFailed as exc:
        reason = f"yours does not pass the check yet ({str(exc).splitlines()[0]})"
    else:
        print(f"{name}: the cells below use your function (it passes the check)")
        return fn
    print(f"{name}: the cells below use the reference solution: {reason}")
    return references[name]
