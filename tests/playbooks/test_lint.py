"""Static checks of playbooks/: ansible-lint's production profile (offline), yamllint, and
Ansible's own syntax check of every playbook."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.playbooks.conftest import PLAYBOOKS

BIN = Path(sys.executable).parent
PLAYBOOK_FILES = sorted([*PLAYBOOKS.glob("*.yml"), *(PLAYBOOKS / "day2").glob("*.yml")])


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=PLAYBOOKS, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                               "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
                               "NO_COLOR": "1"})


def test_ansible_lint_production_profile() -> None:
    lint = _run(str(BIN / "ansible-lint"), "--offline", "--profile", "production")
    assert lint.returncode == 0, lint.stdout[-4000:] + lint.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in lint.stderr


def test_yamllint() -> None:
    lint = _run(str(BIN / "yamllint"), "--strict", ".")
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("playbook", PLAYBOOK_FILES, ids=lambda p: p.stem)
def test_syntax_check(playbook: Path) -> None:
    check = _run(str(BIN / "ansible-playbook"), "--syntax-check",
                 "-i", "inventory/hosts.example.yml", str(playbook))
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_playbook_is_checked() -> None:
    names = {p.stem for p in PLAYBOOK_FILES}
    assert {"site", "nvidia-upgrade", "microk8s-upgrade", "add-node", "remove-node",
            "postgres-backup", "postgres-restore", "rolling-reboot"} <= names
