"""Command line for teachers: make student notebooks and grade completed ones.

    python -m saelab.exercises make-student notebooks/ -o student/
    python -m saelab.exercises grade student/01_superposition.ipynb [--json results.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .grading import GradingError, grade_notebook
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

    grade = sub.add_parser("grade", help="grade completed student notebooks, one score per exercise")
    grade.add_argument("notebooks", nargs="+", type=Path)
    grade.add_argument("--timeout", type=int, default=120, help="seconds allowed per cell")
    grade.add_argument("--json", type=Path, help="also write the results of the last notebook as JSON")
    return parser


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

    status = 0
    for path in args.notebooks:
        try:
            report = grade_notebook(path, timeout=args.timeout)
        except GradingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        print(report.format())
        if args.json:
            args.json.write_text(report.to_json())
    return status


if __name__ == "__main__":
    sys.exit(main())
