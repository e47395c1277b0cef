"""The Scoring Data store on a real PostgreSQL, through the summary it feeds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from usecases.stores.database import Database
from usecases.stores.scoring import PostgresScoringStore
from usecases.workflow.scoring import summarize

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _labels(db: Database, table: str, dataset: str, counts: dict[str, int]) -> None:
    rows = [("bbc", dataset, f"{label}-{i}", f"{label}/{i}.txt", label, "test", START)
            for label, n in counts.items() for i in range(n)]
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {table} (usecase, dataset_version, item_id, file_path,"
                        " label, creator, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        rows)


def _version(db: Database, version: int, dataset: str) -> None:
    with db.connect() as conn:
        conn.execute("INSERT INTO dataset_versions (id, usecase, source, counts, manifest_path)"
                     " VALUES (%s, 'bbc', '/raw', '{}', '/m') ON CONFLICT DO NOTHING", (dataset,))
        conn.execute("INSERT INTO model_versions (name, version, usecase, dataset_version,"
                     " hparams, val_metrics, code_version, artifact_path)"
                     " VALUES ('bbc-news', %s, 'bbc', %s, '{}', '{}', 'abc', '/a')",
                     (version, dataset))


def _served(db: Database, model: str, version: str, predictions: list[str],
            start: datetime) -> None:
    rows = [(start + timedelta(seconds=i), model, version, f"{i:064x}", label, float(i + 1))
            for i, label in enumerate(predictions)]
    with db.connect() as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO scoring_data (at, model, model_version, input_sha256,"
                        " prediction, latency_ms) VALUES (%s, %s, %s, %s, %s, %s)", rows)


@pytest.fixture
def store(db: Database) -> PostgresScoringStore:
    """bbc-news v1 (40 predictions, trained on an even mix), v2 (5 predictions, trained on
    another dataset version) and fmnist, which the registry does not know."""
    _version(db, 1, "bbc-a")
    _labels(db, "train_labels", "bbc-a", {"business": 10, "sport": 10})
    _labels(db, "test_labels", "bbc-a", {"tech": 50})  # held out: never the reference
    _version(db, 2, "bbc-b")
    _labels(db, "train_labels", "bbc-b", {"business": 5, "sport": 5, "tech": 10})
    _served(db, "bbc-news", "1", ["business"] * 32 + ["sport"] * 8, START)
    _served(db, "bbc-news", "2", ["tech"] * 5, START + timedelta(minutes=5))
    _served(db, "fmnist", "1", ["Dress", "Bag"], START)
    return PostgresScoringStore(db)


def test_summary_counts_times_latency_and_classes(store: PostgresScoringStore) -> None:
    v1, v2, fmnist = summarize(store)
    assert (v1["model"], v1["version"], v2["version"], fmnist["model"]) == (
        "bbc-news", "1", "2", "fmnist")
    assert v1["requests"] == 40
    assert datetime.fromisoformat(v1["first"]) == START
    assert datetime.fromisoformat(v1["last"]) == START + timedelta(seconds=39)
    assert v1["classes"] == {"business": 32, "sport": 8}
    # latencies 1..40 ms; percentile_cont interpolates: 1 + q * 39
    assert v1["latency_ms"] == {"p50": 20.5, "p95": 38.05, "p99": 39.61}
    assert list(v2["classes"]) == ["tech"] and v2["requests"] == 5


def test_drift_is_against_the_training_labels_of_each_versions_dataset(
        store: PostgresScoringStore) -> None:
    v1, v2, fmnist = summarize(store)
    # served 0.8 / 0.2 against trained 0.5 / 0.5
    assert v1["drift"]["psi"] == round(0.6 * math.log(2), 4) and v1["drift"]["drifted"] is True
    assert store.training_classes("bbc-news", "2") == {"business": 5, "sport": 5, "tech": 10}
    assert v2["drift"]["psi"] is not None and v2["drift"]["drifted"] is None  # 5 requests
    assert fmnist["drift"]["psi"] is None
    assert store.training_classes("fmnist", "1") == {}


def test_summary_of_one_model(store: PostgresScoringStore) -> None:
    assert [s["model"] for s in summarize(store, "fmnist")] == ["fmnist"]
    assert summarize(store, "nope") == []


def test_count_since_counts_one_models_rows_from_a_time_on(store: PostgresScoringStore) -> None:
    assert store.count_since("bbc-news", START) == 45
    assert store.count_since("bbc-news", START + timedelta(seconds=30)) == 10 + 5
    assert store.count_since("bbc-news", START + timedelta(minutes=5)) == 5  # at counts
    assert store.count_since("fmnist", START + timedelta(seconds=1)) == 1
    assert store.count_since("bbc-news", START + timedelta(hours=1)) == 0


def test_an_empty_store_summarises_to_nothing(db: Database) -> None:
    assert summarize(PostgresScoringStore(db)) == []
