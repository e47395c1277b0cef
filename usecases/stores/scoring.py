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

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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


class PostgresScoringStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def served_versions(self, model: str | None = None) -> list[ServedVersion]:
        where, params = ("WHERE model = %s", (model,)) if model else ("", ())
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT model, model_version, count(*), min(at), max(at),"
                " percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),"
                " percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms),"
                " percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)"
                f" FROM scoring_data {where} GROUP BY 1, 2 ORDER BY 1, 2", params).fetchall()
        return [ServedVersion(*row) for row in rows]

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
