"""Run by tests/torch/test_torch_distributed.py in 2 processes (RANK / WORLD_SIZE / MASTER_* set by the test).

``checks OUT``: several checks in one launch (gradients, coverage, metrics, checkpoints, writers, bad input); each
rank writes ``OUT/rank<r>.json``. ``die OUT``: rank 1 dies in the middle of an epoch; rank 0 must stop with a clear
error within the process group's timeout."""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

import transfer_course.torch.train as train_module
from transfer_course.torch import evaluate, fit
from transfer_course.torch.distributed import setup_distributed

mode, out = sys.argv[1], Path(sys.argv[2])
info, device = setup_distributed(timeout=float(os.environ.get("TEST_TIMEOUT", "20")))
rank, world = info.rank, info.world_size
torch.set_num_threads(1)
report = {"rank": rank, "world": world}


class Recording(Dataset):
    """Remembers which indices this process read."""

    def __init__(self, x, y, die_after=None):
        self.x, self.y, self.seen, self.die_after = torch.as_tensor(x), torch.as_tensor(y), [], die_after

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        self.seen.append(int(i))
        if self.die_after is not None and len(self.seen) > self.die_after:
            os._exit(3)  # this rank dies mid-epoch, without a word to the others
        return self.x[i], self.y[i]


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = (rng.normal(0, 1, (n, 6)) + np.eye(3, 6)[y] * 2).astype(np.float32)
    return x, y


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


if mode == "die":
    x, y = data(64)
    loader = DataLoader(Recording(x, y, die_after=12 if rank == 1 else None), batch_size=4)
    t0 = time.perf_counter()
    try:
        fit(net(), loader, epochs=3, progress=False)
        report["error"] = None
    except Exception as exc:  # noqa: BLE001 - the test reads the type and message
        report["error"], report["type"] = str(exc), type(exc).__name__
    report["seconds"] = time.perf_counter() - t0
    (out / f"rank{rank}.json").write_text(json.dumps(report))
    os._exit(0)

# 1. Gradients: DDP on two halves == one process on the whole batch.
x, y = data(16)
model = net()
ddp = nn.parallel.DistributedDataParallel(model)
half = slice(rank * 8, rank * 8 + 8)
nn.functional.cross_entropy(ddp(torch.as_tensor(x[half])), torch.as_tensor(y[half])).backward()
reference = net()
nn.functional.cross_entropy(reference(torch.as_tensor(x)), torch.as_tensor(y)).backward()
report["grad_diff"] = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.parameters(), reference.parameters()))

# 2. Coverage in fit: indices each rank read during one epoch, for a size that divides and one that does not.
for n in (20, 21):
    xs, ys = data(n)
    dataset = Recording(xs, ys)
    fit(net(), DataLoader(dataset, batch_size=4, shuffle=True), epochs=1, progress=False)
    gathered = [None] * world
    dist.all_gather_object(gathered, dataset.seen)
    report[f"seen_{n}"] = gathered

# 3. Metrics over all samples, the same history on every rank; 4. only rank 0 writes; 5. resume 1 -> 2 processes.
calls = []
original = train_module._save_checkpoint
train_module._save_checkpoint = lambda *a, **k: (calls.append(rank), original(*a, **k))
xs, ys = data(40)
xv, yv = data(21, seed=1)
ck1 = out / "from_one_process.pt"  # written by the test in one process, 1 epoch of 2
model = net()
history = fit(model, (xs, ys), (xv, yv), epochs=2, lr=1e-2, batch_size=4, checkpoint=ck1, progress=True)
report["resumed_history"] = history.epochs
report["val_accuracy_full"] = evaluate(model, (xv, yv))["accuracy"]
ck2 = out / "from_two_processes.pt"
model = net()
history = fit(model, (xs, ys), (xv, yv), epochs=1, lr=1e-2, batch_size=4, checkpoint=ck2, progress=False)
report["history"] = history.epochs
report["save_calls"] = len(calls)
report["weights"] = [p.detach().numpy().ravel().tolist() for p in model.parameters()]

# 6. Bad input: more ranks than samples.
try:
    fit(net(), data(1), epochs=1, progress=False)
    report["too_few"] = None
except ValueError as exc:
    report["too_few"] = str(exc)

(out / f"rank{rank}.json").write_text(json.dumps(report))
dist.barrier()  # leave together
dist.destroy_process_group()
