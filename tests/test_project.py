"""The project as a whole: set-up files agree, frameworks stay apart, and give the same answers."""
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from helpers import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _run(code: str, timeout=300) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[; ]", requirement, maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r): r.replace(" ", "") for r in conda + pip if not r.startswith("-e")}
    extras = PYPROJECT["project"]["optional-dependencies"]
    wanted = PYPROJECT["project"]["dependencies"] + extras["torch"] + extras["tensorflow-cpu"] + extras["lab"] + extras["dev"]
    for requirement in wanted:
        assert listed.get(_name(requirement)) == requirement.replace(" ", ""), f"environment.yml should list {requirement}"
    assert "-e ." in pip, "environment.yml installs the course package itself"
    python = next(d for d in conda if d.startswith("python"))
    assert python.replace("python", "") == PYPROJECT["project"]["requires-python"]


def test_version_ranges_admit_the_ci_builds_and_pin_nothing():
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        for requirement in extra:
            assert "==" not in requirement, f"users must not get exact pins: {requirement}"
    torch_reqs = dict((_name(r), r) for r in PYPROJECT["project"]["optional-dependencies"]["torch"])
    assert torch_reqs["torch"] == "torch>=2.1" and torch_reqs["torchvision"] == "torchvision>=0.16"


def test_readme_gives_two_commands_and_lists_every_lesson():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^```(?:bash|sh)\n(.*?)\n```", readme, flags=re.S | re.M)
    assert commands[:2] == ["make lab", "make test"]
    for notebook in sorted((ROOT / "lessons").glob("*.ipynb")):
        assert notebook.name in readme, f"README should list {notebook.name}"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("module,forbidden", [
    ("transfer_course", ("torch", "tensorflow", "keras")),
    ("transfer_course.data, transfer_course.models, transfer_course.exercises, transfer_course.plots, transfer_course.doctor, transfer_course.cli",
     ("torch", "tensorflow", "keras")),
    ("transfer_course.torch", ("tensorflow", "keras")),
    ("transfer_course.tensorflow", ("torch", "torchvision", "timm")),
])
def test_imports_stay_on_their_side(module, forbidden):
    loaded = json.loads(_run(f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"))
    assert not [m for m in forbidden if m in loaded], f"importing {module} loaded {[m for m in forbidden if m in loaded]}"


def test_both_frameworks_expose_the_same_names():
    code = "import json, transfer_course.{} as T; print(json.dumps(sorted(T.__all__)))"
    torch_names = set(json.loads(_run(code.format("torch"))))
    tf_names = set(json.loads(_run(code.format("tensorflow"))))
    tensorflow_only = {"configure_gpus", "get_strategy"}  # Keras' GPU memory and distribution settings
    assert tf_names - tensorflow_only == torch_names


@pytest.fixture(scope="module")
def predictions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("logits")
    out = {}
    for fw in ("torch", "tensorflow"):
        path = folder / f"{fw}.npz"
        subprocess.run([sys.executable, str(ROOT / "tests" / "predict_in_subprocess.py"), fw, str(path)],
                       check=True, timeout=300, env=ENV, cwd=ROOT)
        out[fw] = dict(np.load(path))
    return out


def test_same_logits_in_both_frameworks(predictions):
    for key in ("photos", "noise", "features"):
        diff = np.abs(predictions["torch"][key] - predictions["tensorflow"][key]).max()
        assert diff <= 1e-3, f"{key}: max |torch - tensorflow| = {diff}"
    assert predictions["torch"]["total"].tolist() == predictions["tensorflow"]["total"].tolist()


@pytest.mark.parametrize("framework", ["torch", "tensorflow"])
def test_imagenet_sanity(predictions, framework):
    from transfer_course.imagenet import imagenet_classes

    names = np.array(imagenet_classes())
    cat, coffee = predictions[framework]["photos"]
    top_cat, top_coffee = names[np.argsort(-cat)[:5]], names[np.argsort(-coffee)[:5]]
    assert {"Egyptian cat", "tiger cat", "tabby"} & set(top_cat), top_cat
    assert "espresso" in top_coffee, top_coffee


def test_doctor_reports_everything():
    info = json.loads(_run("from transfer_course.cli import main; main(['doctor', '--json'])"))
    frameworks = {f["framework"]: f for f in info["frameworks"]}
    assert frameworks["torch"]["version"] and frameworks["tensorflow"]["version"]
    assert frameworks["torch"]["default_device"] in ("cpu", "cuda", "mps")
    assert info["assets"]["efficientnet_lite0 ImageNet weights"].endswith(".pth")
    assert info["environment"] in ("local", "Binder", "Google Colab") and info["cache_dir"]
    text = _run("from transfer_course.cli import main; main(['doctor'])")
    assert "What to do:" in text and "Cache directory:" in text


def test_doctor_runs_without_a_google_package(monkeypatch):
    """A PyTorch-only environment may have no `google` namespace package at all (TensorFlow's protobuf brings one):
    looking for google.colab must then say "not Colab", not raise."""
    from transfer_course import doctor

    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.setitem(sys.modules, "google", None)  # importing `google` now fails, as where it is not installed
    with pytest.raises(ImportError):
        importlib.util.find_spec("google.colab")
    assert doctor._platform() in ("local", "Binder")


def test_build_lessons_cli(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "transfer_course.cli", "build-lessons", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    missing = subprocess.run([sys.executable, "-m", "transfer_course.cli", "build-lessons", "--root", str(tmp_path)],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "No notebooks in" in missing.stderr


def test_build_lessons_elsewhere_never_touches_the_installed_references(tmp_path):
    """Building the lessons of another folder (a copy of the notebooks) writes its lessons/ only."""
    import shutil

    from transfer_course.exercises.build import REFERENCES_PATH

    before = REFERENCES_PATH.read_bytes()
    (tmp_path / "solutions").mkdir()
    shutil.copy(ROOT / "solutions" / "00_setup_pytorch.ipynb", tmp_path / "solutions")
    proc = subprocess.run([sys.executable, "-m", "transfer_course.cli", "build-lessons", "--root", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "lessons" / "00_setup_pytorch.ipynb").is_file()
    assert REFERENCES_PATH.read_bytes() == before, "the installed package's reference answers were overwritten"


def _collected(*args):
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if "::" in line]


def test_plain_pytest_from_the_root_keeps_each_framework_in_its_own_process():
    """`pytest` with no arguments must not import torchvision and tensorflow into one process (it would crash):
    the framework suites are then run by a test that starts one process per suite."""
    items = _collected()
    assert not [i for i in items if i.startswith(("tests/torch/", "tests/tensorflow/"))]
    assert {i.split("[")[1] for i in items if i.startswith("tests/test_framework_suites.py")} == {"torch]", "tensorflow]"}
    # One suite named explicitly is collected as usual, and the splitting test is not.
    items = _collected("tests/torch", "tests/test_profiles.py")
    assert any(i.startswith("tests/torch/") for i in items)
    assert not any("test_framework_suites" in i for i in items)


def test_every_notebook_runs_once_in_the_test_command():
    """`make test-notebooks` leaves out of nbval the solutions that a results test executes: each results test declares
    them in a literal NOTEBOOKS tuple and hands that tuple to run_solutions, each name is a real solution, and every
    other notebook stays under nbval."""
    sys.path.insert(0, str(ROOT / "tests"))
    from notebooks_with_results_tests import declared_notebooks, notebooks_with_results_tests

    solutions = {p.stem for p in (ROOT / "solutions").glob("*.ipynb")}
    for test in sorted((ROOT / "tests").glob("test_lesson*_results.py")):
        declared = declared_notebooks(test)
        assert declared, f"{test.name} does not declare the notebooks it runs (NOTEBOOKS = (...))"
        assert set(declared) <= solutions, f"{test.name} names notebooks that do not exist: {set(declared) - solutions}"
        assert "run_solutions(NOTEBOOKS" in test.read_text(), f"{test.name} does not run its NOTEBOOKS"
    listed = notebooks_with_results_tests()
    assert listed and len(listed) < len(solutions), "some solutions must still run under nbval (00, 01)"
    makefile = (ROOT / "Makefile").read_text()
    assert "notebooks_with_results_tests.py" in makefile and "lessons $(NBVAL_SOLUTIONS)" in makefile


def test_tensorflow_notebooks_import_the_course_side_first():
    """transfer_course.tensorflow keeps TensorFlow's C++ start-up notes out of the notebook only if it loads
    TensorFlow: each TensorFlow lesson imports it before any ``import tensorflow`` or ``import keras``."""
    import nbformat

    first_import = re.compile(r"^\s*(import (tensorflow|keras)\b|from (tensorflow|keras)\b|import transfer_course\.tensorflow"
                              r"|from transfer_course\.tensorflow\b)", re.M)
    for folder in ("solutions", "lessons"):
        for path in sorted((ROOT / folder).glob("*_tensorflow.ipynb")):
            code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
            match = first_import.search(code)
            assert match and "transfer_course.tensorflow" in match.group(0), (path.name, match and match.group(0))
