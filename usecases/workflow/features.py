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
from usecases.stores.mldata import MLDataStore
from usecases.workflow.data import DatasetVersion, SplitRules, stratified_holdout
from usecases.workflow.labeling import load_labels
from usecases.workflow.usecase import DataOptions, Item, UseCase

VALIDATION_SEED = 7


def _relabeled(items: list[Item], labels: dict[str, str]) -> list[Item]:
    """The split's items carrying the label stored in PostgreSQL (which may differ from the
    raw data's once people correct labels)."""
    by_id = {i.item_id: i for i in items}
    return [dataclasses.replace(by_id[item_id], label=label) for item_id, label in labels.items()]


def build_features(
    usecase: UseCase,
    db: Database,
    store: MLDataStore,
    dataset: DatasetVersion,
    items: list[Item],
    options: DataOptions,
    cache_root: Path,
) -> tuple[Path, bool]:
    """Folder with ``train``/``val``/``test`` arrays and ``classes.npy``; True when reused."""
    train = _relabeled(items, load_labels(db, dataset.id, "train"))
    test = _relabeled(items, load_labels(db, dataset.id, "test"))
    rules = SplitRules(test_fraction=usecase.validation_fraction, seed=VALIDATION_SEED)
    val_ids = stratified_holdout([(i.item_id, i.label, i.group) for i in train], rules)
    splits = {
        "train": [i for i in train if i.item_id not in val_ids],
        "val": [i for i in train if i.item_id in val_ids],
        "test": test,
    }
    _, identity = usecase.featurize([], store, options)
    key_source = json.dumps({
        "dataset": dataset.id,
        "labels": {s: [(i.item_id, i.label) for i in its] for s, its in splits.items()},
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
    for split, members in splits.items():
        inputs, _ = usecase.featurize(members, store, options)
        labels = np.array([class_index[i.label] for i in members], dtype=np.int64)
        np.savez(staging / f"{split}.npz", inputs=inputs, labels=labels,
                 item_ids=np.array([i.item_id for i in members]))
    (staging / "transform.json").write_text(key_source)
    (staging / "done").touch()
    staging.rename(folder)
    return folder, False
