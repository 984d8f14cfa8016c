"""Grade the real chapter notebooks end to end, as a teacher would.

For every chapter with exercises: the solution notebook scores full marks; a freshly generated
student notebook scores zero without crashing; and realistic wrong answers, pasted into the
exercise cells as a student would write them, fail with the hint meant for that mistake while
the other exercises still pass. The grader skips each chapter's unchanged training and plotting
cells, so one grading takes a few seconds.

To keep the number of kernels small, the i-th wrong answer of every exercise goes into the same
notebook: ``WRONG_ANSWERS[chapter][exercise][i]`` (the table is in tests/wrong_answers.py).
"""
from pathlib import Path

import nbformat
import pytest

from saelab.exercises.grading import grade_notebook
from saelab.exercises.student import make_student_notebook
from wrong_answers import WRONG_ANSWERS

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _chapters_with_exercises() -> list[Path]:
    found = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any("check" in c.metadata.get("tags", []) for c in nb.cells):
            found.append(path)
    return found


CHAPTERS = _chapters_with_exercises()


def _exercise_cells(nb) -> dict:
    """Exercise name -> its exercise cell (the cell before each check cell)."""
    cells, previous = {}, None
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "check" in tags:
            name = cell.source.split("check.", 1)[1].split("(", 1)[0]
            cells[name] = previous
        if "exercise" in tags:
            previous = cell
    return cells


def test_every_chapter_with_exercises_has_wrong_answers_to_test():
    assert CHAPTERS, "no chapter notebooks with exercises found"
    for path in CHAPTERS:
        names = set(_exercise_cells(nbformat.read(path, as_version=4)))
        assert len(names) >= 3, f"{path.name}: a chapter needs at least 3 exercises"
        assert names == set(WRONG_ANSWERS.get(path.stem, {})), (
            f"{path.name}: every exercise needs at least two wrong answers in WRONG_ANSWERS"
        )
        assert all(len(w) >= 2 for w in WRONG_ANSWERS[path.stem].values())


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_solution_notebook_scores_full_marks(path):
    report = grade_notebook(path)
    failed = [r for r in report.results if not r.passed]
    assert not failed, report.format()
    assert report.score == report.total >= 3


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_fresh_student_notebook_scores_zero(path, tmp_path):
    student = make_student_notebook(nbformat.read(path, as_version=4))
    nbformat.write(student, tmp_path / path.name)
    report = grade_notebook(tmp_path / path.name)
    assert report.score == 0, report.format()
    assert report.total == len(_exercise_cells(nbformat.read(path, as_version=4)))
    assert all("not attempted" in r.message for r in report.results), report.format()


@pytest.mark.parametrize("attempt", [0, 1])
@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_wrong_answers_fail_with_their_hint(path, attempt, tmp_path):
    nb = nbformat.read(path, as_version=4)
    wrong = {name: answers[attempt] for name, answers in WRONG_ANSWERS[path.stem].items()}
    for name, cell in _exercise_cells(nb).items():
        cell.source = wrong[name][0]
    nbformat.write(nb, tmp_path / path.name)
    report = grade_notebook(tmp_path / path.name)
    assert report.score == 0, report.format()
    for result in report.results:
        assert wrong[result.name][1] in result.message, report.format()
