"""Models trained, approved and packaged by the real ``cdl demo`` on small raw data, and a real
MLServer serving their model folders: shared by the deployment tests and the smoke Job's."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from usecases.state import State
from usecases.stores.database import open_database
from usecases.workflow import deploy

from .cli import cdl
from .rawdata import write_bbc, write_fmnist


def package(root: Path, usecases: Sequence[str], smoke: int = 10) -> dict[str, Any]:
    """Run ``cdl demo`` for each use case in one CDL_HOME under ``root``; its reports, home
    and serving repository."""
    home = root / "home"
    raws = {"bbc": lambda: write_bbc(root / "bbc", per_class=16),
            "fmnist": lambda: write_fmnist(root / "fmnist")}
    reports = {}
    for name in usecases:
        report = root / f"{name}.json"
        run = cdl("demo", "--usecase", name, "--data", str(raws[name]()), "--trials", "1",
                  "--smoke", str(smoke), "--report", str(report), "--no-label-studio",
                  home=home)
        assert run.returncode == 0, run.stderr[-3000:]
        reports[name] = json.loads(report.read_text())["usecases"][name]
    return {"home": home, "reports": reports, "repository": home / "serving" / "models"}


@contextlib.contextmanager
def serving(home: Path, log: str = "mlserver-test.log") -> Iterator[tuple[str, str]]:
    """MLServer over the packaged folders of ``home``, recording to its database:
    (URL, the database's conninfo)."""
    state = State.from_env(home)
    with open_database(state) as db, deploy.serve(
            state.home / "serving" / "models", state.logs / log, deploy.free_port(),
            deploy.free_port(), db.conninfo) as running:
        yield running.url, db.conninfo
