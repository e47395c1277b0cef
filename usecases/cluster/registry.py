"""The Model Registry on a cluster: the use cases' ``model_versions`` table in the cluster's
PostgreSQL (as locally: the lineage the deployment and Model Maintenance read), and each
evaluated version registered in Determined's model registry from the checkpoint the master
trained, its metadata the version's lineage: dataset version and commit, hyperparameters,
validation and test metrics, the gate's verdict, the code version.

The Determined version is registered once the version is evaluated, so that its metadata holds
the test metrics from the start (``PostModelVersion`` carries the metadata with the version).
Its number is Determined's own; ``cdl_version`` in the metadata is the version this table and
the cdl-model release carry.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from usecases.stores.database import Database
from usecases.stores.registry import Confusion, LocalModelRegistry, ModelVersion

if TYPE_CHECKING:
    from usecases.cluster.experiments import MasterTraining
    from usecases.stores.mldata import MLData


class DeterminedRegistry(LocalModelRegistry):
    """The table over the cluster's PostgreSQL, the artifacts exported under ``root`` (this
    run's state directory), and the master's registry."""

    def __init__(self, db: Database, root: Path, training: MasterTraining,
                 mldata: MLData) -> None:
        super().__init__(db, root)
        self.training = training
        self.mldata = mldata
        self.registered: dict[tuple[str, int], int] = {}  # (name, version) -> Determined's

    def record_evaluation(self, name: str, version: int, test_accuracy: float,
                          threshold: float, confusion: Confusion | None = None) -> ModelVersion:
        entry = super().record_evaluation(name, version, test_accuracy, threshold, confusion)
        submitted = self.training.submitted.get(name)
        if submitted is not None and (name, version) not in self.registered:
            self.registered[(name, version)] = self.training.master.register(
                name, submitted.best.uuid,
                lineage(entry, self.mldata.load(entry.dataset_version).source,
                        submitted.experiment_id))
        return entry


def lineage(entry: ModelVersion, source: str, experiment_id: int) -> dict[str, Any]:
    """A registered version's metadata in Determined's registry; ``source`` is where its
    dataset version came from (``pfs:<raw repo>@<commit>``: the Pachyderm commit)."""
    return {
        "cdl_version": entry.version,
        "usecase": entry.usecase,
        "dataset_version": entry.dataset_version,
        "dataset_commit": source,
        "experiment_id": experiment_id,
        "hparams": entry.hparams,
        "validation_metrics": entry.val_metrics,
        "test_accuracy": entry.test_accuracy,
        "gate": {"threshold": entry.gate_threshold, "passed": entry.gate_passed},
        "code_version": entry.code_version,
    }
