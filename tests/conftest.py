"""Shared fixtures. Neutral tests import neither torch nor tensorflow at module level.

The PyTorch and TensorFlow suites (tests/torch, tests/tensorflow) must never share a process: with some builds,
importing torchvision after TensorFlow crashes it. A run that would collect both (a plain ``pytest`` from the
repository root, ``pytest tests``) collects neither here and runs each in a process of its own instead
(tests/test_framework_suites.py), so it passes or fails like ``make test-unit`` and never crashes.
"""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import write_image

HERE = Path(__file__).resolve().parent
FRAMEWORK_SUITES = ("torch", "tensorflow")
SPLIT_RUNNER = HERE / "test_framework_suites.py"


def _resolve(arg: str, config) -> Path:
    path = Path(arg.split("::")[0])
    if path.is_absolute():
        return path.resolve()
    here = Path(config.invocation_params.dir) / path
    return (here if here.exists() else config.rootpath / path).resolve()


def suites_to_split(config) -> list[str]:
    """The framework suites this run would collect, when it would collect both of them (else [])."""
    ignored = [_resolve(p, config) for p in (config.getoption("ignore") or [])]
    args = [_resolve(a, config) for a in config.args]
    found = []
    for name in FRAMEWORK_SUITES:
        suite = HERE / name
        if any(i == suite or i in suite.parents for i in ignored):
            continue
        if any(a == suite or a in suite.parents for a in args):  # the whole suite, not a file inside it
            found.append(name)
    return found if len(found) == len(FRAMEWORK_SUITES) else []


def pytest_configure(config):
    config.framework_suites_to_split = suites_to_split(config)


def pytest_ignore_collect(collection_path, config):
    split = getattr(config, "framework_suites_to_split", [])
    if collection_path == SPLIT_RUNNER:
        return not split or None
    if split and collection_path.parent == HERE and collection_path.name in split:
        return True
    return None


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A private, empty course cache for the test."""
    home = tmp_path / "cache"
    monkeypatch.setenv("TRANSFER_COURSE_HOME", str(home))
    monkeypatch.delenv("TRANSFER_COURSE_OFFLINE", raising=False)
    return home


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1; yields (base_url, folder, list of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", www, server.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def image_tree(tmp_path):
    """A small train/val tree with 3 classes, including grayscale and RGBA files."""
    root = tmp_path / "images"
    for split, n in (("train", 4), ("val", 2)):
        for c, cls in enumerate(("ant", "bee", "cow")):
            for i in range(n):
                mode = ("RGB", "L", "RGBA")[(i + c) % 3]
                write_image(root / split / cls / f"{i}.png", mode)
    return root
