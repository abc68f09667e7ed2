"""fit in a TensorFlow multi-worker run (MultiWorkerMirroredStrategy, two CPU workers on localhost with TF_CONFIG set
by this test): gradients, coverage, metrics, checkpoints in both directions, one writer, bad input, a worker that
dies. One multi-check launch (tests/workers/tf_multiworker_worker.py) keeps it fast: a worker's start costs seconds."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from transfer_course.distributed import free_port, parse_tf_config

WORKER = Path(__file__).resolve().parents[1] / "workers" / "tf_multiworker_worker.py"


def start(mode, out, timeout=20):
    from transfer_course.tensorflow.distributed import tf_config_for

    ports = [free_port(), free_port()]
    while ports[0] == ports[1]:
        ports[1] = free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "TF_CONFIG": tf_config_for(rank, ports), "OMP_NUM_THREADS": "1",
               "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
               "TEST_TIMEOUT": str(timeout)}
        procs.append(subprocess.Popen([sys.executable, str(WORKER), mode, str(out)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=180) for p in procs]
    return procs, outputs


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    return (rng.normal(0, 1, (n, 6)) + np.eye(3, 6)[y] * 2).astype(np.float32), y


def net(seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                                 keras.layers.Dense(3, name="out")], name="net")  # fixed names: checkpoints compare paths


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from transfer_course.tensorflow import fit

    out = tmp_path_factory.mktemp("mwms")
    xs, ys = data(40)
    xv, yv = data(21, seed=1)
    fit(net(), (xs, ys), (xv, yv), epochs=1, lr=1e-2, batch_size=8, checkpoint=out / "from_one_process", progress=False)
    procs, outputs = start("checks", out)
    for p, (o, e) in zip(procs, outputs):
        assert p.returncode == 0, e[-4000:]
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)], outputs


def test_two_workers_give_the_gradient_of_the_whole_batch(run):
    _, reports, _ = run
    assert reports[0]["replicas"] == 2
    assert all(r["grad_diff"] < 1e-6 for r in reports)


@pytest.mark.parametrize("n", [20, 21])
def test_every_sample_is_seen_once_per_epoch(run, n):
    """20 samples: 10 per worker, each once; 21: padded to 22 by repeating the epoch's first sample (11 each)."""
    _, reports, _ = run
    shards = [r[f"seen_{n}"] for r in reports]
    assert len(shards[0]) == len(shards[1]) == -(-n // 2)
    counts = np.bincount(np.concatenate(shards), minlength=n)
    assert counts.min() == 1 and (counts == 2).sum() == n % 2


def test_metrics_are_over_all_samples_and_the_same_on_every_worker(run):
    _, reports, _ = run
    strip = [[{k: v for k, v in e.items() if k != "seconds"} for e in r["history"]] for r in reports]
    assert strip[0] == strip[1]
    assert np.allclose(np.concatenate(reports[0]["weights"]), np.concatenate(reports[1]["weights"]))
    assert reports[0]["resumed_history"][-1]["val_accuracy"] == pytest.approx(reports[0]["val_accuracy_full"], abs=1e-6)


def test_only_the_chief_writes_the_checkpoint(run):
    out, reports, outputs = run
    assert all(str(out) in p for p in reports[0]["saved_to"]) and reports[0]["saved_to"]
    assert reports[1]["saved_to"] and not any(str(out) in p for p in reports[1]["saved_to"])  # a scratch copy, deleted
    assert "training" in outputs[0][1] and "training" not in outputs[1][1]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["from_one_process", "from_two_processes"]


def test_checkpoints_resume_across_process_counts(run):
    from transfer_course.tensorflow import fit

    out, reports, _ = run
    assert json.loads((out / "from_one_process" / "state.json").read_text())["epoch"] == 2
    assert len(reports[0]["resumed_history"]) == 2
    xs, ys = data(40)
    xv, yv = data(21, seed=1)
    history = fit(net(), (xs, ys), (xv, yv), epochs=2, lr=1e-2, batch_size=8, checkpoint=out / "from_two_processes",
                  progress=False)
    assert len(history) == 2 and history.epochs[0] == pytest.approx(reports[0]["history"][0])


def test_bad_sizes_are_clear_errors(run):
    _, reports, _ = run
    assert all("1 samples cannot be shared by 2 processes" in r["too_few"] for r in reports)
    assert all("A global batch of 1 split over 2 processes gives 0" in r["batch_zero"] for r in reports)


def test_a_worker_that_dies_stops_the_others_with_a_clear_error(tmp_path):
    t0 = time.perf_counter()
    procs, outputs = start("die", tmp_path, timeout=10)
    assert procs[1].returncode == 3
    assert procs[0].returncode == 0, outputs[0][1][-3000:]
    report = json.loads((tmp_path / "rank0.json").read_text())
    assert report["type"] == "DistributedError" and "Another worker probably stopped" in report["error"]
    assert report["seconds"] < 45 and time.perf_counter() - t0 < 90


def test_without_tf_config_the_script_runs_as_one_process(monkeypatch, capsys):
    from transfer_course.tensorflow.distributed import setup_distributed

    monkeypatch.delenv("TF_CONFIG", raising=False)
    info, strategy = setup_distributed()
    assert info.world_size == 1 and not info.launched and strategy.num_replicas_in_sync == 1
    assert "Not launched by TF_CONFIG: running as one process" in capsys.readouterr().out


def test_malformed_tf_config_is_a_clear_error(monkeypatch):
    from transfer_course.tensorflow.distributed import setup_distributed

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["localhost:1"]}')
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        setup_distributed()
    assert parse_tf_config('{"cluster": {"worker": ["localhost:1", "localhost:2"]}, '
                           '"task": {"type": "worker", "index": 1}}').rank == 1


def test_strategy_selection_gpu_paths():
    from transfer_course.distributed import select_strategy

    two = parse_tf_config({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}})
    assert select_strategy(0, two) == "MultiWorkerMirroredStrategy"
    assert select_strategy(4, None) == "MirroredStrategy"
    assert select_strategy(1, None) == select_strategy(0, None) == "OneDeviceStrategy"


def test_launch_starts_workers_and_stops_the_rest_when_one_fails(tmp_path):
    from transfer_course.tensorflow.distributed import launch

    script = tmp_path / "hello.py"
    script.write_text("import json, os\nprint('worker', json.loads(os.environ['TF_CONFIG'])['task']['index'])\n")
    done = launch(script, nproc=2, echo=False, timeout=60)
    assert "worker 0" in done.stdout and "worker 1" in done.stderr
    script.write_text("import json, os, time\nif json.loads(os.environ['TF_CONFIG'])['task']['index'] == 1:\n"
                      "    raise SystemExit(4)\ntime.sleep(60)\n")
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="worker 1 failed; the others were stopped"):
        launch(script, nproc=2, echo=False, timeout=60)
    assert time.perf_counter() - t0 < 20
