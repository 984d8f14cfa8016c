"""The exercise workflow on a tiny notebook: make-student, grading, and the command line.

The chapter notebooks are graded in tests/test_grading_chapters.py; this file checks the
mechanism itself on a notebook small enough to grade in a second or two.
"""
import json
import subprocess
import sys

import nbformat
import pytest

from saelab.exercises.grading import GradingError, grade_notebook
from saelab.exercises.student import MarkerError, make_student_notebook

SETUP = '''import numpy as np
from saelab.exercises import checking

class check:  # a one-exercise checker module, inlined for the test
    @staticmethod
    def double(fn):
        x = np.arange(4.0)
        got = checking.call_student("double", fn, x)
        checking.expect_close("double", got, 2 * x, {"you added x to 2 instead of doubling it": x + 2})
        checking.passed("double")
'''

EXERCISE = '''def double(x):
    """Return 2 x."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION
'''


def _cell(source, tags=(), outputs=None):
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
    if outputs:
        cell.outputs = outputs
        cell.execution_count = 1
    return cell


def _solution_nb():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A tiny chapter"),
        _cell(SETUP, ["setup"]),
        _cell("print('an expensive experiment the grader must skip'); raise SystemExit"),
        _cell(EXERCISE, ["exercise"], [nbformat.v4.new_output("stream", name="stdout", text="x")]),
        _cell("check.double(double)", ["check"]),
    ]
    nb.metadata["widgets"] = {"state": {}}
    return nb


def _write(nb, path):
    nbformat.write(nb, path)
    return path


def test_student_version_stubs_solution_and_clears_outputs():
    student = make_student_notebook(_solution_nb())
    source = student.cells[3].source
    assert "return 2 * x" not in source
    assert "### BEGIN SOLUTION" not in source
    assert '    raise NotImplementedError("exercise: replace this line with your code")' in source
    assert source.startswith('def double(x):\n    """Return 2 x."""')
    assert all(c.outputs == [] for c in student.cells if c.cell_type == "code")
    assert "widgets" not in student.metadata
    assert student.cells[0].source == "# A tiny chapter"  # everything else intact
    assert student.cells[4].source == "check.double(double)"


def test_markdown_answers_are_stubbed():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("Why?\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION")]
    assert make_student_notebook(nb).cells[0].source == "Why?\nYOUR ANSWER HERE"


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\nx = 1\n", "without a matching '### END SOLUTION'"),
        ("x = 1\n### END SOLUTION\n", "without a matching '### BEGIN SOLUTION'"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ],
)
def test_malformed_markers_are_reported_with_the_cell(source, problem):
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell("x = 0"), _cell(source)]
    with pytest.raises(MarkerError, match=f"cell 1: .*{problem}"):
        make_student_notebook(nb)


def _course(tmp_path):
    """The tiny chapter as the course: the grader takes its setup and check cells from here."""
    return _write(_solution_nb(), tmp_path / "chapter.ipynb")


def test_solution_scores_full_marks(tmp_path):
    report = grade_notebook(_write(_solution_nb(), tmp_path / "solution.ipynb"), course=_course(tmp_path))
    assert [(r.name, r.passed) for r in report.results] == [("double", True)]
    assert report.format().endswith("Score: 1/1")


def test_fresh_student_notebook_scores_zero(tmp_path):
    student = make_student_notebook(_solution_nb())
    report = grade_notebook(_write(student, tmp_path / "student.ipynb"), course=_course(tmp_path))
    assert report.score == 0 and report.total == 1
    assert "not attempted" in report.results[0].message


@pytest.mark.parametrize(
    "body, hint",
    [
        ("    return x + 2\n", "you added x to 2 instead of doubling it"),
        ("    return x[:2]\n", "has shape (2,), expected (4,)"),
        ("    return x.nope()\n", "your function raised AttributeError"),
        ("    return 2 * x +\n", "your exercise cell failed: SyntaxError"),
        ("    pass\n", "returned None"),
    ],
)
def test_wrong_answers_fail_with_their_hint(tmp_path, body, hint):
    nb = _solution_nb()
    nb.cells[3].source = 'def double(x):\n' + body
    report = grade_notebook(_write(nb, tmp_path / "wrong.ipynb"), course=_course(tmp_path))
    assert report.score == 0
    assert hint in report.results[0].message


def test_missing_or_corrupt_notebook_fails_in_one_line(tmp_path):
    with pytest.raises(GradingError, match="no such notebook"):
        grade_notebook(tmp_path / "absent.ipynb")
    corrupt = tmp_path / "corrupt.ipynb"
    corrupt.write_text('{"cells": [')
    with pytest.raises(GradingError, match="not a valid notebook"):
        grade_notebook(corrupt)


def test_command_line_round_trip(tmp_path):
    _write(_solution_nb(), tmp_path / "chapter.ipynb")
    run = [sys.executable, "-m", "saelab.exercises"]
    made = subprocess.run(run + ["make-student", str(tmp_path), "-o", str(tmp_path / "student")],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    graded = subprocess.run(
        run + ["grade", str(tmp_path / "student" / "chapter.ipynb"), "--course", str(tmp_path / "chapter.ipynb"),
               "--json", str(tmp_path / "r.json"), "--log", str(tmp_path / "grading.log")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert graded.returncode == 0, graded.stderr
    assert "double  FAILED  not attempted" in graded.stdout and "Score: 0/1" in graded.stdout
    assert [n["score"] for n in json.loads((tmp_path / "r.json").read_text())["notebooks"]] == [0]

    broken = tmp_path / "broken.ipynb"
    broken.write_text("not json")
    bad = subprocess.run(run + ["grade", str(broken)], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "not a valid notebook" in bad.stderr
