"""The ansible-runner wrapper, run for real against this machine over Ansible's local
connection: progress streams, the recap is read back, failures name the host and task."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from usecases.errors import CDLError
from usecases.ops import Progress, resolve_playbook, run_playbook
from usecases.ops.runner import PLAYBOOKS


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {"here": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    return path


def _playbook(tmp_path: Path, tasks: list[dict[str, object]]) -> Path:
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump([{"name": "Play", "hosts": "all", "gather_facts": False,
                                     "tasks": tasks}]))
    return path


def test_success_returns_the_recap_and_streams_progress(tmp_path: Path, inventory: Path) -> None:
    marker = tmp_path / "marker"
    playbook = _playbook(tmp_path, [
        {"name": "Write a file", "ansible.builtin.copy": {"content": "{{ word }}",
                                                          "dest": str(marker)}},
        {"name": "Look at it", "ansible.builtin.stat": {"path": str(marker)}}])
    seen: list[Progress] = []
    result = run_playbook(playbook, inventory=inventory, extravars={"word": "hello"},
                          on_progress=seen.append)
    assert result.rc == 0
    assert result.stats["here"]["changed"] == 1 and result.stats["here"]["failures"] == 0
    assert marker.read_text() == "hello"
    assert [(p.task, p.status) for p in seen] == [
        ("Write a file", "start"), ("Write a file", "changed"),
        ("Look at it", "start"), ("Look at it", "ok")]
    # Idempotent second run, in check mode.
    again = run_playbook(playbook, inventory=inventory, extravars={"word": "hello"}, check=True)
    assert again.total("changed") == 0


def test_failure_names_host_and_task(tmp_path: Path, inventory: Path) -> None:
    playbook = _playbook(tmp_path, [
        {"name": "Fine", "ansible.builtin.command": "true", "changed_when": False},
        {"name": "Break here", "ansible.builtin.fail": {"msg": "disk full"}}])
    with pytest.raises(CDLError) as error:
        run_playbook(playbook, inventory=inventory)
    assert error.value.problem == "play.yml failed on host here at task 'Break here': disk full"
    assert "--limit here" in error.value.fix


def test_ignored_errors_do_not_fail(tmp_path: Path, inventory: Path) -> None:
    playbook = _playbook(tmp_path, [{"name": "May fail", "ansible.builtin.command": "false",
                                     "ignore_errors": True, "changed_when": False}])
    assert run_playbook(playbook, inventory=inventory).rc == 0


def test_unreachable_host_is_named(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    # Port 9 on 127.0.0.1: nothing listens there, so SSH is refused at once.
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"gone": {
        "ansible_host": "127.0.0.1", "ansible_port": 9}}}}))
    playbook = _playbook(tmp_path, [{"name": "Reach it", "ansible.builtin.ping": {}}])
    with pytest.raises(CDLError, match="on host gone at task 'Reach it'"):
        run_playbook(playbook, inventory=inventory)


def test_a_playbook_that_does_not_parse(tmp_path: Path, inventory: Path) -> None:
    playbook = tmp_path / "broken.yml"
    playbook.write_text("- hosts: all\n  tasks:\n    - no_such_module: {}\n")
    with pytest.raises(CDLError, match="failed before any task ran"):
        run_playbook(playbook, inventory=inventory)


def test_missing_inventory_says_how_to_write_it(tmp_path: Path) -> None:
    with pytest.raises(CDLError) as error:
        run_playbook("site", inventory=tmp_path / "nowhere.yml")
    assert "pulumi stack output inventory" in error.value.fix


@pytest.mark.parametrize("name", ["site", "rolling-reboot", "day2/rolling-reboot.yml",
                                  "postgres-backup"])
def test_playbook_names(name: str) -> None:
    assert resolve_playbook(name).is_relative_to(PLAYBOOKS)


def test_unknown_playbook_lists_the_known_ones() -> None:
    with pytest.raises(CDLError) as error:
        resolve_playbook("reboot-everything")
    assert "rolling-reboot" in error.value.fix and "site" in error.value.fix
