"""The data pipeline (paper §3.2): collect, ingest and version, validate, quarantine, split.

A use case supplies how its raw folder is scanned (labels and validity per file); versioning,
quarantine, the split and the bookkeeping in PostgreSQL are written here once.
"""

from __future__ import annotations

import json
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


def stratified_split(entries: list[Entry], rules: SplitRules) -> None:
    """Assign ``split`` to valid entries: seeded, stratified by label, reproducible.

    Exact duplicates (same sha256) always land in the same split, so no test article is also a
    training article.
    """
    groups: dict[str, dict[str, list[Entry]]] = defaultdict(lambda: defaultdict(list))
    for entry in entries:
        if entry.status == "valid":
            assert entry.label is not None
            groups[entry.label][entry.sha256].append(entry)
    for label in sorted(groups):
        by_content = sorted(groups[label].values(), key=lambda g: g[0].item_id)
        random.Random(f"{rules.seed}:{label}").shuffle(by_content)
        total = sum(len(g) for g in by_content)
        want_test = round(total * rules.test_fraction)
        in_test = 0
        for group in by_content:
            split = "test" if in_test < want_test else "train"
            if split == "test":
                in_test += len(group)
            for entry in group:
                entry.split = split


def ingest(
    store: MLDataStore,
    db: Database,
    usecase: str,
    folder: Path,
    candidates: list[Candidate],
    rules: dict[str, Any],
    split: SplitRules,
) -> DatasetVersion:
    """Store every collected file, derive the version id from content, and record the version.

    Re-ingesting the same files under the same rules reuses the existing version.
    """
    all_rules = {**rules, "split": split.as_dict()}
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


def quarantine_report(manifest: Manifest) -> str:
    """Human-readable list of quarantined files with their reasons."""
    rows = [{"path": e.path, "reason": e.reason}
            for e in manifest.entries if e.status == "quarantined"]
    return json.dumps(rows, indent=1)
