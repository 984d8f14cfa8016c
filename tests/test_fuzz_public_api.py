"""Fuzz the public API: every callable named in any ``__all__`` of saelab gets bad inputs.

Each case in tests/fuzz_cases.py must raise ValueError or TypeError (or one of the documented
saelab error classes in ERRORS, or FileNotFoundError for a path that does not exist) with a
message that names the argument. A public callable with
no cases fails ``test_every_public_callable_has_cases`` until cases (or a justified exemption)
are added. ``python tests/test_fuzz_public_api.py`` prints the counts clear / unclear / silent.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import warnings

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import saelab  # noqa: E402
from fuzz_cases import CASES, EXEMPT  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def _errors() -> tuple[type, ...]:
    from saelab.exercises.checking import ExerciseFailed
    from saelab.exercises.grading import GradingError
    from saelab.lm.models import ModelUnavailableError
    from saelab.train import TrainingDivergedError
    return (ValueError, TypeError, ExerciseFailed, GradingError, ModelUnavailableError,
            TrainingDivergedError, FileNotFoundError)


def public_callables() -> dict[str, object]:
    """key "module.qualname" -> object, for every callable in every ``__all__`` (deduplicated)."""
    found = {}
    for info in pkgutil.walk_packages(saelab.__path__, "saelab."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_"):  # private modules and __main__
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if not callable(obj) or not getattr(obj, "__module__", "").startswith("saelab"):
                continue
            if isinstance(obj, type) and (issubclass(obj, BaseException)
                                          or (issubclass(obj, tuple) and hasattr(obj, "_fields"))):
                continue  # exceptions are raised, NamedTuple records returned: no user input
            found.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    return found


def run_case(case) -> tuple[str, str]:
    """("clear" | "unclear" | "silent", what happened)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.call()
    except _errors() as err:
        if case.arg in str(err):
            return "clear", f"{type(err).__name__}: {err}"
        return "unclear", f"{type(err).__name__} without {case.arg!r}: {err}"
    except Exception as err:  # noqa: BLE001 - an internal error is exactly what we look for
        return "unclear", f"{type(err).__name__}: {err}"
    return "silent", "no error"


CASE_TABLE = CASES()


def test_every_public_callable_has_cases():
    missing = sorted(k for k in public_callables() if k not in CASE_TABLE and k not in EXEMPT)
    assert not missing, f"public callables without bad-input cases in tests/fuzz_cases.py: {missing}"
    stale = sorted(k for k in (*CASE_TABLE, *EXEMPT) if k not in public_callables())
    assert not stale, f"fuzz_cases.py names callables that are not public (renamed?): {stale}"


@pytest.mark.parametrize("key", sorted(CASE_TABLE))
def test_bad_inputs_get_clear_errors(key):
    cases = CASE_TABLE[key]()
    assert cases, f"{key} has an empty case list"
    failures = []
    for case in cases:
        verdict, what = run_case(case)
        if verdict != "clear":
            failures.append(f"[{verdict}] arg {case.arg!r}: {what[:300]}")
    assert not failures, f"{key}:\n" + "\n".join(failures)


def counts() -> dict[str, int]:
    tally = {"clear": 0, "unclear": 0, "silent": 0}
    for key in sorted(CASE_TABLE):
        for case in CASE_TABLE[key]():
            verdict, what = run_case(case)
            tally[verdict] += 1
            if verdict != "clear":
                print(f"{verdict:8s} {key} [{case.arg}] {what[:160]}")
    return tally


if __name__ == "__main__":
    import sys
    import time

    sys.path.insert(0, os.path.dirname(__file__))
    start = time.perf_counter()
    tally = counts()
    n_callables = len(public_callables())
    print(f"{sum(tally.values())} cases over {len(CASE_TABLE)} callables "
          f"({n_callables} public, {len(EXEMPT)} exempt): {tally}; "
          f"{time.perf_counter() - start:.1f} s")
