"""Print the solutions notebooks that a results test executes (tests/test_lesson*_results.py), one path per line.

The Makefile leaves these out of its nbval run, so that each notebook runs once per test command; a test in
test_project.py checks that every notebook is run by one or the other."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def notebooks_with_results_tests() -> list[str]:
    lessons = set()
    for test in sorted((ROOT / "tests").glob("test_lesson*_results.py")):
        text = test.read_text()
        lessons |= set(re.findall(r"[\"'](0\d_[a-z_]+?)[\"']", text))  # a tuple of lesson names
        lessons |= set(re.findall(r"(0\d_[a-z_]+?)_(?:\{fw\}|pytorch\b|tensorflow\b)", text))  # notebook names
    found = []
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        stem = re.sub(r"_(pytorch|tensorflow)$", "", path.stem)
        if stem in lessons:
            found.append(f"solutions/{path.name}")
    return found


if __name__ == "__main__":
    print("\n".join(notebooks_with_results_tests()))
