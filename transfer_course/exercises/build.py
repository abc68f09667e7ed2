"""Build the student notebooks in ``lessons/`` from the complete ones in ``solutions/``.

An exercise cell carries nbgrader metadata (``metadata.nbgrader.solution = true``) and its answer
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``. In ``lessons/`` that span becomes
``raise NotImplementedError()`` (as nbgrader does) and every output is cleared. The answers are
collected into ``transfer_course/exercises/references.json`` for the lessons' fallback.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat

from ..colab import ensure_colab_cells, has_colab_cells

__all__ = ["strip_solution", "build_lessons", "lessons_out_of_step", "REFERENCES_PATH"]

REFERENCES_PATH = Path(__file__).with_name("references.json")
_BEGIN, _END = "### BEGIN SOLUTION", "### END SOLUTION"
_BLANK = "# YOUR CODE HERE\nraise NotImplementedError()"


def strip_solution(source: str) -> tuple[str, str]:
    """Return ``(student version, reference version)`` of a solution cell's source."""
    student, reference, inside, found = [], [], False, False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == _BEGIN:
            if inside:
                raise ValueError("Nested '### BEGIN SOLUTION'.")
            inside, found = True, True
            indent = line[: len(line) - len(line.lstrip())]
            student += [indent + blank for blank in _BLANK.splitlines()]
        elif stripped == _END:
            if not inside:
                raise ValueError("'### END SOLUTION' without a BEGIN.")
            inside = False
        else:
            reference.append(line)
            if not inside:
                student.append(line)
    if inside or not found:
        raise ValueError("A solution cell needs one '### BEGIN SOLUTION' ... '### END SOLUTION' span.")
    return "\n".join(student), "\n".join(reference)


def _render(solution_nb, name: str = "") -> tuple[str, dict]:
    nb = nbformat.from_dict(json.loads(json.dumps(solution_nb)))
    if name and has_colab_cells(nb):
        ensure_colab_cells(nb, f"lessons/{name}")  # the student version's badge opens the student version
    refs = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if meta.get("solution"):
                cell.source, refs[meta["grade_id"]] = strip_solution(cell.source)
    return nbformat.writes(nb) + "\n", refs


def _plan(root: Path) -> tuple[dict[Path, str], str]:
    files, refs = {}, {}
    solutions = sorted((root / "solutions").glob("*.ipynb"))
    if not solutions:
        raise FileNotFoundError(f"No notebooks in {root / 'solutions'}; run from the course's root folder or pass --root.")
    for path in solutions:
        text, nb_refs = _render(nbformat.read(path, as_version=4), path.name)
        files[root / "lessons" / path.name] = text
        refs[path.stem] = nb_refs
    return files, json.dumps(refs, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def references_path(root: str | Path = ".") -> Path | None:
    """Where the reference answers of the course at ``root`` belong: inside *its own* package folder. ``None`` for a
    folder without one (a copy of the notebooks elsewhere): the installed package's answers are never overwritten
    from another folder."""
    path = Path(root) / "transfer_course" / "exercises" / REFERENCES_PATH.name
    return path if path.parent.is_dir() else None


def build_lessons(root: str | Path = ".") -> list[Path]:
    """Write ``lessons/*.ipynb`` and, when ``root`` holds the package, its references file; return the paths written."""
    root = Path(root)
    files, refs = _plan(root)
    (root / "lessons").mkdir(exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    target = references_path(root)
    if target is None:
        return list(files)
    target.write_text(refs, encoding="utf-8")
    return [*files, target]


def lessons_out_of_step(root: str | Path = ".") -> list[str]:
    """Files that ``build_lessons`` would change (empty when everything is in step)."""
    root = Path(root)
    files, refs = _plan(root)
    stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    extra = {p.name for p in (root / "lessons").glob("*.ipynb")} - {p.name for p in files}
    stale += [f"lessons/{name} (no solution notebook)" for name in sorted(extra)]
    target = references_path(root)
    if target is not None and (not target.exists() or target.read_text(encoding="utf-8") != refs):
        stale.append(str(target))
    return stale
