"""The framework-neutral half of the bad-input suite (see bad_inputs.py): images, caches and downloads, exercises and
the command line. The framework halves run the same table in tests/torch and tests/tensorflow."""
import pytest

from bad_inputs import NEUTRAL_CASES, run_case


@pytest.mark.parametrize("case", NEUTRAL_CASES, ids=[f"{c[0]}: {c[1].__name__}" for c in NEUTRAL_CASES])
def test_bad_input_gets_a_clear_error(case, tmp_path):
    run_case(case, None, tmp_path)
