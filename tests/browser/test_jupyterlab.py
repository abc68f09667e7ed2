"""A lesson in a real browser: JupyterLab on a copy of ``lessons/``, headless Chromium driven by Playwright.

Runs every cell of a lesson, then checks what a student sees: outputs, the tqdm progress-bar widgets, the figures, no
error and no stderr block; saves the notebook, reloads the page and checks that the saved progress bars still render
(no "Error displaying widget: model not found"). Screenshots go to ``browser-artifacts/`` (or ``$BROWSER_ARTIFACTS``).

    make test-browser        # needs Chromium (Debian: apt install chromium) and Playwright (the dev extra)
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", ROOT / "browser-artifacts"))
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
LESSONS = os.environ.get("BROWSER_LESSONS", "01_pretrained_models_pytorch,01_pretrained_models_tensorflow").split(",")

try:
    import playwright.sync_api as playwright_api
except ImportError:
    playwright_api = None
# Skipped tests, not a skipped module: a run without Chromium reports the skip and passes (pytest's exit status 5,
# "no tests collected", would fail `make test`).
pytestmark = [
    pytest.mark.skipif(playwright_api is None, reason="Playwright is not installed (pip install playwright)"),
    pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (Debian: apt install chromium; or set $CHROMIUM)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a copy of the lessons (the repository's files are never touched)."""
    folder = tmp_path_factory.mktemp("lab")
    for name in LESSONS:
        shutil.copy(ROOT / "lessons" / f"{name}.ipynb", folder / f"{name}.ipynb")
    # every cell in the page, not only those in view (JupyterLab's default renders only what is on screen)
    tracker = folder / ".lab-user-settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    news = tracker.parents[1] / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}))  # no "get notified about Jupyter news?" pop-up
    port, token = _free_port(), "browser-test"
    env = {**os.environ, "TRANSFER_COURSE_PROFILE": "quick", "OMP_NUM_THREADS": "2",
           "TRANSFER_COURSE_HOME": str(folder / ".cache")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--ServerApp.open_browser=False",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={tracker.parents[2]}"]  # window.jupyterapp: run JupyterLab's own commands
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    log = open(folder / "jupyterlab.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("JupyterLab did not start:\n" + (folder / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
    try:
        yield url, token, folder
    finally:
        server.terminate()
        server.wait(30)
        log.close()


_ERROR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
# The lesson's own notebook panel, found by its path (not JupyterLab's "current widget", which may be another tab
# while the page restores its layout), its code cells' execution counts and its kernel's status.
_PANEL = "[...window.jupyterapp.shell.widgets('main')].find(w => w.context && w.context.path === path)"
_COUNTS = f"""(path) => {_PANEL}.content.widgets
    .filter(c => c.model.type === 'code').map(c => c.model.executionCount)"""
_KERNEL = f"(path) => {_PANEL}.sessionContext.session.kernel.status"
_RUN_ALL = f"""(path) => {{ const panel = {_PANEL};
    window.jupyterapp.shell.activateById(panel.id);
    if (window.jupyterapp.shell.currentWidget !== panel) {{ return false; }}
    window.jupyterapp.commands.execute('notebook:run-all-cells');
    return true; }}"""


# one empty request through the page's own kernel connection: answered only once the websocket really works
_PING = f"""async ([path, ms]) => {{
    const panel = {_PANEL};
    const kernel = panel && panel.sessionContext.session?.kernel;
    if (!kernel || kernel.connectionStatus !== 'connected') {{ return 'not connected'; }}
    const timeout = new Promise(resolve => setTimeout(() => resolve('no answer'), ms));
    const reply = kernel.requestExecute({{code: '', silent: true, store_history: false}}).done
        .then(msg => msg.content.status, err => String(err));
    return Promise.race([reply, timeout]);
}}"""


def _open(page, url: str, name: str, attempts: int = 3) -> None:
    """Open the lesson and wait until its kernel answers. JupyterLab sometimes loses the first websocket to a kernel
    that is still starting (the server logs HTTP 500); a Run All sent then never runs. Reload and ask again."""
    status = None
    for attempt in range(attempts):
        if attempt:
            page.reload()
        page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached", timeout=60_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        for _ in range(30):
            status = page.evaluate(_PING, [f"{name}.ipynb", 15_000])
            if status == "ok":
                return
            time.sleep(1)
    page.screenshot(path=str(ARTIFACTS / f"{name}-no-kernel.png"), full_page=False)
    raise AssertionError(f"{name}: the page's kernel did not answer after {attempts} loads (last: {status})")


def _run_all(page, name: str, timeout_s: float, stall_s: float = 240) -> None:
    path = f"{name}.ipynb"
    assert page.evaluate(_RUN_ALL, path), f"{name}: JupyterLab did not make the lesson's tab the current one"  # Run > Run All Cells
    deadline = time.time() + timeout_s
    time.sleep(2)
    prompts, last, changed = None, None, time.time()
    while time.time() < deadline and time.time() - changed < stall_s:
        prompts = page.evaluate(_COUNTS, path)
        if prompts and all(isinstance(p, int) for p in prompts) and page.evaluate(_KERNEL, path) == "idle":
            return
        if page.locator(_ERROR).count():
            break
        if prompts != last:
            last, changed = prompts, time.time()
        time.sleep(1)
    page.screenshot(path=str(ARTIFACTS / f"{name}-failed.png"), full_page=False)
    errors = page.locator(_ERROR).all_inner_texts()
    waited = "no cell finished for %.0f s" % stall_s if time.time() - changed >= stall_s else f"{timeout_s:.0f} s at most"
    raise AssertionError(f"{name}: not every cell ran ({waited}): prompts {prompts}; "
                         f"kernel {page.evaluate(_KERNEL, path)}; errors {[e[-1500:] for e in errors]}")


def _show(locator) -> None:
    """Scroll the first visible element of ``locator`` into view (closed bars stay in the page, hidden)."""
    for i in range(locator.count()):
        if locator.nth(i).is_visible():
            locator.nth(i).scroll_into_view_if_needed(timeout=5_000)
            return


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_runs_and_renders_in_jupyterlab(lab, name):
    url, token, folder = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # a workspace of its own: the page does not restore the tabs another lesson's test left open
        page.goto(f"{url}/lab/workspaces/{name}/tree/{name}.ipynb?token={token}")
        _open(page, url, name)
        _run_all(page, name, timeout_s=600)

        errors = page.locator(_ERROR).count()
        stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        stderr_texts = stderr.all_inner_texts()
        bars = page.locator(".jp-OutputArea-output .widget-hprogress, .jp-OutputArea-output .jupyter-widgets.widget-hprogress")
        figures = page.locator(".jp-OutputArea-output img")
        broken = page.get_by_text(re.compile("Error displaying widget")).count()
        _show(bars)  # the screenshot shows a progress bar and what follows it
        page.screenshot(path=str(ARTIFACTS / f"{name}-run.png"), full_page=False)
        report = {"errors": errors, "stderr": stderr_texts[:5], "progress_bars": bars.count(),
                  "figures": figures.count(), "broken_widgets": broken}
        assert errors == 0, report
        assert not stderr_texts, f"red stderr blocks in the outputs: {report}"
        assert bars.count() >= 1 and figures.count() >= 1 and broken == 0, report

        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")  # File > Save
        page.wait_for_timeout(1500)
        saved = json.loads((folder / f"{name}.ipynb").read_text())
        assert saved["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json"), \
            "JupyterLab saved the notebook without the widgets' state (saveState is off)"
        page.reload()
        page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached", timeout=60_000)
        page.wait_for_timeout(3000)
        reopened = {"broken_widgets": page.get_by_text(re.compile("Error displaying widget")).count(),
                    "progress_bars": page.locator(".jp-OutputArea-output .widget-hprogress").count()}
        _show(page.locator(".jp-OutputArea-output .widget-hprogress"))
        page.screenshot(path=str(ARTIFACTS / f"{name}-reopened.png"), full_page=False)
        browser.close()
        assert reopened["broken_widgets"] == 0 and reopened["progress_bars"] >= 1, reopened
