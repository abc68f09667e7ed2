"""Open in Colab: the badge at the top of every notebook and the set-up cell that installs the course there.

A notebook opened from GitHub in Google Colab starts in a bare runtime that has PyTorch, TensorFlow and Keras but not
the course. The set-up cell (the first code cell of every lesson) installs the course with ``%pip`` when it runs in
Colab, and does nothing anywhere else (a laptop, Binder, CI). pip leaves what Colab already has (its own torch and
TensorFlow builds) alone and adds only what is missing.

``ensure_colab_cells`` keeps both in a notebook: it is idempotent and changes nothing when they are already right.
Forks: change :data:`REPOSITORY` (``owner/name`` on GitHub) and run ``transfer-course build-lessons``.
"""
from __future__ import annotations

import re

__all__ = ["REPOSITORY", "BRANCH", "colab_url", "badge_markdown", "setup_cell_source", "ensure_colab_cells",
           "binder_url", "SETUP_MARK", "has_colab_cells", "framework_of"]

#: the course's repository on GitHub, ``owner/name``
REPOSITORY = "transfer-course/transfer-course"
BRANCH = "main"
#: first line of the set-up cell (how the cell is recognised)
SETUP_MARK = "# Google Colab only: install the course there."
_COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
_BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
_EXTRAS = {"pytorch": "torch", "tensorflow": "tensorflow"}


def colab_url(path: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """Colab's address for the notebook at ``path`` (relative to the repository root, e.g. ``lessons/02_….ipynb``)."""
    _check_repository(repository)
    path = str(path).replace("\\", "/").lstrip("/")
    if not path.endswith(".ipynb"):
        raise ValueError(f"{path!r} is not a notebook path (it should end in .ipynb).")
    return f"https://colab.research.google.com/github/{repository}/blob/{branch}/{path}"


def binder_url(path: str | None = None, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """mybinder.org's address for the repository, opening JupyterLab on ``path`` when given."""
    _check_repository(repository)
    url = f"https://mybinder.org/v2/gh/{repository}/{branch}"
    return url + (f"?urlpath=lab/tree/{path}" if path else "")


def badge_markdown(path: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    return f"[![Open In Colab]({_COLAB_BADGE})]({colab_url(path, repository, branch)})"


def setup_cell_source(framework: str, repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The set-up cell for a ``framework`` ('pytorch' or 'tensorflow') notebook."""
    if framework not in _EXTRAS:
        raise ValueError(f"framework must be one of {sorted(_EXTRAS)}, not {framework!r}.")
    _check_repository(repository)
    own = "PyTorch" if framework == "pytorch" else "TensorFlow and Keras"
    return (f"{SETUP_MARK} Anywhere else this cell does nothing.\n"
            f"# Colab's own {own} stay as they are: pip adds only what is missing.\n"
            "import os, sys\n"
            "if \"google.colab\" in sys.modules or \"COLAB_RELEASE_TAG\" in os.environ:\n"
            f"    %pip install --quiet \"transfer-course[{_EXTRAS[framework]}] @ "
            f"git+https://github.com/{repository}@{branch}\"")


def framework_of(name: str) -> str:
    for framework in _EXTRAS:
        if name.endswith(f"_{framework}.ipynb") or name.endswith(f"_{framework}"):
            return framework
    raise ValueError(f"{name!r}: a lesson notebook's name ends in _pytorch.ipynb or _tensorflow.ipynb.")


def has_colab_cells(nb) -> bool:
    return any(c.cell_type == "code" and c.source.startswith(SETUP_MARK) for c in nb.cells)


def ensure_colab_cells(nb, path: str, repository: str = REPOSITORY, branch: str = BRANCH) -> bool:
    """Put the badge for ``path`` under the title of ``nb`` and the set-up cell first among its code cells.
    Returns whether anything changed."""
    import nbformat

    changed = False
    header = nb.cells[0]
    if header.cell_type != "markdown" or not header.source.startswith("# "):
        raise ValueError(f"{path}: the first cell must be the lesson's markdown header ('# NN · Title').")
    badge = badge_markdown(path, repository, branch)
    if _BADGE_RE.search(header.source):
        new = _BADGE_RE.sub(lambda _: badge, header.source, count=1)
    else:
        title, _, rest = header.source.partition("\n")
        new = f"{title}\n\n{badge}\n\n{rest.lstrip(chr(10))}"
    if new != header.source:
        header.source, changed = new, True
    source = setup_cell_source(framework_of(path), repository, branch)
    existing = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith(SETUP_MARK)]
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    if existing:
        cell = nb.cells[existing[0]]
        if cell.source != source:
            cell.source, changed = source, True
        if existing[0] != first_code:
            nb.cells.insert(first_code, nb.cells.pop(existing[0]))
            changed = True
    else:
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["colab-setup"]})
        cell.id = "colab-setup"  # a fixed id: building the same notebook twice gives the same file
        nb.cells.insert(first_code, cell)
        changed = True
    return changed


def _check_repository(repository: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+", repository or ""):
        raise ValueError(f"repository must be 'owner/name' as on GitHub, not {repository!r}.")
