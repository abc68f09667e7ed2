"""JupyterLab settings the lessons rely on, written into an environment's ``overrides.json``.

The one setting: ipywidgets' ``saveState``. Without it JupyterLab saves a notebook without the state of its widgets,
and a lesson reopened later shows "Error displaying widget: model not found" in place of every progress bar. With it,
the saved bars render again (as they were when the notebook was saved).

``make install`` runs ``python -m transfer_course.labsettings`` for ``.venv``; ``binder/postBuild`` does the same on
mybinder.org. Settings already in the file are kept; only the course's keys are added or updated.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

__all__ = ["LAB_SETTINGS", "overrides_path", "install_lab_settings"]

LAB_SETTINGS = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}


def overrides_path(prefix: str | Path = sys.prefix) -> Path:
    """JupyterLab reads default overrides for an environment from ``<prefix>/share/jupyter/lab/settings``."""
    return Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"


def install_lab_settings(prefix: str | Path = sys.prefix) -> Path:
    """Merge :data:`LAB_SETTINGS` into the environment's ``overrides.json``; return its path."""
    path = overrides_path(prefix)
    current = {}
    if path.exists():
        try:
            current = json.loads(path.read_text(encoding="utf-8") or "{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno}); it was left as it is. Fix or "
                             "remove it, then run `python -m transfer_course.labsettings` again.") from None
        if not isinstance(current, dict):
            raise ValueError(f"{path} should hold a JSON object of settings; it was left as it is.")
    merged = dict(current)
    for plugin, values in LAB_SETTINGS.items():
        merged[plugin] = {**(current.get(plugin) or {}), **values}
    if merged != current:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(f"JupyterLab settings: {install_lab_settings()}")
