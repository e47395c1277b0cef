from __future__ import annotations

from pathlib import Path

import pytest

from usecases.errors import CDLError
from usecases.stores.database import Database
from usecases.stores.mldata import Counts, Entry, LocalMLData, Manifest, sha256_bytes, version_id

RULES = {"max_bytes": 10}


def test_version_id_is_derived_from_content() -> None:
    files = [("a/1.txt", sha256_bytes(b"one"), 3), ("b/2.txt", sha256_bytes(b"two"), 3)]
    assert version_id("bbc", files, RULES) == version_id("bbc", list(reversed(files)), RULES)
    changed = [("a/1.txt", sha256_bytes(b"onf"), 3), files[1]]
    assert version_id("bbc", changed, RULES) != version_id("bbc", files, RULES)
    renamed = [("a/9.txt", files[0][1], 3), files[1]]
    assert version_id("bbc", renamed, RULES) != version_id("bbc", files, RULES)
    assert version_id("bbc", files, {"max_bytes": 11}) != version_id("bbc", files, RULES)


def test_objects_are_stored_once_and_checked_on_read(tmp_path: Path, db: Database) -> None:
    store = LocalMLData(tmp_path, db)
    sha = store.put(b"article")
    assert store.put(b"article") == sha
    assert store.get(sha) == b"article"
    assert len([p for p in (tmp_path / "objects").rglob("*") if p.is_file()]) == 1
    store.object_path(sha).write_bytes(b"tampered")
    with pytest.raises(CDLError, match="corrupt"):
        store.get(sha)
    store.object_path(sha).unlink()
    with pytest.raises(CDLError, match="missing"):
        store.get(sha)


def test_manifest_round_trips_and_counts(tmp_path: Path, db: Database) -> None:
    store = LocalMLData(tmp_path, db)
    entries = [
        Entry("a/1", "a/1.txt", "0" * 64, 3, "a", "valid", split="train"),
        Entry("a/2", "a/2.txt", "1" * 64, 3, "a", "valid", split="test"),
        Entry("x", "x.bin", "2" * 64, 3, None, "quarantined", "wrong extension: expected .txt"),
    ]
    counts = Counts.of(1, ["train", "test"])
    manifest = Manifest("bbc-1", "bbc", "/raw", RULES, entries, counts)
    store.commit(manifest)
    loaded = store.load("bbc-1")
    assert loaded.entries == entries
    assert loaded.files() == {"valid": 2, "quarantined": 1, "metadata": 0}
    assert loaded.counts == counts == Counts(ingested=3, valid=2, quarantined=1, train=1, test=1)
    assert store.versions() == {"bbc-1": counts}


def test_a_damaged_manifest_is_a_clear_error(tmp_path: Path, db: Database) -> None:
    store = LocalMLData(tmp_path, db)
    store.commit(Manifest("bbc-1", "bbc", "/raw", RULES, [], Counts.of(0, [])))
    store.manifest_path("bbc-1").write_text('{"version": "bbc-1", "entr')
    with pytest.raises(CDLError, match="manifest .* is damaged"):
        store.load("bbc-1")
    with pytest.raises(CDLError, match="no manifest"):
        store.load("bbc-2")
