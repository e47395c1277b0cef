"""Scoring Data: every prediction the server makes, recorded in PostgreSQL.

Rows are queued by the runtime and written by a background task (in batches when requests
arrive faster than one write), so a slow or absent database never delays or fails a
prediction; what could not be written is counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime

logger = logging.getLogger("cdl.scoring")
DSN_ENV = "CDL_SCORING_DSN"  # libpq connection string; unset: scoring is off


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


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


class ScoringLog:
    def __init__(self, dsn: str | None = None) -> None:
        self.dsn = dsn if dsn is not None else os.environ.get(DSN_ENV)
        self.queue: asyncio.Queue[Score] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def enabled(self) -> bool:
        return bool(self.dsn)

    def record(self, score: Score) -> None:
        if not self.enabled:
            return
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
        self.queue.put_nowait(score)

    async def _run(self) -> None:
        import psycopg

        connection: psycopg.AsyncConnection | None = None
        while True:
            # Whatever queued while the last write ran goes in one batch.
            batch = [await self.queue.get()]
            while not self.queue.empty():
                batch.append(self.queue.get_nowait())
            try:
                if connection is None or connection.closed:
                    connection = await psycopg.AsyncConnection.connect(self.dsn or "",
                                                                       autocommit=True)
                async with connection.cursor() as cur:
                    await cur.executemany(
                        "INSERT INTO scoring_data (at, model, model_version, request_id,"
                        " input_sha256, input_text, input_pixels, prediction, latency_ms)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [(s.at, s.model, s.model_version, s.request_id, s.input_sha256,
                          s.input_text, s.input_pixels, s.prediction, s.latency_ms)
                         for s in batch])
            except Exception as exc:  # the database must never take serving down
                self.dropped += len(batch)
                logger.warning("scoring: %d rows not written (%s); %d dropped so far",
                               len(batch), type(exc).__name__, self.dropped)
                connection = None
            finally:
                for _ in batch:
                    self.queue.task_done()

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self.task is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout=10)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
