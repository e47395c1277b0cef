from __future__ import annotations

from pathlib import Path

from usecases.bbc.dataset import TextRules, scan
from usecases.bbc.usecase import USECASE
from usecases.stores.labels import DATASET_LABELER
from usecases.stores.local import Stores
from usecases.workflow.data import DatasetVersion, SplitRules, version
from usecases.workflow.labeling import Target, export_tasks, rows_from_export, store_labels

from ...rawdata import write_bbc


def _dataset(tmp_path: Path, stores: Stores) -> DatasetVersion:
    raw = write_bbc(tmp_path / "raw", per_class=10)
    rules = TextRules()
    return version(stores.mldata, USECASE, raw, scan(raw, rules), rules.as_dict(), SplitRules())


def _target(data: dict[str, str], to_name: str = "text", round_trip: bool = True) -> Target:
    return Target("bbc", USECASE.classes, to_name, lambda item, media: data, round_trip)


def test_labels_are_exported_in_label_studio_format_and_stored_per_split(
        tmp_path: Path, stores: Stores) -> None:
    dataset = _dataset(tmp_path, stores)
    stored = store_labels(stores.labels, dataset, _target({"text": "t"}))
    assert (stored.tool, stored.url, stored.tasks, stored.annotations, stored.exported) == (
        "direct", None, 50, 50, 50)
    tasks = stores.labels.kept(dataset.id, "train")
    assert tasks is not None
    task = tasks[0]
    assert set(task) >= {"id", "data", "annotations", "predictions"}
    result = task["annotations"][0]["result"][0]
    assert result["type"] == "choices" and result["from_name"] == "label"
    assert result["to_name"] == "text"
    assert result["value"]["choices"] == [task["data"]["path"].split("/")[0]]
    with stores.db.connect() as conn:
        row = conn.execute("SELECT label, file_path, creator, dataset_version, created_at"
                           " FROM train_labels ORDER BY id LIMIT 1").fetchone()
    assert row is not None
    label, path, creator, version_id, created_at = row
    assert path.startswith(label + "/") and creator == DATASET_LABELER
    assert version_id == dataset.id and created_at is not None


def test_the_kept_export_names_images_without_carrying_them(tmp_path: Path,
                                                             stores: Stores) -> None:
    dataset = _dataset(tmp_path, stores)
    store_labels(stores.labels, dataset,
                 _target({"image": "data:image/png;base64,iVBORw0KGgo="}, "image"))
    tasks = stores.labels.kept(dataset.id, "test")
    assert tasks is not None and len(tasks) == 10
    assert all(set(t["data"]) == {"item_id", "path", "content"} for t in tasks)
    assert tasks[0]["annotations"][0]["result"][0]["to_name"] == "image"
    assert len(stores.labels.load(dataset.id, "test")) == 10


def test_without_a_round_trip_the_dataset_labels_stand_and_no_export_is_written(
        tmp_path: Path, stores: Stores) -> None:
    dataset = _dataset(tmp_path, stores)
    stored = store_labels(stores.labels, dataset, _target({"text": "t"}, round_trip=False))
    assert (stored.tool, stored.tasks, stored.exported, stored.labels) == ("direct", 0, 0, 50)
    assert stores.labels.kept(dataset.id, "train") is None
    expected = {i.item_id: i.label for i in dataset.split("train")}
    assert stores.labels.load(dataset.id, "train") == expected
    with stores.db.connect() as conn:
        assert conn.execute("SELECT DISTINCT creator FROM test_labels").fetchall() == [
            (DATASET_LABELER,)]


def test_relabelling_the_same_version_adds_no_rows(tmp_path: Path, stores: Stores) -> None:
    dataset = _dataset(tmp_path, stores)
    for _ in range(2):
        store_labels(stores.labels, dataset, _target({"text": "t"}))
    assert len(stores.labels.load(dataset.id, "train")) == 40
    with stores.db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM test_labels").fetchone() == (10,)


def _annotation(label: str, at: str, converted: bool = False, edited_at: str | None = None,
                cancelled: bool = False) -> dict[str, object]:
    return {"completed_by": "ann" if not converted else "admin", "created_at": at,
            "updated_at": edited_at or at, "was_cancelled": cancelled,
            "parent_prediction": 7 if converted else None,
            "updated_by": 3 if edited_at else None,
            "result": [{"type": "choices", "value": {"choices": [label]}}]}


def _label(*annotations: dict[str, object]) -> str:
    task = {"data": {"item_id": "a/1", "path": "a/1.txt"}, "annotations": list(annotations)}
    (row,) = rows_from_export([task])
    return row.label


def test_a_person_wins_over_the_pre_annotation_even_when_older() -> None:
    assert _label(_annotation("tech", "2026-01-01"),
                  _annotation("sport", "2026-02-01", converted=True)) == "tech"


def test_an_edited_conversion_counts_as_a_person() -> None:
    assert _label(_annotation("sport", "2026-01-01", converted=True),
                  _annotation("tech", "2026-01-01", converted=True,
                              edited_at="2026-03-01")) == "tech"


def test_latest_human_label_wins_and_skips_never_count() -> None:
    assert _label(_annotation("sport", "2026-01-01"), _annotation("tech", "2026-02-01"),
                  _annotation("politics", "2026-03-01", cancelled=True)) == "tech"
    assert rows_from_export([{"data": {"item_id": "a/1", "path": "a/1.txt"}, "annotations": [
        _annotation("politics", "2026-03-01", cancelled=True)]}]) == []


def test_folder_labels_are_marked_as_converted_pre_annotations() -> None:
    from usecases.workflow.usecase import Item

    (task,) = export_tasks([Item("a/1", "a/1.txt", "tech", "train", "g", "c", "s")],
                           lambda i, media: {"text": "t"}, "2026-01-01T00:00:00+00:00",
                           "text")
    (annotation,) = task["annotations"]
    assert annotation["parent_prediction"] == task["predictions"][0]["id"]
    assert _label(annotation, _annotation("sport", "2025-12-31")) == "sport"
