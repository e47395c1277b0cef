"""Shared fixtures: a real embedded PostgreSQL server per session, a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from usecases.state import State
from usecases.stores.database import Database, EmbeddedPostgres
from usecases.stores.labelstudio import EmbeddedLabelStudio, Studio
from usecases.stores.local import Stores, local_stores
from usecases.workflow.context import Context
from usecases.workflow.deploy import free_port
from usecases.workflow.display import Display

REPO = Path(__file__).resolve().parent.parent


def datasets_root() -> Path:
    configured = os.environ.get("CDL_DATASETS")
    return Path(configured) if configured else REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def bbc_raw() -> Path:
    path = datasets_root() / "bbc"
    if not (path / "bbc.vocab").exists():
        pytest.fail(f"the raw BBC dataset is not at {path}; set CDL_DATASETS")
    return path


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(State.from_env(tmp_path_factory.mktemp("pg-home")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def db(pg_server: EmbeddedPostgres) -> Iterator[Database]:
    """A migrated, empty database of its own for each test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = pg_server.conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(admin)
    params["dbname"] = name
    database = Database(make_conninfo(**params))  # type: ignore[arg-type]
    database.migrate()
    yield database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State.from_env(tmp_path / "cdl-home")


@pytest.fixture
def stores(state: State, db: Database) -> Stores:
    """The local side of every store, over the test's own database and state directory."""
    return local_stores(state, db)


@pytest.fixture
def ctx(state: State, stores: Stores) -> Iterator[Context]:
    """A quiet run context (no Label Studio: labels go the direct path); its background work
    is stopped at the end of the test."""
    made = Context(state, stores, Display())
    with made.background:
        yield made


@pytest.fixture(scope="session")
def label_studio_server(tmp_path_factory: pytest.TempPathFactory,
                        pg_server: EmbeddedPostgres) -> Iterator[EmbeddedLabelStudio]:
    """A real Label Studio server (the one scripts/setup.sh installs), on the session's
    PostgreSQL, started once: its first start applies Django's migrations (~30 s)."""
    server = EmbeddedLabelStudio(State.from_env(tmp_path_factory.mktemp("ls-home")),
                                 pg_server.conninfo(), free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def label_studio(label_studio_server: EmbeddedLabelStudio) -> Iterator[Studio]:
    """The session's Label Studio, with no projects left over from other tests."""
    from label_studio_sdk import LabelStudio

    studio = label_studio_server.running()
    assert studio is not None, "the session's Label Studio stopped"
    yield studio
    sdk = LabelStudio(base_url=studio.url, api_key=studio.token)
    for project in list(sdk.projects.list()):
        sdk.projects.delete(id=project.id)
