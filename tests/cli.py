"""``cdl`` as a user runs it, for the tests: its own CDL_HOME, the embedded database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def environment(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a ``cdl`` on ``home`` (never a configured database)."""
    env = {k: v for k, v in os.environ.items() if k != "CDL_DATABASE_URL"}
    return {**env, "CDL_HOME": str(home), **(extra or {})}


def cdl(*args: str, home: Path,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "usecases.cli", *args], capture_output=True,
                          text=True, env=environment(home, env), timeout=900, check=False)


# Run ARGV with SIGINT at its default disposition, as a terminal's foreground process has it.
_FOREGROUND = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.argv[1], sys.argv[1:])")


def interruptible(argv: list[str]) -> list[str]:
    """``argv`` as Ctrl-C reaches it in a terminal. Tests that interrupt a ``cdl`` need it: run
    as a background job (``&`` in a non-interactive shell, as CI may), the tests inherit SIGINT
    ignored, and so would that ``cdl``, which Python then gives no KeyboardInterrupt."""
    return [sys.executable, "-c", _FOREGROUND, *argv]


def assert_one_line_error(run: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    for needle in needles:
        assert needle in errors[0]
    assert "Fix:" in errors[0]
