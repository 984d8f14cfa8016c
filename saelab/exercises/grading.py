"""Grade a completed student notebook, one score per exercise, with checks the student cannot touch.

Two child processes grade each submission (``isolation.py`` gives both their limits):

* **A** (``_student_run``) runs the student's whole notebook, every code cell except the
  chapter's own cells that the course lets the grader skip when they are unchanged (training
  runs, plots: see ``course.py``), then pickles the functions the checks need, together with
  the helpers they use wherever they were defined.
* **B** (``_check_run``) is a fresh interpreter: it imports the checker from a read-only,
  hash-verified copy of saelab *before* it loads the student's functions, then runs the course's
  check cells (never the submission's) one exercise at a time, each with a time limit.

An exercise passes when the course's check returns without raising. The list of exercises and
the total come from the course. What the student's notebook does to its own process (patching
the checker, NumPy or builtins, editing or deleting check cells, ``sys.exit``, endless loops)
stays in process A. A crash costs that notebook (A) or that exercise (B), with the reason. What
this design does not stop, a function whose body attacks the grader when called, is described
in ``book/exercises.md``. Introduced in Chapter 1's exercises; the gradebook is ``gradebook.py``.
"""
from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import threading
from pathlib import Path
from typing import Callable, NamedTuple

import nbformat

from .._checks import check_positive
from .course import ChapterSpec, CourseError, digest, identify, load_manifest, specs_from_paths
from .isolation import (
    Limits, PackageGuard, bootstrap_command, child_env, kill_group, spawn, tail, truncate,
)

__all__ = ["GradingError", "ExerciseResult", "GradeReport", "read_notebook", "grade_notebook"]

Log = Callable[[str], None]


def _check_path(name: str, value) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a notebook path (str or Path), got {type(value).__name__}")
    return Path(value)


class GradingError(RuntimeError):
    """The notebook could not be graded (missing, not a notebook, unknown chapter)."""


class ExerciseResult(NamedTuple):
    name: str
    passed: bool
    message: str  # the hint or error when failed, "" when passed


class GradeReport(NamedTuple):
    notebook: str
    results: list[ExerciseResult]
    chapter: str = ""
    student: str = ""
    problem: str = ""  # why the whole notebook failed (timeout, crash), "" otherwise

    @property
    def score(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    def format(self) -> str:
        lines = [f"Grading {self.notebook}" + (f" ({self.chapter})" if self.chapter else "")]
        if self.problem:
            lines.append(f"  {self.problem}")
        width = max((len(r.name) for r in self.results), default=0)
        for r in self.results:
            status = "passed" if r.passed else "FAILED"
            detail = "" if r.passed else f"  {r.message}"
            lines.append(f"  {r.name:<{width}}  {status}{detail}")
        lines.append(f"Score: {self.score}/{self.total}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "notebook": self.notebook, "student": self.student, "chapter": self.chapter,
            "score": self.score, "total": self.total, "problem": self.problem,
            "exercises": [r._asdict() for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """Read a notebook, turning every way it can be unreadable into a one-line GradingError."""
    path = _check_path("path", path)
    if not path.is_file():
        raise GradingError(f"{path}: no such notebook file")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # JSON errors, schema errors, wrong encodings
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GradingError(f"{path}: not a valid notebook ({truncate(first_line, 200)})") from None
    return nb


def course_specs(course=None) -> dict[str, ChapterSpec]:
    """The chapters to grade against: the shipped manifest, or course notebooks/folders given."""
    try:
        if course is None:
            return load_manifest()
        return specs_from_paths([course] if isinstance(course, (str, Path)) else course)
    except CourseError as exc:
        raise GradingError(str(exc)) from None


def student_cells(nb: nbformat.NotebookNode, spec: ChapterSpec) -> list[tuple[int, str]]:
    """(index, source) of the submission's code cells that run: all but unchanged skippable ones."""
    return [
        (i, c.source) for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and c.source.strip() and digest(c.source) not in spec.skip
    ]


def _read_events(path: Path) -> list[dict]:
    events = []
    try:
        with open(path, "rb") as fh:
            for line in fh.read(2_000_000).splitlines():
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    events.append(event)
    except OSError:
        pass
    return events


def _run_student(nb, spec, limits, guard, work: Path, log: Log):
    """Process A. Returns (exports or None, cell errors {index: error}, problem)."""
    ctl, cwd = work / "ctl", work / "cwd"
    for folder in (ctl, ctl / "exports", cwd):
        folder.mkdir(parents=True)
    site = guard.package_copy(work / "site")
    cells = student_cells(nb, spec)
    needs = list(dict.fromkeys(n for e in spec.exercises for n in e.needs))
    job = {
        "cells": cells, "exports": needs, "cell_seconds": limits.cell_seconds,
        "cell_wall_seconds": limits.cell_wall_seconds,
        "memory_bytes": limits.memory_bytes, "file_bytes": limits.file_bytes,
        "status": str(ctl / "status.jsonl"), "exports_dir": str(ctl / "exports"),
    }
    (ctl / "job.json").write_text(json.dumps(job))
    timed_out = False
    with open(ctl / "output.log", "wb") as out:
        proc = spawn(bootstrap_command(site, "saelab.exercises._student_run", str(ctl / "job.json")),
                     cwd=cwd, env=child_env(work), stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=limits.notebook_seconds)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_group(proc)
    events = _read_events(ctl / "status.jsonl")
    errors = {e["cell"]: str(e["error"]) for e in events
              if e.get("event") == "done" and e.get("error") and isinstance(e.get("cell"), int)}
    for index, error in errors.items():
        log(f"cell {index} raised {truncate(error, 300)}")
    for e in events:
        if e.get("event") == "limits":
            log(f"this OS refused the limits: {e.get('refused')}")
    output = tail(ctl / "output.log", 2000).strip()
    if output:
        log("notebook output (end):\n" + output)
    exported = next((e.get("exports") for e in events if e.get("event") == "exported"), None)
    if isinstance(exported, dict) and not timed_out:
        return {str(k): str(v) for k, v in exported.items()}, errors, ""
    started = [e.get("cell") for e in events if e.get("event") == "start"]
    where = f" in cell {started[-1]}" if started else ""
    if timed_out:
        problem = f"your notebook ran longer than {limits.notebook_seconds:g} s{where} and was stopped"
    else:
        problem = (f"your notebook's process ended{where} before the grader could collect your "
                   f"functions (exit code {proc.returncode}: sys/os exit, a crash or the memory limit)")
    return None, errors, problem


def _run_checks(spec, exports, start, limits, guard, work: Path, log: Log, results: dict) -> int:
    """Process B from exercise ``start``; fills ``results``; returns where to restart (or the end)."""
    token = secrets.token_hex(16)
    job = {
        "token": token, "package_root": str(guard.root / "saelab"), "hashes": guard.hashes,
        "setup": list(spec.setup), "start": start, "exports": exports,
        "exercises": [e.__dict__ | {"needs": list(e.needs)} for e in spec.exercises],
        "exports_dir": str(work / "ctl" / "exports"), "cell_seconds": limits.cell_seconds,
        "cell_wall_seconds": limits.cell_wall_seconds,
        "memory_bytes": limits.memory_bytes, "file_bytes": limits.file_bytes,
    }
    cwd = guard.scratch("checks-")
    messages: queue.Queue = queue.Queue()
    with open(work / "ctl" / f"checks-{start}.log", "wb") as err:
        proc = spawn(bootstrap_command(guard.root, "saelab.exercises._check_run"), cwd=cwd,
                     env=child_env(cwd), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)

        def reader():
            prefix = token.encode()
            while line := proc.stdout.readline(1 << 16):
                if line.startswith(prefix):
                    try:
                        messages.put(json.loads(line[len(prefix):]))
                    except ValueError:
                        pass
            messages.put(None)

        threading.Thread(target=reader, daemon=True).start()
        current, ready = None, False
        try:
            proc.stdin.write(json.dumps(job).encode() + b"\n")
            proc.stdin.close()
            while True:
                wait = limits.cell_wall_seconds + 15 if ready else limits.cell_wall_seconds + 60
                try:
                    msg = messages.get(timeout=wait)
                except queue.Empty:
                    if not ready:
                        raise GradingError("the checks did not start in time (course setup too slow?)")
                    if current is None:
                        return len(spec.exercises)
                    results[current] = (False, f"your function ran longer than "
                                               f"{limits.cell_seconds:g} s and was stopped")
                    return current + 1
                if msg is None:  # the process ended
                    if not ready:
                        raise GradingError("the check process failed during the course's setup: "
                                           + truncate(tail(work / "ctl" / f"checks-{start}.log", 600), 600))
                    if current is not None:
                        proc.wait(timeout=10)
                        results[current] = (False, "the grader's process died while checking your "
                                                   f"function (exit code {proc.returncode}: os._exit, "
                                                   "a crash or the memory limit)")
                        return current + 1
                    return max(results, default=start - 1) + 1
                if "fatal" in msg:
                    raise GradingError(truncate(str(msg["fatal"])))
                if msg.get("ready"):
                    ready = True
                elif isinstance(msg.get("start"), int):
                    current = msg["start"]
                elif msg.get("result") == current and current is not None:
                    results[current] = (bool(msg.get("passed")), truncate(str(msg.get("message", ""))))
                    current = None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GradingError(f"the check process failed ({exc})") from None
        finally:
            kill_group(proc)
            out = tail(work / "ctl" / f"checks-{start}.log", 1500).strip()
            if out:
                log("check process output (end):\n" + out)


def _explain(name, message, exercise, nb, errors) -> str:
    """Point at the student's failing cell when the check could not find their function."""
    if "does not define" in message or message.startswith("NameError"):
        for index in sorted(errors, reverse=True):
            source = nb.cells[index].source
            if any(n in source for n in (*exercise.needs, name)):
                return f"your exercise cell failed: {truncate(errors[index], 300)}"
    return message


def grade_with(path: Path, nb, spec: ChapterSpec, limits: Limits, guard: PackageGuard,
               log: Log) -> GradeReport:
    """Grade one read notebook against ``spec`` with an existing guard (see ``grade_notebook``)."""
    work = guard.scratch("submission-")
    exports, errors, problem = _run_student(nb, spec, limits, guard, work, log)
    if exports is None:
        results = [ExerciseResult(e.name, False, problem) for e in spec.exercises]
        return GradeReport(Path(path).name, results, spec.chapter, problem=problem)
    outcome: dict[int, tuple[bool, str]] = {}
    start = 0
    while start < len(spec.exercises):
        after = _run_checks(spec, exports, start, limits, guard, work, log, outcome)
        for index in range(start, min(after, len(spec.exercises))):
            outcome.setdefault(index, (False, "the check did not report a result"))
        start = max(after, start + 1)
    results = []
    for index, exercise in enumerate(spec.exercises):
        passed, message = outcome[index]
        message = "" if passed else _explain(exercise.name, message, exercise, nb, errors)
        results.append(ExerciseResult(exercise.name, passed, message or "the check failed"
                                      if not passed else ""))
    return GradeReport(Path(path).name, results, spec.chapter)


def grade_notebook(path: Path, timeout: float = 120, *, course=None, limits: Limits | None = None,
                   log: Log | None = None) -> GradeReport:
    """Grade one student notebook and score each exercise of its chapter.

    Parameters
    ----------
    path : the completed student notebook (a make-student or learner notebook).
    timeout : seconds allowed per cell of the notebook and per check (ignored if ``limits``).
    course : the course notebook(s) or folder to take the checks from; default: the chapters
        shipped with saelab (``course.json``). The chapter is recognised from the file name.
    limits : all resource limits (see :class:`~saelab.exercises.isolation.Limits`).
    log : called with each warning (cell errors, process output); default: dropped.

    Raises GradingError if the file is not a notebook or its chapter is unknown, and
    PackageTampered if the installed saelab changed while grading.
    """
    path = _check_path("path", path)
    limits = limits or Limits(cell_seconds=check_positive("timeout", timeout))
    nb = read_notebook(path)
    specs = course_specs(course)
    try:
        spec = identify(nb, path, specs)
    except CourseError as exc:
        raise GradingError(str(exc)) from None
    with PackageGuard() as guard:
        report = grade_with(path, nb, spec, limits, guard, log or (lambda text: None))
        guard.verify()
    return report
