from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from usecases.errors import CDLError
from usecases.state import State
from usecases.stores.database import Database, EmbeddedPostgres, migrations, open_database


def test_migrations_are_numbered_in_order_and_applied_once(db: Database) -> None:
    shipped = migrations()
    assert [v for v, _, _ in shipped] == sorted({v for v, _, _ in shipped})
    with db.connect() as conn:
        rows = conn.execute("SELECT name FROM schema_migrations ORDER BY version")
        applied = [r[0] for r in rows]
    assert applied == [name for _, name, _ in shipped]
    assert db.migrate() == []  # nothing pending on a second run


def test_a_failing_migration_is_a_clear_error_and_changes_nothing(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from usecases.stores import database

    broken = [*migrations(), (9998, "9998_fine.sql", "CREATE TABLE fine (id int)"),
              (9999, "9999_broken.sql", "CREATE TABLE oops (id nosuchtype)")]
    monkeypatch.setattr(database, "migrations", lambda: broken)
    with pytest.raises(CDLError, match=r"migration 9999_broken.sql failed .*nosuchtype"):
        db.migrate()
    with db.connect() as conn:  # the whole run rolled back, 9998 included
        assert conn.execute("SELECT to_regclass('fine')").fetchone() == (None,)
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            migrations()[-1][0],)


def test_two_migrations_with_one_number_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    from usecases.stores import database

    folder = tmp_path / "migrations"
    folder.mkdir()
    for name in ("0001_a.sql", "0001_b.sql"):
        (folder / name).write_text("SELECT 1")

    class Package:
        def joinpath(self, _: str) -> Path:
            return folder

    monkeypatch.setattr(database.resources, "files", lambda _: Package())
    with pytest.raises(CDLError, match="share a number"):
        migrations()


def test_schema_has_the_persistence_entities(db: Database) -> None:
    with db.connect() as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
    assert {"dataset_versions", "quarantine", "train_labels", "test_labels", "experiments",
            "trials", "trial_metrics", "model_versions", "scoring_data",
            "label_exports"} <= tables


def test_embedded_server_lives_in_the_state_dir_with_a_generated_password(tmp_path: Path) -> None:
    state = State.from_env(tmp_path / "home")
    with open_database(state) as database, database.connect() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP port at all
        assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
        data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
    assert data_dir.is_relative_to(state.home)
    secret = state.secrets / "postgres-password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.secrets.stat().st_mode) == 0o700
    assert len(secret.read_text()) >= 24
    # open_database started the server, so it stopped it again on exit
    assert not EmbeddedPostgres(state).is_running()


def test_wrong_password_is_rejected(pg_server: EmbeddedPostgres) -> None:
    conninfo = pg_server.conninfo().replace(pg_server.state.secret("postgres-password"), "guess")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(conninfo)


def test_server_started_elsewhere_is_left_running(pg_server: EmbeddedPostgres) -> None:
    with open_database(pg_server.state):
        pass
    assert pg_server.is_running()


def test_unreachable_database_names_the_target_and_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    monkeypatch.setenv("CDL_DATABASE_URL", "postgresql://cdl:s3cret@127.0.0.1:1/cdl")
    with pytest.raises(CDLError) as err, open_database(State.from_env(tmp_path)):
        pass
    message = str(err.value)
    assert "cannot reach PostgreSQL at cdl@127.0.0.1:1/cdl" in message
    assert "CDL_DATABASE_URL" in err.value.fix
    assert "s3cret" not in message
