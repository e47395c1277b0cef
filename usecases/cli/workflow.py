"""The workflow's commands: demo, evaluate, serve, scoring, label."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from usecases.cli.common import (
    DataOpt,
    GateOpt,
    MaxBytes,
    MinChars,
    RichDisplay,
    StudioPortOpt,
    VocabOpt,
    app,
    console,
    data_options,
    guarded,
    usecase_named,
    usecases_named,
)
from usecases.errors import CDLError, GateFailed
from usecases.state import State
from usecases.stores.labelstudio import DEFAULT_PORT
from usecases.workflow.demo import Display


@app.command()
def demo(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc, fmnist or all.")] = "all",
    data: DataOpt = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="ASHA trials; 1 runs the "
                                        "single-training config.")] = 4,
    report: Annotated[Path | None, typer.Option("--report", help="Write the JSON report "
                                                "here.")] = None,
    gate: GateOpt = 0.7,
    max_bytes: MaxBytes = 1024 * 1024,
    min_chars: MinChars = 100,
    vocab: VocabOpt = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split and the search.")] = 42,
    smoke: Annotated[int, typer.Option("--smoke", min=0, help="Held-out examples sent through "
                                       "the served model; 0 skips deployment.")] = 20,
    label_studio: Annotated[bool, typer.Option(
        "--label-studio/--no-label-studio", help="Label through Label Studio (started on "
        "127.0.0.1, or CDL_LABEL_STUDIO_URL), or write the dataset's labels directly.")] = True,
    label_studio_port: StudioPortOpt = DEFAULT_PORT,
) -> None:
    """Run the data, model and deployment pipelines of the use cases on this machine."""
    from usecases.workflow import demo as pipeline

    def action() -> None:
        cases = usecases_named(usecase, data)
        state = State.from_env()
        runs = [(case, pipeline.DemoOptions(data_options(case, data, max_bytes, min_chars, vocab),
                                            trials=trials, gate=gate, seed=seed, smoke=smoke))
                for case in cases]
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            results = pipeline.run(runs, state, RichDisplay(progress),
                                   label_studio_port if label_studio else None)
        body = {"usecases": results, "cdl_home": str(state.home)}
        if report is not None:
            report.write_text(json.dumps(body, indent=2) + "\n")
        for name, result in results.items():
            _summary(name, result)
        _studio_hint(results)
        failures = [f for f in (pipeline.gate_error(n, r) for n, r in results.items()) if f]
        if failures:
            raise GateFailed("; ".join(f.problem for f in failures), failures[0].fix)

    guarded(action)


def _studio_hint(results: dict[str, dict[str, Any]]) -> None:
    """Where a person corrects labels, and how the corrections reach the label tables."""
    studio = next((r["labeling"] for r in results.values()
                   if r.get("labeling", {}).get("tool") == "label-studio"), None)
    if studio is None or os.environ.get("CDL_LABEL_STUDIO_URL"):
        return
    from usecases.stores.labelstudio import CREDENTIALS

    port = int(studio["url"].rsplit(":", 1)[1])
    flag = "" if port == DEFAULT_PORT else f" --label-studio-port {port}"
    console.print(f"\nLabel Studio: {studio['url']} (login in "
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
def evaluate(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc or fmnist.")] = "bbc",
    version: Annotated[int | None, typer.Option("--version", help="Model version "
                                                "(default: latest).")] = None,
    data: DataOpt = None,
    gate: GateOpt = 0.7,
    max_bytes: MaxBytes = 1024 * 1024,
    min_chars: MinChars = 100,
    vocab: VocabOpt = None,
    seed: Annotated[int, typer.Option("--seed")] = 42,
) -> None:
    """Evaluate a registered model version on the held-out test set and apply the gate."""
    from usecases.stores.database import open_database
    from usecases.stores.registry import ModelRegistry
    from usecases.workflow import demo as pipeline

    def action() -> None:
        case = usecase_named(usecase)
        state = State.from_env()
        options = data_options(case, data, max_bytes, min_chars, vocab)
        pipeline.data.check_source(options.folder)
        with open_database(state) as db:
            prepared = pipeline.prepare(case, state, options, db, None, Display(),
                                        pipeline.Timer(), seed)
            entry, accuracy = pipeline.evaluate(case, ModelRegistry(db, state.models),
                                                case.model_name, version, prepared.features,
                                                gate)
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
    from usecases.stores.database import open_database
    from usecases.workflow import deploy

    def action() -> None:
        state = State.from_env()
        repository = state.home / "serving" / "models"
        folders = sorted(p.parent for p in repository.glob("*/model-settings.json"))
        if not folders:
            raise CDLError(f"no packaged model in {repository}",
                           "run `cdl demo` first: it packages every approved model")
        signal.signal(signal.SIGTERM, _interrupt)
        # An interrupt at any point (even while MLServer starts) unwinds the context managers:
        # MLServer and the database stop, and the command ends normally.
        with contextlib.suppress(KeyboardInterrupt), open_database(state) as db:
            for folder in folders:
                deploy.check_current(folder, db, state.models)
            with deploy.serve(repository, state.logs / "mlserver.log", http_port, grpc_port,
                              db.conninfo, workers) as server:
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
    """Summarise Scoring Data: requests, class mix, latency percentiles, drift (JSON)."""
    from usecases.stores.database import open_database
    from usecases.workflow.scoring import summarize

    def action() -> None:
        with open_database(State.from_env()) as db:
            print(json.dumps(summarize(db, model), indent=2))

    guarded(action)


@app.command()
def label(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc, fmnist or all.")] = "all",
    data: DataOpt = None,
    max_bytes: MaxBytes = 1024 * 1024,
    min_chars: MinChars = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split (as in the "
                                      "demo).")] = 42,
    label_studio_port: StudioPortOpt = DEFAULT_PORT,
) -> None:
    """Export the labels from Label Studio again, after people edited them.

    They replace the label tables' rows of the data's current version; the next demo trains
    on them."""
    from usecases.workflow import demo as pipeline

    def action() -> None:
        cases = usecases_named(usecase, data)
        runs = [(case, data_options(case, data, max_bytes, min_chars, None)) for case in cases]
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            results = pipeline.relabel(runs, State.from_env(), RichDisplay(progress),
                                       label_studio_port, seed)
        print(json.dumps(results, indent=2))

    guarded(action)
