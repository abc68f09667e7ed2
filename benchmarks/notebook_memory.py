"""Peak memory of every lesson notebook's kernel, and the cells that reach it (Linux). Binder gives a notebook 2 GB;
the course's budget is 1.5 GB per notebook in the default profile.

Two figures per cell:

- ``peak``: the kernel's peak resident set (VmHWM, reset before each cell). It includes the pages of the shared
  libraries the kernel has touched (``libtorch_cpu.so``, ``libtensorflow_cc.so``: about 0.35 GB), which are backed by
  files: under a memory limit the system drops them and reads them again rather than stopping the kernel.
- ``private``: the peak of the memory only this notebook holds (resident minus file-backed pages, RssAnon), summed
  over the kernel *and the processes it starts* (lesson 06 launches workers), sampled every 20 ms. This is what a
  memory limit cannot take back, and the figure the 1.5 GB budget applies to.

    python benchmarks/notebook_memory.py [--profile default] [--notebooks 02_feature_extraction_pytorch ...]
                                         [--folder solutions] [--top 3] [--json OUT.json]

With ``--cgroup-mb 2048`` (root, cgroup v1 memory controller) each kernel also runs inside a memory cgroup of that
size, as mybinder.org enforces, and the cgroup's own peak (which counts the page cache too) is reported.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _private(pid: int) -> int:
    """Resident memory minus file-backed pages, of ``pid`` and its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            info = proc.memory_info()
            total += info.rss - info.shared
        except psutil.Error:
            pass
    return total


class _Sampler(threading.Thread):
    """Polls the private memory of a process tree; ``take()`` returns the peak since the last call."""

    def __init__(self, pid: int, every: float = 0.02):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.stop = pid, every, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _private(self.pid))
            time.sleep(self.every)

    def take(self) -> int:
        peak, self.peak = max(self.peak, _private(self.pid)), _private(self.pid)
        return peak


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current resident set


class _Cgroup:
    def __init__(self, megabytes: int):
        self.path = CGROUP_V1 / f"transfer-course-{os.getpid()}"
        self.path.mkdir(exist_ok=True)
        (self.path / "memory.limit_in_bytes").write_text(str(megabytes * 1024 * 1024))

    def add(self, pid: int) -> None:
        (self.path / "cgroup.procs").write_text(str(pid))

    def peak(self) -> int:
        return int((self.path / "memory.max_usage_in_bytes").read_text())

    def close(self) -> None:
        try:
            self.path.rmdir()
        except OSError:
            pass


def measure(path: Path, profile: str, cgroup_mb: int | None = None) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["TRANSFER_COURSE_PROFILE"] = profile
    cells, state = [], {}
    group = _Cgroup(cgroup_mb) if cgroup_mb else None

    def started(cell, cell_index, **_):
        pid = state.get("pid")
        if pid is None:
            pid = state["pid"] = client.km.provisioner.process.pid
            if group:
                group.add(pid)
            state["sampler"] = _Sampler(pid)
            state["sampler"].start()
        _reset_peak(pid)
        state["sampler"].take()
        state["t0"] = time.perf_counter()

    def executed(cell, cell_index, **_):
        pid = state["pid"]
        cells.append({"cell": cell_index, "peak": _status(pid, "VmHWM"), "rss": _status(pid, "VmRSS"),
                      "private": state["sampler"].take(),
                      "seconds": time.perf_counter() - state["t0"], "source": cell.source.splitlines()[:1]})

    client = NotebookClient(nb, timeout=1800, kernel_name="python3", on_cell_start=started, on_cell_executed=executed,
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        error = None
    except Exception as exc:  # noqa: BLE001 - reported (a kernel killed by the cgroup lands here)
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    if "sampler" in state:
        state["sampler"].stop.set()
    report = {"notebook": path.stem, "seconds": time.perf_counter() - start, "peak": max(c["peak"] for c in cells),
              "private": max(c["private"] for c in cells), "cells": cells, "error": error}
    if group:
        report["cgroup_peak"] = group.peak()
        group.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--folder", default="solutions")
    parser.add_argument("--notebooks", nargs="*", help="names without .ipynb (default: every notebook in the folder)")
    parser.add_argument("--top", type=int, default=3, help="cells listed per notebook")
    parser.add_argument("--cgroup-mb", type=int, help="also run inside a memory cgroup of this size (root only)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = ROOT / args.folder
    names = args.notebooks or sorted(p.stem for p in folder.glob("*.ipynb"))
    reports = []
    for name in names:
        r = measure(folder / f"{name}.ipynb", args.profile, args.cgroup_mb)
        reports.append(r)
        flag = "OK " if r["private"] <= 1.5e9 and not r["error"] else "OVER" if not r["error"] else "FAIL"
        extra = f", cgroup peak {r['cgroup_peak'] / 1e9:.2f} GB" if "cgroup_peak" in r else ""
        print(f"{flag} {name:40s} private {r['private'] / 1e9:.2f} GB, resident {r['peak'] / 1e9:.2f} GB{extra}, "
              f"{r['seconds']:.0f} s"
              + (f"  ERROR {r['error']}" if r["error"] else ""), flush=True)
        for c in sorted(r["cells"], key=lambda c: -c["private"])[: args.top]:
            print(f"      cell {c['cell']:3d}: private {c['private'] / 1e9:.2f} GB, resident {c['peak'] / 1e9:.2f} GB, "
                  f"after {c['rss'] / 1e9:.2f} GB, "
                  f"{c['seconds']:.0f} s  {c['source'][0][:60] if c['source'] else ''}")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))


if __name__ == "__main__":
    main()
