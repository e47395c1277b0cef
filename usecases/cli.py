"""The ``cdl`` command: parse, call the workflow, print. Errors print one line and exit nonzero."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from usecases.errors import CDLError, GateFailed
from usecases.state import State
from usecases.workflow.demo import Display
from usecases.workflow.usecase import DataOptions, UseCase

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Continuous Deep Learning: the paper's workflow, locally or on a cluster.")
db_app = typer.Typer(no_args_is_help=True, help="The embedded PostgreSQL server.")
app.add_typer(db_app, name="db")
studio_app = typer.Typer(no_args_is_help=True, help="The embedded Label Studio server.")
app.add_typer(studio_app, name="studio")

console = Console(stderr=True)
DEFAULT_STUDIO_PORT = 8089  # usecases.stores.labelstudio.DEFAULT_PORT, without importing the SDK
USECASES = ("bbc", "fmnist")


def _usecase(name: str) -> UseCase:
    if name == "bbc":
        from usecases.bbc.usecase import USECASE as BBC

        return BBC
    if name == "fmnist":
        from usecases.fmnist.usecase import USECASE as FMNIST

        return FMNIST
    raise CDLError(f"unknown use case {name!r}", f"choose one of: {', '.join(USECASES)}")


def _usecases(name: str, data: Path | None) -> list[UseCase]:
    if name == "all":
        if data is not None:
            raise CDLError("--data needs a single use case",
                           f"add --usecase ({', '.join(USECASES)}) or drop --data")
        return [_usecase(n) for n in USECASES]
    return [_usecase(name)]


class RichDisplay(Display):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        task = self.progress.add_task(title, total=None)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.progress.update(task, total=1, completed=1,
                                 description=f"{title} [dim]({time.perf_counter() - start:.1f}s)")

    def trials(self, total: int, epochs: int) -> Callable[[int, int, dict[str, float]], None]:
        task = self.progress.add_task("  epochs", total=total * epochs)
        seen: set[tuple[int, int]] = set()

        def update(trial: int, epoch: int, metrics: dict[str, float]) -> None:
            seen.add((trial, epoch))
            accuracy = metrics.get("validation_accuracy")
            shown = f" val_acc {accuracy:.3f}" if accuracy is not None else ""
            self.progress.update(task, completed=len(seen),
                                 description=f"  trial {trial + 1}/{total} epoch {epoch}{shown}")

        return update

    def note(self, text: str) -> None:
        self.progress.console.print(f"  [dim]{text}")


def _options(usecase: UseCase, data: Path | None, max_bytes: int, min_chars: int,
             vocab: Path | None) -> DataOptions:
    return DataOptions(folder=(data or usecase.default_data()).expanduser().resolve(),
                       max_bytes=max_bytes, min_chars=min_chars, vocab=vocab)


def _run(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except CDLError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, GateFailed) else 1) from None
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        raise typer.Exit(130) from None


DataOpt = Annotated[Path | None, typer.Option("--data", help="Raw dataset folder of the one "
                                              "use case chosen (default: where it is "
                                              "installed; see README).")]
MaxBytes = Annotated[int, typer.Option("--max-bytes", min=1,
                                       help="Quarantine files larger than this.")]
MinChars = Annotated[int, typer.Option("--min-chars", min=0,
                                       help="Quarantine texts shorter than this.")]
VocabOpt = Annotated[Path | None, typer.Option("--vocab", help="BBC vocabulary file "
                                               "(default: bbc.vocab in --data).")]
GateOpt = Annotated[float, typer.Option("--gate", min=0.0, max=1.0,
                                        help="Minimum test accuracy to approve a model.")]
StudioPortOpt = Annotated[int, typer.Option("--label-studio-port", min=1, max=65535,
                                            help="Port of the embedded Label Studio on "
                                            "127.0.0.1.")]


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
    label_studio_port: StudioPortOpt = DEFAULT_STUDIO_PORT,
) -> None:
    """Run the data, model and deployment pipelines of the use cases on this machine."""
    from usecases.workflow import demo as pipeline

    def action() -> None:
        cases = _usecases(usecase, data)
        state = State.from_env()
        runs = [(case, pipeline.DemoOptions(_options(case, data, max_bytes, min_chars, vocab),
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

    _run(action)


def _studio_hint(results: dict[str, dict[str, Any]]) -> None:
    """Where a person corrects labels, and how the corrections reach the label tables."""
    studio = next((r["labeling"] for r in results.values()
                   if r.get("labeling", {}).get("tool") == "label-studio"), None)
    if studio is None or os.environ.get("CDL_LABEL_STUDIO_URL"):
        return
    from usecases.stores.labelstudio import CREDENTIALS

    console.print(f"\nLabel Studio: {studio['url']} (login in "
                  f"{State.from_env().secrets / CREDENTIALS}); to correct labels run "
                  "`cdl studio start`, edit them there, then `cdl label --usecase NAME`.",
                  highlight=False)


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
        case = _usecase(usecase)
        state = State.from_env()
        options = _options(case, data, max_bytes, min_chars, vocab)
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

    _run(action)


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

    _run(action)


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

    _run(action)


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

    _run(action)


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded server."""
    from usecases.stores.database import EmbeddedPostgres

    _run(lambda: EmbeddedPostgres(State.from_env()).stop())


@db_app.command("status")
def db_status() -> None:
    """Say whether the embedded server is running; exit 3 when it is not."""
    from usecases.stores.database import EmbeddedPostgres

    running = _run(lambda: EmbeddedPostgres(State.from_env()).is_running())
    print("running" if running else "stopped")
    if not running:
        raise typer.Exit(3)


@app.command()
def label(
    usecase: Annotated[str, typer.Option("--usecase", help="bbc, fmnist or all.")] = "all",
    data: DataOpt = None,
    max_bytes: MaxBytes = 1024 * 1024,
    min_chars: MinChars = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split (as in the "
                                      "demo).")] = 42,
    label_studio_port: StudioPortOpt = DEFAULT_STUDIO_PORT,
) -> None:
    """Export the labels from Label Studio again (after people edited them) into the label
    tables of the data's current version; the next demo trains on them."""
    from usecases.workflow import demo as pipeline

    def action() -> None:
        cases = _usecases(usecase, data)
        runs = [(case, _options(case, data, max_bytes, min_chars, None)) for case in cases]
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            results = pipeline.relabel(runs, State.from_env(), RichDisplay(progress),
                                       label_studio_port, seed)
        print(json.dumps(results, indent=2))

    _run(action)


@studio_app.command("start")
def studio_start(label_studio_port: StudioPortOpt = DEFAULT_STUDIO_PORT) -> None:
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

    _run(action)


@studio_app.command("stop")
def studio_stop() -> None:
    """Stop the embedded Label Studio (PostgreSQL keeps running: `cdl db stop`)."""
    from usecases.stores.database import EmbeddedPostgres
    from usecases.stores.labelstudio import EmbeddedLabelStudio

    def action() -> None:
        state = State.from_env()
        EmbeddedLabelStudio(state, EmbeddedPostgres(state).conninfo()).stop()

    _run(action)


@studio_app.command("status")
def studio_status() -> None:
    """Say whether the embedded Label Studio is running; exit 3 when it is not."""
    from usecases.stores.database import EmbeddedPostgres
    from usecases.stores.labelstudio import EmbeddedLabelStudio

    def action() -> Any:
        state = State.from_env()
        return EmbeddedLabelStudio(state, EmbeddedPostgres(state).conninfo()).running()

    studio = _run(action)
    print(f"running at {studio.url}" if studio else "stopped")
    if not studio:
        raise typer.Exit(3)


@app.command()
def preflight(
    stack: Annotated[str, typer.Option("--stack", help="Pulumi stack to check: reads "
                                       "Pulumi.STACK.yaml in this directory.")],
    cloud: Annotated[str | None, typer.Option("--cloud", help="Cloud in clouds.yaml "
                                              "(default: OS_CLOUD, else the OS_* variables).")
                     ] = None,
) -> None:
    """Before `pulumi up`: check auth, external network, image, flavors (GPU) and quotas."""
    from usecases.cloud.preflight import run, table

    checks = _run(lambda: run(Path(f"Pulumi.{stack}.yaml"), cloud))
    Console().print(table(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command()
def ops(
    playbook: Annotated[str, typer.Argument(help="site, a day-two playbook (rolling-reboot, "
                                            "postgres-backup, ...) or a path.")],
    limit: Annotated[str | None, typer.Option("--limit", help="Hosts or groups to run on.")] = None,
    inventory: Annotated[Path | None, typer.Option(
        "--inventory", help="Inventory (default: playbooks/inventory/hosts.yml).")] = None,
    extra: Annotated[list[str] | None, typer.Option(
        "-e", "--extra-vars", help="KEY=VALUE, a JSON object or @FILE (YAML, for secrets); "
        "repeatable.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Dry run (Ansible check mode).")] = False,
) -> None:
    """Run a playbook on the hosts, streaming progress; fails naming the host and task."""
    from usecases import ops as playbooks

    def show(step: playbooks.Progress) -> None:
        if step.status == "start":
            console.print(f"[bold]{step.task}", highlight=False)
        elif step.status in ("changed", "failed", "unreachable"):
            colour = "yellow" if step.status == "changed" else "red"
            console.print(f"  [{colour}]{step.status}[/{colour}] {step.host} {step.message}",
                          highlight=False)

    def action() -> None:
        extravars: dict[str, Any] = {}
        for item in extra or []:
            if item.startswith("@"):
                import yaml

                extravars.update(yaml.safe_load(Path(item[1:]).read_text()) or {})
            elif item.lstrip().startswith("{"):
                extravars.update(json.loads(item))
            elif "=" in item:
                key, value = item.split("=", 1)
                extravars[key] = value
            else:
                raise CDLError(f"cannot read extra variable {item!r}",
                               "write KEY=VALUE, a JSON object or @FILE")
        result = playbooks.run_playbook(playbook, inventory=inventory, limit=limit,
                                        extravars=extravars, check=check, on_progress=show)
        for host, counts in result.stats.items():
            print(f"{host}: " + " ".join(f"{name}={n}" for name, n in counts.items()))
        console.print(f"{result.playbook.name} finished in {result.seconds:.0f} s")

    _run(action)


def main() -> None:
    # TensorFlow's C++ start-up chatter and a Python-version notice from a Google library that
    # determined imports would bury the progress display.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    warnings.filterwarnings("ignore", category=FutureWarning, module="google.api_core")
    app(prog_name="cdl")


if __name__ == "__main__":
    main()
