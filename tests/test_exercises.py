"""Exercise machinery: lessons built from solutions, checks, fallback to the single-source reference."""
import json
import re

import nbformat
import pytest

from helpers import ROOT
from transfer_course.exercises import CHECKS, Lesson, lessons_out_of_step, reference_source, strip_solution

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


def test_every_lesson_after_setup_has_three_exercises_with_the_same_ids_in_both_frameworks():
    refs = json.loads((ROOT / "transfer_course" / "exercises" / "references.json").read_text())
    for path in SOLUTIONS:
        if path.stem.startswith("00_") or not path.stem.endswith("_pytorch"):
            continue
        twin = path.stem.replace("_pytorch", "_tensorflow")
        assert len(refs[path.stem]) >= 3, f"{path.stem} has {len(refs[path.stem])} exercises"
        assert sorted(refs[path.stem]) == sorted(refs[twin])


def test_unknown_exercise_or_notebook():
    with pytest.raises(KeyError, match="to_model_input"):
        Lesson("01_pretrained_models_pytorch").check("to_model", lambda x: x)
    with pytest.raises(ValueError, match="_pytorch or _tensorflow"):
        Lesson("01_pretrained_models_jax")


def test_reference_is_the_solution_cell_itself():
    cells = _cells(ROOT / "solutions" / "01_pretrained_models_pytorch.ipynb")
    solution = next(c.source for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == "to_model_input")
    assert reference_source("01_pretrained_models_pytorch", "to_model_input") == re.sub(r"\n\s*### (BEGIN|END) SOLUTION", "", solution)
