"""Crafted Chapter 1 submissions: cheats score 0, crashes cost only their own notebook or exercise.

One folder of submissions is graded once (two workers) into one CSV; each test then reads the
rows of one crafted notebook. Every notebook is Chapter 1's student notebook (its unchanged
training and plotting cells are skipped by the course) with the changes a student could make:
cheats that patch the checker, NumPy or the check cells, writes into the package, endless loops,
exits, memory hogs, huge output, and a helper defined in a cell of its own. A second run shows
that grading stops when a submission writes into the installed package itself.
"""
import copy
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from saelab.exercises.gradebook import grade_folder
from saelab.exercises.isolation import Limits
from saelab.exercises.student import make_student_notebook

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "01_superposition.ipynb"
NAMES = ["toy_forward", "toy_loss", "feature_dimensionality", "interference_estimate"]
LIMITS = Limits(cell_seconds=5, notebook_seconds=300)  # 5 s of CPU per cell or check


def _tags(cell):
    return cell.metadata.get("tags", [])


def _solution():
    return nbformat.read(CHAPTER, as_version=4)


def _student():
    return make_student_notebook(_solution())


def _exercise(nb, name):
    return next(c for c in nb.cells if "exercise" in _tags(c) and f"def {name}(" in c.source)


def _solved(nb, *names):
    """``nb`` with the solution's exercise cells for ``names`` (all four if none given)."""
    solution = _solution()
    for name in names or NAMES:
        _exercise(nb, name).source = _exercise(solution, name).source
    return nb


def _insert(nb, before_name, source):
    """Add a new code cell just before the exercise cell of ``before_name``."""
    index = nb.cells.index(_exercise(nb, before_name))
    nb.cells.insert(index, nbformat.v4.new_code_cell(source))
    return nb


def _checks(nb):
    return [c for c in nb.cells if "check" in _tags(c)]


PATCH_CHECKER = """
import saelab.exercises.ch01 as _ch01
from saelab.exercises import checking as _checking
for _name in _ch01.__all__:
    setattr(_ch01, _name, lambda fn, _name=_name: print(f"passed: {_name}"))
_checking.expect_close = lambda *a, **k: None
"""

PATCH_NUMPY = """
import builtins, numpy
numpy.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
builtins.isinstance = lambda *a: True
def toy_forward(W, b, x):
    return numpy.zeros((x.shape[0], W.shape[1]))
def toy_loss(x, x_hat, importance):
    return 0.0
"""

WRITE_OWN_COPY = """
import saelab.exercises.ch01 as _ch01
with open(_ch01.__file__, "a") as _f:
    _f.write("\\n\\ndef toy_forward(fn):\\n    passed('toy_forward')\\n")
"""

PATCH_AT_CALL = """def feature_dimensionality(W):
    import numpy
    numpy.allclose = lambda *a, **k: True
    return numpy.zeros(W.shape[1])
"""

PATCH_AT_LOAD = """class _Evil:
    def __reduce__(self):
        return (exec, ("import numpy; numpy.allclose = lambda *a, **k: True",))
_evil = _Evil()
def interference_estimate(F, p):
    _evil
    return np.zeros(F.shape[1])
"""

CRASHY = {  # exercise -> body of the student's function
    "toy_forward": "    raise ValueError('x' * 20_000_000)\n",
    "toy_loss": "    import os\n    os._exit(0)\n",
    "feature_dimensionality": "    while True:\n        pass\n",
    "interference_estimate": "    big = bytearray(64 * 2**30)\n    return big\n",
}


def _crashy():
    nb = _student()
    for name, body in CRASHY.items():
        cell = _exercise(nb, name)
        cell.source = cell.source.split("\n")[0] + "\n" + body
    return nb


def _submissions():
    """student name -> (file name under the folder, notebook or raw text)."""
    edited = _student()
    for cell in _checks(edited):
        cell.source = f"print('passed: {cell.source.split('.')[1].split('(')[0]}')"
    _insert(edited, "toy_loss", "from saelab.toy import toy_forward as _reference\ntoy_forward = _reference")
    deleted = _solved(_student(), "toy_forward")
    keep = _checks(deleted)[0]
    deleted.cells = [c for c in deleted.cells if c not in _checks(deleted)[1:]]
    position = deleted.cells.index(keep)
    # The check cell pasted ten times, each copy with a new id as Jupyter gives a pasted cell.
    deleted.cells[position:position] = [
        nbformat.v4.new_code_cell(keep.source, metadata=copy.deepcopy(keep.metadata))
        for _ in range(10)]
    top = _solved(_student())
    top.cells.insert(3, nbformat.v4.new_code_cell("while True:\n    pass"))
    top.cells.insert(4, nbformat.v4.new_code_cell("import sys\nsys.exit(1)"))
    top.cells.insert(5, nbformat.v4.new_code_cell("hog = bytearray(64 * 2**30)"))
    top.cells.insert(6, nbformat.v4.new_code_cell("print('y' * 30_000_000)\nfor i in range(10**5): print(i)"))
    helper = _insert(_student(), "toy_forward", "def _relu(z):\n    return np.maximum(z, 0.0)\n")
    _exercise(helper, "toy_forward").source = (
        "def toy_forward(W, b, x):\n    return _relu(x @ W.T @ W + b)\n")
    _exercise(helper, "toy_loss").source = "def toy_loss(x, x_hat, importance):\n    raise SystemExit(0)\n"
    _exercise(helper, "feature_dimensionality").source = PATCH_AT_CALL
    _exercise(helper, "interference_estimate").source = PATCH_AT_LOAD
    exit_early = _solved(_student())
    exit_early.cells.insert(5, nbformat.v4.new_code_cell("import os\nos._exit(0)"))
    return {
        "alice": ("alice/01_superposition.ipynb", _solved(_student())),
        "bob": ("bob__01_superposition.ipynb", _student()),
        "patch_checker": ("patch_checker/01_superposition.ipynb",
                          _insert(_student(), "toy_forward", PATCH_CHECKER)),
        "patch_numpy": ("patch_numpy/01_superposition.ipynb", _insert(_student(), "toy_forward", PATCH_NUMPY)),
        "edited_checks": ("edited_checks/01_superposition.ipynb", edited),
        "deleted_duplicated": ("deleted_duplicated/01_superposition.ipynb", deleted),
        "write_copy": ("write_copy/01_superposition.ipynb", _insert(_student(), "toy_forward", WRITE_OWN_COPY)),
        "top_level": ("top_level/01_superposition.ipynb", top),
        "crashy": ("crashy/01_superposition.ipynb", _crashy()),
        "helper": ("helper/01_superposition.ipynb", helper),
        "exit_early": ("exit_early/01_superposition.ipynb", exit_early),
        "broken": ("broken/01_superposition.ipynb", "{ not a notebook"),
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    for file_name, content in _submissions().values():
        path = folder / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            nbformat.write(content, path)
    csv_path, log_path = folder.parent / "grades.csv", folder.parent / "grading.log"
    grade_folder([folder], csv_path, log_path, limits=LIMITS, workers=2, progress=False)
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    by_student = {}
    for row in rows:
        by_student.setdefault(row["student"], {})[row["exercise"]] = row
    return by_student, log_path.read_text(), csv_path


def _score(rows):
    return sum(int(r["points"]) for r in rows.values()), sum(int(r["total"]) for r in rows.values())


def test_one_csv_row_per_student_and_exercise(graded):
    by_student, _, csv_path = graded
    assert set(by_student) == set(_submissions())
    for student, rows in by_student.items():
        assert set(rows) == set(NAMES), student  # an unreadable file still counts its chapter
    assert all("not a valid notebook" in r["reason"] for r in by_student["broken"].values())
    summary = csv_path.with_name("grades_summary.csv").read_text()
    assert "\nalice,4/4," in summary and "\nbob,0/4," in summary


def test_honest_submissions_score_what_they_earn(graded):
    by_student, _, _ = graded
    assert _score(by_student["alice"]) == (4, 4)
    assert _score(by_student["bob"]) == (0, 4)
    assert all("not attempted" in r["reason"] for r in by_student["bob"].values())


@pytest.mark.parametrize("cheat", ["patch_checker", "patch_numpy", "edited_checks", "write_copy"])
def test_cheats_score_zero(graded, cheat):
    assert _score(graded[0][cheat]) == (0, 4), graded[0][cheat]


def test_the_reference_solution_in_place_of_the_students_function_scores_zero(graded):
    reason = graded[0]["edited_checks"]["toy_forward"]["reason"]
    assert "is the course's reference solution (saelab.toy.toy_forward)" in reason


def test_deleted_and_duplicated_checks_change_nothing(graded):
    rows = graded[0]["deleted_duplicated"]
    assert _score(rows) == (1, 4)
    assert rows["toy_forward"]["points"] == "1"


def test_top_level_loop_exit_memory_and_output_cost_nothing(graded):
    by_student, log, _ = graded
    assert _score(by_student["top_level"]) == (4, 4)
    section = log.split("top_level", 1)[1].split("===", 1)[0]
    assert "CellTimeout" in section and "SystemExit" in section and "MemoryError" in section
    assert len(log) < 200_000  # 30 MB of printing is not copied into the log


def test_crashing_functions_cost_only_their_exercise(graded):
    rows = graded[0]["crashy"]
    assert _score(rows) == (0, 4)
    assert "ValueError" in rows["toy_forward"]["reason"]
    assert len(rows["toy_forward"]["reason"]) < 1000  # a 20 MB message is cut
    assert "died" in rows["toy_loss"]["reason"]
    assert "ran longer than 5 s" in rows["feature_dimensionality"]["reason"]
    assert "MemoryError" in rows["interference_estimate"]["reason"]


def test_helper_in_another_cell_counts_and_sys_exit_fails_its_exercise(graded):
    rows = graded[0]["helper"]
    assert rows["toy_forward"]["points"] == "1", rows["toy_forward"]
    assert "SystemExit" in rows["toy_loss"]["reason"]


def test_patching_numpy_from_a_function_is_detected(graded):
    rows = graded[0]["helper"]
    assert rows["feature_dimensionality"]["points"] == "0"
    assert "changed the grader's modules during the check" in rows["feature_dimensionality"]["reason"]
    assert rows["interference_estimate"]["points"] == "0"
    assert "loading your functions changed the grader's modules" in rows["interference_estimate"]["reason"]


def test_os_exit_costs_only_that_notebook(graded):
    rows = graded[0]["exit_early"]
    assert _score(rows) == (0, 4)
    assert all("process ended in cell 5" in r["reason"] for r in rows.values())


def test_writing_into_the_installed_package_stops_grading(tmp_path):
    site = tmp_path / "site"
    shutil.copytree(ROOT / "saelab", site / "saelab", ignore=shutil.ignore_patterns("__pycache__"))
    target = site / "saelab" / "exercises" / "ch01.py"
    folder = tmp_path / "class"
    (folder / "a_cheat").mkdir(parents=True)
    (folder / "b_next").mkdir()
    cheat = _insert(_student(), "toy_forward", f"open({str(target)!r}, 'a').write('\\n# patched\\n')")
    nbformat.write(cheat, folder / "a_cheat" / "01_superposition.ipynb")
    nbformat.write(_student(), folder / "b_next" / "01_superposition.ipynb")
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run(
        [sys.executable, "-m", "saelab.exercises", "grade", str(folder), "--workers", "1",
         "--timeout", "20", "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )
    assert run.returncode == 3, run.stdout + run.stderr
    assert "changed during grading" in run.stderr and "exercises/ch01.py" in run.stderr
    rows = list(csv.DictReader(open(tmp_path / "grades.csv", newline="")))
    assert {r["student"] for r in rows} == {"a_cheat", "b_next"}
    assert all("grading stopped" in r["reason"] for r in rows if r["student"] == "b_next")
