"""day2/postgres-backup.yml and postgres-restore.yml against a real PostgreSQL (Debian's 15)
on a throwaway Debian 12 host: back up, damage the data, restore, and check the row counts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.playbooks.testhosts import Fleet, fleet
from usecases.errors import CDLError

pytestmark = pytest.mark.slow

HOST = "cdl-db"
SEEDED = {"labels": {"public.annotations": 1234, "public.tasks": 50},
          "registry": {"public.models": 7, "scoring.requests": 321}}
SELECTION = {"postgres_hosts": HOST, "postgres_databases": sorted(SEEDED)}


@pytest.fixture(scope="module")
def server(rootfs: Path, ssh_key: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Fleet]:
    with fleet(rootfs, ssh_key, tmp_path_factory.mktemp("postgres"), {HOST: ["postgres"]},
               3) as hosts:
        hosts.run(str(Path(__file__).parent / "data" / "postgres-server.yml"))
        yield hosts


def _counts(server: Fleet, database: str) -> dict[str, int]:
    query = ("SELECT table_schema || '.' || table_name FROM information_schema.tables "
             "WHERE table_type = 'BASE TABLE' "
             "AND table_schema NOT IN ('pg_catalog', 'information_schema')")
    tables = _psql(server, database, query).split()
    return {table: int(_psql(server, database, f"SELECT count(*) FROM {table}"))
            for table in tables}


def _psql(server: Fleet, database: str, sql: str) -> str:
    done = server.ssh(HOST, f"sudo -u postgres psql -XAt -v ON_ERROR_STOP=1 -d {database} "
                            f"-c \"{sql}\"")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_backup_then_restore_brings_every_row_back(server: Fleet) -> None:
    assert {db: _counts(server, db) for db in SEEDED} == SEEDED
    server.run("postgres-backup", extravars=SELECTION)
    listing = server.ssh(HOST, "sudo ls /var/backups/cdl-postgres/latest/")
    assert listing.stdout.split() == ["labels.dump", "manifest.json", "registry.dump"]

    _psql(server, "labels", "DELETE FROM annotations WHERE id % 2 = 0")
    _psql(server, "labels", "DROP TABLE annotations")
    _psql(server, "registry", "INSERT INTO models VALUES ('rogue', 99)")
    assert _counts(server, "labels") == {"public.tasks": 50}

    server.run("postgres-restore", extravars=SELECTION)
    assert {db: _counts(server, db) for db in SEEDED} == SEEDED


def test_restore_fails_when_counts_differ_from_the_manifest(server: Fleet) -> None:
    server.run("postgres-backup", extravars=SELECTION)
    # A manifest that claims one more model than the dump holds: the check must catch it.
    tamper = server.ssh(HOST, "sudo sed -i 's/\"public.models\": \"7\"/\"public.models\": \"8\"/' "
                              "/var/backups/cdl-postgres/latest/manifest.json")
    assert tamper.returncode == 0
    with pytest.raises(CDLError) as error:
        server.run("postgres-restore", extravars=SELECTION)
    assert error.value.problem.startswith(
        f"postgres-restore.yml failed on host {HOST} at task "
        "'Check every table has the rows it had when backed up'")
