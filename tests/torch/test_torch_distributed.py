"""fit in a PyTorch distributed run (gloo, two CPU processes started by this test with RANK / WORLD_SIZE /
MASTER_ADDR / MASTER_PORT, as torchrun would): gradients, coverage, metrics, checkpoints in both directions, one
writer, bad input, a rank that dies. One multi-check launch (tests/workers/torch_ddp_worker.py) keeps it fast."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from transfer_course.distributed import DistributedError, free_port, shard_indices
from transfer_course.torch import fit
from transfer_course.torch.distributed import launch, setup_distributed

WORKER = Path(__file__).resolve().parents[1] / "workers" / "torch_ddp_worker.py"


def start(mode, out, world=2, timeout=20):
    port = free_port()
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "TEST_TIMEOUT": str(timeout)}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), mode, str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=120) for p in procs]
    return procs, outputs


def data(n, seed=0):  # the worker's data
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(0, 1, (n, 6)) + np.eye(3, 6)[y] * 2).astype(np.float32), y


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    xs, ys = data(40)
    xv, yv = data(21, seed=1)
    # a one-process checkpoint after 1 of 2 epochs, for the two-process run to resume
    fit(net(), (xs, ys), (xv, yv), epochs=1, lr=1e-2, batch_size=4, checkpoint=out / "from_one_process.pt",
        progress=False)
    procs, outputs = start("checks", out)
    for p, (o, e) in zip(procs, outputs):
        assert p.returncode == 0, e[-3000:]
    reports = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    return out, reports, outputs


def test_two_processes_give_the_gradient_of_the_whole_batch(run):
    _, reports, _ = run
    assert all(r["grad_diff"] < 1e-6 for r in reports)


@pytest.mark.parametrize("n", [20, 21])
def test_every_sample_is_seen_once_per_epoch(run, n):
    """20 samples: 10 each, each once. 21: DistributedSampler pads to 22 by repeating one sample (11 each)."""
    _, reports, _ = run
    shards = reports[0][f"seen_{n}"]
    assert reports[1][f"seen_{n}"] == shards and len(shards[0]) == len(shards[1]) == -(-n // 2)
    counts = np.bincount(np.concatenate(shards), minlength=n)
    assert counts.min() == 1 and counts.sum() == 2 * -(-n // 2)
    assert (counts == 2).sum() == (0 if n % 2 == 0 else 1)
    assert not set(shards[0]) & set(shards[1]) or n % 2


def test_metrics_are_over_all_samples_and_the_same_on_every_rank(run):
    _, reports, _ = run
    def drop_time(history):
        return [{k: v for k, v in e.items() if k != "seconds"} for e in history]

    assert drop_time(reports[0]["history"]) == drop_time(reports[1]["history"])
    assert reports[0]["weights"] == reports[1]["weights"]  # the copies stayed identical
    # validation is sharded without padding (11 + 10 samples): the accuracy is exactly the one-process accuracy
    assert reports[0]["resumed_history"][-1]["val_accuracy"] == pytest.approx(reports[0]["val_accuracy_full"], abs=1e-6)


def test_only_rank_0_writes_files_and_shows_progress(run):
    out, reports, outputs = run
    assert reports[0]["save_calls"] >= 2 and reports[1]["save_calls"] == 0
    assert "training" in outputs[0][1] and "training" not in outputs[1][1]  # tqdm writes to stderr
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pt") == ["from_one_process.pt", "from_two_processes.pt"]


def test_checkpoints_resume_across_process_counts(run):
    out, reports, _ = run
    # one process -> two: the two-process run continued the saved epoch
    one = torch.load(out / "from_one_process.pt", weights_only=False)
    assert one["epoch"] == 2 and len(reports[0]["resumed_history"]) == 2
    # two processes -> one: a one-process run resumes the two-process checkpoint after its epoch 1
    xs, ys = data(40)
    xv, yv = data(21, seed=1)
    history = fit(net(), (xs, ys), (xv, yv), epochs=2, lr=1e-2, batch_size=4, checkpoint=out / "from_two_processes.pt",
                  progress=False)
    assert len(history) == 2 and history.epochs[0] == pytest.approx(reports[0]["history"][0])


def test_more_ranks_than_samples_is_a_clear_error(run):
    _, reports, _ = run
    assert all("1 samples cannot be shared by 2 processes" in r["too_few"] for r in reports)


def test_a_rank_that_dies_stops_the_others_with_a_clear_error(tmp_path):
    t0 = time.perf_counter()
    procs, _ = start("die", tmp_path, timeout=10)
    assert procs[1].returncode == 3
    report = json.loads((tmp_path / "rank0.json").read_text())
    assert report["type"] == "DistributedError" and "Another process probably stopped" in report["error"]
    assert report["seconds"] < 30 and time.perf_counter() - t0 < 60


def test_without_torchrun_the_script_runs_as_one_process(monkeypatch, capsys):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    info, device = setup_distributed()
    assert (info.world_size, info.launched, device.type) == (1, False, "cpu")
    assert "Not launched by torchrun: running as one process" in capsys.readouterr().out


def test_sampler_agrees_with_the_neutral_arithmetic():
    from torch.utils.data import DistributedSampler

    for n, world, drop in [(10, 2, False), (11, 2, False), (11, 3, True), (5, 4, False)]:
        for rank in range(world):
            sampler = DistributedSampler(range(n), world, rank, shuffle=False, drop_last=drop)
            assert list(sampler) == shard_indices(n, rank, world, drop_last=drop).tolist()


def test_launch_runs_torchrun_and_reports_failure(tmp_path):
    script = tmp_path / "hello.py"
    # one write per process: print(a, b, ...) writes its pieces one by one, and two ranks' pieces can interleave
    script.write_text("import os, sys\nsys.stdout.write(f\"rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}\\n\")\n")
    done = launch(script, nproc=2, echo=False, timeout=60)
    assert "rank 0 of 2" in done.stdout and "rank 1 of 2" in done.stdout
    script.write_text("raise SystemExit(5)\n")
    with pytest.raises(RuntimeError, match="torchrun exited"):
        launch(script, nproc=2, echo=False, timeout=60)


def test_gpu_path_is_selected_with_cuda():
    from transfer_course.distributed import select_backend

    assert select_backend(True, 4, 2) == ("nccl", "cuda:2")
    assert select_backend(False, 0, 1) == ("gloo", "cpu")
    with pytest.raises(ValueError, match="one process per GPU"):
        select_backend(True, 2, 3)


def test_distributed_error_is_a_runtime_error():
    assert issubclass(DistributedError, RuntimeError)
