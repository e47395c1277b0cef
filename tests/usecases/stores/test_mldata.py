from __future__ import annotations

from pathlib import Path

import pytest

from usecases.stores.mldata import Entry, Manifest, MLDataStore, sha256_bytes, version_id

RULES = {"max_bytes": 10}


def test_version_id_is_derived_from_content() -> None:
    files = [("a/1.txt", sha256_bytes(b"one"), 3), ("b/2.txt", sha256_bytes(b"two"), 3)]
    assert version_id("bbc", files, RULES) == version_id("bbc", list(reversed(files)), RULES)
    changed = [("a/1.txt", sha256_bytes(b"onf"), 3), files[1]]
    assert version_id("bbc", changed, RULES) != version_id("bbc", files, RULES)
    renamed = [("a/9.txt", files[0][1], 3), files[1]]
    assert version_id("bbc", renamed, RULES) != version_id("bbc", files, RULES)
    assert version_id("bbc", files, {"max_bytes": 11}) != version_id("bbc", files, RULES)


def test_objects_are_stored_once_and_checked_on_read(tmp_path: Path) -> None:
    store = MLDataStore(tmp_path)
    sha = store.put(b"article")
    assert store.put(b"article") == sha
    assert store.get(sha) == b"article"
    assert len([p for p in (tmp_path / "objects").rglob("*") if p.is_file()]) == 1
    store.object_path(sha).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="corrupt"):
        store.get(sha)


def test_manifest_round_trips_and_counts(tmp_path: Path) -> None:
    store = MLDataStore(tmp_path)
    entries = [
        Entry("a/1", "a/1.txt", "0" * 64, 3, "a", "valid", split="train"),
        Entry("a/2", "a/2.txt", "1" * 64, 3, "a", "valid", split="test"),
        Entry("x", "x.bin", "2" * 64, 3, None, "quarantined", "wrong extension: expected .txt"),
    ]
    manifest = Manifest("bbc-1", "bbc", "/raw", RULES, entries)
    store.save(manifest)
    loaded = store.load("bbc-1")
    assert loaded.entries == entries
    assert loaded.counts() == {"ingested": 3, "valid": 2, "quarantined": 1, "train": 1,
                               "test": 1, "metadata": 0}
