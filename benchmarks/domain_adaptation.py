"""Lesson 04's table: target-test accuracy of source-only, target-only, AdaBN, Deep CORAL and DANN on the embedded
domain pair (photo patches -> low-contrast black-and-white negatives), over several seeds (mean ± std), with the share
of the source-only -> target-only gap each method closes. The notebooks' code path: ``make_domain_pair``,
``pair_features`` (frozen EfficientNet-Lite0), ``fit_adapted`` and ``adabn``, with the profile's ``adapt_settings``.
Each framework runs in its own process. ``--profile full`` runs the real benchmark, MNIST -> MNIST-M
(``mnist_m_pair``: downloads and verifies MNIST and BSDS500 the first time).

    python benchmarks/domain_adaptation.py [--profile default] [--seeds 0 1 2] [--frameworks torch tensorflow]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def run(framework: str, profile_name: str, seeds) -> dict:
    """Train every method with every seed in this process; return ``{method: [test accuracy per seed]}``."""
    import importlib

    from transfer_course import get_profile
    from transfer_course.adapt import (
        METHODS,
        adapt_settings,
        make_domain_pair,
        mnist_m_pair,
        pair_features,
    )

    T = importlib.import_module(f"transfer_course.{framework}")
    profile, start = get_profile(profile_name), time.perf_counter()
    settings = adapt_settings(profile)
    if profile.online:  # the full profile: MNIST -> MNIST-M, as in the notebooks (needs internet the first time)
        pair = mnist_m_pair(size=profile.image_size, per_class=profile.samples_per_class, val_per_class=50, seed=0)
    else:
        pair = make_domain_pair(size=profile.image_size, per_class=profile.samples_per_class,
                                val_per_class=max(10, profile.samples_per_class), seed=0)

    def make_extractor():
        backbone = T.create_model("efficientnet_lite0")
        return lambda images: T.extract_features(backbone, images, batch_size=4)

    name = "pytorch" if framework == "torch" else "tensorflow"
    data = pair_features(pair, make_extractor, name=f"efficientnet_lite0-{name}", progress=False)
    dim, classes = data["source_train"][0].shape[1], len(pair.class_names)
    options = {"epochs": settings.epochs, "lr": settings.lr, "batch_size": settings.batch_size, "progress": False}
    x_test, y_test = data["target_test"]

    def accuracy(model):
        if framework == "torch":
            import torch

            model.eval()
            with torch.no_grad():
                return float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
        return float((np.argmax(model(x_test, training=False).numpy(), 1) == y_test).mean())

    out = {m: [] for m in METHODS}
    for seed in seeds:
        new = lambda seed=seed: T.make_adaptation_net(dim, classes, settings.hidden_units, seed=seed)
        src, tgt, coral, dann = new(), new(), new(), new()
        T.fit_adapted(src, data["source_train"], method="source-only", seed=seed, **options)
        T.fit_adapted(tgt, data["target_train"], method="source-only", seed=seed, **options)
        T.fit_adapted(coral, data["source_train"], data["target_train"], method="coral", lam=settings.coral_weight,
                      seed=seed, **options)
        T.fit_adapted(dann, data["source_train"], data["target_train"], method="dann", lam=settings.dann_weight,
                      seed=seed, **options)
        adapted = new()
        if framework == "torch":
            adapted.load_state_dict(src.state_dict())
        else:
            adapted.set_weights(src.get_weights())
        T.adabn(adapted, data["target_train"])
        for method, model in zip(METHODS, (src, tgt, adapted, coral, dann)):
            out[method].append(accuracy(model))
    out["seconds"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "tensorflow"], choices=["torch", "tensorflow"])
    parser.add_argument("--quick", action="store_true", help="the quick profile, one seed")
    parser.add_argument("--worker", choices=["torch", "tensorflow"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.profile, args.seeds = "quick", [0]
    if args.worker:  # one framework per process
        print("RESULT=" + json.dumps(run(args.worker, args.profile, args.seeds)))
        return
    from transfer_course.adapt import METHODS, gap_closed, mean_std

    results = {}
    for fw in args.frameworks:
        cmd = [sys.executable, __file__, "--worker", fw, "--profile", args.profile, "--seeds", *map(str, args.seeds)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        if proc.returncode:
            sys.exit(f"{fw} failed:\n{proc.stderr[-3000:]}")
        results[fw] = json.loads(next(l for l in proc.stdout.splitlines() if l.startswith("RESULT="))[7:])
    print(f"profile {args.profile}, seeds {args.seeds}: target test accuracy, mean ± std (gap closed)")
    print(f"{'method':12s}" + "".join(f"{fw:>28s}" for fw in results))
    for method in METHODS:
        row = f"{method:12s}"
        for fw, r in results.items():
            floor, ceiling = mean_std(r["source-only"])[0], mean_std(r["target-only"])[0]
            mean, std = mean_std(r[method])
            row += f"{mean:14.3f} ± {std:.3f} ({gap_closed(floor, ceiling, mean):4.0%})"
        print(row)
    for fw, r in results.items():
        print(f"{fw}: per seed " + "; ".join(f"{m} {np.round(r[m], 3).tolist()}" for m in METHODS)
              + f" | {r['seconds']:.0f} s")


if __name__ == "__main__":
    main()
