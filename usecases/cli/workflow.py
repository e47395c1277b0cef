"""The workflow's commands: demo, ingest, evaluate, serve, scoring, label."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from usecases import defaults
from usecases.cli.common import (
    DataOpt,
    GateOpt,
    MaxBytes,
    MinChars,
    SeedOpt,
    StudioPortOpt,
    VocabOpt,
    app,
    console,
    data_options,
    guarded,
    progress_display,
    use_cases,
    usecase_named,
)
from usecases.errors import CDLError, GateFailed
from usecases.state import State, atomic_write
from usecases.stores.labelstudio import DEFAULT_PORT
from usecases.workflow.display import Display

if TYPE_CHECKING:
    from usecases.workflow.context import Context


LabelStudioOpt = Annotated[bool, typer.Option(
    "--label-studio/--no-label-studio", help="Label through Label Studio (started on "
    "127.0.0.1, or CDL_LABEL_STUDIO_URL), or write the dataset's labels directly.")]


@app.command()
def demo(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc, fmnist or all.")] = "all",
    data: DataOpt = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="ASHA trials; 1 runs the "
                                        "single-training config.")] = defaults.TRIALS,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report "
                                                "here.")] = None,
    artifacts: Annotated[Path | None, typer.Option(
        "--artifacts", help="Write CI report files into this folder: junit.xml (the gate, a "
        "test case per use case), metrics.txt, model.env (dotenv), summary.md.")] = None,
    gate: GateOpt = defaults.GATE,
    max_bytes: MaxBytes = defaults.MAX_FILE_BYTES,
    min_chars: MinChars = defaults.MIN_CHARS,
    vocab: VocabOpt = None,
    seed: SeedOpt = defaults.SEED,
    smoke: Annotated[int, typer.Option("--smoke", min=0, help="Held-out examples sent through "
                                       "the served model; 0 skips deployment.")
                     ] = defaults.SMOKE,
    label_studio: LabelStudioOpt = True,
    label_studio_port: StudioPortOpt = DEFAULT_PORT,
    retrain: Annotated[bool, typer.Option("--retrain", help="Train even when a model version "
                                          "from the same data, features, code and search is "
                                          "registered (it is reused otherwise).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Let TensorFlow's own log lines "
                                          "(CPU features, oneDNN) through.")] = False,
) -> None:
    """Run the data, model and deployment pipelines of the use cases on this machine."""
    from usecases.workflow import run

    if verbose:
        # main() quiets them by default. Nothing has imported TensorFlow yet, and MLServer's
        # process (its log file) inherits this environment too.
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"

    def action() -> None:
        state = State.from_env()
        cases = use_cases(usecase, data, max_bytes, min_chars, vocab, trials=trials, gate=gate,
                          seed=seed, smoke=smoke, retrain=retrain)
        with progress_display() as display, run.open_run(
                state, display, "cdl demo",
                label_studio_port if label_studio else None) as ctx:
            result = run.run(ctx, cases)
            body = result.to_dict()
            if report is not None:
                report.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(report, json.dumps(body, indent=2) + "\n")
            if artifacts is not None:
                from usecases.workflow import artifacts as ci

                ci.write(artifacts, body["usecases"], ctx.stores.models.versions())
            page = _keep_report(ctx, body)
        for name, one in body["usecases"].items():
            _summary(name, one)
        console.print(f"\nreport: {page}", highlight=False, soft_wrap=True)
        if label_studio:
            _studio_hint(body["usecases"], label_studio_port)
        failures = [f for f in (r.gate_error(n) for n, r in result.usecases.items()) if f]
        if failures:
            raise GateFailed("; ".join(f.problem for f in failures), failures[0].fix)

    guarded(action)


def _keep_report(ctx: Context, body: dict[str, Any]) -> Path:
    """Record the run where `cdl report` reads it, and write its HTML page."""
    from usecases.cli.report import reports_dir, write_report
    from usecases.report.page import keep_run

    keep_run(reports_dir(ctx.state), body)
    return write_report(ctx.state, ctx.stores, body)


def _studio_hint(results: dict[str, dict[str, Any]], port: int) -> None:
    """Where a person corrects labels, and how the corrections reach the label tables."""
    if os.environ.get("CDL_LABEL_STUDIO_URL") or not any(
            r.get("labeling", {}).get("tool") == "label-studio" for r in results.values()):
        return
    from usecases.stores.labelstudio import CREDENTIALS

    flag = "" if port == DEFAULT_PORT else f" --label-studio-port {port}"
    console.print(f"\nLabel Studio: http://127.0.0.1:{port} (login in "
                  f"{State.from_env().secrets / CREDENTIALS}); to correct labels run "
                  f"`cdl studio start{flag}`, edit them there, then "
                  f"`cdl label --usecase NAME{flag}`.", highlight=False, soft_wrap=True)


def _summary(name: str, result: dict[str, Any]) -> None:
    counts = result["dataset"]["counts"]
    model = result["model"]
    verdict = "[green]passed[/green]" if result["gate_passed"] else "[red]failed[/red]"
    console.print(
        f"\n[bold]{name}[/bold]: dataset {result['dataset']['version']} "
        f"({counts['valid']} valid, {counts['quarantined']} quarantined); "
        f"model {model['name']} v{model['version']}; "
        f"val {result['val_accuracy']:.3f}, test {result['test_accuracy']:.3f}; "
        f"gate {result['gate']['threshold']:g} {verdict}; {result['timings']['total']:.0f}s",
        highlight=False,
    )


@app.command()
def ingest(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc, fmnist or all.")] = "all",
    data: DataOpt = None,
    max_bytes: MaxBytes = defaults.MAX_FILE_BYTES,
    min_chars: MinChars = defaults.MIN_CHARS,
    vocab: VocabOpt = None,
    seed: SeedOpt = defaults.SEED,
    label_studio: LabelStudioOpt = True,
    label_studio_port: StudioPortOpt = DEFAULT_PORT,
) -> None:
    """The data pipeline alone: ingest, validate (quarantine), version, label, transform.

    Prints each use case's dataset version and counts (JSON); `cdl demo` then reuses them."""
    from usecases.workflow import run

    def action() -> None:
        cases = use_cases(usecase, data, max_bytes, min_chars, vocab, seed=seed)
        with progress_display() as display, run.open_run(
                State.from_env(), display, "cdl ingest",
                label_studio_port if label_studio else None) as ctx:
            results = run.ingest_only(ctx, cases)
        print(json.dumps(results, indent=2))

    guarded(action)


@app.command()
def evaluate(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc or fmnist.")] = "bbc",
    version: Annotated[int | None, typer.Option("--version", help="Model version "
                                                "(default: latest).")] = None,
    data: DataOpt = None,
    gate: GateOpt = defaults.GATE,
    max_bytes: MaxBytes = defaults.MAX_FILE_BYTES,
    min_chars: MinChars = defaults.MIN_CHARS,
    vocab: VocabOpt = None,
    seed: SeedOpt = defaults.SEED,
) -> None:
    """Evaluate a registered model version on the held-out test set and apply the gate."""
    from usecases.workflow import run
    from usecases.workflow.context import Case, RunOptions

    def action() -> None:
        chosen = usecase_named(usecase)
        case = Case(chosen, RunOptions(data_options(chosen, data, max_bytes, min_chars, vocab),
                                       gate=gate, seed=seed))
        run.check_sources([case])
        with run.open_run(State.from_env(), Display(), "cdl evaluate") as ctx:
            entry, accuracy = run.evaluate(ctx, case, version)
        print(json.dumps({"name": entry.name, "version": entry.version,
                          "test_accuracy": accuracy, "gate_passed": entry.gate_passed}))
        if not entry.gate_passed:
            raise GateFailed(f"test accuracy {accuracy:.3f} is below the gate {gate:g}",
                             "retrain with `cdl demo` or lower --gate deliberately")

    guarded(action)


@app.command()
def serve(
    http_port: Annotated[int, typer.Option("--http-port", min=1, max=65535)] = 8080,
    grpc_port: Annotated[int, typer.Option("--grpc-port", min=1, max=65535)] = 8081,
    workers: Annotated[int, typer.Option("--workers", min=0, help="MLServer inference "
                                         "worker processes; 0 (the default) predicts in the "
                                         "server process, fastest for these sub-millisecond "
                                         "models (benchmarks/serving.py).")] = 0,
) -> None:
    """Serve the packaged, approved models with MLServer on 127.0.0.1 until interrupted."""
    from usecases.stores.local import open_stores
    from usecases.workflow import deploy

    def action() -> None:
        state = State.from_env()
        repository = deploy.served_models(state)
        folders = deploy.packaged_folders(repository)
        if not folders:
            raise CDLError(f"no packaged model in {repository}",
                           "run `cdl demo` first: it packages every approved model")
        signal.signal(signal.SIGTERM, _interrupt)
        # An interrupt at any point (even while MLServer starts) unwinds the context managers:
        # MLServer and the database stop, and the command ends normally.
        with contextlib.suppress(KeyboardInterrupt), open_stores(state) as stores:
            for folder in folders:
                deploy.check_current(folder, stores.models)
            with deploy.serve(repository, state.logs / "mlserver.log", http_port, grpc_port,
                              stores.db.conninfo, workers) as server:
                for folder in folders:
                    console.print(f"serving {server.url}/v2/models/{folder.name}/infer")
                console.print("[dim]Ctrl-C stops the server")
                while server.process.poll() is None:
                    time.sleep(0.5)
                raise CDLError(f"MLServer exited with status {server.process.returncode}",
                               f"read {server.log}")
        console.print("stopped")

    guarded(action)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@app.command()
def scoring(
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
) -> None:
    """Summarise Scoring Data: requests, class mix, latency percentiles, drift, and rows
    still in the spool or lost (JSON)."""
    from usecases.serving.scoring import spool_root, spooled
    from usecases.stores.local import open_stores
    from usecases.workflow.deploy import served_models
    from usecases.workflow.scoring import summarize

    def action() -> None:
        state = State.from_env()
        with open_stores(state) as stores:
            # the spool before the table: a row moving from one to the other meanwhile is
            # then found in the table, never in neither
            waiting = list(spooled(spool_root(served_models(state))))
            print(json.dumps(summarize(stores.scoring, model, waiting), indent=2))

    guarded(action)


@app.command()
def label(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc, fmnist or all.")] = "all",
    data: DataOpt = None,
    max_bytes: MaxBytes = defaults.MAX_FILE_BYTES,
    min_chars: MinChars = defaults.MIN_CHARS,
    seed: SeedOpt = defaults.SEED,
    label_studio_port: StudioPortOpt = DEFAULT_PORT,
) -> None:
    """Export the labels from Label Studio again, after people edited them.

    They replace the label tables' rows of the data's current version; the next demo trains
    on them."""
    from usecases.workflow import run

    def action() -> None:
        cases = use_cases(usecase, data, max_bytes, min_chars, None, seed=seed)
        with progress_display(bar=False) as display, run.open_run(
                State.from_env(), display, "cdl label",
                label_studio_port) as ctx:
            results = run.relabel(ctx, cases)
        print(json.dumps(results, indent=2))

    guarded(action)
