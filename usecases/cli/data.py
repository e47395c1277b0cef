"""The raw datasets' commands: ``cdl data fetch``."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from usecases.cli.common import USECASES, app, console, guarded, usecase_named
from usecases.errors import CDLError
from usecases.state import State

data_app = typer.Typer(no_args_is_help=True, help="Fetch the raw datasets the use cases read.")
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def fetch(
    dataset: Annotated[str, typer.Argument(help="bbc (fmnist comes from Debian's "
                                           "dataset-fashion-mnist package).")],
    dest: Annotated[Path | None, typer.Option("--dest", help="Datasets folder: the dataset "
                                              "goes to DEST/bbc (default: CDL_HOME/datasets)."
                                              )] = None,
    url: Annotated[str | None, typer.Option("--url", help="Where to download the BBC archive "
                                            "from (default: CDL_BBC_URL, else its publisher; "
                                            "any copy is verified all the same).")] = None,
) -> None:
    """Download a raw dataset from its publisher, verify it by its content, extract it.

    Prints the dataset's folder: pass it as `cdl demo --data`, or its parent as CDL_DATASETS.
    A cut download resumes on the next run; a verified copy in place is left as it is.
    """
    def action() -> Path:
        if dataset == "fmnist":
            if dest is not None or url is not None:
                raise CDLError("--dest and --url are for bbc only",
                               "drop them: Fashion-MNIST comes from Debian's package")
            return _fmnist()
        if dataset != "bbc":
            raise CDLError(f"unknown dataset {dataset!r}", f"choose one of: {', '.join(USECASES)}")
        from usecases.data import bbc

        folder = (dest or State.from_env().home / "datasets").expanduser().resolve()
        with _progress() as progress:
            # CDL_BBC_URL is read here, not as the option's envvar: set for bbc, it must not
            # make `cdl data fetch fmnist` refuse an --url nobody passed.
            fetched = bbc.fetch(folder, url or os.environ.get("CDL_BBC_URL") or bbc.URL,
                                progress)
        console.print(f"{fetched.folder} already holds the verified BBC dataset: nothing to do"
                      if fetched.already else
                      f"BBC dataset verified and extracted to {fetched.folder}", highlight=False,
                      soft_wrap=True)
        return fetched.folder

    print(guarded(action))


def _fmnist() -> Path:
    """Debian packages the four official files; a download of ours would add nothing."""
    from usecases.fmnist.idx import FILES

    folder = usecase_named("fmnist").default_data()
    if not all((folder / name).is_file() for pair in FILES.values() for name in pair):
        raise CDLError("cdl does not download Fashion-MNIST",
                       "install Debian's package (apt-get install dataset-fashion-mnist): it "
                       f"puts the four official IDX files in {folder}")
    console.print(f"Fashion-MNIST is installed in {folder} (Debian's dataset-fashion-mnist): "
                  "nothing to do", highlight=False, soft_wrap=True)
    return folder


@contextmanager
def _progress() -> Iterator[Callable[[int, int | None], None] | None]:
    """A download bar on a terminal; nothing otherwise (the result line says it all)."""
    if not console.is_terminal:
        yield None
        return
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(*Progress.get_default_columns()[:-1], DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("download", total=None)

        def update(have: int, total: int | None) -> None:
            # verifying and extracting follow a complete download, with no progress of their own
            done = total is not None and have >= total
            bar.update(task, completed=have, total=total,
                       description="verify, extract" if done else "download")

        yield update
