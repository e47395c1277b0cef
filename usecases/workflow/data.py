"""The data pipeline (paper §3.2): collect, ingest and version, validate, quarantine, split.

A use case supplies how its raw folder is scanned (labels and validity per file); versioning,
quarantine, the split and the bookkeeping in PostgreSQL are written here once.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from usecases.errors import CDLError
from usecases.stores.database import Database
from usecases.stores.mldata import Entry, Manifest, MLDataStore, Status, version_id


@dataclass
class Candidate:
    """A raw file as collected, with the use case's verdict on it."""

    item_id: str
    path: str
    data: bytes
    label: str | None
    status: Status
    reason: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class SplitRules:
    test_fraction: float = 0.2
    seed: int = 42

    def as_dict(self) -> dict[str, Any]:
        return {"test_fraction": self.test_fraction, "seed": self.seed}


@dataclass
class DatasetVersion:
    manifest: Manifest
    manifest_path: Path
    reused: bool

    @property
    def id(self) -> str:
        return self.manifest.version


def check_source(folder: Path) -> None:
    if not folder.exists():
        raise CDLError(f"data folder {folder} does not exist",
                       "pass --data with the folder holding the raw dataset")
    if not folder.is_dir():
        raise CDLError(f"data path {folder} is not a folder",
                       "pass --data with the folder holding the raw dataset")
    if not any(p.is_file() for p in folder.rglob("*")):
        raise CDLError(f"data folder {folder} is empty",
                       "pass --data with the folder holding the raw dataset")


def stratified_holdout(rows: list[tuple[str, str, str]], rules: SplitRules) -> set[str]:
    """Ids of the held-out share of ``(item_id, label, group)`` rows: seeded, stratified by
    label, reproducible. Rows of one group (exact duplicates) are held out together, so no
    held-out example is also a training example."""
    groups: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for item_id, label, group in rows:
        groups[label][group].append(item_id)
    held_out: set[str] = set()
    for label in sorted(groups):
        by_content = sorted(groups[label].values(), key=lambda ids: ids[0])
        random.Random(f"{rules.seed}:{label}").shuffle(by_content)
        want = round(sum(len(ids) for ids in by_content) * rules.test_fraction)
        taken = 0
        for ids in by_content:
            if taken >= want:
                break
            held_out.update(ids)
            taken += len(ids)
    return held_out


def stratified_split(entries: list[Entry], rules: SplitRules) -> None:
    """Assign ``split`` ("train" | "test") to the valid entries."""
    valid = [e for e in entries if e.status == "valid"]
    test = stratified_holdout([(e.item_id, str(e.label), e.sha256) for e in valid], rules)
    for entry in valid:
        entry.split = "test" if entry.item_id in test else "train"


def ingest(
    store: MLDataStore,
    db: Database,
    usecase: str,
    folder: Path,
    candidates: list[Candidate],
    rules: dict[str, Any],
    split: SplitRules | None,
) -> DatasetVersion:
    """Store every collected file, derive the version id from content, and record the version.

    Re-ingesting the same files under the same rules reuses the existing version. ``split``
    None keeps the dataset's own train/test split (the use case knows it).
    """
    all_rules = {**rules, "split": split.as_dict() if split else "official"}
    vid = version_id(usecase, ((c.path, store.put(c.data), len(c.data)) for c in candidates),
                     all_rules)
    reused = store.has(vid)
    if reused:
        manifest = store.load(vid)
    else:
        entries = [
            Entry(c.item_id, c.path, store.put(c.data), len(c.data), c.label, c.status, c.reason,
                  notes=c.notes)
            for c in candidates
        ]
        _check_unique_ids(entries)
        if split is not None:
            stratified_split(entries, split)
        manifest = Manifest(vid, usecase, str(folder), all_rules, entries)
        if manifest.counts()["valid"] == 0:
            raise CDLError(f"no valid files in {folder}: all "
                           f"{manifest.counts()['quarantined']} were quarantined",
                           "check --data points at the raw dataset (one folder per class)")
    path = store.save(manifest) if not reused else store.manifest_path(vid)
    _record(db, manifest, path)
    return DatasetVersion(manifest, path, reused)


def _check_unique_ids(entries: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.item_id in seen:
            raise CDLError(f"two files map to the article id {entry.item_id!r}",
                           "rename one of them; ids are the path without its extension")
        seen.add(entry.item_id)


def _record(db: Database, manifest: Manifest, path: Path) -> None:
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO dataset_versions (id, usecase, source, counts, manifest_path)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (manifest.version, manifest.usecase, manifest.source, Jsonb(manifest.counts()),
             str(path)),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO quarantine (dataset_version, path, sha256, reason)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(manifest.version, e.path, e.sha256, e.reason)
                 for e in manifest.entries if e.status == "quarantined"],
            )
