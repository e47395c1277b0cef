"""``cdl status`` as a user runs it: read-only, never waits, never shows a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from usecases.state import State
from usecases.stores.database import Database, EmbeddedPostgres
from usecases.stores.labelstudio import EmbeddedLabelStudio
from usecases.stores.registry import LocalModelRegistry

from ..cli import cdl
from .stores.test_registry import _dataset, _register

WIDE = {"COLUMNS": "400"}  # no folded table cells: a folded secret would escape the search


def status(home: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    run = cdl("status", "--json", *args, home=home, env=env)
    assert run.returncode == 0, run.stderr
    found: dict[str, Any] = json.loads(run.stdout)
    return found


def test_an_empty_home_has_nothing_running_and_models_unknown(tmp_path: Path) -> None:
    run = cdl("status", home=tmp_path / "home", env=WIDE)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    for service in ("PostgreSQL", "Label Studio", "MLServer"):
        assert any(service in line and "stopped" in line for line in run.stdout.splitlines())
    assert "database not running: start it with `cdl db start`" in run.stdout


def test_json_names_each_service_and_says_why_models_are_unknown(tmp_path: Path) -> None:
    found = status(tmp_path / "home")
    assert set(found) == {"home", "writer", "services", "database", "models", "models_note"}
    assert set(found["services"]) == {"postgresql", "label_studio", "mlserver"}
    for service in found["services"].values():
        assert set(service) == {"running", "pid", "address", "credentials", "note"}
        assert service["running"] is False and service["pid"] is None
    assert found["models"] is None and "cdl db start" in found["models_note"]
    assert found["writer"] is None and found["home"] == str((tmp_path / "home").resolve())


@pytest.fixture
def registered(pg_server: EmbeddedPostgres, tmp_path: Path) -> Iterator[Path]:
    """The session's running server as a CDL_HOME's own, with bbc-news v1 (failed) and v2
    (passed) registered; its rows removed afterwards."""
    db = Database(pg_server.conninfo())
    db.migrate()
    registry = LocalModelRegistry(db, tmp_path / "models")
    dataset = _dataset(db)
    _register(registry, dataset)
    _register(registry, dataset)
    registry.record_evaluation("bbc-news", 1, 0.5, 0.7)
    registry.record_evaluation("bbc-news", 2, 0.96, 0.7)
    yield pg_server.state.home
    with db.connect() as conn:
        conn.execute("DELETE FROM model_versions WHERE name = 'bbc-news'")
        conn.execute("DELETE FROM dataset_versions WHERE id = %s", (dataset,))


def test_a_running_database_shows_its_socket_and_the_latest_model(registered: Path) -> None:
    run = cdl("status", home=registered, env=WIDE)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any("PostgreSQL" in line and "running" in line and ".s.PGSQL.5432" in line
               for line in lines)
    model = [line for line in lines if "bbc-news" in line]
    assert len(model) == 1 and "v2" in model[0] and "0.960" in model[0]
    assert "passed" in model[0]

    found = status(registered)
    database = found["services"]["postgresql"]
    assert database["running"] is True and isinstance(database["pid"], int)
    assert database["credentials"] == str(registered / "secrets" / "postgres-password")
    assert found["models"] == [{"name": "bbc-news", "version": 2, "usecase": "bbc",
                                "test_accuracy": 0.96, "gate_threshold": 0.7,
                                "gate": "passed", "packaged": None}]


def test_models_come_from_cdl_database_url_without_its_password(tmp_path: Path,
                                                                db: Database) -> None:
    registry = LocalModelRegistry(db, tmp_path / "models")
    _register(registry, _dataset(db))
    found = status(tmp_path / "home", env={"CDL_DATABASE_URL": db.conninfo})
    assert [(m["name"], m["gate"]) for m in found["models"]] == [("bbc-news", "not evaluated")]
    assert found["database"].startswith("CDL_DATABASE_URL (cdl@")
    assert str(conninfo_to_dict(db.conninfo)["password"]) not in json.dumps(found)


def test_credentials_are_named_by_path_never_shown(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = State.from_env(home)
    login = EmbeddedLabelStudio(state, conninfo="").credentials()  # as the first start makes it
    secrets = [login["password"], login["token"], state.secret("postgres-password")]
    human = cdl("status", home=home, env=WIDE)
    machine = cdl("status", "--json", home=home, env=WIDE)
    for run in (human, machine):
        assert run.returncode == 0, run.stderr
        for secret in secrets:
            assert secret not in run.stdout + run.stderr
    services = json.loads(machine.stdout)["services"]
    assert services["label_studio"]["credentials"] == str(state.secrets / "label-studio.json")
    assert str(state.secrets / "label-studio.json") in human.stdout


def test_it_answers_while_another_process_writes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with State.from_env(home).writer("cdl demo"):
        human = cdl("status", home=home, env=WIDE)
        found = status(home)
    assert human.returncode == 0 and "`cdl demo`" in human.stdout
    assert found["writer"]["pid"] == os.getpid() and found["writer"]["command"] == "cdl demo"


def test_records_of_servers_that_died_read_as_stopped(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    (home / "label-studio").mkdir(parents=True)
    (home / "label-studio" / "server.json").write_text(json.dumps({"pid": pid, "port": 1}))
    (home / "serving" / "models").mkdir(parents=True)
    (home / "serving" / "models" / ".mlserver.json").write_text(
        json.dumps({"pid": pid, "owner": pid}))
    services = status(home)["services"]
    assert services["label_studio"]["running"] is False
    assert services["mlserver"]["running"] is False
