"""Scoring Data (the paper named it, never built it): what served models were asked and answered.

The serving runtime writes one ``scoring_data`` row per prediction (``usecases/serving/scoring.py``,
inside the model folder so the folder stays self-contained); this store reads them back, with the
training labels (``train_labels``) of the dataset version a model version was trained on
(``model_versions``), for summaries and drift.

Locally the tables live in the embedded PostgreSQL. On a cluster they live in the cluster's
PostgreSQL (CloudNativePG), the same tables from the same migrations, which the serving pods write
to: the cluster side is a ``ScoringStore`` over that server, and this class is it once
``CDL_DATABASE_URL`` points there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from usecases.stores.database import Database


@dataclass(frozen=True)
class ServedVersion:
    """The predictions of one model version: how many, when, and how fast."""

    model: str
    version: str
    requests: int
    first: datetime
    last: datetime
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class ServerRows:
    """The numbered rows of one scoring log (one model in one server process) in the table."""

    model: str
    version: str
    server_id: str
    rows: int
    last: int  # the highest number stored
    spooled_stored: int  # how many of the numbers asked about are stored


@dataclass(frozen=True)
class ServedInput:
    """One served prediction with what was asked: an article's text or an image's pixels."""

    id: int  # the Scoring Data row
    sha256: str  # of the input, as the server hashed it
    at: datetime
    input: str | bytes
    prediction: str
    confidence: float | None  # the model's probability for it (None: an older server's row)


class ScoringStore(Protocol):
    def served_versions(self, model: str | None = None) -> list[ServedVersion]:
        """Every model version with predictions (only ``model``'s when given), by name and
        version."""
        ...

    def served_classes(self, model: str, version: str) -> dict[str, int]:
        """How often the version predicted each class."""
        ...

    def training_classes(self, model: str, version: str) -> dict[str, int]:
        """Class counts of the training labels of the dataset version the model version was
        trained on; empty when the registry does not know the version."""
        ...

    def count_since(self, model: str, since: datetime) -> int:
        """Predictions recorded for ``model`` at or after ``since``."""
        ...

    def served_inputs(self, model: str, version: str, since: datetime) -> list[ServedInput]:
        """The version's predictions at or after ``since`` with their inputs, oldest first."""
        ...

    def server_rows(self, spooled: Sequence[tuple[str, int]],
                    model: str | None = None) -> list[ServerRows]:
        """Per scoring log with numbered rows (only ``model``'s when given): how many rows,
        the highest number, and how many of the ``spooled`` (server id, number) pairs are
        stored; all from one snapshot of the table."""
        ...


class PostgresScoringStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _fetch(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        with self.db.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def served_versions(self, model: str | None = None) -> list[ServedVersion]:
        where, params = ("WHERE model = %s", (model,)) if model else ("", ())
        percentiles = ", ".join(f"percentile_cont({q}) WITHIN GROUP (ORDER BY latency_ms)"
                                for q in (0.5, 0.95, 0.99))
        return [ServedVersion(*row) for row in self._fetch(
            f"SELECT model, model_version, count(*), min(at), max(at), {percentiles}"
            f" FROM scoring_data {where} GROUP BY 1, 2 ORDER BY 1, 2", params)]

    def served_classes(self, model: str, version: str) -> dict[str, int]:
        with self.db.connect() as conn:
            return dict(conn.execute(
                "SELECT prediction, count(*) FROM scoring_data WHERE model = %s"
                " AND model_version = %s GROUP BY 1", (model, version)).fetchall())

    def training_classes(self, model: str, version: str) -> dict[str, int]:
        # scoring_data keeps the version as the server reports it (text); the registry
        # numbers versions
        with self.db.connect() as conn:
            return dict(conn.execute(
                "SELECT l.label, count(*) FROM train_labels l JOIN model_versions m"
                " ON m.dataset_version = l.dataset_version"
                " WHERE m.name = %s AND m.version::text = %s GROUP BY 1",
                (model, version)).fetchall())

    def count_since(self, model: str, since: datetime) -> int:
        with self.db.connect() as conn:
            row = conn.execute("SELECT count(*) FROM scoring_data WHERE model = %s"
                               " AND at >= %s", (model, since)).fetchone()
        return int(row[0]) if row else 0

    def served_inputs(self, model: str, version: str, since: datetime) -> list[ServedInput]:
        rows = self._fetch(
            "SELECT id, input_sha256, at, coalesce(input_text, ''), input_pixels, prediction,"
            " confidence FROM scoring_data WHERE model = %s AND model_version = %s"
            " AND at >= %s ORDER BY at, id", (model, version, since))
        return [ServedInput(row_id, sha, at, bytes(pixels) if pixels is not None else text,
                            prediction, confidence)
                for row_id, sha, at, text, pixels, prediction, confidence in rows]

    def server_rows(self, spooled: Sequence[tuple[str, int]],
                    model: str | None = None) -> list[ServerRows]:
        where, params = ("AND d.model = %s", (model,)) if model else ("", ())
        return [ServerRows(*row) for row in self._fetch(
            "WITH spooled (server_id, seq) AS (SELECT * FROM unnest(%s::text[],"
            " %s::bigint[])) SELECT d.model, d.model_version, d.server_id, count(*),"
            " max(d.seq), count(s.seq) FROM scoring_data d LEFT JOIN spooled s"
            " ON s.server_id = d.server_id AND s.seq = d.seq"
            f" WHERE d.server_id IS NOT NULL {where} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            ([server for server, _ in spooled], [seq for _, seq in spooled], *params))]
