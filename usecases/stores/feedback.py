"""Feedback samples: served inputs Model Maintenance sent to labeling, and what came back.

Each sample is one Scoring Data row (its source) whose input is stored once in ML Data by its
content hash, with the prediction and confidence the served model gave it, the Label Studio
project its task is in, and, once labeled, the label, who set it and when, and the dataset
version it joined. The local side is the ``feedback_samples`` table in the project's
PostgreSQL; on a cluster it is the same table in the cluster's PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from usecases.stores.database import Database


@dataclass(frozen=True)
class Sample:
    scoring_id: int
    usecase: str
    model: str
    model_version: str
    sha256: str
    prediction: str
    confidence: float | None
    served_at: datetime
    project: int
    sent_at: datetime
    label: str | None = None
    labeler: str | None = None
    labeled_at: datetime | None = None
    dataset_version: str | None = None


class Feedback(Protocol):
    def known(self, usecase: str) -> set[str]:
        """Content hashes of the use case's samples already sent (one task per input)."""
        ...

    def add(self, samples: list[Sample]) -> int:
        """Record samples as sent; one whose input was sent before is left out. Returns how
        many were recorded."""
        ...

    def samples(self, usecase: str) -> list[Sample]:
        """Every sample of the use case, oldest first."""
        ...

    def label(self, scoring_id: int, label: str, labeler: str, at: datetime) -> None: ...

    def joined(self, scoring_ids: list[int], dataset_version: str) -> None:
        """The samples became part of ``dataset_version``."""
        ...


_FIELDS = ", ".join(Sample.__dataclass_fields__)


class PostgresFeedback:
    def __init__(self, db: Database) -> None:
        self.db = db

    def known(self, usecase: str) -> set[str]:
        with self.db.connect() as conn:
            return {row[0] for row in conn.execute(
                "SELECT sha256 FROM feedback_samples WHERE usecase = %s", (usecase,))}

    def add(self, samples: list[Sample]) -> int:
        placeholders = ", ".join(["%s"] * len(Sample.__dataclass_fields__))
        added = 0
        with self.db.connect() as conn:
            for sample in samples:
                cursor = conn.execute(
                    f"INSERT INTO feedback_samples ({_FIELDS}) VALUES ({placeholders})"
                    " ON CONFLICT DO NOTHING",
                    tuple(getattr(sample, name) for name in Sample.__dataclass_fields__))
                added += cursor.rowcount
        return added

    def samples(self, usecase: str) -> list[Sample]:
        with self.db.connect() as conn:
            rows = conn.execute(f"SELECT {_FIELDS} FROM feedback_samples WHERE usecase = %s"
                                " ORDER BY sent_at, scoring_id", (usecase,)).fetchall()
        return [Sample(*row) for row in rows]

    def label(self, scoring_id: int, label: str, labeler: str, at: datetime) -> None:
        with self.db.connect() as conn:
            conn.execute("UPDATE feedback_samples SET label = %s, labeler = %s,"
                         " labeled_at = %s WHERE scoring_id = %s",
                         (label, labeler, at, scoring_id))

    def joined(self, scoring_ids: list[int], dataset_version: str) -> None:
        with self.db.connect() as conn:
            conn.execute("UPDATE feedback_samples SET dataset_version = %s"
                         " WHERE scoring_id = ANY(%s)", (dataset_version, scoring_ids))
