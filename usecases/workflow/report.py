"""The run report: typed, and serialised to the JSON shape ``cdl demo --report`` has always
written (keys are added over time, never removed or renamed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from usecases.errors import CDLError
from usecases.stores.labels import ExportSummary
from usecases.stores.mldata import Counts
from usecases.workflow.background import Finished
from usecases.workflow.data import DatasetVersion


@dataclass
class QuarantinedFile:
    path: str
    reason: str | None


@dataclass
class DatasetReport:
    version: str
    reused: bool
    counts: Counts
    quarantined: list[QuarantinedFile]
    manifest: str

    @classmethod
    def of(cls, dataset: DatasetVersion) -> DatasetReport:
        return cls(dataset.id, dataset.reused, dataset.counts,
                   [QuarantinedFile(e.path, e.reason) for e in dataset.manifest.quarantined],
                   dataset.manifest_path)


@dataclass
class ModelReport:
    name: str
    version: int
    hparams: dict[str, Any]
    artifact: str
    code_version: str
    reused: bool = False  # trained by an earlier run from the same inputs


@dataclass
class SearchReport:
    trials: int
    completed: int
    pruned: int


@dataclass
class GateReport:
    threshold: float


@dataclass
class FolderFigures:
    """One candidate serving folder: its weights file, size, latency and test accuracy."""

    weights: str | None
    bytes: int
    latency_ms: float
    test_accuracy: float


@dataclass
class Compression:
    original: FolderFigures
    compressed: FolderFigures
    accuracy_drop: float
    kept: bool


@dataclass
class SmokeResult:
    requests: int
    correct: int
    matches_offline: bool
    scored: int | None = None  # Scoring Data rows seen for these requests


@dataclass
class ServingReport:
    url: str
    model_version: int
    smoke: SmokeResult


@dataclass
class UseCaseReport:
    dataset: DatasetReport
    labeling: ExportSummary
    model: ModelReport
    search: SearchReport
    val_accuracy: float
    val_metrics: dict[str, float]
    test_accuracy: float
    gate: GateReport
    gate_passed: bool
    timings: dict[str, float] = field(default_factory=dict)
    compression: Compression | None = None
    serving: ServingReport | None = None

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        for optional in ("compression", "serving"):  # absent, as ever, when not deployed
            if body[optional] is None:
                del body[optional]
        return body

    def gate_error(self, name: str) -> CDLError | None:
        if self.gate_passed:
            return None
        return CDLError(
            f"{name}: test accuracy {self.test_accuracy:.3f} is below the gate "
            f"{self.gate.threshold:g}; the model version stays registered but not approved",
            "look at the data and the search (more --trials), or lower --gate deliberately",
        )


@dataclass
class RunReport:
    usecases: dict[str, UseCaseReport]
    cdl_home: str
    background: list[Finished] = field(default_factory=list)  # work done beside the stages
    timings: dict[str, float] = field(default_factory=dict)  # stages of no one use case

    def to_dict(self) -> dict[str, Any]:
        return {"usecases": {name: r.to_dict() for name, r in self.usecases.items()},
                "cdl_home": self.cdl_home,
                "background": [asdict(job) for job in self.background],
                "timings": self.timings}
