"""``cdl status``: which embedded services run and where, where their credentials are, and the
latest version of each model with its gate verdict.

Read-only: it starts nothing and takes no lock, so it answers at once while a run writes. Each
service is found through the record its starter leaves in CDL_HOME; the models need the
database, and are reported unknown while it is down rather than starting it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table

from usecases.cli.common import app, guarded
from usecases.state import Holder, State, alive


@dataclass
class Service:
    running: bool
    pid: int | None = None
    address: str | None = None  # a unix socket's path or an http:// URL on 127.0.0.1
    credentials: str | None = None  # the file a person or client logs in with, if made
    note: str | None = None


@dataclass
class LatestModel:
    name: str
    version: int
    usecase: str
    test_accuracy: float | None
    gate_threshold: float | None
    gate: str  # passed, failed, or not evaluated
    packaged: int | None  # the version `cdl serve` serves, if one is packaged


@dataclass
class Status:
    home: str
    writer: Holder | None
    services: dict[str, Service]
    database: str  # where the workflow's database is (never its password)
    models: list[LatestModel] | None  # None: unknown, `models_note` says why
    models_note: str | None


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def postgresql(state: State) -> Service:
    from usecases.stores.database import PORT, EmbeddedPostgres

    server = EmbeddedPostgres(state)
    password = _existing(state.secrets / "postgres-password")
    if not server.is_running():
        return Service(False, credentials=password)
    try:
        # postmaster.pid: pid, data directory, start time, port, socket directory, ...
        lines = [line.strip() for line in
                 (server.data_dir / "postmaster.pid").read_text().splitlines()]
    except OSError:  # it stopped since
        return Service(False, credentials=password)
    pid = int(lines[0]) if lines and lines[0].isdigit() else None
    port = lines[3] if len(lines) > 3 and lines[3] else str(PORT)
    socket_dir = lines[4] if len(lines) > 4 and lines[4] else str(server.socket_dir)
    return Service(True, pid, f"{socket_dir}/.s.PGSQL.{port}", password)


def label_studio(state: State) -> Service:
    from usecases.stores.labelstudio import CREDENTIALS, EmbeddedLabelStudio, healthy

    # the record EmbeddedLabelStudio.start writes and reads back; it needs no database here
    record = _read_json(EmbeddedLabelStudio(state, conninfo="").pid_file) or {}
    login = _existing(state.secrets / CREDENTIALS)
    try:
        pid, port = int(record["pid"]), int(record["port"])
    except (TypeError, KeyError, ValueError):
        return Service(False, credentials=login)
    if not alive(pid):
        return Service(False, credentials=login)
    url = f"http://127.0.0.1:{port}"
    note = None if healthy(url, timeout=1.0) else "not answering yet (starting, or hung)"
    return Service(True, pid, url, login, note)


def mlserver(state: State) -> tuple[Service, dict[str, int]]:
    """The server, and the version in each model folder it serves (or `cdl serve` would)."""
    from usecases.workflow.deploy import (
        SERVER_RECORD,
        packaged_versions,
        process_running,
        served_models,
    )

    repository = served_models(state)
    packaged = packaged_versions(repository)
    record = _read_json(repository / SERVER_RECORD) or {}
    try:
        pid, owner = int(record["pid"]), int(record["owner"])
    except (TypeError, KeyError, ValueError):
        return Service(False), packaged
    if not process_running(pid, "mlserver"):
        return Service(False), packaged
    settings = _read_json(repository / "settings.json") or {}
    host = settings.get("host", "127.0.0.1")
    address = (f"http://{host}:{settings.get('http_port', '?')}, "
               f"gRPC {host}:{settings.get('grpc_port', '?')}")
    note = None if alive(owner) else ("left by a `cdl` that was killed: the next `cdl serve` "
                                       "stops it")
    return Service(True, pid, address, note=note), packaged


def latest_models(state: State, database_up: bool,
                  packaged: dict[str, int]) -> tuple[list[LatestModel] | None, str | None]:
    from usecases.errors import CDLError
    from usecases.stores.database import Database, EmbeddedPostgres
    from usecases.stores.registry import LocalModelRegistry

    url = os.environ.get("CDL_DATABASE_URL")
    if not url and not database_up:
        return None, "database not running: start it with `cdl db start`"
    # Not migrated first, as the workflow's commands do: a migration writes, and a database
    # none has reached holds no models to show.
    registry = LocalModelRegistry(Database(url or EmbeddedPostgres(state).conninfo()),
                                  state.models)
    try:
        latest = registry.latest()
    except CDLError as exc:
        return None, exc.problem
    return [LatestModel(v.name, v.version, v.usecase, v.test_accuracy, v.gate_threshold,
                        _verdict(v.gate_passed), packaged.get(v.name))
            for v in latest], None


def _verdict(passed: bool | None) -> str:
    return "not evaluated" if passed is None else "passed" if passed else "failed"


def collect(state: State) -> Status:
    from usecases.stores.database import redact

    served, packaged = mlserver(state)
    services = {"postgresql": postgresql(state), "label_studio": label_studio(state),
                "mlserver": served}
    url = os.environ.get("CDL_DATABASE_URL")
    database = f"CDL_DATABASE_URL ({redact(url)})" if url else "the embedded PostgreSQL"
    models, note = latest_models(state, services["postgresql"].running, packaged)
    return Status(str(state.home), state.holder(), services, database, models, note)


NAMES = {"postgresql": "PostgreSQL", "label_studio": "Label Studio", "mlserver": "MLServer"}


def show(status: Status, out: Console) -> None:
    out.print(f"CDL_HOME {status.home}", highlight=False)
    if (writer := status.writer) is not None:
        out.print(f"writing to it: `{writer['command']}` (pid {writer['pid']}, since "
                  f"{writer['since'] or '?'})", highlight=False)
    services = Table("service", "state", "pid", Column("listens on", overflow="fold"))
    for key, service in status.services.items():
        state = "[green]running[/green]" if service.running else "[dim]stopped[/dim]"
        services.add_row(NAMES[key], state, str(service.pid or ""), service.address or "")
    out.print(services)
    for key, service in status.services.items():
        if service.note:
            out.print(f"  {NAMES[key]}: {service.note}", highlight=False, soft_wrap=True)
    out.print("credentials (files, owner-only):", highlight=False)
    for key, service in status.services.items():
        if key != "mlserver":
            out.print(f"  {NAMES[key]}: {service.credentials or 'not created yet'}",
                      highlight=False, soft_wrap=True)
    out.print(f"models, from {status.database}:", highlight=False)
    if status.models is None:
        out.print(f"  unknown ({status.models_note})", highlight=False, soft_wrap=True)
        return
    if not status.models:
        out.print("  none registered yet: `cdl demo` trains and registers them")
        return
    models = Table("model", "latest", "use case", "test accuracy", "gate", "packaged")
    for model in status.models:
        colour = {"passed": "green", "failed": "red"}.get(model.gate, "yellow")
        threshold = f" (≥ {model.gate_threshold:g})" if model.gate_threshold is not None else ""
        accuracy = f"{model.test_accuracy:.3f}" if model.test_accuracy is not None else "—"
        models.add_row(model.name, f"v{model.version}", model.usecase, accuracy,
                       f"[{colour}]{model.gate}[/{colour}]{threshold}",
                       f"v{model.packaged}" if model.packaged is not None else "—")
    out.print(models)


@app.command(rich_help_panel="Embedded services")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Which services run and where, and each model's latest version and gate verdict.

    Credentials files by path only. Starts nothing, never waits for a run that writes."""
    found: Status = guarded(lambda: collect(State.from_env()))
    if as_json:
        print(json.dumps(asdict(found), indent=2))
    else:
        show(found, Console())
