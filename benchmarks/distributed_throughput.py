"""Data-parallel throughput: images per second of the course's ``fit`` in 1 process and in 2 processes on this
machine, per framework (PyTorch: ``torchrun --standalone``, gloo; TensorFlow: two workers with ``TF_CONFIG``,
``MultiWorkerMirroredStrategy``), and the ratio. A small convolutional network on 64 px images, the same global work
in both runs (each process takes its shard). On a 2-core CPU expect little or no gain: the point is that the launch
works and what it costs; with one process per GPU the ratio approaches the number of GPUs for models big enough.

    python benchmarks/distributed_throughput.py [--frameworks torch tensorflow] [--images 512] [--epochs 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve()


def data(n, size=64):
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    x = rng.normal(0, 1, (n, size, size, 3)).astype(np.float32) + y[:, None, None, None] * 0.05
    return x, y


def worker(framework: str, out: Path, images: int, epochs: int, per_process_batch: int) -> None:
    """Runs inside the launch: trains with fit, rank 0 writes the steady-state throughput (epochs after the first)."""
    x, y = data(images)
    seconds = []
    hook = lambda epoch, logs: seconds.append(logs["seconds"])
    if framework == "torch":
        import torch
        from torch import nn

        from transfer_course.torch import cleanup_distributed, fit, setup_distributed

        torch.set_num_threads(1)
        info, _ = setup_distributed(verbose=False)
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                              nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
        fit(model, (x.transpose(0, 3, 1, 2).copy(), y), epochs=epochs, batch_size=per_process_batch, progress=False,
            on_epoch_end=hook)
        cleanup_distributed()
    else:
        from transfer_course.tensorflow.distributed import setup_distributed

        info, strategy = setup_distributed(verbose=False)
        import keras

        from transfer_course.tensorflow import fit

        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
                                      keras.layers.MaxPooling2D(), keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
                                      keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])
        fit(model, (x, y), epochs=epochs, batch_size=per_process_batch * info.world_size, progress=False,
            on_epoch_end=hook)
    if info.rank == 0:
        steady = seconds[1:] or seconds
        out.write_text(json.dumps({"world_size": info.world_size, "images_per_second": images * len(steady) / sum(steady)}))


def measure(framework: str, nproc: int, images: int, epochs: int, batch: int) -> float:
    out = Path(tempfile.mkdtemp()) / "result.json"
    launcher = (f"from transfer_course.{'torch' if framework == 'torch' else 'tensorflow'}.distributed import launch; "
                f"launch({str(HERE)!r}, nproc={nproc}, args=['--worker', {framework!r}, {str(out)!r}, '--images', "
                f"'{images}', '--epochs', '{epochs}', '--batch', '{batch}'], echo=False)")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "-c", launcher], check=True, env=env)
    return json.loads(out.read_text())["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frameworks", nargs="+", default=["torch", "tensorflow"], choices=["torch", "tensorflow"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32, help="per process")
    parser.add_argument("--quick", action="store_true", help="256 images, 2 epochs")
    parser.add_argument("--worker", nargs=2, metavar=("FRAMEWORK", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]), args.images, args.epochs, args.batch)
        return
    if args.quick:
        args.images, args.epochs = 256, 2
    print(f"{args.images} images of 64 px, {args.batch} per process per step, {args.epochs} epochs (the first is "
          f"warm-up), {os.cpu_count()} CPU cores")
    print(f"{'framework':12s} {'1 process':>12s} {'2 processes':>12s} {'ratio':>7s}")
    for framework in args.frameworks:
        one = measure(framework, 1, args.images, args.epochs, args.batch)
        two = measure(framework, 2, args.images, args.epochs, args.batch)
        print(f"{framework:12s} {one:9.1f} i/s {two:9.1f} i/s {two / one:6.2f}x", flush=True)


if __name__ == "__main__":
    main()
