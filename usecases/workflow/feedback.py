"""Model Maintenance's feedback to labeling (paper §3.4): from drift found in Scoring Data back
to the data pipeline.

- **Send.** The served inputs the model was least sure of (lowest probability of the class it
  answered) become Label Studio tasks in the use case's feedback project, pre-annotated with
  the served prediction (its model version and probability as the prediction's score). Each
  input is stored once in ML Data by its content hash; its Scoring Data row is its source, and
  one input served many times is one sample.
- **Collect.** The labels people set there (or, with ``accept``, the pre-annotations taken as
  reviewed: the demo's stand-in for a person) are recorded on the samples, and the labeled
  samples join a new ML Data version: the items of the version the serving model was trained
  on plus the samples, each with its lineage (scoring row, served model, who labeled it, when).
  Half of them, by content hash, are held out in the test split, so that a challenger and the
  champion can be compared on new data neither trained on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from usecases.errors import CDLError
from usecases.stores.feedback import Sample
from usecases.stores.labelstudio import LabelStudioClient
from usecases.stores.local import Stores
from usecases.stores.mldata import (
    SCORING_SAMPLE,
    Entry,
    Manifest,
    is_sample,
    sha256_bytes,
    version_id,
)
from usecases.stores.registry import ModelVersion
from usecases.stores.scoring import ServedInput
from usecases.workflow import labeling
from usecases.workflow.data import DatasetVersion, commit_version
from usecases.workflow.usecase import Item, UseCase

SPLIT = "feedback"  # the Label Studio project is "CDL <use case> feedback"
SAMPLE_PREFIX = "scoring-"  # a sample's item id: this and its Scoring Data row id
HOLDOUT = 0.5  # of the labeled samples, held out in the test split
ACCEPTED = "cdl-accepted-prediction"  # who a pre-annotation accepted as reviewed is credited to


@dataclass
class Sent:
    sent: int  # new tasks this time
    pending: int  # sent and not labeled yet, these included
    project: int
    url: str
    samples: list[dict[str, object]] = field(default_factory=list)  # the new ones


@dataclass
class Collected:
    labeled: int  # every labeled sample of the use case
    new_labels: int  # labels recorded this time
    pending: int
    dataset_version: str | None  # the version the labeled samples joined (None: none yet)
    base_version: str | None
    counts: dict[str, int] | None


def input_bytes(served: str | bytes) -> bytes:
    """A served input as ML Data keeps it: an article's UTF-8 text, an image's raw pixels."""
    return served.encode() if isinstance(served, str) else served


def least_confident(served: list[ServedInput], known: set[str],
                    count: int) -> list[tuple[ServedInput, str]]:
    """Up to ``count`` served inputs not sent before, the least confident first (a row from a
    server that recorded no confidence last), one per content; with their content hash."""
    ranked = sorted(served, key=lambda r: (r.confidence is None, r.confidence or 0.0, r.id))
    chosen: list[tuple[ServedInput, str]] = []
    seen = set(known)
    for row in ranked:
        sha = sha256_bytes(input_bytes(row.input))
        if sha in seen:
            continue
        seen.add(sha)
        chosen.append((row, sha))
        if len(chosen) == count:
            break
    return chosen


def sample_item(sample: Sample, split: str = SPLIT) -> Item:
    label = sample.label or sample.prediction
    return Item(f"{SAMPLE_PREFIX}{sample.scoring_id}", f"scoring/{sample.scoring_id}", label,
                split,
                group=sample.sha256, content=sample.sha256, source=sample.sha256)


def target(usecase: UseCase, stores: Stores) -> labeling.Target:
    return labeling.Target(usecase.name, usecase.classes, usecase.label_to_name,
                           lambda item, media: usecase.task_data(item, stores.mldata, media))


def send(stores: Stores, client: LabelStudioClient, usecase: UseCase, version: ModelVersion,
         served: list[ServedInput], count: int) -> Sent:
    """The ``count`` least confident served inputs of ``version`` as tasks in the feedback
    project. Recorded before they are imported, and every recorded sample the project lacks
    is imported, so a send cut short is completed by the next."""
    project, media = labeling.open_project(client, target(usecase, stores), SPLIT)
    now = datetime.now(UTC)
    new = []
    for row, _ in least_confident(served, stores.feedback.known(usecase.name), count):
        sha = stores.mldata.put(input_bytes(row.input))
        new.append(Sample(row.id, usecase.name, version.name, str(version.version), sha,
                          row.prediction, row.confidence, row.at, project, now))
    stores.feedback.add(new)
    samples = stores.feedback.samples(usecase.name)
    present = client.items(project) if client.task_count(project) else set()
    tasks = []
    for sample in samples:
        item = sample_item(sample)
        if (item.item_id, item.content) in present:
            continue
        made = labeling.task(item, usecase.task_data(item, stores.mldata, media),
                             usecase.label_to_name)
        made["data"] |= {"scoring_id": sample.scoring_id,
                         "served_by": f"{sample.model} v{sample.model_version}"}
        made["predictions"][0] |= {"model_version": f"{sample.model} v{sample.model_version}",
                                   "score": sample.confidence}
        tasks.append(made)
    client.import_tasks(project, tasks)
    return Sent(len(new), sum(s.label is None for s in samples), project, client.studio.url,
                [{"scoring_id": s.scoring_id, "prediction": s.prediction,
                  "confidence": s.confidence, "sha256": s.sha256} for s in new])


def collect(stores: Stores, studio: Callable[[], LabelStudioClient], usecase: UseCase,
            base: ModelVersion, accept: bool = False) -> Collected:
    """The feedback project's labels recorded on the samples, and the labeled samples added
    to the items of ``base``'s dataset version as a new one. ``studio`` opens Label Studio
    once there are samples to ask it about."""
    samples = {sample_item(s).item_id: s for s in stores.feedback.samples(usecase.name)}
    if not samples:
        raise CDLError(f"no served input of {usecase.name} was sent to labeling yet",
                       f"run `cdl maintain --usecase {usecase.name} --feedback N` once it "
                       "finds drift")
    client = studio()
    project, _ = labeling.open_project(client, target(usecase, stores), SPLIT)
    if accept:
        client.convert_predictions(project)
    new_labels = 0
    for row in labeling.rows_from_export(client.changed(project, None), client.users()):
        sample = samples.get(row.item_id)
        if sample is None or not (row.by_a_person or accept):
            continue
        labeler = row.labeler if row.by_a_person else ACCEPTED
        if (sample.label, sample.labeler) != (row.label, labeler):
            stores.feedback.label(sample.scoring_id, row.label, labeler,
                                  datetime.fromisoformat(row.labeled_at))
            new_labels += 1
    refreshed = stores.feedback.samples(usecase.name)
    labeled = [s for s in refreshed if s.label is not None]
    pending = len(refreshed) - len(labeled)
    if not labeled:
        return Collected(0, 0, pending, None, base.dataset_version, None)
    dataset = extended(stores, usecase, base.dataset_version, labeled)
    stores.feedback.joined([s.scoring_id for s in labeled], dataset.id)
    return Collected(len(labeled), new_labels, pending, dataset.id, base.dataset_version,
                     dataset.counts.as_dict())


def latest_version(stores: Stores, usecase: UseCase) -> str:
    """The newest dataset version labeled samples of the use case joined."""
    joined = [s for s in stores.feedback.samples(usecase.name) if s.dataset_version]
    if not joined:
        raise CDLError(f"no labeled served input of {usecase.name} is in a dataset version yet",
                       f"label the feedback tasks, then run `cdl maintain --usecase "
                       f"{usecase.name} --collect`")
    return str(max(joined, key=lambda s: s.labeled_at or s.sent_at).dataset_version)


def held_out(sha: str) -> bool:
    return int(sha[:8], 16) / 16**8 < HOLDOUT


def sample_entry(stores: Stores, sample: Sample) -> Entry:
    item = sample_item(sample)
    return Entry(item.item_id, item.path, sample.sha256, len(stores.mldata.get(sample.sha256)),
                 sample.label, "valid", split="test" if held_out(sample.sha256) else "train",
                 notes={"kind": SCORING_SAMPLE, "scoring_id": sample.scoring_id,
                        "served_by": f"{sample.model} v{sample.model_version}",
                        "prediction": sample.prediction, "confidence": sample.confidence,
                        "served_at": sample.served_at.isoformat(),
                        "labeler": sample.labeler,
                        "labeled_at": sample.labeled_at.isoformat() if sample.labeled_at
                        else None})


def extended(stores: Stores, usecase: UseCase, base_id: str,
             labeled: list[Sample]) -> DatasetVersion:
    """A dataset version: ``base_id``'s items (without the samples it may hold) plus every
    labeled sample. Its id follows from the base, the samples and their labels."""
    base = stores.mldata.load(base_id)
    entries = [e for e in base.entries if not is_sample(e)]
    entries += [sample_entry(stores, s) for s in labeled]
    root = base.rules.get("feedback", {}).get("base_version", base_id)
    labels = json.dumps(sorted((s.scoring_id, s.label) for s in labeled))
    rules = {**{k: v for k, v in base.rules.items() if k != "feedback"},
             "feedback": {"base_version": root, "holdout": HOLDOUT,
                          "labels_sha256": sha256_bytes(labels.encode())}}
    vid = version_id(usecase.name, ((e.path, e.sha256, e.size) for e in entries), rules)
    reused = stores.mldata.has(vid)
    manifest = stores.mldata.load(vid) if reused else Manifest(vid, usecase.name, base.source,
                                                                  rules, entries)
    return commit_version(stores.mldata, usecase, manifest, reused)
