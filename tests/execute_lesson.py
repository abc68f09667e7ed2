"""Helper run as a script: execute one solution notebook in its own kernel and write the validation results it
reports (its ``results`` dict: numbers, nested in dicts; arrays are left out) as JSON. Used by test_lesson_results.py and benchmarks/lesson_seeds.py.

    python tests/execute_lesson.py solutions/02_feature_extraction_pytorch.ipynb OUT.json [SEED]
"""
import json
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

path, out = Path(sys.argv[1]), Path(sys.argv[2])
nb = nbformat.read(path, as_version=4)
if len(sys.argv) > 3:  # override the parameters cell, as papermill would
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(f"SEED = {int(sys.argv[3])}"))
nb.cells.append(nbformat.v4.new_code_cell(
    "import json, numbers\n"
    "def _plain(x):\n"
    "    if isinstance(x, dict):\n"
    "        return {str(k): _plain(v) for k, v in x.items() if _plain(v) is not None}\n"
    "    if isinstance(x, bool) or x is None:\n"
    "        return x\n"
    "    if isinstance(x, numbers.Number) or getattr(x, 'shape', None) == ():\n"
    "        return float(x)\n"
    "    return None  # arrays and objects (per-class tables, models) are not part of the summary\n"
    "print('RESULTS=' + json.dumps(_plain(results)))"))
start = time.perf_counter()
NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
text = "".join(o.get("text", "") for o in nb.cells[-1].outputs)
# C++ log lines (TensorFlow, absl) that reached a cell's output: a student sees each as a red block
native = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+\.cc:\d+\])")
log_lines = [f"cell {i}: {line[:200]}" for i, cell in enumerate(nb.cells) for o in cell.get("outputs", [])
             if o.get("name") == "stderr" for line in o.get("text", "").splitlines() if native.match(line)]
report = {"seconds": time.perf_counter() - start, "results": json.loads(text.split("RESULTS=", 1)[1]),
          "native_log_lines": log_lines}
out.write_text(json.dumps(report))
