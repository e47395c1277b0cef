"""``cdl report``: the newest run as one self-contained HTML page under CDL_HOME/reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from usecases.cli.common import USECASES, app, console, guarded, usecase_named
from usecases.state import State

if TYPE_CHECKING:
    from usecases.stores.local import Stores


def reports_dir(state: State) -> Path:
    return state.dir("reports")


def write_report(state: State, stores: Stores, body: dict[str, Any],
                 out: Path | None = None) -> Path:
    """Render the run ``body`` with what ``stores`` hold; write it (to ``out`` too if given)."""
    from usecases.report import content, page
    from usecases.serving.scoring import spool_root, spooled
    from usecases.state import atomic_write
    from usecases.workflow.deploy import served_models

    # the spool before the table, as `cdl scoring` reads them
    waiting = list(spooled(spool_root(served_models(state))))
    usecases = {name: usecase_named(name) for name in body.get("usecases", {})
                if name in USECASES}
    html = page.render(content.gather(stores, body, waiting, usecases))
    written = page.write(reports_dir(state), html)
    if out is not None:
        atomic_write(out, html)
        return out
    return written


@app.command()
def report(
    out: Annotated[Path | None, typer.Option("--out", help="Also write the page here.")] = None,
) -> None:
    """Write the newest run (`cdl demo`) as a self-contained HTML page: data and quarantine,
    training curves, confusion matrix, compression, smoke, Scoring Data, lineage."""
    from usecases.report.content import load_run
    from usecases.stores.local import open_stores

    def action() -> None:
        state = State.from_env()
        body = load_run(reports_dir(state))
        with open_stores(state) as stores:
            path = write_report(state, stores, body, out)
        console.print(f"report: {path}", highlight=False, soft_wrap=True)

    guarded(action)
