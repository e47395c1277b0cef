"""The ``cdl`` command: parse, call the workflow, print. Errors print one line and exit nonzero."""

from __future__ import annotations

import os
import warnings

# each module registers its commands
from usecases.cli import cloud, data, maintain, report, services, smoke, status, workflow
from usecases.cli.common import app

__all__ = ["app", "cloud", "data", "main", "maintain", "report", "services", "smoke", "status",
           "workflow"]


def main() -> None:
    # TensorFlow's C++ start-up chatter and a Python-version notice from a Google library that
    # determined imports would bury the progress display.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    app(prog_name="cdl")

