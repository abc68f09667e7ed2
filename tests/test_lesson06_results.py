"""Lesson 06 in both frameworks, quick profile: the 1-process and 2-process runs (and the 2-process run resumed in 1
process) land in the same band on the test split, every run saw all training samples once per epoch, and the PyTorch
and TensorFlow versions land in the same band. Each notebook runs in its own kernel (one framework per process)."""
import pytest
from helpers import run_solutions

NOTEBOOKS = ("06_scaling_up_pytorch", "06_scaling_up_tensorflow")  # what this test executes

RUNS = ("1 process", "2 processes", "2 processes, resumed in 1")
# Same cached feature maps, pretrained top and head; the frameworks differ in initialisation and the order of the data.
BAND = 0.1


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    # one after the other: both start processes that talk over local ports (torchrun, TF_CONFIG)
    runs = run_solutions(NOTEBOOKS, tmp_path_factory.mktemp("results"), together=1)
    return {name.rsplit("_", 1)[1]: r for name, r in runs.items()}


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_one_and_two_processes_land_in_the_same_band(results, framework):
    r = results[framework]
    accuracies = [r[k]["accuracy"] for k in RUNS]
    assert max(accuracies) - min(accuracies) <= BAND, r
    assert min(accuracies) >= 0.5
    seen = r["samples per epoch"]
    assert seen["1 process"] == seen["2 processes"] > 0  # all samples, once per epoch, in both runs


def test_both_frameworks_land_in_the_same_band(results):
    for run in RUNS:
        a, b = results["pytorch"][run]["accuracy"], results["tensorflow"][run]["accuracy"]
        assert abs(a - b) <= BAND, f"{run}: PyTorch {a:.3f} vs TensorFlow {b:.3f}"
