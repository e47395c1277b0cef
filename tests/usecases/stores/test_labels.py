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


def test_a_merge_changes_only_its_rows_and_keeps_the_time_of_its_listing(
        stores: Stores) -> None:
    version = _version(stores)
    stores.labels.replace(version, "bbc", "train", ROWS[:1] + [
        Row("a/2", "a/2.txt", "tech", DATASET_LABELER, "2026-01-01T00:00:00+00:00")])
    assert stores.labels.listed_at(version, "train", "label-studio") is None
    listed = "2026-03-01T12:00:00+00:00"
    stores.labels.merge(version, "bbc", "train", ROWS[1:],
                        Export("label-studio", 2, 1, "http://127.0.0.1:1", 7, listed))
    assert stores.labels.load(version, "train") == {"a/1": "tech", "a/2": "sport"}
    assert stores.labels.by_people(version, "train") == 1
    assert stores.labels.listed_at(version, "train", "label-studio") == listed
    assert stores.labels.listed_at(version, "test", "label-studio") is None
    # a merge of nothing changes no row and still records when Label Studio was asked
    later = "2026-03-02T12:00:00+00:00"
    stores.labels.merge(version, "bbc", "train", [],
                        Export("label-studio", 2, 0, "http://127.0.0.1:1", 7, later))
    assert stores.labels.count(version, "train") == 2
    assert stores.labels.listed_at(version, "train", "label-studio") == later


def test_an_import_is_recorded_per_version_and_split(stores: Stores) -> None:
    version = _version(stores)
    assert not stores.labels.projects_exist("bbc")
    assert stores.labels.imported(version, "train") is None
    stores.labels.record_import(version, "bbc", "train", 7, 2)
    stores.labels.record_import(version, "bbc", "train", 9, 2)  # again, into another project
    assert stores.labels.imported(version, "train") == 9
    assert stores.labels.imported(version, "test") is None
    assert stores.labels.projects_exist("bbc") and not stores.labels.projects_exist("fmnist")
    stores.mldata.drop(version)  # a dropped version takes its import records with it
    assert stores.labels.imported(version, "train") is None
