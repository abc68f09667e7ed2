"""Shared fixtures. Neutral tests import neither torch nor tensorflow at module level."""
from __future__ import annotations

import functools
import http.server
import threading

import numpy as np
import pytest

from helpers import write_image


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
