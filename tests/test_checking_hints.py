"""Checker hints that show data (saelab/exercises/checking.py), and the learner's reference fallback."""
import types

import numpy as np
import pytest
import torch

from saelab.exercises import checking
from saelab.exercises.checking import ExerciseFailed


def test_describe_shows_kind_shape_and_first_entries():
    assert checking.describe(np.arange(6.0).reshape(2, 3)) == (
        "NumPy array float64 of shape (2, 3): [0, 1, 2, 3, ...]")
    assert checking.describe(torch.tensor([0.5, 2.0])) == "torch tensor float32 of shape (2,): [0.5, 2]"
    assert checking.describe(1.25) == "float 1.25"
    assert checking.describe({"a": np.zeros(1)}) == "{'a': NumPy array float64 of shape (1,): [0]}"


def test_unrecognised_mistake_shows_input_expected_and_received():
    x = np.array([1.0, 2.0, 3.0])
    got = checking.call_student("triple", lambda v: 3 * v + 0.5, x)
    with pytest.raises(ExerciseFailed) as info:
        checking.expect_close("triple", got, 3 * x, {"you doubled": 2 * x})
    message = str(info.value)
    assert "input 1: NumPy array float64 of shape (3,): [1, 2, 3]" in message
    assert "expected: NumPy array float64 of shape (3,): [3, 6, 9]" in message
    assert "received: NumPy array float64 of shape (3,): [3.5, 6.5, 9.5]" in message


def _module():
    def double(fn):
        x = np.arange(3.0)
        checking.expect_close("double", checking.call_student("double", fn, x), 2 * x)
        checking.passed("double")

    return types.SimpleNamespace(__name__="fake_checks", double=double,
                                 REFERENCES={"double": lambda x: 2 * x})


def test_yours_or_reference(capsys):
    module = _module()

    def stub(x):
        raise NotImplementedError("exercise")

    assert checking.yours_or_reference(module, "double", stub) is module.REFERENCES["double"]
    assert "not written yet" in capsys.readouterr().out
    wrong = lambda x: x + 2  # noqa: E731
    assert checking.yours_or_reference(module, "double", wrong) is module.REFERENCES["double"]
    assert "does not pass the check" in capsys.readouterr().out
    right = lambda x: x * 2  # noqa: E731
    assert checking.yours_or_reference(module, "double", right) is right
    with pytest.raises(ValueError, match="name='triple'"):
        checking.yours_or_reference(module, "triple", right)


def test_chapter_references_pass_their_own_checks():
    """Every REFERENCES entry of a checker module passes that module's check."""
    import importlib

    for n in range(1, 7):
        module = importlib.import_module(f"saelab.exercises.ch{n:02d}")
        for name, reference in getattr(module, "REFERENCES", {}).items():
            getattr(module, name)(reference)
