"""What the course says a chapter's exercises are: the grader's trusted side.

The grader never believes a submission about what to check. For each chapter it reads, from the
course's own solution notebook (or from ``course.json``, the manifest generated from the chapter
notebooks and tested in sync with them):

* the ``setup`` cells, run before the checks to import the checker module,
* the exercises, one per ``check`` cell: its name (``check.toy_forward(...)`` -> ``toy_forward``),
  the cell's source, and the names the check passes in (the student's functions),
* the cells the grader may skip when a submission left them unchanged (training runs, plots, the
  check cells themselves): every code cell not tagged ``setup`` or ``exercise`` and not holding a
  solution region, unless the course tags it ``grade-run``. Cells are matched by content, so a
  student cannot mark a cell as skipped, and a cell the student edited always runs.

A submission's missing, edited or duplicated check cells therefore change nothing: the list of
exercises and the total come from here. Introduced with the gradebook (``book/exercises.md``).
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from .student import has_solution

MANIFEST = Path(__file__).with_name("course.json")
RUN_TAG = "grade-run"
_CHECK_CALL = re.compile(r"check\.(\w+)\s*\(")
_MAGIC = re.compile(r"^\s*[%!]")


class CourseError(ValueError):
    """The course notebooks or the manifest cannot describe a chapter's exercises."""


@dataclass(frozen=True)
class Exercise:
    name: str  # the checker's name, e.g. "toy_forward"
    check: str  # the course's check cell source
    needs: tuple[str, ...]  # names the check reads from the student's notebook


@dataclass(frozen=True)
class ChapterSpec:
    chapter: str  # notebook stem, e.g. "01_superposition"
    setup: tuple[str, ...]
    exercises: tuple[Exercise, ...]
    skip: frozenset[str] = field(default_factory=frozenset)  # digests of cells to skip if unchanged
    ids: frozenset[str] = field(default_factory=frozenset)  # cell ids, to recognise the chapter

    @property
    def total(self) -> int:
        return len(self.exercises)


def digest(source: str) -> str:
    """A digest of a cell's source that ignores trailing whitespace and line endings."""
    text = "\n".join(line.rstrip() for line in source.replace("\r\n", "\n").strip().splitlines())
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _bound_names(sources) -> set[str]:
    """Names that the setup cells bind (imports, assignments, defs), magics ignored."""
    names: set[str] = set()
    for source in sources:
        code = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:  # top level only: a method named like an exercise binds nothing
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            else:
                targets = [n for n in ast.walk(node) if isinstance(n, ast.Name)
                           and isinstance(n.ctx, ast.Store)]
                names.update(n.id for n in targets)
    return names


def _needs(check_source: str, bound: set[str], where: str) -> tuple[str, ...]:
    try:
        tree = ast.parse(check_source)
    except SyntaxError as exc:
        raise CourseError(f"{where}: the check cell is not valid Python ({exc.msg})") from None
    loads = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    return tuple(dict.fromkeys(n for n in loads if n not in bound))


def spec_from_notebook(nb: nbformat.NotebookNode, chapter: str) -> ChapterSpec:
    """The exercises of a course (solution) notebook; raises CourseError if it has none."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    setup = tuple(c.source for c in code if "setup" in _tags(c))
    bound = _bound_names(setup)
    exercises, skip = [], set()
    for index, cell in enumerate(code):
        tags = _tags(cell)
        if "check" in tags:
            match = _CHECK_CALL.search(cell.source)
            if match is None:
                raise CourseError(f"{chapter}: check cell {index} has no call check.NAME(...)")
            needs = _needs(cell.source, bound, f"{chapter}: check {match.group(1)}")
            exercises.append(Exercise(match.group(1), cell.source, needs))
        if not (tags & {"setup", "exercise", RUN_TAG}) and not has_solution(cell):
            skip.add(digest(cell.source))
    if not exercises:
        raise CourseError(f"{chapter}: no exercises (no cell tagged 'check')")
    names = [e.name for e in exercises]
    if len(set(names)) != len(names):
        raise CourseError(f"{chapter}: an exercise is checked twice ({names})")
    ids = frozenset(c.get("id") for c in nb.cells if c.get("id"))
    return ChapterSpec(chapter, setup, tuple(exercises), frozenset(skip), ids)


def specs_from_paths(paths) -> dict[str, ChapterSpec]:
    """Chapter specs from course notebooks, or from every notebook with exercises in a folder."""
    specs: dict[str, ChapterSpec] = {}
    for path in map(Path, paths):
        if path.is_dir():
            for nb_path in sorted(path.glob("*.ipynb")):
                nb = nbformat.read(nb_path, as_version=4)
                if any("check" in _tags(c) for c in nb.cells):
                    specs[nb_path.stem] = spec_from_notebook(nb, nb_path.stem)
        elif path.is_file():
            specs[path.stem] = spec_from_notebook(nbformat.read(path, as_version=4), path.stem)
        else:
            raise CourseError(f"course={path}: no such notebook or folder")
    if not specs:
        raise CourseError(f"course={list(map(str, paths))}: no notebook with exercises found")
    return specs


def to_manifest(specs: dict[str, ChapterSpec]) -> str:
    """The JSON text of ``course.json`` for ``specs`` (sorted, so regenerating it is stable)."""
    chapters = {}
    for name, spec in sorted(specs.items()):
        entry = asdict(spec)
        entry["skip"], entry["ids"] = sorted(spec.skip), sorted(spec.ids)
        chapters[name] = entry
    return json.dumps({"format": 1, "chapters": chapters}, indent=1, sort_keys=True) + "\n"


def load_manifest(path: Path = MANIFEST) -> dict[str, ChapterSpec]:
    """The chapter specs shipped with the package (regenerate with ``python -m saelab.exercises manifest``)."""
    try:
        data = json.loads(Path(path).read_text())
        return {
            name: ChapterSpec(
                entry["chapter"],
                tuple(entry["setup"]),
                tuple(Exercise(e["name"], e["check"], tuple(e["needs"])) for e in entry["exercises"]),
                frozenset(entry["skip"]),
                frozenset(entry["ids"]),
            )
            for name, entry in data["chapters"].items()
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CourseError(f"{path}: not a readable course manifest ({exc})") from None


def identify(nb: nbformat.NotebookNode, path: Path, specs: dict[str, ChapterSpec]) -> ChapterSpec:
    """Which chapter a submission answers: a chapter name in its file name, else its cell ids."""
    stem = Path(path).stem
    named = [s for name, s in specs.items() if name in stem]
    if len(named) == 1:
        return named[0]
    ids = {c.get("id") for c in nb.cells if c.get("id")}
    overlap = sorted(((len(ids & s.ids), s.chapter) for s in specs.values()), reverse=True)
    if overlap and overlap[0][0] >= 3 and (len(overlap) == 1 or overlap[1][0] < overlap[0][0]):
        return specs[overlap[0][1]]
    if len(specs) == 1:
        return next(iter(specs.values()))
    raise CourseError(
        f"{path}: cannot tell which chapter this notebook answers; put the chapter's name "
        f"in the file name (one of {sorted(specs)})"
    )
