"""Scoring Data: every prediction the server makes, recorded in PostgreSQL, none lost on the way.

The runtime queues each row and answers at once; two threads take it from there, so neither
the disk nor a slow, stalled or stopped database delays or fails a prediction:

- the spooler appends queued rows to the spool (``spool.py``, in the state directory), at most
  ``FLUSH_ROWS`` rows a batch and one batch a ``FLUSH_SECONDS``, fsyncing each batch;
- the loader copies spooled rows into ``scoring_data`` and removes segments the database
  holds. While the database is unreachable rows wait in the spool, up to ``SPOOL_BYTES`` per
  model and server; past that bound new rows are dropped, counted and logged.

Each scoring log (one model in one server process) numbers its rows: ``(server_id, seq)`` is
the table's unique key, so a row written twice (a replay, a batch retried after a lost
connection) is stored once, and a number missing from a sequence is a row lost, which
``cdl scoring`` reports.

SIGTERM and SIGINT drain the queue and then the spool before the server exits (within
``DRAIN_SECONDS``; rows the database cannot take by then stay in the spool). After kill -9 the
next start replays the spool. A kill -9 loses only rows not yet spooled, and a power cut only
rows not yet fsynced: in both cases the fsync window, the rows answered in the last
``FLUSH_SECONDS`` and while the last batch was written and fsynced (one fsync takes 0.7 ms
median, 5 ms p99 on the development machine: about 15 rows at 1000 rows/s).
Only if the disk falls behind the requests does the window grow, up to ``QUEUE_BYTES`` of rows.
Those are the highest numbers of their sequence, so no later number shows them as missing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import spool

logger = logging.getLogger("cdl.scoring")
DSN_ENV = "CDL_SCORING_DSN"  # libpq connection string; unset: scoring is off
SPOOL_ENV = "CDL_SCORING_SPOOL"  # the spool's folder; default: beside the served models
SPOOL_BYTES_ENV = "CDL_SCORING_SPOOL_BYTES"
SPOOL_DIR = ".scoring-spool"
SPOOL_BYTES = 512 * 1024 * 1024  # per scoring log: about 200,000 BBC rows
QUEUE_BYTES = 64 * 1024 * 1024  # rows in memory, waiting for the spooler
FLUSH_ROWS = 256
# The spooler writes and fsyncs one batch a FLUSH_SECONDS at most (group commit): one fsync for
# every row of a busy server woke it, and took the GIL from serving, hundreds of times a second
FLUSH_SECONDS = 0.01
LOAD_ROWS, LOAD_BYTES = 500, 4 * 1024 * 1024  # one transaction of the loader
DRAIN_SECONDS = 20.0  # `cdl serve` gives MLServer 30 s to stop before it kills it
RETRY_SECONDS = (0.25, 2.0)  # the loader's first and longest wait for a database that failed
# The loader makes one pass a LOAD_INTERVAL at most, so that rows gather into few transactions
# and its work takes the GIL from serving in few, larger turns; rows reach the table that much
# later, never lost (they are spooled)
LOAD_INTERVAL = 0.2

_COLUMNS = ("seq", "at", "model", "model_version", "request_id", "input_sha256", "input_text",
            "input_pixels", "prediction", "latency_ms", "confidence")
_OPTIONAL = ("confidence",)  # absent from the lines an older server spooled
_NAMES = f"server_id, {', '.join(_COLUMNS)}"
_INSERT = (f"INSERT INTO scoring_data ({_NAMES})"
           f" VALUES ({', '.join(['%s'] * (len(_COLUMNS) + 1))})"
           " ON CONFLICT (server_id, seq) DO NOTHING")
# A batch goes in by COPY to a table of the connection's own, then one INSERT that skips the
# rows the table has: executemany's per-row work competed with serving for the GIL
_STAGE = "scoring_stage"
_CREATE_STAGE = (f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} ON COMMIT DELETE ROWS AS"
                 f" SELECT {_NAMES} FROM scoring_data WITH NO DATA")
_COPY = f"COPY {_STAGE} ({_NAMES}) FROM STDIN"
_FROM_STAGE = (f"INSERT INTO scoring_data ({_NAMES}) SELECT {_NAMES} FROM {_STAGE}"
               " ON CONFLICT (server_id, seq) DO NOTHING")


@dataclass
class Score:
    at: datetime
    model: str
    model_version: str
    request_id: str | None
    input_sha256: str
    input_text: str | None
    input_pixels: bytes | None
    prediction: str
    latency_ms: float
    confidence: float | None = None  # the model's probability for ``prediction``
    seq: int = 0  # given by the scoring log


@dataclass(frozen=True)
class Spooled:
    """A row in the spool, by its key."""

    server_id: str
    seq: int
    model: str
    model_version: str


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


def spool_root(repository: Path) -> Path:
    """The spool of the servers of a model repository (``CDL_SCORING_SPOOL`` if set)."""
    configured = os.environ.get(SPOOL_ENV)
    return Path(configured) if configured else repository / SPOOL_DIR


def spooled(root: Path) -> Iterator[Spooled]:
    """The rows in the spool under ``root`` (some may be in the database already)."""
    for server_id, line in spool.lines(root):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            row = json.loads(line)
            yield Spooled(server_id, int(row["seq"]), row["model"], row["model_version"])


def _line(score: Score) -> bytes:
    row: dict[str, Any] = {name: getattr(score, name) for name in _COLUMNS}
    row["at"] = score.at.isoformat()
    if score.input_pixels is not None:
        row["input_pixels"] = base64.b64encode(score.input_pixels).decode()
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _params(server_id: str, line: bytes) -> tuple[Any, ...]:
    row = json.loads(line)
    row["at"] = datetime.fromisoformat(row["at"])
    if row["input_pixels"] is not None:
        row["input_pixels"] = base64.b64decode(row["input_pixels"])
    return (server_id, *(row.get(name) if name in _OPTIONAL else row[name]
                         for name in _COLUMNS))


def _size(score: Score) -> int:
    return 256 + len(score.input_text or "") + len(score.input_pixels or b"")


class ScoringLog:
    """The Scoring Data of one model in this process: rows numbered, spooled under ``root``
    and written to the database at ``dsn`` (default ``CDL_SCORING_DSN``; none: off)."""

    def __init__(self, root: Path, dsn: str | None = None) -> None:
        self.dsn = dsn if dsn is not None else os.environ.get(DSN_ENV)
        self.root = root
        self.server_id = uuid.uuid4().hex
        self.seq = 0
        self.dropped = 0
        self._written = 0  # rows the loader sent (those the table had already included)
        self.spool_bytes = int(os.environ.get(SPOOL_BYTES_ENV) or SPOOL_BYTES)
        self._queue: deque[tuple[Score, int]] = deque()
        self._queued = 0
        self._ready = threading.Condition()
        self._wake = threading.Event()
        self._stopping = False
        self._stopped = threading.Event()  # set with _stopping: the loader lingers no more
        self._deadline = 0.0
        self._caught_up = False
        self._problem: str | None = None  # why the spooler drops rows, while it does
        self._queue_full = False
        self._threads: list[threading.Thread] = []
        self._guard: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.dsn)

    def start(self) -> None:
        """Claim the spools of dead servers and start writing; on the running event loop,
        whose end (MLServer stopping on SIGTERM or SIGINT) drains what is queued."""
        if not self.enabled:
            return
        self._spool = spool.Spool(self.root, self.server_id, self.spool_bytes)
        self._orphans = spool.claim_orphans(self.root)
        self._offsets: dict[Path, int] = {}
        self._threads = [threading.Thread(target=self._spool_rows, name="scoring-spooler",
                                          daemon=True),
                         threading.Thread(target=self._load_rows, name="scoring-loader",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()
        self._guard = asyncio.get_running_loop().create_task(self._until_shutdown())

    def record(self, score: Score) -> None:
        if not self._threads:
            return
        self.seq += 1
        score.seq = self.seq
        size = _size(score)
        with self._ready:
            full = self._queued + size > QUEUE_BYTES
            if full != self._queue_full:  # said when it starts and when it ends
                logger.warning("scoring: %s; %d rows dropped so far",
                               f"{self._queued} bytes of rows wait in memory, the limit: new "
                               "rows are dropped until the disk catches up" if full
                               else "the queue takes rows again", self.dropped + full)
                self._queue_full = full
            if full:
                self.dropped += 1
                return
            self._queue.append((score, size))
            self._queued += size
            self._ready.notify()

    async def close(self) -> None:
        """Write what is queued and spooled (what the database cannot take stays spooled),
        then stop."""
        await asyncio.to_thread(self.stop)
        if self._guard is not None:
            self._guard.cancel()

    async def _until_shutdown(self) -> None:
        # asyncio.run cancels this task when MLServer's serving coroutine returns; stopping
        # here, blocking the loop, holds the process until the rows are written
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.stop()

    def stop(self) -> None:
        with self._ready:
            if self._stopping or not self._threads:
                return
            self._stopping = True
            self._stopped.set()
            self._deadline = time.monotonic() + DRAIN_SECONDS
            self._ready.notify_all()
        spooler, loader = self._threads
        spooler.join(DRAIN_SECONDS)
        self._wake.set()
        loader.join(max(0.0, self._deadline - time.monotonic()))
        if not loader.is_alive() and self._caught_up:
            self._spool.discard()
        elif self._spool.bytes:
            logger.warning("scoring: %d bytes of rows stay in the spool at %s; the next start "
                           "writes them to the database", self._spool.bytes, self._spool.folder)

    def _drop(self, rows: int, why: str) -> None:
        self.dropped += rows
        logger.warning("scoring: %d rows dropped (%s); %d dropped so far", rows, why,
                       self.dropped)

    def _spool_rows(self) -> None:
        flushed = 0.0
        while True:
            with self._ready:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
            self._stopped.wait(flushed + FLUSH_SECONDS - time.monotonic())
            flushed = time.monotonic()
            with self._ready:
                batch = [self._queue.popleft() for _ in range(min(FLUSH_ROWS,
                                                                  len(self._queue)))]
                self._queued -= sum(size for _, size in batch)
            lines = [_line(score) for score, _ in batch]
            problem = None
            try:
                written = self._spool.append(lines)
            except OSError as exc:
                written, problem = 0, (f"the spool at {self._spool.folder} cannot be written: "
                                       f"{exc.strerror or type(exc).__name__}")
            if written < len(lines):
                problem = problem or (f"the spool at {self._spool.folder} is full "
                                      f"({self._spool.bytes} bytes, the limit {SPOOL_BYTES_ENV}"
                                      " sets): new rows are dropped until the database takes "
                                      "spooled ones")
                self.dropped += len(lines) - written
            self._wake.set()
            if problem != self._problem:
                # once when the trouble starts and once when it ends, not once a batch
                logger.warning("scoring: %s; %d rows dropped so far", problem
                               or "the spool takes rows again", self.dropped)
                self._problem = problem

    def _load_rows(self) -> None:
        import psycopg

        connection: psycopg.Connection[Any] | None = None
        wait, down, passed = RETRY_SECONDS[0], False, 0.0
        while True:
            self._wake.wait(wait if down else 1.0)
            if not down:
                self._stopped.wait(passed + LOAD_INTERVAL - time.monotonic())
            passed = time.monotonic()
            self._wake.clear()
            spooler_done = not self._threads[0].is_alive()
            try:
                if connection is None or connection.closed:
                    connection = psycopg.connect(self.dsn or "", autocommit=True,
                                                 connect_timeout=5)
                    connection.execute(_CREATE_STAGE)
                self._caught_up = self._load_pass(connection)
            except Exception as exc:  # whatever it is, the database must never stop serving
                if not down:
                    logger.warning("scoring: cannot write to the database (%s); rows wait in "
                                   "the spool at %s", type(exc).__name__, self._spool.folder)
                wait = RETRY_SECONDS[0] if not down else min(wait * 2, RETRY_SECONDS[1])
                down, self._caught_up = True, False
                with contextlib.suppress(Exception):
                    if connection is not None:
                        connection.close()
                connection = None
                if self._stopping:
                    return
                continue
            if down:
                logger.warning("scoring: the database is back; spooled rows are written")
                down = False
            if self._stopping and (spooler_done and self._caught_up
                                   or time.monotonic() > self._deadline):
                connection.close()
                return

    def _load_pass(self, connection: Any) -> bool:
        """Write every spooled row the database lacks; whether the own spool is written to
        its end."""
        for orphan in list(self._orphans):
            before = self._written
            self._load(connection, orphan)
            orphan.discard()
            self._orphans.remove(orphan)
            logger.warning("scoring: replayed the spool of server %s, which had stopped "
                           "before writing it all: %d rows (those the table has are skipped)",
                           orphan.server_id, self._written - before)
        return self._load(connection, self._spool)

    def _load(self, connection: Any, source: spool.Spool | spool.Orphan) -> bool:
        done = True
        for segment in source.segments():
            offset = self._offsets.get(segment.path, 0)
            while offset < segment.size:
                lines, end = spool.read(segment, offset, LOAD_BYTES, LOAD_ROWS)
                if not lines:
                    break  # the cut-short last line of a server that died writing it
                self._insert(connection, source.server_id, lines)
                offset = self._offsets[segment.path] = end
            if segment.closed:
                source.release(segment)
                self._offsets.pop(segment.path, None)
            done = done and offset >= segment.size
        return done

    def _insert(self, connection: Any, server_id: str, lines: list[bytes]) -> None:
        import psycopg

        rows = []
        for line in lines:
            try:
                rows.append(_params(server_id, line))
            except (ValueError, KeyError, TypeError):
                self._drop(1, f"a corrupt line in the spool of server {server_id}")
        try:
            with connection.transaction(), connection.cursor() as cur:
                with cur.copy(_COPY) as copy:
                    for row in rows:
                        copy.write_row(row)
                cur.execute(_FROM_STAGE)
            self._written += len(rows)
        except (psycopg.DataError, UnicodeError):
            # one row the database refuses must not hold back the others
            for row in rows:
                try:
                    with connection.transaction(), connection.cursor() as cur:
                        cur.execute(_INSERT, row)
                    self._written += 1
                except (psycopg.DataError, UnicodeError) as exc:
                    self._drop(1, f"the database refused it: {type(exc).__name__}")
