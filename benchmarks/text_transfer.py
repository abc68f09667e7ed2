"""Lesson 07's table: test accuracy of TF-IDF + logistic regression, a bag of word pieces trained from scratch, a new
head on frozen all-MiniLM-L6-v2 sentence vectors, and fine-tuning the top two encoder layers, with K labelled examples
per class (K = 20 in the default profile, 10 in quick), mean ± std over the profile's seeds (3 in default), and the
few-shot curve. It executes the solution notebook itself in its own kernel (the lesson's exact code path, one
framework per process) and reads the ``results`` it reports once from the test split.

    python benchmarks/text_transfer.py [--framework torch|tensorflow] [--profile default] [--seed 0] [--quick]

Goal: frozen beats TF-IDF by at least 10 points of test accuracy; fine-tuned is reported against frozen.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("TF-IDF", "from scratch", "frozen", "fine-tuned")


def run(framework: str, profile: str, seed: int) -> dict:
    name = "pytorch" if framework == "torch" else "tensorflow"
    notebook = ROOT / "solutions" / f"07_nlp_transfer_{name}.ipynb"
    env = {**os.environ, "TRANSFER_COURSE_PROFILE": profile, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        subprocess.run([sys.executable, str(ROOT / "tests" / "execute_lesson.py"), str(notebook), str(out), str(seed)],
                       check=True, env=env, cwd=ROOT)
        return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", choices=("torch", "tensorflow"), default="torch")
    parser.add_argument("--profile", choices=("quick", "default", "full"), default="default")
    parser.add_argument("--seed", type=int, default=0, help="first seed (the profile decides how many)")
    parser.add_argument("--quick", action="store_true", help="the quick profile (1 seed, K = 10)")
    args = parser.parse_args()
    profile = "quick" if args.quick else args.profile
    report = run(args.framework, profile, args.seed)
    r = report["results"]
    seeds = int(r["frozen"]["seeds"])
    print(f"lesson 07, {args.framework}, profile {profile}, {seeds} seed(s) from {args.seed}, "
          f"notebook ran {report['seconds']:.0f} s")
    print(f"{'method':14s} {'test accuracy':>16s}")
    for method in METHODS:
        print(f"{method:14s} {r[method]['accuracy']:.3f} ± {r[method]['std']:.3f}")
    print("few-shot curve (test accuracy, mean over seeds, by labelled examples per class):")
    for method, points in r["few_shot"].items():
        print(f"  {method:11s} " + "  ".join(f"{k}: {v:.3f}" for k, v in points.items()))
    gain = r["frozen"]["accuracy"] - r["TF-IDF"]["accuracy"]
    tuned = r["fine-tuned"]["accuracy"] - r["frozen"]["accuracy"]
    print(f"frozen - TF-IDF: {gain:+.3f} (goal >= +0.10); fine-tuned - frozen: {tuned:+.3f}")
    return 0 if gain >= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
