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
    args = parser.parse_args(argv)

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
