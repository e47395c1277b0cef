"""Model Registry: named models with numbered versions, their lineage and their evaluation.

The interface the model and deployment pipelines use is :class:`ModelRegistry`. Its local side,
:class:`LocalModelRegistry`, keeps the rows in PostgreSQL (``model_versions``) and the artifacts
under ``CDL_HOME/models/<name>/<version>``. On a cluster (``usecases.cluster.registry``) the
same table lives in the cluster's PostgreSQL, and each evaluated version is also registered in
Determined's model registry from its checkpoint (in the checkpoint storage, S3), its lineage,
evaluation and gate's verdict as the version's metadata.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from usecases.errors import CDLError
from usecases.state import staged_dir
from usecases.stores.database import Database

ARTIFACT_DIGESTS = "digests.json"


@dataclass
class ModelVersion:
    name: str
    version: int
    usecase: str
    dataset_version: str
    hparams: dict[str, Any]
    val_metrics: dict[str, float]
    code_version: str
    artifact_path: Path
    test_accuracy: float | None
    gate_threshold: float | None
    gate_passed: bool | None
    experiment_id: int | None = None
    training_key: str | None = None
    test_confusion: Confusion | None = None
    decision: dict[str, Any] | None = None  # Model Maintenance's, on a challenger


@dataclass(frozen=True)
class Confusion:
    """How a version's test predictions fall: ``matrix[true][predicted]`` counts, classes in
    the model's output order."""

    classes: list[str]
    matrix: list[list[int]]

    def as_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "matrix": self.matrix}

    @classmethod
    def from_dict(cls, stored: dict[str, Any] | None) -> Confusion | None:
        return cls(list(stored["classes"]), [list(r) for r in stored["matrix"]]) if stored \
            else None


def code_version(repo: Path) -> str:
    """The git commit of the code that trained a model (with ``-dirty`` for local changes)."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        from usecases import __version__

        return f"cdl-{__version__}"
    return f"{head}-dirty" if dirty else head


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ARTIFACT_DIGESTS
    }


def verify_artifacts(root: Path) -> None:
    """Fail with a clear error when a registered artifact is missing or was modified."""
    recorded_path = root / ARTIFACT_DIGESTS
    if not recorded_path.exists():
        raise CDLError(f"model artifacts in {root} are missing",
                       "run `cdl demo` again to train and register a new version")
    recorded = json.loads(recorded_path.read_text())
    actual = _digest_tree(root)
    for name, digest in recorded.items():
        if actual.get(name) != digest:
            raise CDLError(f"model artifact {root / name} is corrupt (checksum mismatch)",
                           "run `cdl demo` again to train and register a new version")


class ModelRegistry(Protocol):
    def register(self, name: str, usecase: str, dataset_version: str,
                 experiment_id: int | None, hparams: dict[str, Any],
                 val_metrics: dict[str, float], code: str,
                 export: Callable[[Path], None],
                 training_key: str | None = None) -> ModelVersion:
        """Create the next version of ``name``; ``export(folder)`` writes its artifacts."""

    def record_evaluation(self, name: str, version: int, test_accuracy: float,
                          threshold: float, confusion: Confusion | None = None) -> ModelVersion:
        """Record the test accuracy (and its confusion matrix) and the gate's verdict on a
        version."""

    def record_decision(self, name: str, version: int,
                        decision: dict[str, Any]) -> ModelVersion:
        """Record Model Maintenance's decision on a challenger version."""

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """A version (the latest when ``version`` is None); a CDLError if there is none."""

    def trained(self, name: str, training_key: str) -> ModelVersion | None:
        """The newest version trained from these inputs (``training_key``) whose artifacts are
        intact, if any."""

    def orphans(self) -> list[Path]:
        """Artifact folders no version row points at (a run stopped while registering)."""

    def versions(self) -> list[ModelVersion]:
        """Every registered version."""

    def latest(self) -> list[ModelVersion]:
        """The newest version of each model, by name; none from a database no workflow command
        has migrated yet (read-only callers do not migrate). Database errors are CDLErrors."""


class LocalModelRegistry:
    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = root

    def register(
        self,
        name: str,
        usecase: str,
        dataset_version: str,
        experiment_id: int | None,
        hparams: dict[str, Any],
        val_metrics: dict[str, float],
        code: str,
        export: Callable[[Path], None],
        training_key: str | None = None,
    ) -> ModelVersion:
        """Create the next version of ``name``; ``export(folder)`` writes its artifacts."""
        with self.db.connect() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))
            row = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM model_versions"
                               " WHERE name = %s", (name,)).fetchone()
            version = int(row[0]) if row else 1
            # A folder under this number without a row is an interrupted registration's:
            # the new one replaces it.
            folder = self.root / name / str(version)
            folder.parent.mkdir(parents=True, exist_ok=True)
            with staged_dir(folder) as staging:
                export(staging)
                (staging / ARTIFACT_DIGESTS).write_text(
                    json.dumps(_digest_tree(staging), indent=1))
            conn.execute(
                "INSERT INTO model_versions (name, version, usecase, dataset_version,"
                " experiment_id, hparams, val_metrics, code_version, artifact_path,"
                " training_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (name, version, usecase, dataset_version, experiment_id, Jsonb(hparams),
                 Jsonb(val_metrics), code, str(folder), training_key),
            )
        return self.get(name, version)

    def record_evaluation(self, name: str, version: int, test_accuracy: float,
                          threshold: float, confusion: Confusion | None = None) -> ModelVersion:
        with self.db.connect() as conn:
            conn.execute(
                "UPDATE model_versions SET test_accuracy = %s, gate_threshold = %s,"
                " gate_passed = %s, test_confusion = %s WHERE name = %s AND version = %s",
                (test_accuracy, threshold, test_accuracy >= threshold,
                 Jsonb(confusion.as_dict()) if confusion else None, name, version),
            )
        return self.get(name, version)

    def record_decision(self, name: str, version: int,
                        decision: dict[str, Any]) -> ModelVersion:
        with self.db.connect() as conn:
            conn.execute("UPDATE model_versions SET decision = %s WHERE name = %s"
                         " AND version = %s", (Jsonb(decision), name, version))
        return self.get(name, version)

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        query = "SELECT * FROM model_versions WHERE name = %s"
        params: tuple[Any, ...] = (name,)
        if version is not None:
            query += " AND version = %s"
            params += (version,)
        query += " ORDER BY version DESC LIMIT 1"
        with self.db.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = cur.execute(query, params).fetchone()
        if row is None:
            which = f"version {version} of " if version is not None else ""
            raise CDLError(f"no {which}model {name!r} in the registry",
                           "run `cdl demo` to train and register one")
        return ModelVersion(
            name=row["name"], version=row["version"], usecase=row["usecase"],
            dataset_version=row["dataset_version"], hparams=row["hparams"],
            val_metrics=row["val_metrics"], code_version=row["code_version"],
            artifact_path=Path(row["artifact_path"]), test_accuracy=row["test_accuracy"],
            gate_threshold=row["gate_threshold"], gate_passed=row["gate_passed"],
            experiment_id=row["experiment_id"], training_key=row["training_key"],
            test_confusion=Confusion.from_dict(row["test_confusion"]),
            decision=row["decision"],
        )

    def trained(self, name: str, training_key: str) -> ModelVersion | None:
        """The newest version trained from these inputs whose artifacts are intact."""
        with self.db.connect() as conn:
            rows = conn.execute("SELECT version FROM model_versions WHERE name = %s"
                                " AND training_key = %s ORDER BY version DESC",
                                (name, training_key)).fetchall()
        for (number,) in rows:
            found = self.get(name, number)
            try:
                verify_artifacts(found.artifact_path)
            except CDLError:
                continue
            return found
        return None

    def orphans(self) -> list[Path]:
        with self.db.connect() as conn:
            known = {row[0] for row in conn.execute("SELECT artifact_path FROM model_versions")}
        return sorted(folder for folder in self.root.glob("*/*")
                      if folder.is_dir() and not folder.name.startswith(".")
                      and str(folder) not in known)

    def versions(self) -> list[ModelVersion]:
        with self.db.connect() as conn:
            rows = conn.execute("SELECT name, version FROM model_versions"
                                " ORDER BY name, version").fetchall()
        return [self.get(name, version) for name, version in rows]

    def latest(self) -> list[ModelVersion]:
        try:
            with self.db.connect() as conn:
                rows = conn.execute("SELECT DISTINCT ON (name) name, version FROM model_versions"
                                    " ORDER BY name, version DESC").fetchall()
        except psycopg.errors.UndefinedTable:
            return []
        except psycopg.Error as exc:
            raise CDLError(f"cannot read the model registry ({' '.join(str(exc).split())})",
                           "check the database with `cdl db status`") from None
        return [self.get(name, version) for name, version in rows]
