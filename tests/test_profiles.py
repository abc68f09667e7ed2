import pytest

from transfer_course import get_profile
from transfer_course.precision import validate_precision
from transfer_course.profiles import PROFILES


def test_default_profile_is_default(monkeypatch):
    monkeypatch.delenv("TRANSFER_COURSE_PROFILE", raising=False)
    assert get_profile().name == "default"


def test_env_var_chooses_profile(monkeypatch):
    monkeypatch.setenv("TRANSFER_COURSE_PROFILE", "Quick")
    assert get_profile().name == "quick"
    assert get_profile("full").name == "full"  # an explicit argument wins over the environment


def test_profiles_shrink_work_in_order():
    quick, default, full = PROFILES["quick"], PROFILES["default"], PROFILES["full"]
    assert quick.image_size <= 96
    assert quick.samples_per_class < default.samples_per_class < full.samples_per_class
    assert quick.epochs <= default.epochs <= full.epochs
    assert full.online and not default.online and not quick.online


def test_unknown_profile_lists_choices_and_source(monkeypatch):
    monkeypatch.setenv("TRANSFER_COURSE_PROFILE", "fastest")
    with pytest.raises(ValueError) as err:
        get_profile()
    message = str(err.value)
    assert "'fastest'" in message and "default, full, quick" in message and "TRANSFER_COURSE_PROFILE" in message


@pytest.mark.parametrize("value,expected", [("fp32", "fp32"), ("BF16", "bf16"), ("float16", "fp16"), ("half", "fp16")])
def test_precision_aliases(value, expected):
    assert validate_precision(value) == expected


def test_unknown_precision_lists_choices():
    with pytest.raises(ValueError, match=r"Unknown precision 'int8'. Valid choices: bf16, fp16, fp32"):
        validate_precision("int8")
