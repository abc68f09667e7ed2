"""Lesson 05 in both frameworks, quick profile: each run shows the lesson's point (the ``results`` each notebook
reports once) and the PyTorch and TensorFlow versions land in the same band. Each notebook runs in its own kernel."""
import pytest
from helpers import run_solutions

NOTEBOOKS = ("05_rl_transfer_pytorch", "05_rl_transfer_tensorflow")
TARGETS = ("gravity 40", "inverted actions")
# One seed per framework in the quick profile, and the frameworks draw different random numbers: the area under a
# curve (an average return between 0 and 500) varies by about 50 between seeds of one method (default profile,
# 3 seeds), so the two frameworks must agree within three such spreads.
AREA_BAND = 150.0
# Zero-shot, sampled: a 20-episode mean of a stochastic policy, about 80 on gravity 40 in both frameworks.
ZERO_SHOT_BAND = 60.0
# Zero-shot, greedy, is all or nothing per episode: a deterministic policy either balances the whole 500 steps or falls,
# so one source policy's mean jumps between far-apart values with the last bits of its weights. The same quick-profile
# source scored 180 (PyTorch) and 500 (TensorFlow) greedily on gravity 40 on an AMD EPYC machine, where earlier machines
# had measured both within 60 of each other. Greedy returns are held to the lesson's claims in each framework instead.
SOLVED = 475.0  # CartPole's "solved"
RANDOM_ACTIONS = 22.0  # uniformly random pushes last about 22 steps on CartPole
# Fine-tuning on inverted actions depends on the source policy it must unlearn, more than on the framework: with
# sources from seeds 0, 1, 2 its area ranged from 152 to 335 (default profile; the notebooks' section 9). There the
# frameworks must agree on the ranking instead: the frozen torso with new heads beats fine-tuning.
RANKED_ONLY = {("inverted actions", "fine-tune")}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return run_solutions(NOTEBOOKS, tmp_path_factory.mktemp("results"))


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_each_run_shows_the_lessons_point(results, notebook):
    main, second = results[notebook]["gravity 40"], results[notebook]["inverted actions"]
    # gravity 40: fine-tuning beats scratch on area and start, and reaches the threshold in at most half the steps
    assert main["fine-tune"]["area"] >= main["scratch"]["area"] + 50
    assert main["fine-tune"]["jumpstart"] >= 20
    assert results[notebook]["threshold steps"]["fine-tune / scratch"] <= 0.5
    # inverted actions: the metrics disagree (negative jumpstart, yet transfer of the torso pays on area)
    assert second["fine-tune"]["jumpstart"] < 0
    assert second["frozen"]["area"] >= second["scratch"]["area"] + 50


def test_both_frameworks_land_in_the_same_band(results):
    torch_run, tf_run = (results[n] for n in NOTEBOOKS)
    assert torch_run.keys() == tf_run.keys()
    for target in TARGETS:
        assert torch_run[target].keys() == tf_run[target].keys()
        for method in torch_run[target]:
            if (target, method) in RANKED_ONLY:
                for run in (torch_run, tf_run):
                    assert run[target]["frozen"]["area"] > run[target][method]["area"]
                continue
            a, b = torch_run[target][method]["area"], tf_run[target][method]["area"]
            assert abs(a - b) <= AREA_BAND, f"{target} {method} area: PyTorch {a:.0f} vs TensorFlow {b:.0f}"
    assert torch_run["zero-shot"].keys() == tf_run["zero-shot"].keys()
    for target in torch_run["zero-shot"]:
        value, other = torch_run["zero-shot"][target]["sampled"], tf_run["zero-shot"][target]["sampled"]
        assert abs(value - other) <= ZERO_SHOT_BAND, f"zero-shot {target} sampled: {value:.0f} vs {other:.0f}"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_zero_shot_returns_say_what_the_lesson_says(results, notebook):
    zero = results[notebook]["zero-shot"]
    assert zero["source"]["greedy"] >= SOLVED, zero  # the source task is solved
    # gravity 40 "is not lost": greedy still balances for a long time, sampled drops quickly
    assert zero["gravity 40"]["greedy"] >= zero["gravity 40"]["sampled"] + 50, zero
    assert zero["gravity 40"]["sampled"] < SOLVED / 2, zero
    # inverted actions are lost completely: shorter episodes than random pushes, greedy or sampled
    assert max(zero["inverted actions"].values()) < RANDOM_ACTIONS, zero
