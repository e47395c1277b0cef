"""The embedded services' commands: ``cdl db`` and ``cdl studio``."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from usecases.cli.common import (
    StudioPortOpt,
    app,
    console,
    guarded,
)
from usecases.state import State
from usecases.stores.labelstudio import DEFAULT_PORT

db_app = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.")
app.add_typer(db_app, name="db", rich_help_panel="Embedded services")
studio_app = typer.Typer(no_args_is_help=True, help="The embedded Label Studio server.")
app.add_typer(studio_app, name="studio", rich_help_panel="Embedded services")


@db_app.command("start")
def db_start() -> None:
    """Start the embedded server and leave it running (later commands reuse it)."""
    from usecases.stores.database import Database, EmbeddedPostgres

    def action() -> None:
        server = EmbeddedPostgres(State.from_env())
        if not server.is_running():
            server.start()
        Database(server.conninfo()).migrate()
        console.print(f"PostgreSQL running; socket in {server.socket_dir}, "
                      f"password in {server.state.secrets / 'postgres-password'}")

    guarded(action)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    from usecases.stores.database import EmbeddedPostgres

    guarded(lambda: EmbeddedPostgres(State.from_env()).stop())


@db_app.command("check")
def db_check(
    repair: Annotated[bool, typer.Option("--repair", help="Fix what is safe to fix (waits "
                                         "for no run: refuses while one writes).")] = False,
) -> None:
    """Find what an interrupted run left inconsistent in CDL_HOME; exit 1 if anything is
    left unrepaired."""
    from usecases.stores.check import check
    from usecases.stores.local import open_stores

    def action() -> Any:
        state = State.from_env()
        with contextlib.ExitStack() as held:
            if repair:
                held.enter_context(state.writer("cdl db check --repair"))
            elif (holder := state.holder()) is not None:
                console.print(f"[yellow]note:[/yellow] `{holder['command']}` (pid "
                              f"{holder['pid']}) is writing to CDL_HOME: its work in "
                              "progress may show below", highlight=False)
            stores = held.enter_context(open_stores(state))
            return check(state, stores, repair)

    report = guarded(action)
    for finding in report.findings:
        mark = ("[green]repaired[/green]" if finding.repaired
                else "[yellow]repairable[/yellow]" if finding.repairable else "[red]report[/red]")
        console.print(f"{mark} {finding.kind}: {finding.what}", highlight=False)
    if report.consistent:
        console.print("consistent" if not report.findings else "all repaired")
    else:
        if any(f.repairable and not f.repaired for f in report.findings):
            console.print("run `cdl db check --repair` to fix what is repairable")
        raise typer.Exit(1)


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded server is running; exit 3 when it is not."""
    from usecases.stores.database import EmbeddedPostgres

    running = guarded(lambda: EmbeddedPostgres(State.from_env()).is_running())
    print("running" if running else "stopped")
    if not running:
        raise typer.Exit(3)


@studio_app.command("start")
def studio_start(label_studio_port: StudioPortOpt = DEFAULT_PORT) -> None:
    """Start Label Studio (and PostgreSQL if needed) and leave both running."""
    from usecases.stores.database import Database, EmbeddedPostgres
    from usecases.stores.labelstudio import EmbeddedLabelStudio

    def action() -> None:
        state = State.from_env()
        database = EmbeddedPostgres(state)
        if not database.is_running():
            database.start()
        Database(database.conninfo()).migrate()
        studio = EmbeddedLabelStudio(state, database.conninfo(), label_studio_port).start()
        console.print(f"Label Studio running at {studio.url}; login in {studio.credentials}",
                      highlight=False)

    guarded(action)


@studio_app.command("stop")
def studio_stop() -> None:
    """Stop the embedded Label Studio (PostgreSQL keeps running: `cdl db stop`)."""
    from usecases.stores.database import EmbeddedPostgres
    from usecases.stores.labelstudio import EmbeddedLabelStudio

    def action() -> None:
        state = State.from_env()
        EmbeddedLabelStudio(state, EmbeddedPostgres(state).conninfo()).stop()

    guarded(action)


@studio_app.command("status")
def studio_status() -> None:
    """Say whether the embedded Label Studio is running; exit 3 when it is not."""
    from usecases.stores.database import EmbeddedPostgres
    from usecases.stores.labelstudio import EmbeddedLabelStudio

    def action() -> Any:
        state = State.from_env()
        return EmbeddedLabelStudio(state, EmbeddedPostgres(state).conninfo()).running()

    studio = guarded(action)
    print(f"running at {studio.url}" if studio else "stopped")
    if not studio:
        raise typer.Exit(3)
