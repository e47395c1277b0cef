"""Transformation Registry: model inputs derived from a dataset version, cached by what made them.

The cache key covers the dataset version, the labels read from PostgreSQL, the use case's
transformation (e.g. the vocabulary's hash) and the validation split, so a change in any of them
produces a new entry and an unchanged input reuses the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from usecases.stores.database import Database
from usecases.stores.mldata import Entry, MLDataStore
from usecases.workflow.data import DatasetVersion, SplitRules, stratified_split
from usecases.workflow.labeling import load_labels
from usecases.workflow.usecase import DataOptions, UseCase

VALIDATION = SplitRules(test_fraction=0.1, seed=7)


def _labeled(dataset: DatasetVersion, labels: dict[str, str]) -> list[Entry]:
    """Entries of a split carrying the label stored in PostgreSQL (which may differ from the
    folder's once people correct labels)."""
    by_id = {e.item_id: e for e in dataset.manifest.entries}
    return [dataclasses.replace(by_id[item], label=label) for item, label in labels.items()]


def build_features(
    usecase: UseCase,
    db: Database,
    store: MLDataStore,
    dataset: DatasetVersion,
    options: DataOptions,
    cache_root: Path,
) -> tuple[Path, bool]:
    """Folder with ``train``/``val``/``test`` arrays and ``classes.npy``; True when reused."""
    train = _labeled(dataset, load_labels(db, dataset.id, "train"))
    test = _labeled(dataset, load_labels(db, dataset.id, "test"))
    stratified_split(train, VALIDATION)
    splits = {
        "train": [e for e in train if e.split == "train"],
        "val": [e for e in train if e.split == "test"],
        "test": test,
    }
    _, identity = usecase.featurize([], store, options)
    key_source = json.dumps({
        "dataset": dataset.id,
        "labels": {s: [(e.item_id, e.label) for e in es] for s, es in splits.items()},
        "transform": identity,
    }, sort_keys=True)
    key = hashlib.sha256(key_source.encode()).hexdigest()[:16]
    folder = cache_root / f"{usecase.name}-{key}"
    if (folder / "done").exists():
        return folder, True
    if folder.exists():
        shutil.rmtree(folder)
    staging = folder.with_name(folder.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    class_index = {name: i for i, name in enumerate(usecase.classes)}
    np.save(staging / "classes.npy", np.array(usecase.classes))
    for split, entries in splits.items():
        inputs, _ = usecase.featurize(entries, store, options)
        labels = np.array([class_index[str(e.label)] for e in entries], dtype=np.int64)
        np.savez(staging / f"{split}.npz", inputs=inputs, labels=labels,
                 item_ids=np.array([e.item_id for e in entries]))
    (staging / "transform.json").write_text(key_source)
    (staging / "done").touch()
    staging.rename(folder)
    return folder, False
