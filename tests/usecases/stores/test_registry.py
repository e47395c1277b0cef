from __future__ import annotations

from pathlib import Path

import pytest

from usecases.errors import CDLError
from usecases.stores.database import Database
from usecases.stores.registry import (
    Confusion,
    LocalModelRegistry,
    ModelRegistry,
    verify_artifacts,
)


def _dataset(db: Database) -> str:
    with db.connect() as conn:
        conn.execute("INSERT INTO dataset_versions (id, usecase, source, counts, manifest_path)"
                     " VALUES ('bbc-x', 'bbc', '/raw', '{}', '/m')")
    return "bbc-x"


def _register(registry: ModelRegistry, dataset: str) -> object:
    def export(folder: Path) -> None:
        (folder / "model.pt").write_bytes(b"weights")
        (folder / "model.json").write_text("{}")

    return registry.register("bbc-news", "bbc", dataset, None, {"hidden_size": 8},
                             {"validation_accuracy": 0.9}, "abc123", export)


def test_versions_are_numbered_per_model_with_lineage(tmp_path: Path, db: Database) -> None:
    registry = LocalModelRegistry(db, tmp_path)
    dataset = _dataset(db)
    first, second = _register(registry, dataset), _register(registry, dataset)
    assert (first.version, second.version) == (1, 2)  # type: ignore[attr-defined]
    latest = registry.get("bbc-news")
    assert latest.version == 2 and latest.dataset_version == dataset
    assert latest.hparams == {"hidden_size": 8} and latest.code_version == "abc123"
    assert latest.artifact_path == tmp_path / "bbc-news" / "2"
    assert latest.gate_passed is None


def test_evaluation_and_gate_are_recorded(tmp_path: Path, db: Database) -> None:
    registry = LocalModelRegistry(db, tmp_path)
    _register(registry, _dataset(db))
    passed = registry.record_evaluation("bbc-news", 1, 0.96, 0.7)
    assert passed.test_accuracy == 0.96 and passed.gate_passed is True
    assert registry.record_evaluation("bbc-news", 1, 0.6, 0.7).gate_passed is False
    confusion = Confusion(["a", "b"], [[3, 1], [0, 4]])
    registry.record_evaluation("bbc-news", 1, 0.875, 0.7, confusion)
    assert registry.get("bbc-news", 1).test_confusion == confusion


def test_a_modified_artifact_is_detected(tmp_path: Path, db: Database) -> None:
    registry = LocalModelRegistry(db, tmp_path)
    entry = _register(registry, _dataset(db))
    verify_artifacts(entry.artifact_path)  # type: ignore[attr-defined]
    (entry.artifact_path / "model.pt").write_bytes(b"bit rot")  # type: ignore[attr-defined]
    with pytest.raises(CDLError, match="corrupt"):
        verify_artifacts(entry.artifact_path)  # type: ignore[attr-defined]


def test_unknown_model_is_a_clear_error(tmp_path: Path, db: Database) -> None:
    with pytest.raises(CDLError, match="no model 'nope'"):
        LocalModelRegistry(db, tmp_path).get("nope")
