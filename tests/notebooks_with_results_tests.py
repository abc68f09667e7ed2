"""Print the solutions notebooks that a results test executes (tests/test_lesson*_results.py), one path per line.

Each results test names what it executes in a literal ``NOTEBOOKS = (...)`` tuple, which it hands to
``run_solutions``; this reads those tuples (without importing the tests). The Makefile leaves these notebooks out of
its nbval run, so that each notebook runs once per test command; a test in test_project.py checks that every
notebook is run by one or the other."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def declared_notebooks(test: Path) -> tuple[str, ...] | None:
    """The literal ``NOTEBOOKS`` tuple a results test declares at module level, or ``None``."""
    for node in ast.parse(test.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "NOTEBOOKS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    return None


def notebooks_with_results_tests() -> list[str]:
    names = set()
    for test in sorted((ROOT / "tests").glob("test_lesson*_results.py")):
        names |= set(declared_notebooks(test) or ())
    return [f"solutions/{name}.ipynb" for name in sorted(names) if (ROOT / "solutions" / f"{name}.ipynb").exists()]


if __name__ == "__main__":
    print("\n".join(notebooks_with_results_tests()))
