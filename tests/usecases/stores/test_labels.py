from __future__ import annotations

import pytest

from usecases.errors import CDLError
from usecases.stores.labels import DATASET_LABELER, Export, Row
from usecases.stores.local import Stores
from usecases.stores.mldata import Counts, Manifest


def _version(stores: Stores) -> str:
    stores.mldata.commit(Manifest("bbc-1", "bbc", "/raw", {}, [], Counts.of(0, [])))
    return "bbc-1"


ROWS = [Row("a/1", "a/1.txt", "tech", DATASET_LABELER, "2026-01-01T00:00:00+00:00"),
        Row("a/2", "a/2.txt", "sport", "ann@example.org", "2026-01-02T00:00:00+00:00")]


def test_rows_replace_the_splits_labels_and_record_the_export(stores: Stores) -> None:
    version = _version(stores)
    stores.labels.replace(version, "bbc", "train", ROWS,
                          Export("label-studio", 2, 2, "http://127.0.0.1:1", 7))
    stores.labels.replace(version, "bbc", "test", ROWS[:1],
                          Export("label-studio", 1, 1, "http://127.0.0.1:1", 8))
    assert stores.labels.load(version, "train") == {"a/1": "tech", "a/2": "sport"}
    assert stores.labels.count(version, "test") == 1
    last = stores.labels.last_export(version, "label-studio")
    assert last is not None and last.reused
    assert (last.tasks, last.exported, last.by_people, last.projects) == (
        3, 3, 1, {"train": 7, "test": 8})
    stores.labels.replace(version, "bbc", "train", ROWS[1:])
    assert stores.labels.load(version, "train") == {"a/2": "sport"}
    assert stores.labels.last_export(version, "direct") is None


def test_an_unknown_split_and_a_damaged_export_are_clear_errors(stores: Stores) -> None:
    version = _version(stores)
    with pytest.raises(CDLError, match="unknown split 'val'"):
        stores.labels.load(version, "val")
    stores.labels.keep(version, "train", [{"data": {"item_id": "a/1", "image": "data:x"},
                                           "annotations": []}])
    kept = stores.labels.kept(version, "train")
    assert kept == [{"data": {"item_id": "a/1"}, "annotations": []}]  # no data URL kept
    path = stores.mldata.version_dir(version) / "labels-train.json.gz"
    path.write_bytes(path.read_bytes()[:10])
    with pytest.raises(CDLError, match="label export .* is damaged") as raised:
        stores.labels.kept(version, "train")
    assert str(path) in raised.value.fix
