"""Fixtures that boot throwaway Debian 12 hosts (tests/playbooks/testhosts.py) and run the
playbooks on them through the same ansible-runner wrapper `cdl ops` uses."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.playbooks.testhosts import TestHost, build_rootfs, debian_sources, host_apt_sources
from usecases.ops import Result, run_playbook

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = REPO / "playbooks"
SSH_OPTIONS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"


@dataclass
class Fleet:
    """Booted hosts and an inventory that reaches them over SSH, as the stack's would."""

    hosts: dict[str, TestHost]
    inventory: Path
    key: Path

    def run(self, playbook: str, **options: Any) -> Result:
        return run_playbook(playbook, inventory=self.inventory, **options)

    def ssh(self, name: str, command: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ssh", *SSH_OPTIONS.split(), "-o", "BatchMode=yes",
                               "-i", str(self.key), *extra,
                               f"debian@{self.hosts[name].address}", command],
                              capture_output=True, text=True, timeout=120)


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


@contextlib.contextmanager
def fleet(rootfs: Path, key: Path, workdir: Path, layout: Mapping[str, Sequence[str]],
          first_index: int, group_vars: Mapping[str, Any] | None = None) -> Iterator[Fleet]:
    """Boot one host per LAYOUT entry (name -> inventory groups); always tear them all down."""
    sources = debian_sources(host_apt_sources())
    hosts = {name: TestHost(name, first_index + i, workdir / name, key.with_suffix(".pub")
                            .read_text()) for i, name in enumerate(layout)}
    try:
        for host in hosts.values():
            host.start(rootfs, sources)
        groups: dict[str, Any] = {}
        for name, names in layout.items():
            for group in names:
                groups.setdefault(group, {"hosts": {}})["hosts"][name] = None
        inventory = workdir / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {
            "vars": {"ansible_user": "debian", "ansible_ssh_private_key_file": str(key),
                     "ansible_ssh_common_args": SSH_OPTIONS, **(group_vars or {})},
            "hosts": {name: {"ansible_host": host.address} for name, host in hosts.items()},
            "children": groups}}))
        yield Fleet(hosts, inventory, key)
    finally:
        for host in hosts.values():
            host.stop()


def changed(result: Result) -> dict[str, int]:
    return {host: counts["changed"] for host, counts in result.stats.items()}
