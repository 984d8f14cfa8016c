"""The gradebook's cheap parts, without running a notebook: the course manifest, which chapter
and student a file belongs to, the package guard, limits and report formatting."""
from pathlib import Path

import nbformat
import pytest

from saelab.exercises.course import (
    MANIFEST, CourseError, digest, identify, load_manifest, spec_from_notebook, specs_from_paths,
    to_manifest,
)
from saelab.exercises.gradebook import format_summary, grade_folder, student_name, summary_table
from saelab.exercises.grading import ExerciseResult, GradeReport, student_cells
from saelab.exercises.isolation import Limits, PackageGuard, PackageTampered, truncate
from saelab.exercises.student import make_student_notebook

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_shipped_manifest_matches_the_chapter_notebooks():
    fresh = to_manifest(specs_from_paths([NOTEBOOKS]))
    assert MANIFEST.read_text() == fresh, (
        "saelab/exercises/course.json is out of date: run `python -m saelab.exercises manifest notebooks/`"
    )
    specs = load_manifest()
    assert specs["01_superposition"].total == 4
    assert specs["01_superposition"].exercises[0].needs == ("toy_forward",)


def test_course_skips_only_its_own_unchanged_narrative_cells():
    nb = nbformat.read(NOTEBOOKS / "01_superposition.ipynb", as_version=4)
    spec = load_manifest()["01_superposition"]
    student = make_student_notebook(nb)
    ran = dict(student_cells(student, spec))
    tags = {i: c.metadata.get("tags", []) for i, c in enumerate(student.cells)}
    assert all(set(tags[i]) & {"setup", "exercise"} for i in ran), "only setup and exercise cells run"
    assert sum("exercise" in t for t in tags.values()) == sum("exercise" in tags[i] for i in ran)
    training = next(i for i, c in enumerate(student.cells) if c.source.startswith("torch.manual_seed"))
    student.cells[training].source += "\ndef helper(): return 1"  # an edited cell runs
    student.cells[training].metadata["tags"] = ["check"]  # the student's tags do not matter
    assert training in dict(student_cells(student, spec))


def test_a_check_cell_without_a_checker_call_is_a_course_error():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('hi')", metadata={"tags": ["check"]})]
    with pytest.raises(CourseError, match="no call check.NAME"):
        spec_from_notebook(nb, "99_x")


def test_chapter_from_file_name_then_cell_ids():
    specs = load_manifest()
    nb = nbformat.read(NOTEBOOKS / "03_lasso.ipynb", as_version=4)
    assert identify(nb, Path("alice__03_lasso.ipynb"), specs).chapter == "03_lasso"
    assert identify(nb, Path("homework.ipynb"), specs).chapter == "03_lasso"  # by its cell ids
    with pytest.raises(CourseError, match="cannot tell which chapter"):
        identify(nbformat.v4.new_notebook(), Path("homework.ipynb"), specs)


@pytest.mark.parametrize("relative, chapter, name", [
    ("alice/01_superposition.ipynb", "01_superposition", "alice"),
    ("alice/work/01_superposition.ipynb", "01_superposition", "alice"),
    ("bob__01_superposition.ipynb", "01_superposition", "bob"),
    ("carol-01_superposition.ipynb", "01_superposition", "carol"),
    ("01_superposition.ipynb", "01_superposition", "01_superposition"),
])
def test_student_name_convention(relative, chapter, name):
    root = Path("/submissions")
    assert student_name(root, root / relative, chapter) == name


def test_package_guard_notices_a_changed_file(tmp_path):
    package = tmp_path / "saelab"
    (package / "exercises").mkdir(parents=True)
    (package / "exercises" / "ch01.py").write_text("x = 1\n")
    with PackageGuard(package) as guard:
        assert (guard.root / "saelab" / "exercises" / "ch01.py").read_text() == "x = 1\n"
        guard.verify()
        (package / "exercises" / "ch01.py").write_text("x = 2\n")
        with pytest.raises(PackageTampered, match="exercises/ch01.py"):
            guard.verify()
        (package / "exercises" / "ch01.py").write_text("x = 1\n")
        (package / "exercises" / "extra.py").write_text("")  # a planted file counts too
        with pytest.raises(PackageTampered, match="extra.py"):
            guard.verify()
    assert not guard.root.exists()


@pytest.mark.parametrize("field, value", [("cell_seconds", 0), ("memory_bytes", -1),
                                          ("notebook_seconds", float("nan"))])
def test_limits_reject_impossible_values(field, value):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})


def test_grade_folder_rejects_bad_workers(tmp_path):
    with pytest.raises(ValueError, match="workers must be a positive integer, got 0"):
        grade_folder([tmp_path], None, tmp_path / "log", workers=0)


def test_truncate_and_summary():
    assert truncate("abc", 5) == "abc"
    assert truncate("x" * 1000, 10) == "x" * 10 + " ... [990 more characters cut]"
    assert digest("a = 1  \r\n") == digest("a = 1")
    reports = [
        GradeReport("a.ipynb", [ExerciseResult("f", True, ""), ExerciseResult("g", False, "no")],
                    "01_x", "ann"),
        GradeReport("b.ipynb", [ExerciseResult("h", True, "")], "02_y", "ann"),
    ]
    rows = summary_table(reports)
    assert rows == [{"student": "ann", "score": 2, "total": 3, "01_x": "1/2", "02_y": "1/1"}]
    assert format_summary(rows).splitlines()[1].split() == ["ann", "1/2", "1/1", "2/3"]


def test_entry_points_name_their_bad_arguments(tmp_path):
    from saelab.exercises.grading import grade_notebook

    with pytest.raises(TypeError, match="path must be a notebook path"):
        grade_notebook(None)
    with pytest.raises(ValueError, match="timeout"):
        grade_notebook(tmp_path / "x.ipynb", timeout=0)
    with pytest.raises(TypeError, match="paths must be a list"):
        grade_folder("SUBMISSIONS", None, tmp_path / "log")
    with pytest.raises(ValueError, match="installed must be the folder"):
        PackageGuard(tmp_path / "absent")
