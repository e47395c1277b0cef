"""The transformation step: model inputs derived from a dataset version and its labels, kept in
the Transformation Registry by what made them.

The cache key covers the dataset version, the labels read from the label tables, the use
case's transformation (e.g. the vocabulary's hash) and the validation split, so a change in any
of them produces a new entry and an unchanged input reuses the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from usecases.stores.labels import Labels
from usecases.workflow.context import Case, Context
from usecases.workflow.data import DatasetVersion, SplitRules, stratified_holdout
from usecases.workflow.usecase import Item, UseCase

VALIDATION_SEED = 7
SPLITS = ("train", "val", "test")


def _relabeled(items: list[Item], labels: dict[str, str]) -> list[Item]:
    """The split's items carrying the label stored in the label tables (which may differ from
    the raw data's once people correct labels), in the dataset version's order: the label
    tables' row order changes when an export is merged into them, and the features (and their
    cache key, and so the model trained on them) must not."""
    return [dataclasses.replace(item, label=labels[item.item_id]) for item in items
            if item.item_id in labels]


def model_splits(usecase: UseCase, labels: Labels,
                 dataset: DatasetVersion) -> dict[str, list[Item]]:
    """Train / validation / test items as labeled; validation is a seeded, stratified share of
    the training split."""
    train = _relabeled(dataset.items, labels.load(dataset.id, "train"))
    test = _relabeled(dataset.items, labels.load(dataset.id, "test"))
    rules = SplitRules(test_fraction=usecase.validation_fraction, seed=VALIDATION_SEED)
    val_ids = stratified_holdout([(i.item_id, i.label, i.group) for i in train], rules)
    return {
        "train": [i for i in train if i.item_id not in val_ids],
        "val": [i for i in train if i.item_id in val_ids],
        "test": test,
    }


def cache_key(dataset: str, splits: dict[str, list[Item]],
              identity: dict[str, Any]) -> tuple[str, str]:
    """The key of a feature folder and the text it is the hash of."""
    source = json.dumps({
        "dataset": dataset,
        "labels": {s: [(i.item_id, i.label) for i in its] for s, its in splits.items()},
        "transform": identity,
    }, sort_keys=True)
    return hashlib.sha256(source.encode()).hexdigest()[:16], source


def build_features(ctx: Context, case: Case, dataset: DatasetVersion) -> tuple[Path, bool]:
    """Folder with ``train``/``val``/``test`` arrays and ``classes.npy``; True when reused."""
    usecase, store = case.usecase, ctx.stores.mldata
    splits = model_splits(usecase, ctx.stores.labels, dataset)
    _, identity = usecase.featurize([], store, case.options.data)
    key, key_source = cache_key(dataset.id, splits, identity)
    name = f"{usecase.name}-{key}"
    found = ctx.stores.features.get(name)
    if found is not None:
        return found, True

    def write(folder: Path) -> None:
        class_index = {label: i for i, label in enumerate(usecase.classes)}
        np.save(folder / "classes.npy", np.array(usecase.classes))
        for split, members in splits.items():
            inputs, _ = usecase.featurize(members, store, case.options.data)
            labels = np.array([class_index[i.label] for i in members], dtype=np.int64)
            with (folder / f"{split}.npz").open("wb") as out:
                np.savez(out, inputs=inputs, labels=labels,
                         item_ids=np.array([i.item_id for i in members]))
        (folder / "transform.json").write_text(key_source)

    return ctx.stores.features.build(name, write), False


def transform(ctx: Context, case: Case, dataset: DatasetVersion) -> Path:
    with ctx.stage(case, "transform", f"{case.name}: features"):
        folder, _ = build_features(ctx, case, dataset)
    return folder
