"""Fixtures for the converge tests: the cached rootfs and an SSH key for the throwaway hosts
(tests/playbooks/testhosts.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.playbooks.testhosts import build_rootfs
from usecases.ops import Result

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def rootfs() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("test hosts boot with systemd-nspawn and need root")
    missing = [tool for tool in ("debootstrap", "systemd-nspawn", "ip", "ssh", "ssh-keygen")
               if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/testhosts.sh")
    # A CI timeout sends SIGTERM, which would end pytest without its teardown and leave the
    # containers running; as an interrupt, pytest still tears the hosts down.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    yield build_rootfs()
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cdl-tests",
                    "-f", str(key)], check=True)
    return key


def changed(result: Result) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in result.stats.items()}
