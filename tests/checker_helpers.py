"""Shared assertions for the exercise-checker tests (tests/test_chNN_checkers.py)."""
import pytest

from saelab.exercises.checking import ExerciseFailed


def assert_passes(checker, fn, name, capsys):
    """``checker(fn)`` accepts ``fn`` and prints exactly ``passed: <name>``."""
    checker(fn)
    assert capsys.readouterr().out.strip() == f"passed: {name}"


def assert_fails_with(checker, fn, hint):
    """``checker(fn)`` rejects ``fn`` with a message that contains ``hint``."""
    with pytest.raises(ExerciseFailed) as info:
        checker(fn)
    assert hint in str(info.value), str(info.value)
