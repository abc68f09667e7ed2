"""The ``transfer-course`` command."""
from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="transfer-course", description="Helpers for the transfer-learning course.")
    sub = parser.add_subparsers(dest="command", required=True)
    doctor = sub.add_parser("doctor", help="show what is installed, which GPUs each framework sees, and what to fix")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    build = sub.add_parser("build-lessons", help="write lessons/ from solutions/ (exercise answers removed)")
    build.add_argument("--root", default=".", help="the course's root folder (holding solutions/)")
    build.add_argument("--check", action="store_true", help="only report whether lessons/ is in step; exit 1 if not")
    grade = sub.add_parser("grade", help="grade a folder of submitted notebooks and write a gradebook")
    grade.add_argument("submissions", help="folder of submissions: SUBMISSIONS/<student>/<lesson>.ipynb "
                                           "(or SUBMISSIONS/<student>.ipynb with --lesson)")
    grade.add_argument("--lesson", help="grade only this lesson, e.g. 02_feature_extraction_pytorch")
    grade.add_argument("--source", help="folder of the released lessons (default: the course's lessons/)")
    grade.add_argument("--out", default="gradebook", help="folder for gradebook.csv and gradebook.json")
    grade.add_argument("--timeout", type=float, default=900, help="seconds per notebook (default 900)")
    grade.add_argument("--cell-timeout", type=float, default=300, help="seconds per cell (default 300)")
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    grade.add_argument("--memory-mb", type=int, default=4096, help="memory limit per submission in MB (default 4096)")
    grade.add_argument("--profile", default="quick", help="run profile for the lessons (default quick)")
    grade.add_argument("--force", action="store_true", help="grade again submissions already in the gradebook")
    args = parser.parse_args(argv)

    if args.command == "grade":
        from .grading import GradingError, grade as run_grade, summary_table

        try:
            book = run_grade(args.submissions, lesson=args.lesson, source=args.source, out=args.out,
                             timeout=args.timeout, cell_timeout=args.cell_timeout, jobs=args.jobs,
                             memory_mb=args.memory_mb, profile=args.profile, force=args.force)
        except (GradingError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(summary_table(book))
        print(f"\nGradebook: {book['csv']} and {book['json']}")
        return 0
    if args.command == "doctor":
        from .doctor import main as doctor_main

        return doctor_main(as_json=args.json)
    from .exercises.build import build_lessons, lessons_out_of_step

    try:
        if args.check:
            stale = lessons_out_of_step(args.root)
            for path in stale:
                print(f"out of step: {path}")
            print("lessons/ is in step with solutions/." if not stale else "Run: transfer-course build-lessons")
            return 1 if stale else 0
        for path in build_lessons(args.root):
            print(f"wrote {path}")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
