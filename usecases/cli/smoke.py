"""``cdl smoke``: the use cases as post-deployment smoke tests.

Both use cases run end to end through the workflow every other command uses
(``workflow.run.run``), with each use case's short training config (``smoke.yaml``); the
stores decide where. ``--local``: this machine's stores (embedded PostgreSQL, Determined's
local mode, MLServer on 127.0.0.1). ``--stack`` / ``--outputs``: the deployed platform's
(``usecases.cluster.run``: Pachyderm, the Determined master, S3, cdl-model releases, the
cluster's PostgreSQL), once its tools are checked to answer. ``--plan`` runs only the checks
charts/cdl-smoke renders for ``helm test``. Each prints a table of steps with their times and
exits nonzero naming the step that failed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from usecases import defaults
from usecases.cli.common import GateOpt, StudioPortOpt, app, console, guarded
from usecases.errors import CDLError, GateFailed
from usecases.stores.labelstudio import DEFAULT_PORT

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager as ContextManager

    from usecases.cluster.checks import Result
    from usecases.cluster.outputs import Platform
    from usecases.workflow.context import Case, Context
    from usecases.workflow.report import SmokeResult

# The stages of a local smoke, in the paper's order (the names the workflow times them by).
STEPS = ("ingest", "label", "transform", "train", "register", "evaluate", "package", "serve",
         "smoke")
REACH_TIMEOUT = 8.0  # seconds per request; the checks run in parallel


@app.command()
def smoke(
    local: Annotated[bool, typer.Option("--local", help="Run the smoke on this machine: the "
                                        "embedded stores, MLServer on 127.0.0.1.")] = False,
    stack: Annotated[str | None, typer.Option("--stack", help="The Pulumi stack whose platform "
                                              "is checked (reads its outputs with the Pulumi "
                                              "CLI).")] = None,
    outputs: Annotated[Path | None, typer.Option(
        "--outputs", help="The stack's outputs as `pulumi stack output --json --show-secrets` "
        "prints them, for a machine without the Pulumi CLI.")] = None,
    plan: Annotated[Path | None, typer.Option(
        "--plan", help="A JSON plan of endpoint and model checks (what charts/cdl-smoke's Job "
        "runs in the cluster).")] = None,
    usecase: Annotated[str, typer.Option("--usecase", help="bbc, fmnist or all.")] = "all",
    gate: GateOpt = defaults.GATE,
    requests: Annotated[int, typer.Option("--requests", min=1, help="Held-out examples sent "
                                          "through each served model.")] = defaults.SMOKE,
    label_studio: Annotated[bool, typer.Option(
        "--label-studio/--no-label-studio", help="--local: label through Label Studio, as the "
        "platform does.")] = True,
    label_studio_port: StudioPortOpt = DEFAULT_PORT,
    keep: Annotated[bool, typer.Option("--keep", help="On a platform: leave the releases and "
                                       "model folders the smoke deployed (removed otherwise)."
                                       )] = False,
) -> None:
    """Train, register, gate, serve and query both models as a post-deployment smoke test:
    on this machine (--local) or on a deployed platform (--stack, --outputs), where the
    platform's tools are first checked to answer."""
    chosen = [name for name, given in (("--local", local), ("--stack", stack),
                                       ("--outputs", outputs), ("--plan", plan)) if given]

    def action() -> None:
        if len(chosen) != 1:
            raise CDLError("cdl smoke needs exactly one of --local, --stack, --outputs, --plan"
                           + (f" (given: {', '.join(chosen)})" if chosen else ""),
                           "pass --local for this machine, or --stack NAME / --outputs FILE "
                           "for a deployed platform")
        if local:
            _local(usecase, gate, requests, label_studio, label_studio_port)
        elif plan is not None:
            _checks(_read_plan(plan), f"plan {plan}")
        else:
            _platform(stack, outputs, usecase, gate, requests, keep)

    guarded(action)


def _smoke_cases(usecase: str, gate: float, requests: int, retrain: bool) -> list[Case]:
    from usecases.cli.common import use_cases

    return use_cases(usecase, None, defaults.MAX_FILE_BYTES, defaults.MIN_CHARS, None, trials=1,
                     gate=gate, smoke=requests, experiment="smoke.yaml", retrain=retrain)


def _local(usecase: str, gate: float, requests: int, label_studio: bool, port: int) -> None:
    from usecases.cli.common import progress_display
    from usecases.state import State
    from usecases.workflow import run

    state = State.from_env()
    cases = _smoke_cases(usecase, gate, requests, retrain=False)
    with progress_display() as display:
        _run(cases, lambda: run.open_run(state, display, "cdl smoke",
                                         port if label_studio else None),
             "this machine", f"see {state.logs / 'mlserver.log'}")


def _cluster(platform: Platform, where: str, usecase: str, gate: float, requests: int,
             keep: bool) -> None:
    from usecases.cli.common import progress_display
    from usecases.cluster.run import open_cluster_run
    from usecases.state import State

    state = State.from_env()
    # A smoke proves that training works: it trains every time (a model kept from an earlier
    # run would have its artifacts in that run's pod, not here).
    cases = _smoke_cases(usecase, gate, requests, retrain=True)
    with progress_display() as display:
        _run(cases, lambda: open_cluster_run(state, display, platform, "cdl smoke", keep),
             where, f"see `kubectl -n {platform.models_namespace} get pods` and the release's "
             "`helm test` log")


def _run(cases: list[Case], open_context: Callable[[], ContextManager[Context]], where: str,
         serving_fix: str) -> None:
    """The one workflow over the stores ``open_context`` assembles, with a table of its steps
    and a one-line error naming the step that failed."""
    from usecases.workflow import run

    start = time.perf_counter()
    with open_context() as ctx:
        try:
            result = run.run(ctx, cases)
        except CDLError as exc:
            _steps(cases)
            who, step = ctx.failed or (None, "run")
            raise CDLError(f"smoke failed at {who + ': ' if who else ''}{step}: {exc.problem}",
                           exc.fix) from None
    _steps(cases)
    for name, one in result.usecases.items():
        gate_error = one.gate_error(name)  # the gate's verdict, worded as cdl demo words it
        if gate_error is not None:
            raise GateFailed(f"smoke failed at {name}: evaluate: "
                             f"{gate_error.problem.removeprefix(f'{name}: ')}", gate_error.fix)
    for name, one in result.usecases.items():
        problem = _served_problem(one.serving.smoke if one.serving else None)
        if problem:
            raise CDLError(f"smoke failed at {name}: smoke: {problem}", serving_fix)
    console.print(f"smoke passed: {', '.join(result.usecases)} trained, registered, gated, "
                  f"served and queried on {where} in {time.perf_counter() - start:.0f} s",
                  highlight=False, soft_wrap=True)


def _served_problem(served: SmokeResult | None) -> str | None:
    """What the served model did wrong, if anything: every answer must equal the offline
    prediction, and every request must reach Scoring Data."""
    if served is None:
        return "the model was not served"
    if not served.matches_offline:
        return "the served predictions differ from the offline ones"
    if served.scored is not None and served.scored < served.requests:
        return f"{served.scored} of {served.requests} requests reached Scoring Data"
    return None


def _steps(cases: list[Case]) -> None:
    table = Table(title="cdl smoke", title_justify="left")
    table.add_column("step")
    for case in cases:
        table.add_column(f"{case.name} s", justify="right")
    for step in STEPS:
        times = [case.timings.get(step) for case in cases]
        if any(t is not None for t in times):
            table.add_row(step, *("-" if t is None else f"{t:.1f}" for t in times))
    console.print(table)


def _read_plan(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CDLError(f"smoke plan {path} is not readable JSON ({type(exc).__name__})",
                       "pass the plan.json that charts/cdl-smoke renders") from None
    if not isinstance(body, dict) or not (body.get("checks") or body.get("models")):
        raise CDLError(f"smoke plan {path} has no checks and no models",
                       "list endpoints under 'checks' or served models under 'models'")
    return body


def _checks(plan: dict[str, Any], where: str) -> None:
    """Run the plan's checks: one JSON line each on stdout (the Job's log), a table and a
    one-line error naming the first that failed."""
    from usecases.cluster.checks import run_plan

    start = time.perf_counter()
    results = run_plan(plan)
    for result in results:
        print(json.dumps(result.as_dict()), flush=True)
    _results_table(results, time.perf_counter() - start)
    failed = [r for r in results if not r.ok]
    if failed:
        first = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise CDLError(f"smoke failed at reach: {first.name} at {first.url}: {first.problem}"
                       f"{more}", f"check that {first.name} is deployed and reachable from "
                       f"here ({where})")


def _results_table(results: list[Result], seconds: float) -> None:
    table = Table(title=f"cdl smoke: reach ({seconds:.1f} s)", title_justify="left")
    for column in ("check", "url", "result"):
        table.add_column(column)
    for result in results:
        table.add_row(result.name, result.url,
                      "ok" if result.ok else f"[red]{result.problem}[/red]")
    console.print(table)


def _platform(stack: str | None, outputs: Path | None, usecase: str, gate: float,
              requests: int, keep: bool) -> None:
    """The platform's tools answer (in parallel, so unreachable ones fail in one timeout),
    then both use cases run on it."""
    from usecases.cluster import outputs as stack_outputs

    platform = (stack_outputs.from_file(outputs) if outputs is not None
                else stack_outputs.from_stack(str(stack)))
    where = f"--outputs {outputs}" if outputs else f"stack {stack}"
    _checks(platform.plan(REACH_TIMEOUT), where)
    _cluster(platform, f"the platform of {where}", usecase, gate, requests, keep)
