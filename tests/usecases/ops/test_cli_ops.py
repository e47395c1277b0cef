"""`cdl ops` as an operator runs it, against this machine over Ansible's local connection."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from tests.cli import assert_one_line_error, cdl


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"here": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    playbook = tmp_path / "check-disk.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Disk", "hosts": "all", "gather_facts": False,
                                         "tasks": [{"name": "Compare free space",
                                                    "ansible.builtin.assert": {
                                                        "that": "need | int < 100",
                                                        "fail_msg": "need {{ need }} GB"}}]}]))
    return inventory, playbook


def test_ops_prints_the_recap(tmp_path: Path) -> None:
    inventory, playbook = _setup(tmp_path)
    secrets = tmp_path / "vars.yml"
    secrets.write_text("need: 5\n")
    run = cdl("ops", str(playbook), "--inventory", str(inventory), "-e", f"@{secrets}",
              home=tmp_path / "home")
    assert run.returncode == 0, run.stderr
    assert "here: ok=1 changed=0 failures=0 unreachable=0 skipped=0" in run.stdout
    assert "Compare free space" in run.stderr


def test_ops_fails_in_one_line_naming_host_and_task(tmp_path: Path) -> None:
    inventory, playbook = _setup(tmp_path)
    run = cdl("ops", str(playbook), "--inventory", str(inventory), "-e", "need=500",
              "--limit", "here", home=tmp_path / "home")
    assert_one_line_error(run, "on host here", "'Compare free space'", "need 500 GB")
