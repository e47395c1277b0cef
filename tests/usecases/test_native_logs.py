"""TensorFlow's start-up lines stay off the user's stderr, and nothing else written there while
Keras is imported is lost (usecases/native_logs.py), in real processes importing the real
TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

PROGRAM = """
import sys, threading
from usecases.native_logs import import_keras
print("before", file=sys.stderr, flush=True)
def chatter():
    for n in range(300):
        print(f"line {n}", file=sys.stderr, flush=True)
thread = threading.Thread(target=chatter)
thread.start()
import_keras()
thread.join()
print("after", file=sys.stderr, flush=True)
"""


def _stderr(level: str) -> list[str]:
    run = subprocess.run([sys.executable, "-W", "ignore::FutureWarning", "-c", PROGRAM],
                         capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": level})
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stderr.splitlines()


def test_keras_imports_without_tensorflow_start_up_lines_and_loses_no_other_line() -> None:
    lines = _stderr("2")
    assert lines[0] == "before" and lines[-1] == "after"
    chatter = [line for line in lines if line.startswith("line ")]
    assert chatter == [f"line {n}" for n in range(300)]
    assert len(lines) == 302, [line for line in lines if not line.startswith("line ")]


def test_verbose_lets_them_through() -> None:
    lines = _stderr("0")
    assert any("oneDNN custom operations are on" in line for line in lines)
    assert any("absl::InitializeLog()" in line for line in lines)
    assert [line for line in lines if line.startswith("line ")] == [
        f"line {n}" for n in range(300)]
