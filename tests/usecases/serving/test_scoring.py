"""No Scoring Data lost: a real MLServer under load while its real PostgreSQL is stopped,
stalled, or the server itself is stopped (SIGTERM) or killed (kill -9) and started again."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from usecases.serving.scoring import SPOOL_BYTES_ENV, spool_root, spooled
from usecases.stores.database import Database, EmbeddedPostgres
from usecases.stores.scoring import PostgresScoringStore
from usecases.workflow import deploy
from usecases.workflow.scoring import summarize

from ...cli import cdl
from .conftest import Home, Load, postgres_processes, text_payload, wait_until

pytestmark = pytest.mark.slow


def _all_stored(home: Home, answered: int, timeout: float = 30) -> None:
    wait_until(lambda: home.rows()[0] >= answered, timeout, f"{answered} rows stored")
    assert home.rows() == (answered, answered)


def _completeness(home: Home) -> dict[str, int]:
    waiting = list(spooled(spool_root(home.repository)))
    (summary,) = summarize(PostgresScoringStore(Database(home.conninfo)), "bbc-news", waiting)
    return dict(summary["completeness"])


def test_an_outage_under_load_loses_no_row(home: Home, scoring_pg: EmbeddedPostgres) -> None:
    with home.serve() as server, Load(server.url) as load:
        time.sleep(1)
        scoring_pg.stop()
        before = load.answered
        time.sleep(3)
        during = load.answered - before
        scoring_pg.start()
        time.sleep(1)
    assert load.unanswered == 0 and during > 100  # answered while the database was down
    _all_stored(home, load.answered)
    log = home.log()
    assert "cannot write to the database (" in log  # AdminShutdown or OperationalError
    assert "the database is back" in log and "dropped" not in log
    assert not any(spool_root(home.repository).iterdir())  # written, then removed


def test_a_stalled_database_loses_no_row(home: Home, scoring_pg: EmbeddedPostgres) -> None:
    with home.serve() as server, Load(server.url) as load:
        time.sleep(1)
        postgres_processes(scoring_pg, "SIGSTOP")
        before = load.answered
        try:
            time.sleep(3)
            during = load.answered - before
        finally:
            postgres_processes(scoring_pg, "SIGCONT")
        time.sleep(1)
    assert load.unanswered == 0 and during > 100  # answered while the database was stalled
    _all_stored(home, load.answered)
    assert _completeness(home) == {"servers": 1, "spooled": 0, "lost": 0}


def test_sigterm_under_load_drains_the_queue_and_the_spool(
        home: Home, scoring_pg: EmbeddedPostgres) -> None:
    with home.serve() as server, Load(server.url) as load:
        time.sleep(1)
        postgres_processes(scoring_pg, "SIGSTOP")  # rows pile up in the spool
        try:
            time.sleep(2)
            os.killpg(server.process.pid, signal.SIGTERM)
            time.sleep(1)  # the server waits for the database to take them
        finally:
            postgres_processes(scoring_pg, "SIGCONT")
        assert server.process.wait(timeout=30) == 0
        load.stop()
    assert load.answered > 100
    # every answered row is in the table the moment the server has exited
    assert home.rows() == (load.answered, load.answered)
    assert not any(spool_root(home.repository).iterdir())


def test_kill_9_then_restart_replays_the_spool_once(home: Home,
                                                   scoring_pg: EmbeddedPostgres) -> None:
    texts = [f"The team won cup match number {i}." for i in range(60)]
    with home.serve() as server:
        for text in texts[:20]:  # stored, and still in the spool's open segment
            assert deploy.infer(server.url, "bbc-news", text_payload([text]))[0] == 200
        wait_until(lambda: home.rows()[0] == 20, 10, "the first rows stored")
        scoring_pg.stop()
        for text in texts[20:]:
            assert deploy.infer(server.url, "bbc-news", text_payload([text]))[0] == 200
        root = spool_root(home.repository)
        wait_until(lambda: len(list(spooled(root))) == 60, 10, "all rows spooled")
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    (orphan,) = [p for p in root.iterdir() if not p.name.startswith(".")]
    scoring_pg.start()
    # a reader of the spool and the table sees the rows waiting, none lost
    assert _completeness(home) == {"servers": 1, "spooled": 40, "lost": 0}
    with home.serve():
        wait_until(lambda: not orphan.exists(), 30, "the dead server's spool replayed")
    assert home.rows() == (60, 60)  # each row once, though 20 were replayed a second time
    assert "replayed the spool of server" in home.log()

    report = cdl("scoring", "--model", "bbc-news", home=home.state.home,
                 env={"CDL_DATABASE_URL": home.conninfo})
    assert report.returncode == 0, report.stderr
    (summary,) = json.loads(report.stdout)
    assert summary["requests"] == 60
    assert summary["completeness"] == {"servers": 1, "spooled": 0, "lost": 0}


def test_scoring_reports_a_row_missing_from_a_sequence(home: Home,
                                                       scoring_pg: EmbeddedPostgres) -> None:
    with home.serve() as server:
        scoring_pg.stop()
        for i in range(5):
            assert deploy.infer(server.url, "bbc-news",
                                text_payload([f"The minister lost vote {i}."]))[0] == 200
        root = spool_root(home.repository)
        wait_until(lambda: len(list(spooled(root))) == 5, 10, "all rows spooled")
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
    (segment,) = root.glob("*/*.jsonl")
    lines = segment.read_bytes().splitlines(keepends=True)
    segment.write_bytes(b"".join(lines[:2] + lines[3:]))  # row 3 lost, as a disk might
    scoring_pg.start()
    # number 3 is neither spooled nor stored, below a number that is: lost, before and after
    assert _completeness(home) == {"servers": 1, "spooled": 4, "lost": 1}
    with home.serve():
        wait_until(lambda: home.rows()[0] == 4, 30, "the spool replayed")
    assert _completeness(home) == {"servers": 1, "spooled": 0, "lost": 1}


def test_a_full_spool_drops_rows_says_so_and_the_gap_shows(
        home: Home, scoring_pg: EmbeddedPostgres, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SPOOL_BYTES_ENV, "8000")  # a few rows of these
    text = "The minister lost the vote in parliament. " * 25
    with home.serve() as server:
        scoring_pg.stop()
        for _ in range(20):
            assert deploy.infer(server.url, "bbc-news", text_payload([text]))[0] == 200
        wait_until(lambda: "is full" in home.log(), 10, "the spool full")
        kept = len(list(spooled(spool_root(home.repository))))
        assert 0 < kept < 20
        scoring_pg.start()
        wait_until(lambda: home.rows()[0] == kept, 30, "the spooled rows stored")
        assert deploy.infer(server.url, "bbc-news", text_payload([text]))[0] == 200
        wait_until(lambda: home.rows()[0] == kept + 1, 10, "a new row stored")
    assert _completeness(home) == {"servers": 1, "spooled": 0, "lost": 20 - kept}
    assert "the spool takes rows again" in home.log()
