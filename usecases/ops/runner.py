"""Run a CDL playbook through ansible-runner: progress as it happens, a result with the play
recap, and a CDLError naming the failing host and task when something fails.

Used by `cdl ops PLAYBOOK` and by the Pulumi program (through a local command).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usecases.errors import CDLError

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
DEFAULT_INVENTORY = PLAYBOOKS / "inventory" / "hosts.yml"


@dataclass(frozen=True)
class Progress:
    """One line of progress: a task starting, or a host's result for it."""

    host: str
    task: str
    status: str  # "start", "ok", "changed", "skipped", "failed", "unreachable"
    message: str = ""


@dataclass(frozen=True)
class Failure:
    host: str
    task: str
    message: str


@dataclass
class Result:
    playbook: Path
    rc: int
    seconds: float
    # Per-host counts from the play recap: ok, changed, failures, unreachable, skipped.
    stats: dict[str, dict[str, int]]
    failures: list[Failure] = field(default_factory=list)

    def total(self, counter: str) -> int:
        return sum(host.get(counter, 0) for host in self.stats.values())


def _path() -> str:
    """PATH with this Python's bin directory (the venv's ansible-playbook) first."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    if shutil.which("ansible-playbook", path=path) is None:
        raise CDLError("ansible-playbook is not installed",
                       "install the cloud extra: pip install -e '.[cloud]'")
    return path


def resolve_playbook(name: str, root: Path = PLAYBOOKS) -> Path:
    """`site`, `rolling-reboot`, `day2/rolling-reboot.yml` or a path, to the playbook file."""
    candidates = [Path(name), root / name, root / f"{name}.yml",
                  root / "day2" / name, root / "day2" / f"{name}.yml"]
    for candidate in candidates:
        if candidate.is_file() and candidate.suffix in (".yml", ".yaml"):
            return candidate.resolve()
    known = sorted(p.stem for p in [*root.glob("*.yml"), *(root / "day2").glob("*.yml")])
    raise CDLError(f"no playbook {name!r} in {root}", f"choose one of: {', '.join(known)}")


def _message(result: Mapping[str, Any]) -> str:
    text = str(result.get("msg") or result.get("stderr") or result.get("reason") or "").strip()
    return " ".join(text.split())[:500]


class _Events:
    """Turns ansible-runner's event stream into Progress callbacks and a list of failures."""

    def __init__(self, on_progress: Callable[[Progress], None] | None) -> None:
        self.on_progress = on_progress
        self.failures: list[Failure] = []

    def __call__(self, event: dict[str, Any]) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        task = str(data.get("task", ""))
        host = str(data.get("host", ""))
        result = data.get("res") or {}
        status = {"runner_on_ok": "changed" if result.get("changed") else "ok",
                  "runner_on_skipped": "skipped", "runner_on_failed": "failed",
                  "runner_on_unreachable": "unreachable",
                  "playbook_on_task_start": "start"}.get(kind)
        if kind == "runner_on_failed" and data.get("ignore_errors"):
            status = "ok"
        if status in ("failed", "unreachable"):
            self.failures.append(Failure(host, task, _message(result)))
        if status is not None and self.on_progress is not None:
            message = _message(result) if status in ("failed", "unreachable") else ""
            self.on_progress(Progress(host, task, status, message))
        # ansible-runner stores an event only when this returns True: the recap (runner.stats)
        # is all we read back.
        return kind == "playbook_on_stats"


def run_playbook(playbook: str | Path, *, inventory: str | Path | None = None,
                 limit: str | None = None, extravars: Mapping[str, Any] | None = None,
                 check: bool = False, tags: Sequence[str] = (), skip_tags: Sequence[str] = (),
                 envvars: Mapping[str, str] | None = None,
                 on_progress: Callable[[Progress], None] | None = None) -> Result:
    """Run PLAYBOOK against INVENTORY (the stack's inventory file by default).

    Raises CDLError naming the first failing host and task when the run fails.
    """
    import ansible_runner  # slow to import; only `cdl ops` and the Pulumi program need it

    path = resolve_playbook(str(playbook))
    inventory_path = Path(inventory) if inventory is not None else DEFAULT_INVENTORY
    if not inventory_path.exists():
        raise CDLError(f"no inventory at {inventory_path}",
                       "write the stack's with `pulumi stack output inventory > "
                       "playbooks/inventory/hosts.yml`, or pass --inventory")
    events = _Events(on_progress)
    cmdline = ["--check"] if check else []
    # ansible-runner writes extravars (not on the command line, where `ps` shows them) and
    # artifacts under its private data dir: a fresh 0700 one per run, removed afterwards.
    private = Path(tempfile.mkdtemp(prefix="cdl-ops-"))
    started = time.monotonic()
    try:
        runner = ansible_runner.run(
            private_data_dir=str(private), playbook=str(path),
            project_dir=str(PLAYBOOKS), inventory=str(inventory_path.resolve()),
            limit=limit, extravars=dict(extravars or {}), cmdline=" ".join(cmdline) or None,
            tags=",".join(tags) or None, skip_tags=",".join(skip_tags) or None,
            envvars={"ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"), "PATH": _path(),
                     **(envvars or {})},
            event_handler=events, quiet=True)
        stdout = runner.stdout.read() if runner.rc != 0 else ""
        stats = runner.stats or {}
    finally:
        shutil.rmtree(private, ignore_errors=True)
    counters = ("ok", "changed", "failures", "dark", "skipped")
    hosts = {host for counter in counters for host in stats.get(counter, {})}
    result = Result(path, int(runner.rc), time.monotonic() - started,
                    {host: {("unreachable" if c == "dark" else c): stats.get(c, {}).get(host, 0)
                            for c in counters} for host in sorted(hosts)},
                    events.failures)
    if result.rc != 0:
        raise _failure(result, stdout)
    return result


def _failure(result: Result, stdout: str) -> CDLError:
    name = result.playbook.name
    if result.failures:
        first = result.failures[0]
        more = f" (and {len(result.failures) - 1} more)" if len(result.failures) > 1 else ""
        return CDLError(f"{name} failed on host {first.host} at task {first.task!r}: "
                        f"{first.message}{more}",
                        f"fix the cause on {first.host}, then rerun `cdl ops {result.playbook.stem}"
                        f" --limit {first.host}`")
    # No task failed: the playbook did not parse, or no host matched.
    lines = [line for line in stdout.splitlines() if line.strip()]
    detail = " ".join(lines[-3:])[:500] if lines else f"exit status {result.rc}"
    return CDLError(f"{name} failed before any task ran: {detail}",
                    "check the playbook and inventory with `ansible-playbook --syntax-check`")
