"""Imports run one way and stay light: the commands that do not train or serve load no ML
framework, and the Pulumi program (``stacks``) never imports the toolkit (``usecases``)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import REPO

HEAVY = ("torch", "tensorflow", "keras", "optuna", "mlserver", "determined")

# Runs one `cdl` command in this process and prints which heavy packages it loaded.
PROBE = """
import json, sys
from usecases.cli import app
try:
    app(sys.argv[1:], prog_name="cdl")
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))))
"""


@pytest.mark.parametrize("args", [
    ["--help"],
    ["db", "status"],
    ["db", "check"],
    ["ops", "no-such-playbook"],
    ["preflight", "--stack", "no-such-stack"],
    ["scoring", "--help"],
    ["status"],
    ["data", "fetch", "fmnist"],
])
def test_commands_that_neither_train_nor_serve_load_no_ml_framework(
        tmp_path: Path, args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CDL_DATABASE_URL"}
    env["CDL_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
                          check=False)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"`cdl {' '.join(args)}` imported {loaded}"
    assert "Traceback" not in done.stderr


def _imported(root: Path) -> dict[Path, set[str]]:
    """Top-level packages each Python file under ``root`` imports."""
    found: dict[Path, set[str]] = {}
    for path in root.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
        found[path] = names
    return found


def test_the_pulumi_program_never_imports_the_toolkit() -> None:
    offenders = [p for p, names in _imported(REPO / "stacks").items() if "usecases" in names]
    assert offenders == []
    # ...and names it only as the `cdl` command, never as a module to run
    assert not [p for p in (REPO / "stacks").rglob("*.py") if "usecases." in p.read_text()]


def test_only_the_cloud_commands_reach_into_the_program() -> None:
    users = sorted(p.relative_to(REPO).as_posix()
                   for p, names in _imported(REPO / "usecases").items() if "stacks" in names)
    assert users == ["usecases/cloud/preflight.py"]
