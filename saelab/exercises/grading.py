"""Grade a completed student notebook, one score per exercise.

The grader does not run the whole chapter (training runs and plots would make grading slow and
fragile). It runs, in order and in a fresh kernel, only the cells the exercises need:

* cells tagged ``setup`` (imports and constants),
* cells tagged ``exercise`` (or holding a ``### BEGIN SOLUTION`` region): the student's code,
* cells tagged ``check``: one checker call each, e.g. ``check.toy_forward(toy_forward)``.

Each ``check`` cell is one exercise. It passes when it prints ``passed: <name>``; otherwise the
grader reports the checker's hint, the ``NotImplementedError`` of an untouched stub, or the
error that stopped the student's cell. Introduced in Chapter 1; the book's introduction
describes the workflow for teachers.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import NamedTuple

import nbformat
from nbclient import NotebookClient

from saelab._checks import check_instance, check_int_in_range

from .checking import PASS_PREFIX
from .student import _check_nb, has_solution

__all__ = ["GradingError", "ExerciseResult", "GradeReport", "read_notebook", "grading_cells",
           "grade_notebook"]

_CHECK_CALL = re.compile(r"check\.(\w+)\s*\(")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class GradingError(RuntimeError):
    """The notebook could not be graded (missing, not a notebook, no exercises)."""


class ExerciseResult(NamedTuple):
    name: str
    passed: bool
    message: str  # the hint or error when failed, "" when passed


class GradeReport(NamedTuple):
    notebook: str
    results: list[ExerciseResult]

    @property
    def score(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    def format(self) -> str:
        lines = [f"Grading {self.notebook}"]
        width = max(len(r.name) for r in self.results)
        for r in self.results:
            status = "passed" if r.passed else "FAILED"
            detail = "" if r.passed else f"  {r.message}"
            lines.append(f"  {r.name:<{width}}  {status}{detail}")
        lines.append(f"Score: {self.score}/{self.total}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "notebook": self.notebook,
                "score": self.score,
                "total": self.total,
                "exercises": [r._asdict() for r in self.results],
            },
            indent=2,
        )


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, turning every way it can be unreadable into a one-line GradingError."""
    check_instance("path", path, (str, os.PathLike), "a notebook path")
    path = Path(path)
    if not path.is_file():
        raise GradingError(f"{path}: no such notebook file")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # JSON errors, schema errors, wrong encodings
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GradingError(f"{path}: not a valid notebook ({first_line})") from None
    return nb


def grading_cells(nb: nbformat.NotebookNode) -> list:
    """The setup, exercise and check cells of ``nb``, in notebook order."""
    _check_nb(nb)
    keep = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if _tags(cell) & {"setup", "exercise", "check"} or has_solution(cell):
            keep.append(cell)
    return keep


def _error_of(cell) -> str | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            ename, evalue = out.get("ename", "Error"), _ANSI.sub("", out.get("evalue", ""))
            if ename == "NotImplementedError":
                return "not attempted yet (the stub raises NotImplementedError)"
            if ename == "ExerciseFailed":
                return evalue
            return f"{ename}: {evalue}"
    return None


def _stdout_of(cell) -> str:
    return "".join(
        out.get("text", "")
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream" and out.get("name") == "stdout"
    )


def grade_notebook(path: Path, timeout: int = 120, kernel_name: str = "python3") -> GradeReport:
    """Run the exercise cells of a student notebook and score each exercise.

    Parameters
    ----------
    path : path to the completed student notebook.
    timeout : seconds allowed per cell (a student's infinite loop fails that exercise).
    """
    check_instance("path", path, (str, os.PathLike), "a notebook path")
    check_int_in_range("timeout", timeout, 1)
    path = Path(path)
    nb = read_notebook(path)
    cells = grading_cells(nb)
    if not any("check" in _tags(c) for c in cells):
        raise GradingError(f"{path}: no exercises found (no cell tagged 'check')")

    graded = nbformat.v4.new_notebook(metadata=nb.metadata)
    graded.cells = [nbformat.v4.new_code_cell(c.source, metadata=c.metadata) for c in cells]
    client = NotebookClient(
        graded,
        timeout=timeout,
        kernel_name=kernel_name,
        allow_errors=True,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    client.execute()

    results: list[ExerciseResult] = []
    pending_error: str | None = None  # an error in the student's cell, reported by its check
    for cell in graded.cells:
        tags = _tags(cell)
        if "check" in tags:
            match = _CHECK_CALL.search(cell.source)
            name = match.group(1) if match else f"exercise {len(results) + 1}"
            error = _error_of(cell)
            if error is None and f"{PASS_PREFIX} {name}" in _stdout_of(cell):
                results.append(ExerciseResult(name, True, ""))
            else:
                if pending_error and (error is None or error.startswith("NameError")):
                    error = f"your exercise cell failed: {pending_error}"
                results.append(
                    ExerciseResult(name, False, error or "the checker did not confirm a pass")
                )
            pending_error = None
        else:
            error = _error_of(cell)
            if error and ("exercise" in tags or has_solution(cell)):
                pending_error = error
            elif error and "setup" in tags:
                raise GradingError(f"{path}: a setup cell failed ({error}); is saelab installed?")
    return GradeReport(path.name, results)
