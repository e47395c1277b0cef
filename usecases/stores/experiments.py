"""Experiment Registry: searches (experiments), their trials and each trial's metrics per epoch.

The interface the model pipeline uses is :class:`Experiments`. Its local side,
:class:`LocalExperiments`, records what Determined's local training mode and the local ASHA
search produced in PostgreSQL (``experiments``, ``trials``, ``trial_metrics``). On a cluster the
Determined master runs the experiment (``usecases.cluster.experiments``) and keeps every trial
and its metrics in its own database; the same tables in the cluster's PostgreSQL keep the trial
the run registered, beside its dataset version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from psycopg.types.json import Jsonb

from usecases.stores.database import Database


@dataclass
class Trial:
    number: int
    hparams: dict[str, Any]
    state: str  # "completed" | "pruned"
    # per epoch: validation metrics, and the epoch's training metrics as training_<name>
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None  # None: pruned, or discarded after the search

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def val_metrics(self) -> dict[str, float]:
        last = self.history[-1] if self.history else {}
        return {k: v for k, v in last.items() if not k.startswith("training_")}


def registered_trial(trials: list[Trial], hparams: dict[str, Any]) -> Trial | None:
    """The completed trial of a search that a model version (of ``hparams``) came from."""
    return next((t for t in trials if t.state == "completed" and t.hparams == hparams), None)


class Experiments(Protocol):
    def record(self, usecase: str, dataset_version: str, config: dict[str, Any],
               trials: list[Trial]) -> int:
        """Record a finished search with its trials; return the experiment's id."""

    def trials(self, experiment_id: int) -> list[Trial]: ...

    def unregistered(self) -> list[int]:
        """Experiments no model version came from (a run stopped between the two)."""

    def delete(self, experiment_id: int) -> None: ...

    def checkpoints(self) -> set[str]:
        """Every checkpoint a trial row points at."""


class LocalExperiments:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, usecase: str, dataset_version: str, config: dict[str, Any],
               trials: list[Trial]) -> int:
        with self.db.connect() as conn:
            row = conn.execute(
                "INSERT INTO experiments (usecase, dataset_version, config)"
                " VALUES (%s, %s, %s) RETURNING id",
                (usecase, dataset_version, Jsonb(config))).fetchone()
            experiment_id = int(row[0]) if row else 0
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO trials (experiment_id, number, hparams, state, epochs,"
                    " val_metrics, checkpoint) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [(experiment_id, t.number, Jsonb(t.hparams), t.state, t.epochs,
                      Jsonb(t.val_metrics), str(t.checkpoint) if t.checkpoint else None)
                     for t in trials])
                cur.executemany(
                    "INSERT INTO trial_metrics (experiment_id, number, epoch, metrics)"
                    " VALUES (%s, %s, %s, %s)",
                    [(experiment_id, t.number, epoch, Jsonb(metrics))
                     for t in trials for epoch, metrics in enumerate(t.history, start=1)])
        return experiment_id

    def trials(self, experiment_id: int) -> list[Trial]:
        with self.db.connect() as conn:
            found = conn.execute(
                "SELECT number, hparams, state, checkpoint FROM trials"
                " WHERE experiment_id = %s ORDER BY number", (experiment_id,)).fetchall()
            epochs = conn.execute(
                "SELECT number, metrics FROM trial_metrics WHERE experiment_id = %s"
                " ORDER BY number, epoch", (experiment_id,)).fetchall()
        history: dict[int, list[dict[str, float]]] = {}
        for number, metrics in epochs:
            history.setdefault(number, []).append(metrics)
        return [Trial(number, hparams, state, history.get(number, []),
                      Path(checkpoint) if checkpoint else None)
                for number, hparams, state, checkpoint in found]

    def unregistered(self) -> list[int]:
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT e.id FROM experiments e WHERE NOT EXISTS"
                " (SELECT 1 FROM model_versions m WHERE m.experiment_id = e.id)"
                " ORDER BY e.id").fetchall()
        return [int(r[0]) for r in rows]

    def delete(self, experiment_id: int) -> None:
        with self.db.connect() as conn:
            conn.execute("DELETE FROM trials WHERE experiment_id = %s", (experiment_id,))
            conn.execute("DELETE FROM experiments WHERE id = %s", (experiment_id,))

    def checkpoints(self) -> set[str]:
        with self.db.connect() as conn:
            rows = conn.execute("SELECT checkpoint FROM trials WHERE checkpoint IS NOT NULL")
            return {row[0] for row in rows}
