"""What the serving tests start real MLServers on: model folders of small untrained networks,
packaged by ``deploy.write_folder`` as ``cdl demo`` packages trained ones, and an embedded
PostgreSQL of this folder's own, which its tests stop, stall and start again."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from usecases.serving.limits import MAX_REQUEST_BYTES
from usecases.state import State
from usecases.stores.database import Database, EmbeddedPostgres
from usecases.workflow import deploy

from ...rawdata import article, write_bbc


def _artifacts(folder: Path, meta: dict[str, Any]) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps(meta))
    return folder


@pytest.fixture(scope="session")
def bbc_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from usecases.bbc.dataset import CLASSES
    from usecases.serving.news import NETWORK, NewsClassifier

    root = tmp_path_factory.mktemp("bbc-folder")
    words = (write_bbc(root / "raw", per_class=1) / "bbc.vocab").read_text().split()
    artifacts = _artifacts(root / "artifacts", {
        "usecase": "bbc", "classes": list(CLASSES), "weights": "model.pt", "network": NETWORK,
        "n_features": len(words), "hidden_size": 8, "dropout": 0.0})
    (artifacts / "vocab.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    torch.save(NewsClassifier(len(words), len(CLASSES), 8, 0.0).state_dict(),
               artifacts / "model.pt")
    return deploy.write_folder(root / "bbc-news", "bbc-news", 1, "runtime.NewsRuntime",
                               artifacts, MAX_REQUEST_BYTES)


@pytest.fixture(scope="session")
def fmnist_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from usecases.fmnist.model import build
    from usecases.fmnist.usecase import CLASSES

    root = tmp_path_factory.mktemp("fmnist-folder")
    artifacts = _artifacts(root / "artifacts", {
        "usecase": "fmnist", "classes": list(CLASSES), "weights": "model.keras"})
    build(8, 1e-3, 1).save(artifacts / "model.keras")
    return deploy.write_folder(root / "fmnist", "fmnist", 1, "runtime.FashionRuntime",
                               artifacts, MAX_REQUEST_BYTES)


@pytest.fixture(scope="module")
def scoring_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """A migrated PostgreSQL of this folder's own: its tests stop and stall it."""
    server = EmbeddedPostgres(State.from_env(tmp_path_factory.mktemp("scoring-pg")))
    server.start()
    Database(server.conninfo()).migrate()
    yield server
    postgres_processes(server, "SIGCONT")
    server.stop()


def postgres_processes(server: EmbeddedPostgres, signal_name: str) -> None:
    """Send a signal to the server and every process it started (backends included)."""
    try:
        root = int((server.data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree}
        grew = not found <= tree
        tree |= found
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, getattr(signal, signal_name))


@dataclass
class Home:
    """A CDL_HOME whose model repository holds the given folders, scoring to ``conninfo``."""

    state: State
    conninfo: str

    @property
    def repository(self) -> Path:
        return deploy.served_models(self.state)

    def serve(self) -> contextlib.AbstractContextManager[deploy.Server]:
        return deploy.serve(self.repository, self.state.logs / "mlserver.log",
                            deploy.free_port(), deploy.free_port(), self.conninfo)

    def rows(self) -> tuple[int, int]:
        """Rows in ``scoring_data`` and distinct (server, number) keys among them."""
        with psycopg.connect(self.conninfo) as conn:
            row = conn.execute("SELECT count(*), count(DISTINCT (server_id, seq))"
                               " FROM scoring_data").fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def log(self) -> str:
        return (self.state.logs / "mlserver.log").read_text(errors="replace")


@pytest.fixture
def home(tmp_path: Path, scoring_pg: EmbeddedPostgres, bbc_folder: Path) -> Home:
    """A home serving BBC news, on an empty ``scoring_data``."""
    if not scoring_pg.is_running():
        scoring_pg.start()
    with psycopg.connect(scoring_pg.conninfo(), autocommit=True) as conn:
        conn.execute("TRUNCATE scoring_data")
    made = Home(State.from_env(tmp_path / "home"), scoring_pg.conninfo())
    shutil.copytree(bbc_folder, made.repository / "bbc-news")
    return made


def text_payload(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                        "data": texts}]}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        time.sleep(0.1)


class Load:
    """Threads sending single-text BBC requests until stopped; counts the rows answered (200)
    and requests that got no answer (the server stopping under them)."""

    def __init__(self, url: str, threads: int = 6) -> None:
        self.url = url
        self.answered = self.unanswered = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _send(self, seed: int) -> None:
        import random

        rng = random.Random(seed)
        labels = ("business", "politics", "sport", "tech", "entertainment")
        while not self._stop.is_set():
            try:
                code, _ = deploy.infer(self.url, "bbc-news",
                                       text_payload([article(rng.choice(labels), rng)]),
                                       timeout=30)
            except OSError:
                code = 0
            with self._lock:
                if code == 200:
                    self.answered += 1
                else:
                    self.unanswered += 1
            if code != 200:
                time.sleep(0.05)  # a stopped server refuses at once
