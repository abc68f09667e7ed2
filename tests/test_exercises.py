"""Exercise machinery: lessons built from solutions, checks, fallback to the single-source reference."""
import json
import re

import nbformat
import numpy as np
import pytest

from helpers import ROOT
from transfer_course.exercises import CHECKS, ExerciseFailed, Lesson, lessons_out_of_step, reference_source, strip_solution

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def test_there_are_lessons_in_both_frameworks():
    stems = {p.stem for p in SOLUTIONS}
    assert {"00_setup_pytorch", "00_setup_tensorflow", "01_pretrained_models_pytorch", "01_pretrained_models_tensorflow"} <= stems
    for stem in stems:
        twin = stem.replace("_pytorch", "_tensorflow") if stem.endswith("_pytorch") else stem.replace("_tensorflow", "_pytorch")
        assert twin in stems, f"{stem} has no twin in the other framework"


def test_lessons_are_in_step_with_solutions():
    assert lessons_out_of_step(ROOT) == [], "run `transfer-course build-lessons`"


def test_strip_solution_keeps_indentation():
    student, reference = strip_solution("def f(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION\n")
    assert student == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()"
    assert reference == "def f(x):\n    return 2 * x"
    with pytest.raises(ValueError, match="needs one"):
        strip_solution("x = 1")
    with pytest.raises(ValueError, match="without a BEGIN"):
        strip_solution("### END SOLUTION")


def _cells(path):
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    cells = _cells(path)
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert "Run time" in cells[0].source, "the header states the expected run time"
    assert any("parameters" in c.metadata.get("tags", []) for c in cells), "a papermill/nbval parameters cell"
    assert any(c.cell_type == "markdown" and "## What you learned" in c.source and "**Next:**" in c.source for c in cells)
    lesson_ids = [c.metadata.nbgrader["grade_id"] for c in cells if c.metadata.get("nbgrader", {}).get("solution")]
    topic = path.stem.rsplit("_", 1)[0]
    for grade_id in lesson_ids:
        assert (topic, grade_id) in CHECKS, f"exercise {grade_id} has no check"
        reference_source(path.stem, grade_id)  # and a reference
    for c in cells:
        meta = c.metadata.get("nbgrader")
        if meta:
            assert meta["schema_version"] == 3 and {"grade", "grade_id", "locked", "solution"} <= set(meta)
            if meta["grade"]:
                assert meta["locked"] and meta["points"] > 0
                assert f'lesson.check("{meta["grade_id"].removesuffix("-check")}"' in c.source
    lesson_cells = _cells(ROOT / "lessons" / path.name)
    blanked = [c for c in lesson_cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert all("raise NotImplementedError()" in c.source and "BEGIN SOLUTION" not in c.source for c in blanked)
    assert all(not c.get("outputs") for c in lesson_cells if c.cell_type == "code")


@pytest.mark.parametrize("topic", sorted({p.stem.rsplit("_", 1)[0] for p in SOLUTIONS}))
def test_framework_twins_tell_the_same_story(topic):
    def outline(fw):
        cells = _cells(ROOT / "solutions" / f"{topic}_{fw}.ipynb")
        heads = [line for c in cells if c.cell_type == "markdown" for line in c.source.splitlines() if line.startswith("## ")]
        ids = [c.metadata.nbgrader["grade_id"] for c in cells if "nbgrader" in c.metadata]
        return heads, ids

    assert outline("pytorch") == outline("tensorflow")


def test_pretrained_lesson_has_enough_exercises():
    for fw in ("pytorch", "tensorflow"):
        ids = json.loads((ROOT / "transfer_course" / "exercises" / "references.json").read_text())[f"01_pretrained_models_{fw}"]
        assert len(ids) >= 2


def _blank(a, b):
    raise NotImplementedError()


def _dot(a, b):
    return a @ b.T


def _right(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a @ b.T


def test_correct_answer_is_kept(capsys):
    lesson = Lesson("01_pretrained_models_pytorch")
    assert lesson.check("cosine_similarity", _right) is _right
    assert "✅ cosine_similarity: correct" in capsys.readouterr().out


@pytest.mark.parametrize("candidate,expected", [(_blank, "not written yet"), (_dot, "plain dot product")])
def test_blank_or_wrong_answer_falls_back_to_reference(candidate, expected, capsys, monkeypatch):
    monkeypatch.delenv("TRANSFER_COURSE_GRADING", raising=False)
    lesson = Lesson("01_pretrained_models_tensorflow")
    fallback = lesson.check("cosine_similarity", candidate)
    out = capsys.readouterr().out
    assert expected in out and "continues with the reference solution" in out
    a = np.random.default_rng(0).normal(size=(3, 5))
    assert np.allclose(fallback(a, a), _right(a, a)), "the fallback is the working reference"
    assert lesson.results == {"cosine_similarity": None if candidate is _blank else False}


def test_crashing_answer_reports_the_error(capsys):
    def crashes(a, b):
        return a.no_such_method()

    Lesson("01_pretrained_models_pytorch").check("cosine_similarity", crashes)
    assert "raised AttributeError" in capsys.readouterr().out


def test_grading_mode_raises(monkeypatch):
    monkeypatch.setenv("TRANSFER_COURSE_GRADING", "1")
    with pytest.raises(ExerciseFailed, match="plain dot product"):
        Lesson("01_pretrained_models_pytorch").check("cosine_similarity", _dot)


def test_unknown_exercise_or_notebook():
    with pytest.raises(KeyError, match="cosine_similarity"):
        Lesson("01_pretrained_models_pytorch").check("cosine", _right)
    with pytest.raises(ValueError, match="_pytorch or _tensorflow"):
        Lesson("01_pretrained_models_jax")


def test_reference_is_the_solution_cell_itself():
    cells = _cells(ROOT / "solutions" / "01_pretrained_models_pytorch.ipynb")
    solution = next(c.source for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == "cosine_similarity")
    assert reference_source("01_pretrained_models_pytorch", "cosine_similarity") == re.sub(r"\n\s*### (BEGIN|END) SOLUTION", "", solution)
