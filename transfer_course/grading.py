"""Grade a folder of submitted notebooks: ``transfer-course grade SUBMISSIONS/``.

Each submission runs in its own process and Jupyter kernel, in a fresh working folder, in the course's grading mode
(a failing check raises instead of falling back to the reference, and the notebook goes on with the reference so
that each exercise is scored on its own). What is executed is the *released* lesson (``lessons/``) with the
student's solution cells put in place of the blank ones, found by their nbgrader ``grade_id``: edits to any other
cell (the checks, the set-up) are ignored, as nbgrader does.

What a submission cannot do to the run or to other students:

- take longer than ``--cell-timeout`` per cell (the kernel is interrupted and the next cell runs) or ``--timeout``
  for the whole notebook (the process group is killed);
- use more than ``--memory-mb`` of memory (a limit on the kernel's data segment; an allocation beyond it fails);
- flood the output (each stream is cut after a fixed number of characters);
- read the other submissions, the complete solutions or the gradebook, or write outside its working folder and the
  course's cache (an audit hook in the kernel refuses those file operations);
- touch the grading machinery: a solution cell that names it (``lesson``, ``transfer_course.exercises``,
  ``sys.modules``, ``globals()``, ``exec``/``eval``...) scores zero for that exercise, with the reason.

This is the protection a grader needs against mistakes and casual cheating; it is not a security sandbox against a
determined attacker with arbitrary code (run untrusted submissions in a container or a separate account as well).

The gradebook: ``gradebook.csv`` (one row per submission, one column per exercise) and ``gradebook.json`` (the
same, with each exercise's feedback: the message the student saw). A second run skips submissions already graded
(same file content) unless ``--force``.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["grade", "find_submissions", "Submission", "GradingError", "FORBIDDEN"]

GRADER_ENV = "TRANSFER_COURSE_GRADER"  # set in the kernel's environment: the sandbox cell reads its settings from it

#: names a solution cell may not use: they reach the checks, the references or the notebook's namespace
FORBIDDEN = ("lesson", "transfer_course.exercises", "Lesson", "CHECKS", "reference_source", "_references",
             "references.json", "TRANSFER_COURSE_GRADING", "NBGRADER_EXECUTION", "sys.modules", "globals(",
             "__builtins__", "builtins", "exec(", "eval(", "__import__", "importlib", "sys._getframe", "inspect",
             "addaudithook", "ctypes", "gc.get_objects")


class GradingError(ValueError):
    """The grading run cannot start: the submissions, the options or the gradebook path are wrong."""


@dataclasses.dataclass
class Submission:
    student: str
    path: Path
    lesson: str | None  # the released notebook it answers, or None when it cannot be told

    @property
    def key(self) -> str:
        return f"{self.student}/{self.lesson or self.path.name}"


def _course_root() -> Path:
    return Path(__file__).resolve().parents[1]


def release_folder(source: str | Path | None = None) -> Path:
    folder = Path(source) if source else _course_root() / "lessons"
    if not folder.is_dir() or not any(folder.glob("*.ipynb")):
        raise GradingError(f"No released lessons in {folder}: pass --source with the folder of the student versions "
                           "of the lessons (the course's lessons/).")
    return folder


def _lesson_of(path: Path, lessons: list[str]) -> str | None:
    """The released notebook a submission answers: its file name, else the ``Lesson("...")`` it creates."""
    for name in lessons:
        if path.stem == name or path.stem.startswith(name):
            return name
    named = re.match(r"(\d\d_[a-z0-9_]+?_(?:pytorch|tensorflow))\b", path.stem)
    if named:
        return named.group(1)  # another lesson's notebook (reported, not graded)
    with contextlib.suppress(Exception):
        text = path.read_text(encoding="utf-8", errors="replace")
        found = re.search(r'Lesson\(\\?"(\d\d_\w+?_(?:pytorch|tensorflow))\\?"\)', text)
        if found and found.group(1) in lessons:
            return found.group(1)
    return None


def find_submissions(folder: str | Path, lessons: list[str], lesson: str | None = None) -> list[Submission]:
    """The notebooks under ``folder``: ``folder/<student>/.../<notebook>.ipynb`` (the student is the first folder),
    or ``folder/<student>.ipynb`` for a flat folder of one lesson's submissions."""
    folder = Path(folder)
    if not folder.is_dir():
        raise GradingError(f"The submissions folder {folder} does not exist. Pass the folder that holds one notebook "
                           "per student (or one sub-folder per student).")
    paths = sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if not paths:
        raise GradingError(f"The submissions folder {folder} holds no notebooks (*.ipynb). Collect the students' "
                           "notebooks there first, e.g. SUBMISSIONS/<student>/<lesson>.ipynb.")
    subs = []
    for path in paths:
        rel = path.relative_to(folder)
        student = rel.parts[0] if len(rel.parts) > 1 else path.stem
        found = _lesson_of(path, lessons)
        if len(rel.parts) == 1 and found and path.stem.startswith(found):
            student = path.stem[len(found):].strip("_-. ") or path.stem  # e.g. 01_..._pytorch_alice.ipynb
        subs.append(Submission(student, path, found))
    seen: dict[tuple[str, str | None], Path] = {}
    for sub in subs:
        if lesson is not None and sub.lesson not in (lesson, None):
            continue  # reported as another lesson's notebook, not graded
        key = (sub.student, sub.lesson or lesson)
        if key in seen:
            raise GradingError(f"Two submissions for student {sub.student!r} and lesson {key[1]!r}: {seen[key]} and "
                               f"{sub.path}. Keep one (e.g. the latest) and grade again.")
        seen[key] = sub.path
    return subs


def _solution_cells(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution") and c.metadata["nbgrader"].get("grade_id")}


def _grade_cells(nb) -> dict:
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade") and c.metadata["nbgrader"].get("grade_id")}


def _forbidden_in(source: str) -> list[str]:
    code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())  # comments may mention anything
    hits = []
    for name in FORBIDDEN:
        # a call such as eval( counts, a method such as model.eval( does not
        pattern = (rf"(?<![\w.]){re.escape(name)}" if name.endswith("(") else
                   rf"(?<![\w]){re.escape(name)}(?![\w])")
        if re.search(pattern, code):
            hits.append(name)
    return hits


_SANDBOX = r'''
def _grader_sandbox():
    import json, os, sys
    from transfer_course.exercises import lesson as _lesson_module
    _lesson_module._references()  # loaded now: reading it later is refused like the rest of the solutions
    settings = json.loads(os.environ.pop("TRANSFER_COURSE_GRADER"))
    real = os.path.realpath
    work = real(os.getcwd())
    deny = [real(p) for p in settings["deny"]]
    writable = [work] + [real(p) for p in settings["write"]] + ["/dev/null", "/dev/shm"]
    def inside(p, roots):
        return any(p == r or p.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
    W = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    def path_of(x):
        if isinstance(x, (str, bytes, os.PathLike)):
            return real(os.fsdecode(x))
        return None
    def hook(event, args):
        if event == "open":
            p = path_of(args[0])
            if p is None:
                return
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and bool(flags & W))
            if inside(p, deny) and not inside(p, [work]):
                raise PermissionError(f"The grader does not let a submission read {p}.")
            if writing and not inside(p, writable):
                raise PermissionError(f"The grader does not let a submission write {p} (outside its working folder).")
        elif event in ("os.listdir", "os.scandir"):
            p = path_of(args[0]) if args else None
            if p and inside(p, deny) and not inside(p, [work]):
                raise PermissionError(f"The grader does not let a submission list {p}.")
        elif event in ("os.remove", "os.rmdir", "os.mkdir", "os.rename", "os.replace", "shutil.rmtree", "os.truncate",
                       "os.chmod", "os.chown", "os.symlink", "os.link", "os.utime"):
            for x in args[:2] if event in ("os.rename", "os.replace", "os.symlink", "os.link") else args[:1]:
                p = path_of(x)
                if p and not inside(p, writable):
                    raise PermissionError(f"The grader does not let a submission change {p} (outside its working folder).")
    sys.addaudithook(hook)
    limit = int(settings["output_chars"])
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        count = [0]
        def write(text, _orig=stream.write, _count=count):
            if _count[0] >= limit:
                return len(text)
            _count[0] += len(text)
            if _count[0] >= limit:
                _orig(text[: max(0, limit - (_count[0] - len(text)))])
                return _orig("\n[the grader cut this output: too long]\n")
            return _orig(text)
        stream.write = write
_grader_sandbox()
del _grader_sandbox
'''


def prepare(release_path: Path, submitted_path: Path):
    """The notebook to execute, and a reason per exercise that cannot score (cell missing, machinery touched)."""
    import nbformat

    release = nbformat.read(release_path, as_version=4)
    problems: dict[str, str] = {}
    submitted = nbformat.read(submitted_path, as_version=4)  # raises on invalid JSON: reported by the caller
    theirs = _solution_cells(submitted)
    by_def = {}
    for cell in submitted.cells:  # a cell whose metadata was lost (copied, re-created) is found by its def
        if cell.cell_type == "code":
            for name in re.findall(r"^def (\w+)\(", cell.source, flags=re.M):
                by_def.setdefault(name, cell)
    for grade_id, cell in _solution_cells(release).items():
        mine = theirs.get(grade_id) or by_def.get(grade_id)
        if mine is None:
            problems[grade_id] = (f"no cell answers {grade_id}: its solution cell was deleted or renamed (the cell must "
                                  f"define `def {grade_id}(...)`)")
            continue
        hits = _forbidden_in(mine.source)
        if hits:
            problems[grade_id] = (f"the answer uses {', '.join(hits)}, which reach the grading machinery; graded "
                                  "answers may not use them")
            continue
        cell.source = mine.source
    release.cells.insert(0, nbformat.v4.new_code_cell(_SANDBOX, metadata={"tags": ["grader"]}))
    return release, problems


def _worker(notebook_in: str, record_out: str, cell_timeout: float) -> int:
    """Run inside the grading process: execute the notebook, recording each cell's outcome as it happens."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(notebook_in, as_version=4)
    record = open(record_out, "a", encoding="utf-8")

    def executed(cell, cell_index, execute_reply, **_):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        status = (execute_reply or {}).get("content", {}).get("status", "ok")
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        if errors and errors[0].get("ename") == "KeyboardInterrupt":  # the client interrupted it at the time limit
            errors[0] = {"ename": "stopped", "evalue": f"it ran past the time limit per cell ({cell_timeout:g} s); "
                         "look for a loop that never ends"}
        entry = {"index": cell_index, "grade_id": grade_id, "status": "error" if errors or status != "ok" else "ok",
                 "error": (f"{errors[0].get('ename')}: {errors[0].get('evalue')}" if errors else
                           ("interrupted (ran past the time limit per cell)" if status == "aborted" else None)),
                 "stdout": text[-2000:]}
        record.write(json.dumps(entry) + "\n")
        record.flush()

    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True, on_cell_executed=executed,
                            resources={"metadata": {"path": os.getcwd()}})
    try:
        client.execute()
    except DeadKernelError:
        record.write(json.dumps({"kernel_died": True}) + "\n")
        return 3
    finally:
        record.close()
    return 0


def _limit_memory(megabytes: int | None):
    def apply():
        os.setsid()
        if megabytes:
            import resource

            limit = int(megabytes) * 1024 * 1024
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    return apply


def grade_one(sub: Submission, release_path: Path, deny: list[Path], *, timeout: float, cell_timeout: float,
              memory_mb: int | None, profile: str, output_chars: int = 100_000) -> dict:
    """Execute one submission and score each exercise; never raises for what the submission holds."""
    import nbformat

    result = {"student": sub.student, "lesson": release_path.stem, "file": str(sub.path),
              "sha256": hashlib.sha256(sub.path.read_bytes()).hexdigest(), "exercises": {}, "points": 0.0,
              "max_points": 0.0, "reason": None, "seconds": 0.0}
    release = nbformat.read(release_path, as_version=4)
    grade_cells = _grade_cells(release)
    for gid, cell in grade_cells.items():
        result["max_points"] += float(cell.metadata["nbgrader"].get("points", 0))
    start = time.perf_counter()

    def finish(reason_all: str | None = None, records=(), problems=None):
        by_id = {r["grade_id"]: r for r in records if r.get("grade_id")}
        died = any(r.get("kernel_died") for r in records)
        for gid, cell in grade_cells.items():
            exercise = gid[:-len("-check")] if gid.endswith("-check") else gid
            points = float(cell.metadata["nbgrader"].get("points", 0))
            rec = by_id.get(gid)
            if problems and exercise in problems:
                score, why = 0.0, problems[exercise]
            elif reason_all:
                score, why = 0.0, reason_all
            elif rec is None:
                score, why = 0.0, ("the kernel died before this check ran (a crash, os._exit or too much memory)"
                                   if died else "this check never ran (the notebook stopped before it)")
            elif rec["status"] == "ok":
                score, why = points, None
            else:
                answer = by_id.get(exercise)  # the answer cell itself failed: that is the reason, not the check's NameError
                score, why = 0.0, (f"the answer cell failed: {answer['error']}" if answer and answer["status"] == "error"
                                   else _feedback(rec))
            result["exercises"][exercise] = {"points": score, "max_points": points, "feedback": why}
            result["points"] += score
        if reason_all:
            result["reason"] = reason_all
        elif died:
            result["reason"] = "the kernel died (a crash, os._exit, or more memory than allowed)"
        result["seconds"] = round(time.perf_counter() - start, 1)
        return result

    try:
        notebook, problems = prepare(release_path, sub.path)
    except Exception as exc:  # noqa: BLE001 - not JSON, not a notebook: a reason, not a crash
        return finish(f"the file is not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})")

    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        work = Path(tmp) / "work"
        (work / "tmp").mkdir(parents=True)
        nb_in, record = Path(tmp) / "run.ipynb", Path(tmp) / "record.jsonl"
        nbformat.write(notebook, nb_in)
        from .paths import CACHE_ENV_VAR, cache_dir

        cache = cache_dir()
        settings = {"deny": [str(p) for p in deny] + [str(Path(tmp))], "write": [str(cache)],
                    "output_chars": output_chars}
        settings["deny"] = [d for d in settings["deny"] if d != str(Path(tmp))]  # its own run files are fine
        env = {**os.environ, "TRANSFER_COURSE_GRADING": "1", "TRANSFER_COURSE_PROFILE": profile,
               "TRANSFER_COURSE_CHECK_TIMEOUT": str(max(1.0, min(120.0, cell_timeout / 2))),
               CACHE_ENV_VAR: str(cache), "HOME": str(work), "TMPDIR": str(work / "tmp"),
               "MPLCONFIGDIR": str(work / ".matplotlib"), "PYTHONHASHSEED": "0", GRADER_ENV: json.dumps(settings),
               "TF_CPP_MIN_LOG_LEVEL": "2"}
        env.pop("NBGRADER_EXECUTION", None)
        cmd = [sys.executable, "-m", "transfer_course.grading", str(nb_in), str(record), str(cell_timeout)]
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                preexec_fn=_limit_memory(memory_mb))
        timed_out = False
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        records = []
        if record.exists():
            for line in record.read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    records.append(json.loads(line))
        if timed_out:
            ran = {r.get("grade_id") for r in records}
            res = finish(None, records, problems)
            for exercise, entry in res["exercises"].items():
                if entry["feedback"] and f"{exercise}-check" not in ran and not (problems and exercise in problems):
                    entry["feedback"] = f"the notebook ran past its time limit ({timeout:g} s) before this check"
            res["reason"] = f"stopped after {timeout:g} s (the limit per notebook)"
            return res
        if proc.returncode not in (0, 3) and not records:
            return finish(f"the grading process failed ({(err or b'').decode(errors='replace').strip()[-300:]})")
        return finish(None, records, problems)


def _feedback(record: dict) -> str:
    """The message a failed check printed (what the student saw), else the error."""
    lines = [line.strip() for line in (record.get("stdout") or "").splitlines() if line.strip().startswith("❌")
             or line.strip().startswith("⏭")]
    if lines:
        return lines[-1]
    return record.get("error") or "the check cell failed"


def _gradebook_paths(out: Path) -> tuple[Path, Path]:
    return out / "gradebook.csv", out / "gradebook.json"


def check_gradebook_folder(out: str | Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise GradingError(f"The gradebook folder {out} cannot be written ({exc.strerror or exc}). Pass --out with a "
                           "folder you can write.") from None
    return out


def grade(submissions: str | Path, *, lesson: str | None = None, source: str | Path | None = None,
          out: str | Path = "gradebook", timeout: float = 900, cell_timeout: float = 300, jobs: int = 1,
          memory_mb: int | None = 4096, profile: str = "quick", force: bool = False, progress: bool = True) -> dict:
    """Grade every submission under ``submissions``; write and return the gradebook (see the module's doc)."""
    for name, value in (("timeout", timeout), ("cell_timeout", cell_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise GradingError(f"--{name.replace('_', '-')} must be a positive number of seconds; received {value!r}.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise GradingError(f"--jobs must be a positive integer; received {jobs!r}.")
    if memory_mb is not None and (not isinstance(memory_mb, int) or memory_mb < 256):
        raise GradingError(f"--memory-mb must be at least 256 (a lesson needs about 1500); received {memory_mb!r}.")
    from .profiles import get_profile

    profile = get_profile(profile).name
    releases = release_folder(source)
    lessons = sorted(p.stem for p in releases.glob("*.ipynb"))
    if lesson is not None and lesson not in lessons:
        from .errors import choices_message

        raise GradingError(choices_message("lesson", lesson, lessons))
    subs = find_submissions(submissions, lessons, lesson)
    out = check_gradebook_folder(out)
    csv_path, json_path = _gradebook_paths(out)
    book = {}
    if json_path.exists() and not force:
        with contextlib.suppress(json.JSONDecodeError, OSError):
            book = {e["file"] + "|" + e["sha256"]: e for e in json.loads(json_path.read_text())["submissions"]}
    deny = [Path(submissions).resolve(), out.resolve(), (_course_root() / "solutions").resolve()]

    results, todo = [], []
    for sub in subs:
        target = lesson or sub.lesson
        if target is None or target not in lessons or (lesson is not None and sub.lesson not in (None, lesson)):
            why = (f"a notebook for another lesson ({sub.lesson}), not {lesson}" if sub.lesson and lesson else
                   f"{sub.lesson} is not among the released lessons in {releases}" if sub.lesson else
                   "it cannot be told which lesson this notebook answers (name it after the lesson, e.g. "
                   f"{lessons[0]}.ipynb, or pass --lesson)")
            results.append({"student": sub.student, "lesson": sub.lesson, "file": str(sub.path), "sha256": "",
                            "exercises": {}, "points": 0.0, "max_points": 0.0, "reason": why, "seconds": 0.0,
                            "graded": False})
            continue
        digest = hashlib.sha256(sub.path.read_bytes()).hexdigest()
        previous = book.get(f"{sub.path}|{digest}")
        if previous is not None and previous.get("lesson") == target:
            results.append({**previous, "skipped": True})
            continue
        todo.append((sub, releases / f"{target}.ipynb"))

    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="grading", unit="notebook")
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(grade_one, sub, release, deny, timeout=timeout, cell_timeout=cell_timeout,
                               memory_mb=memory_mb, profile=profile): sub for sub, release in todo}
        for future in concurrent.futures.as_completed(futures):
            results.append({**future.result(), "graded": True})
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    results.sort(key=lambda r: (r["student"], str(r["lesson"])))
    _write_gradebook(results, csv_path, json_path)
    return {"submissions": results, "csv": str(csv_path), "json": str(json_path)}


def _write_gradebook(results: list[dict], csv_path: Path, json_path: Path) -> None:
    exercises = sorted({e for r in results for e in r["exercises"]})
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "lesson", "points", "max_points", *exercises, "reason", "file"])
        for r in results:
            writer.writerow([r["student"], r["lesson"] or "", r["points"], r["max_points"],
                             *[r["exercises"].get(e, {}).get("points", "") for e in exercises], r["reason"] or "",
                             r["file"]])
    os.replace(tmp, csv_path)
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"submissions": results}, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, json_path)


def summary_table(book: dict) -> str:
    rows = [("student", "lesson", "score", "note")]
    for r in book["submissions"]:
        wrong = [f"{e}: {v['feedback']}" for e, v in r["exercises"].items() if v["feedback"]]
        note = r.get("reason") or (wrong[0] if wrong else "")
        if r.get("skipped"):
            note = "(graded before) " + note
        rows.append((r["student"], str(r["lesson"] or "?"), f"{r['points']:g}/{r['max_points']:g}", note[:70]))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(f"{a:{widths[0]}}  {b:{widths[1]}}  {c:>{widths[2]}}  {d}" for a, b, c, d in rows)


if __name__ == "__main__":  # the grading process: python -m transfer_course.grading RUN.ipynb RECORD.jsonl CELL_TIMEOUT
    sys.exit(_worker(sys.argv[1], sys.argv[2], float(sys.argv[3])))
