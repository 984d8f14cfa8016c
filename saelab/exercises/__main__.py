"""Command line for teachers: make student notebooks, grade completed ones, keep a gradebook.

    python -m saelab.exercises make-student notebooks/ -o student/
    python -m saelab.exercises grade student/01_superposition.ipynb [--json results.json]
    python -m saelab.exercises grade SUBMISSIONS/ --csv grades.csv      # a whole class
    python -m saelab.exercises manifest notebooks/                      # refresh course.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .course import MANIFEST, CourseError, specs_from_paths, to_manifest
from .gradebook import default_workers, format_summary, grade_folder, summary_table
from .grading import GradingError
from .isolation import Limits, PackageTampered
from .student import MarkerError, make_student_files


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m saelab.exercises",
        description="Make student versions of the chapter notebooks, and grade completed ones.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    make = sub.add_parser("make-student", help="write student notebooks (solutions stubbed out)")
    make.add_argument("paths", nargs="+", type=Path, help="notebooks, or folders of notebooks")
    make.add_argument("-o", "--out", type=Path, default=Path("student"), help="output folder")

    grade = sub.add_parser("grade", help="grade student notebooks (files or folders), one score "
                                         "per exercise, into a CSV gradebook")
    grade.add_argument("notebooks", nargs="+", type=Path, help="notebooks, or folders of them")
    grade.add_argument("--timeout", type=float, default=120, help="seconds per cell and per check")
    grade.add_argument("--notebook-timeout", type=float, default=900,
                       help="seconds to run one whole student notebook")
    grade.add_argument("--memory-gb", type=float, default=4, help="memory limit per process (Linux)")
    grade.add_argument("--workers", type=int, default=None,
                       help=f"notebooks graded at once (default: CPU cores, here {default_workers()})")
    grade.add_argument("--course", type=Path, action="append",
                       help="course notebook or folder to take the checks from (default: shipped)")
    grade.add_argument("--csv", type=Path, help="gradebook CSV (default: grades.csv for a folder)")
    grade.add_argument("--log", type=Path, default=Path("grading.log"),
                       help="where notebook output and warnings go")
    grade.add_argument("--json", type=Path, help="also write every notebook's results as JSON")
    grade.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    manifest = sub.add_parser("manifest", help="write course.json from the chapter notebooks")
    manifest.add_argument("paths", nargs="*", type=Path, default=[Path("notebooks")])
    manifest.add_argument("-o", "--out", type=Path, default=MANIFEST)
    return parser


def _grade(args) -> int:
    folders = [p for p in args.notebooks if p.is_dir()]
    csv_path = args.csv or (Path("grades.csv") if folders else None)
    try:
        limits = Limits(cell_seconds=args.timeout, notebook_seconds=args.notebook_timeout,
                        memory_bytes=int(args.memory_gb * 2**30))
        reports = grade_folder(args.notebooks, csv_path, args.log, course=args.course,
                               limits=limits, workers=args.workers,
                               progress=not args.no_progress)
    except (GradingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PackageTampered as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    status = 0
    for report in reports:
        if not report.results:
            print(f"error: {report.problem}", file=sys.stderr)
            status = 2
        elif not folders:
            print(report.format())
    if folders:
        print(format_summary(summary_table(reports)))
    if csv_path:
        print(f"gradebook: {csv_path} (summary: {csv_path.stem}_summary.csv)")
    print(f"log: {args.log}")
    if args.json:
        args.json.write_text(json.dumps({"notebooks": [r.to_dict() for r in reports]}, indent=2))
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "make-student":
        try:
            written = make_student_files(args.paths, args.out)
        except (FileNotFoundError, MarkerError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
        return 0
    if args.command == "manifest":
        try:
            args.out.write_text(to_manifest(specs_from_paths(args.paths)))
        except (CourseError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.out}")
        return 0
    return _grade(args)


if __name__ == "__main__":
    sys.exit(main())
