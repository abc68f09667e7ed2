"""Run an exercise's checks and fall back on the reference solution when it is blank or wrong."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import threading
import traceback
from importlib import resources

from ..errors import choices_message
from .checks import CHECKS, ExerciseFailed

__all__ = ["Lesson", "reference_source", "GRADING_ENV_VAR"]

GRADING_ENV_VAR = "TRANSFER_COURSE_GRADING"
#: set by nbgrader while it autogrades ("autograde") or validates ("validate") a notebook
NBGRADER_ENV_VAR = "NBGRADER_EXECUTION"
#: seconds an exercise's check may run before the answer is taken to loop forever
TIMEOUT_ENV_VAR = "TRANSFER_COURSE_CHECK_TIMEOUT"
DEFAULT_TIMEOUT = 120.0


class _CheckTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Interrupt the block after ``seconds`` (a notebook runs cells in the main thread, where SIGALRM works; elsewhere,
    e.g. on Windows or in a worker thread, there is no limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread() and seconds > 0
    if not usable:
        yield
        return

    def _alarm(signum, frame):
        raise _CheckTimeout

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV_VAR, "").strip()
    try:
        return float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(f"${TIMEOUT_ENV_VAR} must be a number of seconds; received {raw!r}.") from None
FRAMEWORK_SUFFIXES = {"pytorch": "torch", "tensorflow": "tensorflow"}


@functools.lru_cache(maxsize=1)
def _references() -> dict:
    path = resources.files(__package__).joinpath("references.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def reference_source(notebook: str, exercise: str) -> str:
    """The solution cell of ``exercise`` in ``solutions/<notebook>.ipynb`` (markers removed)."""
    refs = _references()
    if notebook not in refs:
        raise KeyError(f"No reference solutions for notebook {notebook!r}; run `transfer-course build-lessons`.")
    if exercise not in refs[notebook]:
        raise KeyError(choices_message(f"exercise of {notebook}", exercise, refs[notebook]))
    return refs[notebook][exercise]


def _caller_globals() -> dict | None:
    """The global namespace of the notebook cell that called ``Lesson.check`` (the first frame outside this module)."""
    import sys

    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    return frame.f_globals if frame is not None else None


class Lesson:
    """The exercises of one notebook, e.g. ``Lesson("01_pretrained_models_pytorch")``."""

    def __init__(self, notebook: str):
        self.notebook = notebook
        suffix = notebook.rsplit("_", 1)[-1]
        if suffix not in FRAMEWORK_SUFFIXES:
            raise ValueError(f"Notebook name {notebook!r} must end in _pytorch or _tensorflow.")
        self.framework = FRAMEWORK_SUFFIXES[suffix]
        self.topic = notebook.rsplit("_", 1)[0]
        self.results: dict[str, bool | None] = {}  # True right, False wrong, None not attempted

    @property
    def grading(self) -> bool:
        """A grading run: ``$TRANSFER_COURSE_GRADING`` is set, or nbgrader is autograding or validating (it sets
        ``$NBGRADER_EXECUTION``). Then a failing check raises instead of falling back to the reference."""
        if os.environ.get(GRADING_ENV_VAR, "").strip().lower() in {"1", "true", "yes"}:
            return True
        return os.environ.get(NBGRADER_ENV_VAR, "").strip().lower() in {"autograde", "validate"}

    def check(self, exercise: str, candidate, **context):
        """Check ``candidate`` for ``exercise``; return it if right, else the reference solution."""
        key = (self.topic, exercise)
        if key not in CHECKS:
            raise KeyError(choices_message(f"exercise of {self.topic}", exercise, [e for t, e in CHECKS if t == self.topic]))
        limit = _timeout()
        try:
            with _time_limit(limit):
                detail = CHECKS[key](candidate, framework=self.framework, **context)
        except _CheckTimeout:
            return self._fallback(exercise, candidate, f"❌ {exercise}: your function was still running after {limit:g} s, "
                                  "so the check stopped it. Look for a loop that never ends (a `while` whose condition "
                                  "never becomes false).")
        except NotImplementedError:
            return self._fallback(exercise, candidate, f"⏭  {exercise}: not written yet (the cell still raises NotImplementedError).",
                                  status=None)
        except ExerciseFailed as exc:
            return self._fallback(exercise, candidate, f"❌ {exercise}: {exc}")
        except Exception as exc:  # the student's code crashed: show where, in their code
            tb = traceback.extract_tb(exc.__traceback__)
            where = next((f" (line {f.lineno}: {f.line})" for f in reversed(tb) if f.filename.startswith("<") or "ipykernel" in f.filename), "")
            return self._fallback(exercise, candidate, f"❌ {exercise} raised {type(exc).__name__}: {exc}{where}")
        self.results[exercise] = True
        print(f"✅ {exercise}: correct." + (f" {detail}" if detail else ""))
        return candidate

    def _fallback(self, exercise: str, candidate, message: str, status: bool | None = False):
        self.results[exercise] = status
        print(message)
        if self.grading:
            # The exercise scores zero (this cell raises), but the notebook's later cells get the reference, so that
            # one wrong exercise does not cost the exercises after it their points: each is graded independently.
            notebook_globals = _caller_globals()
            if notebook_globals is not None:
                with contextlib.suppress(Exception):
                    exec(compile(reference_source(self.notebook, exercise), f"<reference solution: {exercise}>", "exec"),
                         notebook_globals)
            raise ExerciseFailed(message)
        namespace = dict(getattr(candidate, "__globals__", {}))
        exec(compile(reference_source(self.notebook, exercise), f"<reference solution: {exercise}>", "exec"), namespace)
        # The exercise id is the name the solution cell defines.
        print(f"   The lesson continues with the reference solution for {exercise}, so the cells below still run. "
              "Come back and try again: re-run your cell, then this check.")
        return namespace[exercise]

    def summary(self) -> str:
        done = sum(1 for ok in self.results.values() if ok)
        lines = [f"Exercises: {done}/{len(self.results)} correct"]
        marks = {True: "✅", False: "❌", None: "⏭  not attempted:"}
        lines += [f"  {marks[ok]} {name}" for name, ok in self.results.items()]
        text = "\n".join(lines)
        print(text)
        return text
