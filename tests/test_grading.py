"""`transfer-course grade` on a folder of submissions covering what students hand in. The release notebook is lesson
01's set-up and exercise cells (the lesson's real checks; the heavy middle is left out so the test stays fast)."""
import csv
import json
import sys

import nbformat
import pytest

from helpers import ROOT
from transfer_course.grading import GradingError, find_submissions, grade

LESSON = "01_pretrained_models_pytorch"


def _small(path):
    """The set-up cells (up to creating the Lesson) and every exercise and check cell of a lesson notebook."""
    nb = nbformat.read(path, as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if "lesson = Lesson(" in c.source)
    keep = [c for i, c in enumerate(nb.cells) if i <= setup and c.cell_type == "code"]
    keep += [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id")]
    nb.cells = keep
    return nb


def _answer(nb, exercise, source):
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == exercise)
    cell.source = source
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grading")
    source = tmp / "release"
    source.mkdir()
    nbformat.write(_small(ROOT / "lessons" / f"{LESSON}.ipynb"), source / f"{LESSON}.ipynb")
    complete = lambda: _small(ROOT / "solutions" / f"{LESSON}.ipynb")  # noqa: E731
    blank = lambda: _small(ROOT / "lessons" / f"{LESSON}.ipynb")  # noqa: E731
    subs = tmp / "submitted"
    secret = tmp / "outside.txt"

    def put(student, nb=None, text=None):
        path = subs / student / f"{LESSON}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if text is not None:
            path.write_text(text)
        else:
            nbformat.write(nb, path)

    put("complete", complete())
    put("blank", blank())
    # Two broken exercises in one notebook, the third intact: each costs only its own points
    put("wrong+crash", _answer(_answer(complete(), "to_model_input", "def to_model_input(image):\n    import torch\n"
                                       "    return torch.zeros(1, 3, 224, 224)\n"),
                               "feature_extractor", "def feature_extractor(model):\n    return 1 / 0\n"))
    put("endless", _answer(complete(), "to_model_input", "while True:\n    pass\n"))
    put("exits", _answer(complete(), "feature_extractor", "import os\nos._exit(1)\n"))
    put("hog", _answer(complete(), "to_model_input", "import numpy as np\nbig = np.ones(3_000_000_000)\n"))
    put("flood", _answer(complete(), "to_model_input", "print('x' * 10_000_000)\n"
                         + next(c.source for c in complete().cells if c.metadata.get('nbgrader', {}).get('grade_id') == 'to_model_input')))
    put("notjson", text="{ this is not a notebook")
    renamed = complete()
    cell = next(c for c in renamed.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "feature_extractor")
    cell.metadata = {}
    cell.source = cell.source.replace("def feature_extractor(", "def my_extractor(")
    put("renamed", renamed)
    put("tamper", _answer(complete(), "to_model_input", "def to_model_input(image):\n    lesson.check = lambda name, fn, **k: fn\n"
                          "    return image\n"))
    edited_check = complete()
    for c in edited_check.cells:  # an edited check cell (not a solution cell) is replaced by the released one
        if c.metadata.get("nbgrader", {}).get("grade_id") == "to_model_input-check":
            c.source = "pass"
    _answer(edited_check, "to_model_input", "def to_model_input(image):\n    return image\n")
    put("editcheck+writes", _answer(edited_check, "intermediate_features", f"open({str(secret)!r}, 'w').write('x')\n"))
    put("syntax+reads", _answer(_answer(complete(), "to_model_input", "def to_model_input(image:\n    return image\n"),
                                "intermediate_features",
                                f"open({str(ROOT / 'solutions' / (LESSON + '.ipynb'))!r}).read()\n"
                                + next(c.source for c in complete().cells if c.metadata.get('nbgrader', {}).get('grade_id') == 'intermediate_features')))
    other = subs / "other" / "02_feature_extraction_pytorch.ipynb"
    other.parent.mkdir(parents=True)
    nbformat.write(blank(), other)

    out = tmp / "book"
    book = grade(subs, lesson=LESSON, source=source, out=out, timeout=300, cell_timeout=45, jobs=2, memory_mb=2500,
                 progress=False)
    return {r["student"]: r for r in book["submissions"]}, book, out, secret, subs, source


def _score(r, exercise):
    return r["exercises"][exercise]["points"]


def test_complete_scores_full_and_blank_scores_zero(graded):
    by, *_ = graded
    assert by["complete"]["points"] == by["complete"]["max_points"] == 3, by["complete"]["exercises"]
    assert by["blank"]["points"] == 0 and all("not written yet" in e["feedback"] for e in by["blank"]["exercises"].values())


def test_one_wrong_exercise_costs_only_its_own_points(graded):
    by, *_ = graded
    for student, broken in (("wrong+crash", {"to_model_input", "feature_extractor"}), ("endless", {"to_model_input"}),
                            ("syntax+reads", {"to_model_input", "intermediate_features"}), ("hog", {"to_model_input"}),
                            ("renamed", {"feature_extractor"}), ("tamper", {"to_model_input"}),
                            ("editcheck+writes", {"to_model_input", "intermediate_features"})):
        r = by[student]
        for exercise in broken:
            assert _score(r, exercise) == 0, (student, exercise, r)
            assert r["exercises"][exercise]["feedback"], (student, exercise, "a reason is given")
        others = [e for e in r["exercises"] if e not in broken]
        assert others and all(_score(r, e) == 1 for e in others), (student, r["exercises"])


def test_reasons_say_what_happened(graded):
    by, *_ = graded
    fb = lambda s, e: by[s]["exercises"][e]["feedback"]  # noqa: E731
    assert fb("wrong+crash", "to_model_input").startswith("❌ to_model_input: values are in [0, 1]")
    assert fb("syntax+reads", "to_model_input").startswith("the answer cell failed: SyntaxError")
    assert "time limit per cell" in fb("endless", "to_model_input")
    assert "ZeroDivisionError" in fb("wrong+crash", "feature_extractor")
    assert "deleted or renamed" in fb("renamed", "feature_extractor")
    assert "lesson" in fb("tamper", "to_model_input") and "grading machinery" in fb("tamper", "to_model_input")
    assert fb("hog", "to_model_input").startswith("the answer cell failed: MemoryError")
    assert "does not let a submission read" in fb("syntax+reads", "intermediate_features")
    assert "does not let a submission write" in fb("editcheck+writes", "intermediate_features")
    assert fb("editcheck+writes", "to_model_input").startswith("❌ to_model_input")  # the released check ran


def test_a_dying_kernel_a_flood_and_a_broken_file_do_not_stop_the_run(graded):
    by, book, out, secret, *_ = graded
    assert by["exits"]["points"] == 1 and "kernel died" in by["exits"]["reason"], by["exits"]
    assert by["flood"]["points"] == 3, by["flood"]
    assert by["notjson"]["points"] == 0 and "not a readable notebook" in by["notjson"]["reason"]
    assert by["other"]["graded"] is False and "another lesson" in by["other"]["reason"]
    assert not secret.exists(), "nothing was written outside the working folder"


def test_the_gradebook_is_written(graded):
    by, book, out, *_ = graded
    rows = list(csv.DictReader(open(out / "gradebook.csv")))
    assert {r["student"] for r in rows} == set(by)
    complete = next(r for r in rows if r["student"] == "complete")
    assert complete["to_model_input"] == "1.0" and complete["points"] == "3.0"
    data = json.loads((out / "gradebook.json").read_text())
    assert len(data["submissions"]) == len(by)


def test_a_second_run_skips_what_is_graded(graded):
    by, book, out, secret, subs, source = graded
    again = grade(subs, lesson=LESSON, source=source, out=out, timeout=60, cell_timeout=20, progress=False)
    assert all(r.get("skipped") or not r.get("graded", True) for r in again["submissions"])


def test_bad_grading_input(tmp_path, graded):
    *_, subs, source = graded
    with pytest.raises(GradingError, match="does not exist"):
        grade(tmp_path / "nowhere", source=source, out=tmp_path / "b")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GradingError, match="holds no notebooks"):
        grade(tmp_path / "empty", source=source, out=tmp_path / "b")
    with pytest.raises(GradingError, match="--timeout must be a positive number"):
        grade(subs, source=source, timeout=0, out=tmp_path / "b")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(GradingError, match="cannot be written"):
        grade(subs, source=source, out=tmp_path / "afile" / "book")
    twice = tmp_path / "twice"
    for name in (f"{LESSON}.ipynb", f"{LESSON}_v2.ipynb"):
        (twice / "ann").mkdir(parents=True, exist_ok=True)
        (twice / "ann" / name).write_text((subs / "blank" / f"{LESSON}.ipynb").read_text())
    with pytest.raises(GradingError, match="Two submissions for student 'ann'"):
        find_submissions(twice, [LESSON])


def test_the_command_line(tmp_path, graded):
    import subprocess

    *_, subs, source = graded
    done = subprocess.run([sys.executable, "-m", "transfer_course.cli", "grade", str(subs), "--lesson", LESSON,
                           "--source", str(source), "--out", str(tmp_path / "cli"), "--timeout", "-1"],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--timeout must be a positive number" in done.stderr
