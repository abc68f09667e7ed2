"""Open in Colab: every notebook has its badge and a set-up cell that installs the course only in Colab, and the
notebooks run from the course installed as a wheel, outside the repository folder (as they do in Colab)."""
import os
import subprocess
import sys

import nbformat
import pytest

from helpers import ROOT
from transfer_course import colab

NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "lessons").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_badge_opens_this_notebook_and_setup_cell_comes_first(path):
    nb = nbformat.read(path, as_version=4)
    relative = f"{path.parent.name}/{path.name}"
    header = nb.cells[0].source
    assert header.count("colab.research.google.com/github/") == 1, "exactly one Colab badge, in the header"
    assert f"]({colab.colab_url(relative)})" in header, f"the badge of {relative} must open {relative} itself"
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    framework = colab.framework_of(path.name)
    assert first_code.source == colab.setup_cell_source(framework), "the Colab set-up cell is the first code cell"
    extra = "[torch]" if framework == "pytorch" else "[tensorflow]"
    assert f"transfer-course{extra} @ git+https://github.com/{colab.REPOSITORY}@" in first_code.source


def _run_setup_cell(source: str, env: dict) -> list[str]:
    """Run the set-up cell in a real IPython shell (in a subprocess, with ``env``) with ``%pip`` recorded
    instead of executed; return the recorded ``%pip`` lines."""
    code = (
        "import json, sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "calls = []\n"
        "shell.register_magic_function(lambda line: calls.append(line), magic_kind='line', magic_name='pip')\n"
        "result = shell.run_cell(sys.stdin.read())\n"
        "assert result.success, result.error_in_exec\n"
        "print(json.dumps(calls))\n")
    out = subprocess.run([sys.executable, "-c", code], input=source, capture_output=True, text=True, env=env,
                         timeout=120, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_setup_cell_installs_only_in_colab(framework):
    source = colab.setup_cell_source(framework)
    local = {k: v for k, v in os.environ.items() if not k.startswith("COLAB_")}
    assert _run_setup_cell(source, local) == [], "outside Colab the set-up cell must do nothing"
    extra = "torch" if framework == "pytorch" else "tensorflow"
    calls = _run_setup_cell(source, {**local, "COLAB_RELEASE_TAG": "release-colab-test"})
    assert calls == [f'install --quiet "transfer-course[{extra}] @ git+https://github.com/{colab.REPOSITORY}@main"']


def test_ensure_colab_cells_is_idempotent_and_rejects_bad_input():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 09 · Test (PyTorch)\n\n**Idea:** x"),
                                         nbformat.v4.new_code_cell("PROFILE = None")])
    assert colab.ensure_colab_cells(nb, "lessons/09_test_pytorch.ipynb")
    once = nbformat.writes(nb)
    assert not colab.ensure_colab_cells(nb, "lessons/09_test_pytorch.ipynb"), "a second pass changes nothing"
    assert nbformat.writes(nb) == once
    assert colab.ensure_colab_cells(nb, "solutions/09_test_pytorch.ipynb"), "the badge follows the path"
    assert nb.cells[0].source.count("Open In Colab") == 1 and "solutions/09_test_pytorch.ipynb" in nb.cells[0].source
    with pytest.raises(ValueError, match="owner/name"):
        colab.colab_url("lessons/x_pytorch.ipynb", repository="not a repository")
    with pytest.raises(ValueError, match="ends in _pytorch.ipynb or _tensorflow.ipynb"):
        colab.ensure_colab_cells(nb, "lessons/09_test.ipynb")
    with pytest.raises(ValueError, match="framework must be one of"):
        colab.setup_cell_source("jax")
    headless = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    with pytest.raises(ValueError, match="first cell must be the lesson's markdown header"):
        colab.ensure_colab_cells(headless, "lessons/09_test_pytorch.ipynb")


def test_readme_and_project_point_to_the_same_repository():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == f"https://github.com/{colab.REPOSITORY}"
    readme = (ROOT / "README.md").read_text()
    assert colab.binder_url() in readme, "the README has the Binder launch link"
    for path in sorted((ROOT / "lessons").glob("*.ipynb")):
        assert colab.colab_url(f"lessons/{path.name}") in readme, f"the README links {path.name} in Colab"


def test_a_lesson_runs_from_the_installed_wheel_outside_the_repository(tmp_path):
    """As in Colab: the course comes from a wheel (package data included), the notebook is a lone file in a
    folder of its own, and nothing is read from this repository."""
    wheels = tmp_path / "wheels"
    import importlib.util

    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(wheels), str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    [wheel] = wheels.glob("transfer_course-*.whl")
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    work = tmp_path / "colab"
    work.mkdir()
    nb = nbformat.read(ROOT / "lessons" / "01_pretrained_models_pytorch.ipynb", as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell(
        "import transfer_course, pathlib\n"
        f"assert pathlib.Path(transfer_course.__file__).is_relative_to({str(site)!r}), transfer_course.__file__"))
    nbformat.write(nb, work / "lesson.ipynb")
    env = {**os.environ, "PYTHONPATH": str(site), "TRANSFER_COURSE_PROFILE": "quick", "OMP_NUM_THREADS": "1",
           "TRANSFER_COURSE_HOME": str(tmp_path / "home")}
    code = ("import nbformat, sys\nfrom nbclient import NotebookClient\n"
            "nb = nbformat.read('lesson.ipynb', as_version=4)\n"
            "NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': '.'}}).execute()\n"
            "errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs if o.output_type == 'error']\n"
            "assert not errors, errors\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]


def test_binder_environment_is_the_course_environment_with_cpu_torch():
    import yaml

    root = yaml.safe_load((ROOT / "environment.yml").read_text())
    binder = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    pip = lambda env: next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))  # noqa: E731
    conda = lambda env: [d for d in env["dependencies"] if isinstance(d, str)]  # noqa: E731
    assert conda(binder) == conda(root), "binder/environment.yml lists the same conda packages"
    assert pip(binder) == ["--extra-index-url https://download.pytorch.org/whl/cpu"] + pip(root), \
        "binder/environment.yml is environment.yml with PyTorch's CPU-only index added"
    post = (ROOT / "binder" / "postBuild")
    assert os.access(post, os.X_OK) and "transfer_course.labsettings" in post.read_text()


def test_lab_settings_keep_what_is_there(tmp_path):
    import json

    from transfer_course.labsettings import LAB_SETTINGS, install_lab_settings, overrides_path

    path = install_lab_settings(tmp_path)
    assert path == overrides_path(tmp_path) and json.loads(path.read_text()) == LAB_SETTINGS
    mine = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"},
            "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": False, "other": 1}}
    path.write_text(json.dumps(mine))
    install_lab_settings(tmp_path)
    merged = json.loads(path.read_text())
    assert merged["@jupyterlab/apputils-extension:themes"] == mine["@jupyterlab/apputils-extension:themes"]
    assert merged["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": True, "other": 1}
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*left as it is"):
        install_lab_settings(tmp_path)
    assert path.read_text() == "{not json", "a file the course cannot read is never overwritten"


def test_the_course_environment_saves_widget_state():
    """`make install` wrote the setting into the environment that runs these tests (JupyterLab reads it there)."""
    import json

    from transfer_course.labsettings import overrides_path

    path = overrides_path(sys.prefix)
    assert path.exists(), f"{path} is missing: run `python -m transfer_course.labsettings` (make install does)"
    assert json.loads(path.read_text())["@jupyter-widgets/jupyterlab-manager:plugin"]["saveState"] is True
