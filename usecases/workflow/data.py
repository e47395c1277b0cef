"""The data pipeline (paper §3.2): collect, ingest and version, validate, quarantine, split.

A use case supplies how its raw folder is scanned (labels and validity per file); versioning,
quarantine, the split and the bookkeeping in ML Data are written here once.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usecases import defaults
from usecases.errors import CDLError
from usecases.stores.labels import ExportSummary
from usecases.stores.mldata import (
    Counts,
    Entry,
    Manifest,
    MLData,
    ValidatingMLData,
    version_id,
)
from usecases.workflow.context import Case, Context
from usecases.workflow.usecase import Candidate, Item, UseCase


@dataclass
class SplitRules:
    test_fraction: float = 0.2
    seed: int = defaults.SEED

    def as_dict(self) -> dict[str, Any]:
        return {"test_fraction": self.test_fraction, "seed": self.seed}


@dataclass
class DatasetVersion:
    """A committed dataset version with the use case's items (articles, images) in it."""

    manifest: Manifest
    manifest_path: str
    reused: bool
    items: list[Item]
    counts: Counts

    @property
    def id(self) -> str:
        return self.manifest.version

    def split(self, name: str) -> list[Item]:
        return [i for i in self.items if i.split == name]


@dataclass
class Prepared:
    """The data pipeline's result: the version, how it was labeled, the model inputs."""

    dataset: DatasetVersion
    labeling: ExportSummary
    features: Path


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


def version(store: MLData, usecase: UseCase, folder: Path, candidates: list[Candidate],
            rules: dict[str, Any], split: SplitRules | None) -> DatasetVersion:
    """Store every collected file, derive the version id from content, read the version's
    items and commit it with their counts.

    Re-ingesting the same files under the same rules reuses the existing version. ``split``
    None keeps the dataset's own train/test split (the use case knows it).
    """
    shas = [store.put(c.data) for c in candidates]
    manifest = build_manifest(usecase.name, folder, candidates, shas, rules, split)
    reused = store.has(manifest.version)
    if reused:
        manifest = store.load(manifest.version)
    return commit_version(store, usecase, manifest, reused)


def build_manifest(usecase: str, folder: Path, candidates: list[Candidate], shas: list[str],
                   rules: dict[str, Any], split: SplitRules | None) -> Manifest:
    """A version's manifest from the collected files and their sha256: its id derived from
    content and rules, each file's verdict, the split drawn when ``split`` is given. The
    local ingest and the Pachyderm validation worker (``usecases.cluster.worker``) both
    build it here. A version with no valid file is an error."""
    all_rules = {**rules, "split": split.as_dict() if split else "official"}
    vid = version_id(usecase, ((c.path, sha, len(c.data))
                               for c, sha in zip(candidates, shas, strict=True)), all_rules)
    entries = [Entry(c.item_id, c.path, sha, len(c.data), c.label, c.status, c.reason,
                     notes=c.notes) for c, sha in zip(candidates, shas, strict=True)]
    _check_unique_ids(entries)
    if split is not None:
        stratified_split(entries, split)
    manifest = Manifest(vid, usecase, str(folder), all_rules, entries)
    if manifest.files()["valid"] == 0:
        raise CDLError(f"no valid files in {folder}: all "
                       f"{manifest.files()['quarantined']} were quarantined",
                       "check --data points at the raw dataset (one folder per class)")
    return manifest


def commit_version(store: MLData, usecase: UseCase, manifest: Manifest,
                   reused: bool) -> DatasetVersion:
    """Read the version's items and commit it with their counts. Committed again when
    reused: the row of a version an interrupted run left without one (or with counts from
    before they meant items) is brought in line with the manifest."""
    items = usecase.items(manifest, store)
    counts = Counts.of(len(manifest.quarantined), (i.split for i in items))
    manifest.counts = counts
    return DatasetVersion(manifest, store.commit(manifest), reused, items, counts)


def _check_unique_ids(entries: list[Entry]) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.item_id in seen:
            raise CDLError(f"two files map to the article id {entry.item_id!r}",
                           "rename one of them; ids are the path without its extension")
        seen.add(entry.item_id)


def ingest(ctx: Context, case: Case) -> DatasetVersion:
    """Collect, validate, quarantine and version the raw data of a use case."""
    usecase, options = case.usecase, case.options.data
    check_source(options.folder)
    store = ctx.stores.mldata
    with ctx.stage(case, "ingest", f"{usecase.name}: ingesting {options.folder}"):
        if isinstance(store, ValidatingMLData):  # a cluster: Pachyderm's pipeline validates
            dataset = commit_version(store, usecase,
                                     store.ingest(usecase, options, case.options.seed), False)
        else:
            candidates, rules = usecase.scan(options)
            split = SplitRules(seed=case.options.seed) if usecase.needs_split() else None
            dataset = version(store, usecase, options.folder, candidates, rules, split)
    counts = dataset.counts
    ctx.display.note(
        f"dataset {dataset.id} ({'reused' if dataset.reused else 'new'}): "
        f"{counts.ingested} ingested = {counts.valid} valid + {counts.quarantined} quarantined")
    for entry in dataset.manifest.quarantined:
        ctx.display.note(f"quarantined {entry.path}: {entry.reason}")
    return dataset
