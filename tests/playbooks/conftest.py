"""Fixtures for the converge tests: the cached rootfs and an SSH key for the throwaway hosts
(tests/playbooks/testhosts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.playbooks.testhosts import build_rootfs
from usecases.ops import Result

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"


@pytest.fixture(scope="session")
def rootfs() -> Path:
    if os.geteuid() != 0:
        pytest.fail("test hosts boot with systemd-nspawn and need root")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "ip", "ssh", "ssh-keygen")
               if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/testhosts.sh")
    return build_rootfs()


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cdl-tests",
                    "-f", str(key)], check=True)
    return key


def changed(result: Result) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in result.stats.items()}
