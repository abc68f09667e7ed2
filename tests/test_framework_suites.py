"""Collected only when one pytest run would collect both framework suites (see conftest.py): each suite then
runs here, in a process of its own, and its failures show as this test's failure."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("suite", ["torch", "tensorflow"])
def test_framework_suite_in_its_own_process(suite, request):
    if suite not in request.config.framework_suites_to_split:
        pytest.skip("this suite is collected directly in this run")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / suite)],
                          cwd=HERE.parent, capture_output=True, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    print(proc.stdout[-4000:])
    assert proc.returncode == 0, f"tests/{suite} failed (exit {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
