"""Exercises: specific feedback after each one, and a lesson that never gets stuck.

In a notebook::

    from transfer_course.exercises import Lesson
    lesson = Lesson("01_pretrained_models_pytorch")
    ...
    to_model_input = lesson.check("to_model_input", to_model_input)

``check`` runs the exercise's tests and prints what is right or wrong. If the exercise is blank
or fails, it returns the reference solution instead, so the rest of the lesson still runs; the
reference comes from the solution notebook itself (``transfer-course build-lessons`` extracts it),
so there is no second copy to drift. With ``TRANSFER_COURSE_GRADING=1`` (the grader, nbgrader)
a failing check raises instead.
"""
from .build import build_lessons, lessons_out_of_step, strip_solution
from .checks import CHECKS, ExerciseFailed
from .lesson import GRADING_ENV_VAR, Lesson, reference_source

__all__ = ["Lesson", "ExerciseFailed", "CHECKS", "GRADING_ENV_VAR", "reference_source",
           "build_lessons", "lessons_out_of_step", "strip_solution"]
