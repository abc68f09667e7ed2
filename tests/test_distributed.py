"""The neutral distributed helpers: launch variables, TF_CONFIG, shard arithmetic, learning-rate scaling, ports."""
import json
import socket

import numpy as np
import pytest

from transfer_course.distributed import (
    check_shardable,
    free_port,
    launch_info,
    parse_tf_config,
    scale_learning_rate,
    select_backend,
    select_strategy,
    shard_indices,
    single_process_message,
)


def test_launch_info_reads_torchrun_variables():
    info = launch_info({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "h", "MASTER_PORT": "29500"})
    assert (info.rank, info.world_size, info.local_rank, info.master_port, info.launched) == (1, 2, 1, 29500, True)
    assert launch_info({}) == launch_info({"PATH": "x"}) and not launch_info({}).launched


@pytest.mark.parametrize("env, match", [
    ({"RANK": "0"}, r"\$WORLD_SIZE is not set"),
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, r"outside 0..1"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "not a whole number"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, r"MASTER_ADDR is not set"),
    ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"}, "not a TCP port"),
])
def test_launch_info_rejects_inconsistent_variables(env, match):
    with pytest.raises(ValueError, match=match):
        launch_info(env)


def test_tf_config_parsing():
    cfg = parse_tf_config(json.dumps({"cluster": {"worker": ["localhost:1", "localhost:2"]},
                                      "task": {"type": "worker", "index": 1}}))
    assert (cfg.rank, cfg.world_size, cfg.is_chief) == (1, 2, False)
    chief = parse_tf_config({"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}})
    assert (chief.rank, chief.world_size) == (1, 2)
    assert parse_tf_config("") is None


@pytest.mark.parametrize("text, match", [
    ("{not json", "not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'needs a "cluster"'),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "is not 'host:port'"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}', "same address twice"),
    ('{"cluster": {"worker": ["a:1"]}}', 'needs a "task"'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "outside the 1 worker"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "'worker'"),
])
def test_malformed_tf_config(text, match):
    with pytest.raises(ValueError, match=match):
        parse_tf_config(text)


def test_shards_cover_the_data():
    for n, world in [(10, 2), (11, 2), (7, 3), (3, 3)]:
        shards = [shard_indices(n, r, world) for r in range(world)]
        assert len({len(s) for s in shards}) == 1
        counts = np.bincount(np.concatenate(shards), minlength=n)
        assert counts.min() == 1 and counts.sum() - n == (-n) % world  # the padding repeats the first samples
        dropped = np.concatenate([shard_indices(n, r, world, drop_last=True) for r in range(world)])
        assert len(dropped) == n - n % world and len(set(dropped)) == len(dropped)
    order = np.random.default_rng(0).permutation(9)
    assert shard_indices(9, 1, 2, order=order).tolist() == np.resize(order, 10)[1::2].tolist()


def test_bad_shapes_are_clear_errors():
    with pytest.raises(ValueError, match="3 samples cannot be shared by 4 processes"):
        check_shardable(3, 4)
    with pytest.raises(ValueError, match="gives 0 samples per process"):
        check_shardable(100, 4, batch_size=2, global_batch=True)
    with pytest.raises(ValueError, match="rank=2 is outside"):
        shard_indices(10, 2, 2)


def test_learning_rate_scaling():
    assert scale_learning_rate(1e-3, 4) == pytest.approx(4e-3)
    assert scale_learning_rate(1e-3, 4, "sqrt") == pytest.approx(2e-3)
    assert scale_learning_rate(1e-3, 4, "none") == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="choose one of"):
        scale_learning_rate(1e-3, 2, "square")


def test_free_port_is_free():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_selection_and_messages():
    assert select_backend(True, 2, 1) == ("nccl", "cuda:1") and select_backend(False) == ("gloo", "cpu")
    assert select_strategy(2, None) == "MirroredStrategy"
    assert "running as one process" in single_process_message("torch")
    assert "TF_CONFIG" in single_process_message("tensorflow")
