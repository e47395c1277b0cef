"""What every ``cdl`` command shares: the app, one-line errors, options, progress."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress

from usecases.errors import CDLError, GateFailed
from usecases.workflow.display import Display

if TYPE_CHECKING:  # the workflow's modules load when a command runs, not for `cdl --help`
    from usecases.workflow.context import Case
    from usecases.workflow.usecase import DataOptions, UseCase

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Continuous Deep Learning: the paper's workflow, locally or on a cluster.")

console = Console(stderr=True)
USECASES = ("bbc", "fmnist")


def usecase_named(name: str) -> UseCase:
    if name == "bbc":
        from usecases.bbc.usecase import USECASE as BBC

        return BBC
    if name == "fmnist":
        from usecases.fmnist.usecase import USECASE as FMNIST

        return FMNIST
    raise CDLError(f"unknown use case {name!r}", f"choose one of: {', '.join(USECASES)}")


def usecases_named(name: str, data: Path | None) -> list[UseCase]:
    if name == "all":
        if data is not None:
            raise CDLError("--data needs a single use case",
                           f"add --usecase ({', '.join(USECASES)}) or drop --data")
        return [usecase_named(n) for n in USECASES]
    return [usecase_named(name)]


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


class PlainDisplay(Display):
    """For output that is not a terminal (a log file, CI): one line per finished stage with
    its time, and the notes; no spinners, no per-epoch lines."""

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        start = time.perf_counter()
        outcome = "failed after "
        try:
            yield
            outcome = ""
        finally:
            console.print(f"{title}: {outcome}{time.perf_counter() - start:.1f}s",
                          highlight=False, soft_wrap=True)

    def trials(self, total: int, epochs: int) -> Callable[[int, int, dict[str, float]], None]:
        done: set[int] = set()

        def update(trial: int, epoch: int, metrics: dict[str, float]) -> None:
            if epoch >= epochs and trial not in done:
                done.add(trial)
                accuracy = metrics.get("validation_accuracy")
                shown = f", val_acc {accuracy:.3f}" if accuracy is not None else ""
                console.print(f"  trial {trial + 1}/{total}: {epoch} epochs{shown}",
                              highlight=False)

        return update

    def note(self, text: str) -> None:
        console.print(f"  {text}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def progress_display(bar: bool = True) -> Iterator[Display]:
    """Spinners and bars on a terminal, plain lines otherwise."""
    if not console.is_terminal:
        yield PlainDisplay()
        return
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}"),
               *([BarColumn()] if bar else []), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        yield RichDisplay(progress)


def data_options(usecase: UseCase, data: Path | None, max_bytes: int, min_chars: int,
                 vocab: Path | None) -> DataOptions:
    from usecases.workflow.usecase import DataOptions

    return DataOptions(folder=(data or usecase.default_data()).expanduser().resolve(),
                       max_bytes=max_bytes, min_chars=min_chars, vocab=vocab)


def use_cases(usecase: str, data: Path | None, max_bytes: int, min_chars: int,
              vocab: Path | None, **options: Any) -> list[Case]:
    """The chosen use cases with their data options, their raw data checked to be there."""
    from usecases.workflow import run
    from usecases.workflow.context import Case, RunOptions

    cases = [Case(case, RunOptions(data_options(case, data, max_bytes, min_chars, vocab),
                                   **options))
             for case in usecases_named(usecase, data)]
    run.check_sources(cases)
    return cases


def guarded(action: Callable[[], Any]) -> Any:
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
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the split and the search.")]
