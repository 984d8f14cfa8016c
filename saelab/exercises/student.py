"""Make student notebooks from the chapter (solution) notebooks.

Each chapter notebook is the solution version. Its exercise regions sit between nbgrader's
markers; the student version replaces every region with a stub and clears every output::

    def toy_forward(W, b, x):                 def toy_forward(W, b, x):
        ### BEGIN SOLUTION                        # YOUR CODE HERE
        h = x @ W.T               ------>         raise NotImplementedError("exercise: ...")
        ...
        ### END SOLUTION

Markdown cells may hold written answers between the same markers; they become
``YOUR ANSWER HERE``. Everything else (text, setup cells, checker calls) stays as it is.
Introduced in Chapter 1 (the exercise workflow is described in the book's introduction).
"""
from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
_INDENT = re.compile(r"^(\s*)")


__all__ = ["MarkerError", "has_solution", "make_student_notebook", "make_student_files", "find_notebooks"]

class MarkerError(ValueError):
    """A solution region is malformed (a BEGIN without END, or the reverse)."""


def _strip_region(source: str, stub_for_indent) -> tuple[str, int]:
    """Replace each marked region of ``source``; return the new source and the region count."""
    out: list[str] = []
    inside = False
    regions = 0
    for lineno, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise MarkerError(f"line {lineno}: '{BEGIN}' inside another solution region")
            inside = True
            regions += 1
            out.extend(stub_for_indent(_INDENT.match(line).group(1)))
        elif stripped == END:
            if not inside:
                raise MarkerError(f"line {lineno}: '{END}' without a matching '{BEGIN}'")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"'{BEGIN}' without a matching '{END}'")
    return "\n".join(out), regions


def _code_stub(indent: str) -> list[str]:
    return [
        f"{indent}# YOUR CODE HERE",
        f'{indent}raise NotImplementedError("exercise: replace this line with your code")',
    ]


def _markdown_stub(indent: str) -> list[str]:
    return [f"{indent}YOUR ANSWER HERE"]


def _check_cell(cell) -> None:
    if not isinstance(getattr(cell, "source", None), str):
        raise TypeError(f"cell must be a notebook cell (with a str source), got "
                        f"{type(cell).__name__}")


def _check_nb(nb) -> None:
    if not isinstance(getattr(nb, "cells", None), list):
        raise TypeError(f"nb must be a notebook (nbformat.NotebookNode), got {type(nb).__name__}")


def has_solution(cell) -> bool:
    """True if the cell holds a solution region."""
    _check_cell(cell)
    return any(line.strip() == BEGIN for line in cell.source.splitlines())


def make_student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the student version of a solution notebook (the input is not modified)."""
    _check_nb(nb)
    student = copy.deepcopy(nb)
    for index, cell in enumerate(student.cells):
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        if has_solution(cell) or END in cell.source:
            stub = _code_stub if cell.cell_type == "code" else _markdown_stub
            try:
                cell.source, _ = _strip_region(cell.source, stub)
            except MarkerError as exc:
                raise MarkerError(f"cell {index}: {exc}") from None
    # Widget state belongs to the executed solution; a fresh notebook has none.
    student.metadata.pop("widgets", None)
    return student


def find_notebooks(paths) -> list[Path]:
    """The notebooks named in ``paths``: files as given, folders as their ``*.ipynb`` in order."""
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        raise TypeError(f"paths must be a list of notebook or folder paths, got {paths!r}")
    notebooks: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            notebooks.extend(sorted(p for p in path.glob("*.ipynb") if "checkpoint" not in p.name))
        elif path.suffix == ".ipynb" and path.exists():
            notebooks.append(path)
        else:
            raise FileNotFoundError(f"paths names {str(path)!r}: no such notebook or folder")
    if not notebooks:
        raise FileNotFoundError("paths: no notebooks found in " + ", ".join(map(str, paths)))
    return notebooks


def make_student_files(paths: list[Path], out_dir: Path) -> list[Path]:
    """Write the student version of each notebook (or of every notebook in a folder) to ``out_dir``."""
    if not isinstance(paths, (list, tuple)) or not paths:
        raise TypeError(f"paths must be a non-empty list of notebook or folder paths, got "
                        f"{paths!r}")
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a folder path, got {type(out_dir).__name__}")
    notebooks = find_notebooks(paths)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        try:
            student = make_student_notebook(nb)
        except MarkerError as exc:
            raise MarkerError(f"{path}: {exc}") from None
        target = out_dir / path.name
        nbformat.write(student, target)
        written.append(target)
    return written
