"""TensorFlow's start-up lines kept off the user's terminal.

TensorFlow 2.21 logs "oneDNN custom operations are on" through absl before absl is initialised,
with absl's notice that such messages go to stderr; ``TF_CPP_MIN_LOG_LEVEL`` does not reach
them, and turning oneDNN off to avoid them costs 10-25 % of a Fashion-MNIST epoch here
(benchmarks/fmnist_epoch.py). So Keras is imported with the process's stderr (file descriptor
2, where C++ writes) read through a pipe that drops just those lines and passes everything else
on in order: a progress display or another thread writing meanwhile loses nothing.
``TF_CPP_MIN_LOG_LEVEL=0`` (``cdl demo --verbose``) lets them through, and TensorFlow's Python
warnings with them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

NOISE = re.compile(rb"^(WARNING: All log messages before absl::InitializeLog\(\) is called are "
                   rb"written to STDERR|I\d{4} [^\]]*port\.cc:\d+\] oneDNN custom operations "
                   rb"are on\b.*)$")


def import_keras() -> ModuleType:
    """``keras`` (and TensorFlow under it), imported without TensorFlow's start-up lines."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with filtered_stderr():
        import keras
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0":
        # its Python side too: "5 out of the last 9 calls ... triggered tf.function retracing"
        # when compression evaluates each candidate is a performance hint, not the user's
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return keras


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    read, write = os.pipe()
    terminal = os.dup(2)
    os.dup2(write, 2)
    os.close(write)

    def forward() -> None:
        pending = b""
        with os.fdopen(read, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
                if kept:
                    os.write(terminal, kept)
        if pending and not NOISE.match(pending):
            os.write(terminal, pending)

    thread = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # the pipe's last writer gone: the reader ends
        thread.join(timeout=5)
        if not thread.is_alive():  # else a child started meanwhile still holds the pipe
            os.close(terminal)
