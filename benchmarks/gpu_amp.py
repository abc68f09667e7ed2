"""On a CUDA GPU: fine-tuning throughput with autocast (bf16, fp16 + gradient scaler) and channels_last,
against fp32, through ``transfer_course.torch.fit``; this also runs the GPU branches of the device module.

    python benchmarks/gpu_amp.py [--size 224] [--batch 64] [--images 2048] [--epochs 2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import transfer_course.torch as T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.images, args.epochs = 512, 1
    if not torch.cuda.is_available():
        print("No CUDA GPU here: nothing to measure. Run this on a machine with one.")
        return
    print(T.describe_devices())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.images, 3, args.size, args.size)).astype(np.float32)
    y = rng.integers(0, 10, args.images)
    loader = T.array_loader(x, y, batch_size=args.batch)
    results = {}
    for precision in ("fp32", "bf16", "fp16"):
        for channels_last in (False, True):
            T.seed_everything(0, deterministic=False)
            model = T.create_model(num_classes=10)
            T.fit(model, loader, epochs=1, precision=precision, channels_last=channels_last, progress=False)  # warm-up
            torch.cuda.synchronize()
            start = time.perf_counter()
            history = T.fit(model, loader, epochs=args.epochs, precision=precision, channels_last=channels_last,
                            progress=False)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            results[(precision, channels_last)] = args.images * args.epochs / seconds
            print(f"{precision} channels_last={channels_last!s:5s}: {results[(precision, channels_last)]:8.0f} images/s, "
                  f"final loss {history.last('loss'):.3f}")
    base = results[("fp32", False)]
    for key, value in results.items():
        print(f"{key[0]} channels_last={key[1]!s:5s} speed-up vs fp32: {value / base:.2f}x")


if __name__ == "__main__":
    main()
