"""The exercise machinery on a made-up exercise, independent of any lesson's content: a right answer is kept, a
blank, wrong, crashing or endless one falls back to the reference (or raises when grading), with specific feedback."""
import time

import pytest

from transfer_course.exercises import CHECKS, ExerciseFailed, Lesson
from transfer_course.exercises import lesson as lesson_module

TOPIC, EXERCISE = "99_machinery", "double"


def _check_double(fn, framework):
    if fn(3) == 3:
        raise ExerciseFailed("you returned the input unchanged; multiply it by 2.")
    if fn(3) != 6 or fn(-1.5) != -3:
        raise ExerciseFailed(f"double(3) should be 6; got {fn(3)!r}.")
    return "twice the input."


@pytest.fixture
def lesson(monkeypatch):
    monkeypatch.setitem(CHECKS, (TOPIC, EXERCISE), _check_double)
    monkeypatch.setattr(lesson_module, "_references", lambda: {f"{TOPIC}_pytorch": {EXERCISE: "def double(x):\n    return 2 * x"}})
    monkeypatch.delenv("TRANSFER_COURSE_GRADING", raising=False)
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    return Lesson(f"{TOPIC}_pytorch")


def _blank(x):
    raise NotImplementedError()


def _same(x):
    return x


def _right(x):
    return x + x


def _crashes(x):
    return x.no_such_method()


def _endless(x):
    while True:
        pass


def test_right_answer_is_kept(lesson, capsys):
    assert lesson.check(EXERCISE, _right) is _right
    assert "✅ double: correct. twice the input." in capsys.readouterr().out
    assert lesson.results == {EXERCISE: True}


@pytest.mark.parametrize("candidate,feedback,status", [
    (_blank, "not written yet", None),
    (_same, "returned the input unchanged", False),
    (_crashes, "raised AttributeError", False),
])
def test_other_answers_fall_back_to_the_reference(lesson, capsys, candidate, feedback, status):
    fallback = lesson.check(EXERCISE, candidate)
    out = capsys.readouterr().out
    assert feedback in out and "continues with the reference solution" in out
    assert fallback(21) == 42 and lesson.results == {EXERCISE: status}


def test_an_endless_answer_is_stopped(lesson, capsys, monkeypatch):
    monkeypatch.setenv(lesson_module.TIMEOUT_ENV_VAR, "0.5")
    start = time.perf_counter()
    fallback = lesson.check(EXERCISE, _endless)
    assert time.perf_counter() - start < 5
    out = capsys.readouterr().out
    assert "still running after 0.5 s" in out and "loop that never ends" in out
    assert fallback(2) == 4


def test_grading_mode_raises_instead_of_falling_back(lesson, monkeypatch):
    monkeypatch.setenv("TRANSFER_COURSE_GRADING", "1")
    with pytest.raises(ExerciseFailed, match="unchanged"):
        lesson.check(EXERCISE, _same)


def test_grading_gives_later_cells_the_reference(lesson, monkeypatch):
    """A wrong exercise scores zero (its check cell raises) but does not take the exercises after it down with it:
    the notebook's namespace gets the reference, so each exercise is graded on its own."""
    monkeypatch.setenv("TRANSFER_COURSE_GRADING", "1")
    namespace = {"lesson": lesson, "double": _same, "__name__": "__main__"}
    with pytest.raises(ExerciseFailed, match="unchanged"):
        exec("double = lesson.check('double', double)", namespace)
    assert namespace["double"](21) == 42, "the notebook now holds the reference"
    assert lesson.results == {EXERCISE: False}, "and the exercise still counts as wrong"


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_nbgrader_runs_are_grading_runs(lesson, monkeypatch, mode):
    """nbgrader never sets the course's variable; it sets its own while it autogrades or validates. A blank or
    wrong answer must then fail its check cell, not pass on the reference."""
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    with pytest.raises(ExerciseFailed, match="not written yet"):
        lesson.check(EXERCISE, _blank)
    with pytest.raises(ExerciseFailed, match="unchanged"):
        lesson.check(EXERCISE, _same)
    assert lesson.check(EXERCISE, _right) is _right


def test_bad_timeout_setting(lesson, monkeypatch):
    monkeypatch.setenv(lesson_module.TIMEOUT_ENV_VAR, "soon")
    with pytest.raises(ValueError, match="must be a number of seconds; received 'soon'"):
        lesson.check(EXERCISE, _right)


def test_summary_lists_each_exercise(lesson, capsys):
    lesson.check(EXERCISE, _right)
    assert "Exercises: 1/1 correct" in lesson.summary()
