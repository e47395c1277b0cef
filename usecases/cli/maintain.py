"""``cdl maintain``: Model Maintenance's monitor over the serving version's Scoring Data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from usecases.cli.common import app, console, guarded, usecase_named
from usecases.errors import CDLError
from usecases.state import State


def _since(hours: float, since: str | None) -> datetime:
    if since is None:
        return datetime.now(UTC) - timedelta(hours=hours)
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise CDLError(f"--since {since!r} is not an ISO 8601 time",
                       "write it like 2026-12-01T09:00:00+00:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def serving_version(state: State, model: str) -> int:
    """The version of ``model`` that `cdl serve` serves (its packaged folder's)."""
    from usecases.workflow.deploy import packaged_versions, served_models

    version = packaged_versions(served_models(state)).get(model)
    if version is None:
        raise CDLError(f"no version of {model} is packaged for serving",
                       "run `cdl demo` to package one, or pass --version")
    return version


@app.command()
def maintain(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc or fmnist.")] = "bbc",
    version: Annotated[int | None, typer.Option("--version", help="Model version (default: "
                                                "the one packaged for serving).")] = None,
    hours: Annotated[float, typer.Option("--hours", min=0.0, help="Window: the last H "
                                         "hours of Scoring Data.")] = 24.0,
    since: Annotated[str | None, typer.Option("--since", help="Window start (ISO 8601); "
                                              "instead of --hours.")] = None,
) -> None:
    """Model Maintenance: does the serving version still see what it was trained on?
    Prediction drift (class-mix PSI) and input drift (Kolmogorov-Smirnov on label-free
    signals) over a window of its Scoring Data; the verdict and its evidence as JSON."""
    from usecases.stores.local import open_stores
    from usecases.workflow.maintenance import monitor

    def action() -> None:
        chosen = usecase_named(usecase)
        start = _since(hours, since)
        state = State.from_env()
        number = version if version is not None else serving_version(state, chosen.model_name)
        with open_stores(state) as stores:
            verdict = monitor(stores, chosen, stores.models.get(chosen.model_name, number),
                              start)
        print(json.dumps(verdict.to_dict(), indent=2))
        reasons = "; ".join(verdict.reasons)
        console.print(f"{chosen.name}: {verdict.model} v{verdict.version}, {verdict.requests} "
                      f"predictions since {verdict.since}: {verdict.verdict}"
                      + (f" ({reasons})" if reasons else "; nothing to do"),
                      highlight=False, soft_wrap=True)

    guarded(action)
