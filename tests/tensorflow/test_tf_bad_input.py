"""The bad-input suite in TensorFlow (the cases live in tests/bad_inputs.py, shared with the other framework)."""
import pytest

import transfer_course.tensorflow as T
from bad_inputs import FRAMEWORK_CASES, run_case


@pytest.mark.parametrize("case", FRAMEWORK_CASES, ids=[f"{c[0]}: {c[1].__name__}" for c in FRAMEWORK_CASES])
def test_bad_input_gets_a_clear_error(case, tmp_path):
    run_case(case, T, tmp_path)
