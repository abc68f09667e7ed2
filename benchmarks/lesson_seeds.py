"""Lessons 02 and 03, both frameworks, over several seeds: the test-split numbers each notebook reports once (its
``results``), with spread, paired differences between methods, and run times. Each notebook runs in its own kernel,
two at a time (one thread each on a 2-core machine).

    python benchmarks/lesson_seeds.py [--profile default] [--seeds 0 1 2] [--jobs 2] [--lessons 03_fine_tuning]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ("02_feature_extraction", "03_fine_tuning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per kernel")
    parser.add_argument("--lessons", nargs="+", default=list(LESSONS), choices=LESSONS)
    parser.add_argument("--json", type=Path, help="also write every run's numbers to this file")
    args = parser.parse_args()
    notebooks = [f"{lesson}_{fw}" for lesson in args.lessons for fw in ("pytorch", "tensorflow")]
    threads = str(args.threads)
    env = {**os.environ, "TRANSFER_COURSE_PROFILE": args.profile, "OMP_NUM_THREADS": threads,
           "TF_NUM_INTRAOP_THREADS": threads, "TF_NUM_INTEROP_THREADS": threads, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = Path(tempfile.mkdtemp())
    jobs = [(nb, seed) for seed in args.seeds for nb in notebooks]
    reports = {}
    for i in range(0, len(jobs), args.jobs):
        procs = {job: subprocess.Popen([sys.executable, str(ROOT / "tests" / "execute_lesson.py"),
                                        str(ROOT / "solutions" / f"{job[0]}.ipynb"), str(out / f"{job[0]}-{job[1]}.json"),
                                        str(job[1])], env=env, stderr=subprocess.DEVNULL)
                 for job in jobs[i:i + args.jobs]}
        for job, proc in procs.items():
            if proc.wait() != 0:
                raise SystemExit(f"{job} failed")
            reports[job] = json.loads((out / f"{job[0]}-{job[1]}.json").read_text())
            print(f"done {job[0]} seed {job[1]}: {reports[job]['seconds']:.0f} s", flush=True)

    if args.json:
        args.json.write_text(json.dumps({f"{nb} seed {seed}": r for (nb, seed), r in reports.items()}, indent=1))
    print(f"\nprofile {args.profile}, seeds {args.seeds}: TEST accuracy (macro F1), mean ± std over seeds")
    for nb in notebooks:
        runs = [reports[(nb, s)] for s in args.seeds]
        cells = []
        for method in runs[0]["results"]:
            acc = np.array([r["results"][method]["accuracy"] for r in runs])
            f1 = np.array([r["results"][method]["f1"] for r in runs])
            cells.append(f"{method} {acc.mean():.3f} ± {acc.std():.3f} (F1 {f1.mean():.3f})")
        seconds = np.array([r["seconds"] for r in runs])
        print(f"{nb:34s} " + " | ".join(cells) + f" | {seconds.mean():.0f} s per run")
        methods = list(runs[0]["results"])
        for a, b in zip(methods, methods[1:]):  # paired by seed: the same data and split in both methods
            diff = np.array([r["results"][b]["accuracy"] - r["results"][a]["accuracy"] for r in runs])
            print(f"{'':34s} {b} − {a}: {diff.mean():+.3f} ± {diff.std():.3f} (per seed {np.round(diff, 3).tolist()})")


if __name__ == "__main__":
    main()
