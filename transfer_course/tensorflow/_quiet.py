"""Import TensorFlow without its C++ start-up notes in the notebook.

TensorFlow writes a few lines straight to file descriptor 2 while it loads, before its own logging is set up, so
``TF_CPP_MIN_LOG_LEVEL`` cannot hide them: absl's "All log messages before absl::InitializeLog() ..." note,
oneDNN's "custom operations are on" note, and on GPU machines (Colab) "Unable to register cuDNN/cuFFT/cuBLAS
factory" and TensorRT notes. Jupyter shows whatever reaches descriptor 2 as a red block under the cell.

``quiet_start_up()`` points descriptor 2 at a temporary file during the import and, afterwards, writes back every
line that is not one of those known notes, so nothing else is hidden (an import error still raises). With
``TF_CPP_MIN_LOG_LEVEL=0`` (the user asked for TensorFlow's messages) everything is written back.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

START_UP_NOTES = tuple(re.compile(p) for p in (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^[IW]\d{4} [\d:. ]+\d+ port\.cc:\d+\] oneDNN custom operations are on",
    r"^[EW]\d{4} [\d:. ]+\d+ cuda_(dnn|fft|blas)\.cc:\d+\] Unable to register cu(DNN|FFT|BLAS) factory",
    r"^[EW]\d{4} [\d:. ]+\d+ \w+\.cc:\d+\] computation placer already registered",
    r"^[IW]\d{4} [\d:. ]+\d+ cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized",
    r"^To enable the following instructions: .* in other operations, rebuild TensorFlow",
    r"^[\d-]+ [\d:.]+: W tensorflow/compiler/tf2tensorrt/.*TF-TRT Warning: Could not find TensorRT",
))


def is_start_up_note(line: str) -> bool:
    return any(p.search(line) for p in START_UP_NOTES)


@contextlib.contextmanager
def quiet_start_up():
    """Hold back TensorFlow's known start-up notes written to descriptor 2 inside the ``with`` block."""
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    if level < 1:
        yield
        return
    with tempfile.TemporaryFile() as caught:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [line for line in caught.read().decode("utf-8", "replace").splitlines()
                    if not is_start_up_note(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)
