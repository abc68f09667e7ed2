"""TensorFlow's C++ start-up notes stay out of notebooks: importing transfer_course.tensorflow writes none of them to
file descriptor 2 (where Jupyter shows red blocks), and holds back nothing else."""
import os
import subprocess
import sys

import pytest

from transfer_course.tensorflow._quiet import is_start_up_note, quiet_start_up

NOTES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795507610.859352   30537 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "E0000 00:00:1732000000.123456    1234 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to register "
    "factory for plugin cuDNN when one has already been registered",
    "I0000 00:00:1795507673.503874   31002 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
]


@pytest.mark.parametrize("line", NOTES)
def test_known_notes_are_recognised(line):
    assert is_start_up_note(line)


@pytest.mark.parametrize("line", ["Traceback (most recent call last):", "E0000 00:00:1.0 1 op_kernel.cc:1] OOM when "
                                  "allocating tensor", "UserWarning: something a user should see"])
def test_other_lines_are_not(line):
    assert not is_start_up_note(line)


def test_quiet_start_up_writes_back_everything_but_the_notes(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_start_up():
        os.write(2, (NOTES[0] + "\n" + NOTES[1] + "\na real problem\n").encode())
    err = capfd.readouterr().err
    assert "a real problem" in err
    assert "oneDNN" not in err and "absl" not in err


def test_quiet_start_up_hides_nothing_when_the_user_asks_for_messages(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with quiet_start_up():
        os.write(2, (NOTES[1] + "\n").encode())
    assert "oneDNN" in capfd.readouterr().err


def test_quiet_start_up_restores_descriptor_2_after_an_error(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    with pytest.raises(ImportError), quiet_start_up():
        raise ImportError("no such module")
    os.write(2, b"after\n")
    assert "after" in capfd.readouterr().err


def test_importing_the_course_shows_no_start_up_notes():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", "import transfer_course.tensorflow"], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    assert not [line for line in done.stderr.splitlines() if is_start_up_note(line) or "absl::" in line], done.stderr
