"""nbgrader itself grades the course's notebooks correctly: generate_assignment, then autograde a complete, a blank
and a partly wrong submission, and validate. Uses nbgrader's real commands (a dev dependency) on lesson 01's set-up
and exercise cells (the lesson's real checks; the heavy middle is left out so the test stays fast)."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import ROOT
from test_grading import LESSON, _answer, _small

pytest.importorskip("nbgrader")
NBGRADER = [sys.executable, "-m", "nbgrader"]
# nbgrader runs `alembic` (its database migrations) by name: the environment's scripts must be on PATH
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
for _name in ("TRANSFER_COURSE_GRADING", "NBGRADER_EXECUTION"):
    ENV.pop(_name, None)


def _run(*args, cwd):
    done = subprocess.run([*NBGRADER, *args, f"--CourseDirectory.root={cwd}"], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=ENV)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("nbgrader")
    (root / "source" / "lesson01").mkdir(parents=True)
    nbformat.write(_small(ROOT / "solutions" / f"{LESSON}.ipynb"), root / "source" / "lesson01" / f"{LESSON}.ipynb")
    (root / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'transfer-course'\n"
                                             "c.ExecutePreprocessor.timeout = 300\n")
    _run("generate_assignment", "lesson01", "--force", cwd=root)
    release = root / "release" / "lesson01" / f"{LESSON}.ipynb"
    students = {
        "complete": _small(ROOT / "solutions" / f"{LESSON}.ipynb"),
        "blank": nbformat.read(release, as_version=4),
        "wrong": _answer(nbformat.read(release, as_version=4), "feature_extractor",
                         "def feature_extractor(model):\n    return model\n"),
    }
    for exercise in ("to_model_input", "intermediate_features"):  # 'wrong' answers the other two correctly
        right = next(c.source for c in students["complete"].cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise)
        _answer(students["wrong"], exercise, right)
    for student, nb in students.items():
        folder = root / "submitted" / student / "lesson01"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{LESSON}.ipynb")
    _run("autograde", "lesson01", "--create", "--force", cwd=root)
    _run("export", "--to", str(root / "grades.csv"), cwd=root)
    grades = {row["student_id"]: float(row["score"]) for row in csv.DictReader(open(root / "grades.csv"))}
    return root, grades, release


def test_generate_assignment_matches_the_lessons(course):
    root, _, release = course
    ours = nbformat.read(ROOT / "lessons" / f"{LESSON}.ipynb", as_version=4)
    theirs = nbformat.read(release, as_version=4)
    for exercise in ("to_model_input", "feature_extractor", "intermediate_features"):
        mine = next(c.source for c in ours.cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise)
        generated = next(c.source for c in theirs.cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise)
        assert mine.strip() == generated.strip()


def test_autograde_scores_each_exercise(course):
    _, grades, _ = course
    assert grades == {"complete": 3.0, "blank": 0.0, "wrong": 2.0}


def test_validate_fails_a_blank_notebook_and_passes_a_complete_one(course, tmp_path):
    root, _, release = course
    blank = tmp_path / "blank.ipynb"
    shutil.copy(release, blank)
    done = subprocess.run([*NBGRADER, "validate", str(blank)], cwd=root, capture_output=True, text=True, timeout=600, env=ENV)
    assert "VALIDATION FAILED" in done.stdout + done.stderr or "Success" not in done.stdout
    complete = root / "submitted" / "complete" / "lesson01" / f"{LESSON}.ipynb"
    done = subprocess.run([*NBGRADER, "validate", str(complete)], cwd=root, capture_output=True, text=True, timeout=600, env=ENV)
    assert "Success! Your notebook passes all the tests." in done.stdout, done.stdout[-2000:]
