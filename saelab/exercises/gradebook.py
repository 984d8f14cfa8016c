"""A gradebook for a whole class: grade every notebook under a folder into one CSV.

Naming convention (how the student's name is found):

* ``SUBMISSIONS/alice/01_superposition.ipynb``: the first folder under SUBMISSIONS is the student;
* ``SUBMISSIONS/alice__01_superposition.ipynb``: otherwise the file name without the chapter's
  name (and the separators around it) is the student.

The chapter is the course chapter whose name appears in the file name (else the one whose cell
ids the notebook shares). Notebooks are graded in parallel, each in its own processes (see
``grading.py``), with a progress bar. The CSV has one row per student, chapter and exercise
(points, total, reason); a notebook that cannot be graded at all gets one row saying why. A
per-student summary (score and total per chapter) is returned and written next to the CSV, and
everything the notebooks printed or raised goes to the log file. If a submission changes the
installed course package, grading stops (``PackageTampered``) after writing what was graded.
"""
from __future__ import annotations

import csv
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from .course import CourseError, identify
from .grading import ExerciseResult, GradeReport, GradingError, course_specs, grade_with, read_notebook
from .isolation import Limits, PackageGuard, PackageTampered, truncate

__all__ = ["grade_folder"]

CSV_FIELDS = ["student", "chapter", "notebook", "exercise", "points", "total", "reason"]


def find_notebooks(paths) -> list[tuple[Path, Path]]:
    """(root, notebook) for every notebook given or under a folder given, checkpoints left out."""
    found = []
    for root in map(Path, paths):
        if root.is_dir():
            found += [(root, p) for p in sorted(root.rglob("*.ipynb"))
                      if ".ipynb_checkpoints" not in p.parts]
        else:
            found.append((root.parent, root))
    return found


def student_name(root: Path, path: Path, chapter: str = "") -> str:
    """The student a notebook belongs to, by the convention in this module's docstring."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        parts = (path.name,)
    if len(parts) > 1:
        return parts[0]
    stem = path.stem
    if "__" in stem:
        return stem.split("__", 1)[0]
    name = stem.replace(chapter, "") if chapter else stem
    return name.strip("_-. ") or stem


def default_workers() -> int:
    """One grading at a time per CPU core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def csv_rows(report: GradeReport) -> list[dict]:
    if not report.results:
        return [{"student": report.student, "chapter": report.chapter or "?",
                 "notebook": report.notebook, "exercise": "", "points": 0, "total": 0,
                 "reason": report.problem}]
    return [{"student": report.student, "chapter": report.chapter, "notebook": report.notebook,
             "exercise": r.name, "points": int(r.passed), "total": 1,
             "reason": "" if r.passed else r.message} for r in report.results]


def summary_table(reports: list[GradeReport]) -> list[dict]:
    """One row per student: score and total per chapter, and overall."""
    students: dict[str, dict] = {}
    for r in reports:
        row = students.setdefault(r.student, {"student": r.student, "score": 0, "total": 0})
        row[r.chapter or "?"] = f"{r.score}/{r.total}"
        row["score"] += r.score
        row["total"] += r.total
    return [students[name] for name in sorted(students)]


def format_summary(rows: list[dict]) -> str:
    chapters = sorted({k for row in rows for k in row} - {"student", "score", "total"})
    header = ["student", *chapters, "total"]
    table = [header] + [[row["student"], *(row.get(c, "-") for c in chapters),
                         f"{row['score']}/{row['total']}"] for row in rows]
    widths = [max(len(str(line[i])) for line in table) for i in range(len(header))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip()
                     for line in table)


def grade_folder(paths, csv_path: Path | None, log_path: Path, *, course=None, limits: Limits | None = None,
                 workers: int | None = None, progress: bool = True) -> list[GradeReport]:
    """Grade every notebook in ``paths`` (files or folders); write the CSV, summary and log.

    ``csv_path=None`` writes no CSV. Returns the reports, in the order of the notebooks. Raises PackageTampered (after writing
    the CSV of what was graded) if a submission changed the installed course package.
    """
    if not isinstance(paths, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) for p in paths):
        raise TypeError(f"paths must be a list of notebook or folder paths, got {paths!r}")
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError(f"limits must be a Limits (or None for the defaults), got {limits!r}")
    limits = limits or Limits()
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    specs = course_specs(course)
    notebooks = find_notebooks(paths)
    if not notebooks:
        raise GradingError(f"no notebooks found in {', '.join(map(str, paths))}")
    reports: dict[int, GradeReport] = {}
    lock = threading.Lock()
    stop = threading.Event()
    tampered: list[str] = []
    log_file = open(log_path, "w", encoding="utf-8")

    def write_log(notebook: Path, lines: list[str]) -> None:
        with lock:
            log_file.write(f"=== {notebook}\n" + "".join(truncate(l, 5000) + "\n" for l in lines))
            log_file.flush()

    def one(index: int, root: Path, path: Path, guard: PackageGuard) -> GradeReport:
        lines: list[str] = []
        chapter, student = "", student_name(root, path)
        try:
            if stop.is_set():
                raise GradingError("not graded: grading stopped (see the error above)")
            nb = read_notebook(path)
            try:
                spec = identify(nb, path, specs)
            except CourseError as exc:
                raise GradingError(str(exc)) from None
            chapter, student = spec.chapter, student_name(root, path, spec.chapter)
            report = grade_with(path, nb, spec, limits, guard, lines.append)
            try:
                guard.verify()
            except PackageTampered as exc:
                stop.set()
                tampered.append(f"{exc} (while grading {path})")
            return report._replace(student=student)
        except Exception as exc:  # GradingError, or a fault of the grader: this notebook only
            lines.append(f"error: {exc}")
            problem = truncate(str(exc) if isinstance(exc, GradingError)
                               else f"the grader failed on this notebook ({type(exc).__name__}: {exc})")
            if not chapter:  # unreadable or not graded: the file name may still say which chapter
                named = [name for name in specs if name in path.stem]
                chapter = named[0] if len(named) == 1 else ""
            results = ([ExerciseResult(e.name, False, problem) for e in specs[chapter].exercises]
                       if chapter else [])
            return GradeReport(path.name, results, chapter, student, problem)
        finally:
            write_log(path, lines)

    try:
        with PackageGuard() as guard, ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(one, i, root, path, guard): i
                       for i, (root, path) in enumerate(notebooks)}
            bar = tqdm(total=len(futures), desc="grading", unit="notebook", disable=None if progress else True)
            for future in as_completed(futures):
                reports[futures[future]] = future.result()
                bar.update(1)
            bar.close()
    finally:
        log_file.close()
    ordered = [reports[i] for i in sorted(reports)]
    if csv_path is not None:
        write_csv(ordered, csv_path)
    if tampered:
        raise PackageTampered(tampered[0])
    return ordered


def write_csv(reports: list[GradeReport], csv_path: Path) -> Path:
    """Write the per-exercise CSV and, next to it, ``<name>_summary.csv``; return the summary path."""
    csv_path = Path(csv_path)
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for report in reports:
            writer.writerows(csv_rows(report))
    rows = summary_table(reports)
    chapters = sorted({k for row in rows for k in row} - {"student", "score", "total"})
    summary = csv_path.with_name(csv_path.stem + "_summary.csv")
    with open(summary, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["student", *chapters, "score", "total"], restval="-")
        writer.writeheader()
        writer.writerows(rows)
    return summary
