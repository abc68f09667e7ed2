"""Lesson 05's table: Taylor & Stone's metrics of scratch / frozen torso + new heads / fine-tuning on two CartPole
targets, over seeds, in one framework per process (the notebooks' code path: the package's PPOAgent and
transfer_network, the same budgets and threshold).

    .venv/bin/python benchmarks/rl_transfer.py --framework torch           # default profile, 3 seeds
    .venv/bin/python benchmarks/rl_transfer.py --framework tensorflow --profile quick

Prints the source agent's greedy return, the zero-shot returns, one table per target (mean ± std over seeds),
the per-seed steps to the threshold, and the ratio of fine-tuning's steps to scratch's on gravity 40.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

TARGETS = {"gravity 40": {"gravity": 40.0}, "inverted actions": {"force_mag": -10.0}}
METHODS = {"scratch": "scratch", "frozen": "frozen", "fine-tune": "finetune"}
THRESHOLD = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "tensorflow"), default="torch")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=0, help="the source agent's seed; targets use seed, seed+1, ...")
    parser.add_argument("--json", help="also write the tables and curves to this file")
    args = parser.parse_args()

    from transfer_course import get_profile
    from transfer_course.rl import (
        format_metrics_table,
        lesson_budget,
        time_to_threshold,
        transfer_metrics,
    )

    if args.framework == "torch":
        import torch

        torch.set_num_threads(1)
        import transfer_course.torch as T
    else:
        import transfer_course.tensorflow as T
    profile = get_profile(args.profile)
    budget = lesson_budget(profile)
    start = time.perf_counter()
    source = T.PPOAgent("CartPole-v1", seed=args.seed)
    source.train(budget["source_steps"], eval_every=budget["eval_every"], progress=False)
    print(f"{args.framework} | profile {profile.name} | source {source.global_step:,d} steps, greedy return "
          f"{source.evaluate(20, greedy=True, seed=1).mean():.1f} | {time.perf_counter() - start:.0f} s")
    out = {"framework": args.framework, "profile": profile.name, "threshold": THRESHOLD, "targets": {}}
    for target, variant in TARGETS.items():
        g = source.evaluate(20, greedy=True, seed=1, variant=variant).mean()
        s = source.evaluate(20, greedy=False, seed=1, variant=variant).mean()
        print(f"zero-shot on {target}: greedy {g:.1f}, sampled {s:.1f}")
    for target, variant in TARGETS.items():
        key = "target" if target == "gravity 40" else "second"
        steps, n = budget[f"{key}_steps"], budget["seeds" if key == "target" else "second_seeds"]
        curves = {m: [] for m in METHODS}
        t0 = time.perf_counter()
        for seed in range(args.seed, args.seed + n):
            for method, mode in METHODS.items():
                agent = T.PPOAgent("CartPole-v1", variant=variant, seed=seed,
                                   network=T.transfer_network(source.network, mode, seed=seed))
                curves[method].append(agent.train(steps, eval_every=budget["eval_every"], progress=False))
        table = transfer_metrics(curves, THRESHOLD, spread=n > 1)
        print()
        print(format_metrics_table(table, f"{target}: {n} seeds, {steps:,d} steps, θ = {THRESHOLD:g} "
                                          f"({time.perf_counter() - t0:.0f} s)"))
        for method, runs in curves.items():
            times = [time_to_threshold(c, THRESHOLD) for c in runs]
            print(f"  {method:10s} steps to θ per seed: " + ", ".join("not reached" if t is None else f"{t:.0f}" for t in times))
        out["targets"][target] = {"table": table, "curves": {m: [c.to_dict() for c in cs] for m, cs in curves.items()}}
    main_table = out["targets"]["gravity 40"]["table"]
    ratio = main_table["fine-tune"]["time_to_threshold"] / main_table["scratch"]["time_to_threshold"]
    print(f"\nsteps to θ on gravity 40, fine-tune / scratch = {ratio:.2f} (scratch reached θ in "
          f"{main_table['scratch']['reached']}/{main_table['scratch']['seeds']} seeds; a censored scratch time makes "
          f"this an upper bound) | total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main()
