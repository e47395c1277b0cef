"""Labels (paper §3.2): Label Studio tasks and annotations, exported to PostgreSQL per split.

The paper releases validated data to Label Studio, which exports labels in its JSON format;
they are stored in ``train_labels`` / ``test_labels`` with the labeler, the time and the dataset
version. Its use case pre-created the labels because nobody labeled by hand; so does this step:
each valid item becomes a task pre-annotated with the dataset's own label (folder or IDX file).

Through Label Studio (the default), one project per use case and split holds the tasks; the
pre-annotations are converted into annotations where nobody has labeled yet, and a person's label
set in the UI wins on the next export. Without it (the foundation's direct path), the same export
format is written here and stored the same way.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from usecases.stores.database import Database
from usecases.stores.labelstudio import LabelStudioClient
from usecases.stores.mldata import MLDataStore
from usecases.workflow.data import DatasetVersion
from usecases.workflow.usecase import Item

DATASET_LABELER = "cdl-dataset-labels"  # who a pre-annotation's label comes from
PREDICTION_VERSION = "dataset-labels"
SPLITS = ("train", "test")
TaskData = Callable[[Item], dict[str, Any]]
# Label Studio's object tag for what a use case labels (its ``label_to_name``)
OBJECT_TAGS = {"text": "Text", "image": "Image"}


def label_config(classes: tuple[str, ...], to_name: str) -> str:
    """A single-choice classification interface over the use case's classes."""
    choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in classes)
    return (f"<View><{OBJECT_TAGS[to_name]} name={quoteattr(to_name)} value="
            f"{quoteattr('$' + to_name)}/><Choices name=\"label\" toName={quoteattr(to_name)}"
            f" choice=\"single\">{choices}</Choices></View>")


def label_result(label: str, to_name: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": to_name, "type": "choices",
             "value": {"choices": [label]}}]


def task(item: Item, task_data: TaskData, to_name: str) -> dict[str, Any]:
    """An item as a Label Studio task, pre-annotated with the dataset's label. ``content`` (the
    item's content hash) tells a changed file from the task made for its earlier content."""
    return {
        "data": {**task_data(item), "item_id": item.item_id, "path": item.path,
                 "content": item.group},
        "predictions": [{"model_version": PREDICTION_VERSION,
                         "result": label_result(item.label, to_name)}],
    }


def export_tasks(items: list[Item], task_data: TaskData, created_at: str,
                 to_name: str) -> list[dict[str, Any]]:
    """Without Label Studio: the tasks as its JSON export writes them once the pre-annotations
    are converted (``parent_prediction`` marks such an annotation)."""
    tasks = []
    for number, item in enumerate(items, start=1):
        made = task(item, task_data, to_name)
        made["id"] = number
        made["predictions"][0]["id"] = number
        made["annotations"] = [{
            "id": number, "parent_prediction": number, "completed_by": DATASET_LABELER,
            "created_at": created_at, "updated_at": created_at, "was_cancelled": False,
            "ground_truth": False, "result": made["predictions"][0]["result"],
        }]
        tasks.append(made)
    return tasks


def by_a_person(annotation: dict[str, Any]) -> bool:
    """Written or edited by a person, not merely converted from a pre-annotation.

    Label Studio marks converted annotations with ``parent_prediction``; a person's edit of one
    keeps that mark but sets ``updated_by``. (Its ``updated_at`` is no sign: the conversion
    itself leaves it microseconds past ``created_at``.)"""
    return not annotation.get("parent_prediction") or bool(annotation.get("updated_by"))


Row = tuple[str, str, str, str, str]  # item_id, path, label, labeler, labeled at


def rows_from_export(tasks: list[dict[str, Any]],
                     people: dict[int, str] | None = None) -> list[Row]:
    """One row per labeled task: a person's latest label wins over the pre-annotation; skipped
    (cancelled) annotations never count. ``people`` names Label Studio's user ids."""
    rows = []
    for exported in tasks:
        live = [a for a in exported.get("annotations", []) if not a.get("was_cancelled")]
        if not live:
            continue
        human = [a for a in live if by_a_person(a)]
        latest = max(human or live, key=lambda a: a.get("updated_at") or a["created_at"])
        choices = [r["value"]["choices"][0] for r in latest["result"] if r["type"] == "choices"]
        if not choices:
            continue
        if human:
            who = latest.get("updated_by") or latest["completed_by"]
            labeler = (people or {}).get(who, str(who)) if isinstance(who, int) else str(who)
        else:
            labeler = DATASET_LABELER
        rows.append((exported["data"]["item_id"], exported["data"]["path"], choices[0], labeler,
                     latest.get("updated_at") or latest["created_at"]))
    return rows


def stored_count(db: Database, dataset: DatasetVersion, split: str) -> int:
    with db.connect() as conn:
        row = conn.execute(f"SELECT count(*) FROM {split}_labels WHERE dataset_version = %s",
                           (dataset.id,)).fetchone()
    return int(row[0]) if row else 0


def replace_labels(db: Database, dataset: DatasetVersion, split: str, rows: list[Row],
                   export: dict[str, Any] | None = None) -> None:
    """The split's labels for this version become ``rows``, and the export that made them is
    recorded, in one transaction: a failed write leaves what was stored before untouched."""
    with db.connect() as conn:
        conn.execute(f"DELETE FROM {split}_labels WHERE dataset_version = %s", (dataset.id,))
        with conn.cursor().copy(
                f"COPY {split}_labels (usecase, dataset_version, item_id, file_path, label,"
                " creator, created_at) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((dataset.manifest.usecase, dataset.id, *row))
        if export is not None:
            conn.execute(
                "INSERT INTO label_exports (dataset_version, split, tool, url, project, tasks,"
                " annotations, exported, by_people) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (dataset.id, split, export["tool"], export["url"], export["project"],
                 export["tasks"], export["annotations"], len(rows),
                 sum(row[3] != DATASET_LABELER for row in rows)))


def last_export(db: Database, dataset: DatasetVersion, tool: str) -> dict[str, Any] | None:
    """The newest export through ``tool`` for both splits of the version, summed; None unless
    both splits have one."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT DISTINCT ON (split) split, url, project, tasks, annotations, exported,"
            " by_people FROM label_exports WHERE dataset_version = %s AND tool = %s"
            " ORDER BY split, exported_at DESC, id DESC", (dataset.id, tool)).fetchall()
    if len(rows) != len(SPLITS):
        return None
    return {"tool": tool, "url": rows[0][1], "projects": {r[0]: r[2] for r in rows},
            "tasks": sum(r[3] for r in rows), "imported": 0,
            "annotations": sum(r[4] for r in rows), "exported": sum(r[5] for r in rows),
            "by_people": sum(r[6] for r in rows), "reused": True}


def export_path(store: MLDataStore, dataset: DatasetVersion, split: str) -> Path:
    """Where a split's export is kept, beside the version's manifest."""
    return store.version_dir(dataset.id) / f"labels-{split}.json.gz"


def read_export(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as kept:
        tasks: list[dict[str, Any]] = json.load(kept)
    return tasks


def _keep_export(path: Path, tasks: list[dict[str, Any]]) -> None:
    """Keep an export without inline data URLs (the item's path and content hash name what was
    labeled; the image itself is in ML Data), compressed: Label Studio's export of the 60k
    Fashion-MNIST training images is 69 MB of JSON even so, 4.8 MB gzipped."""
    kept = [{**t, "data": {k: v for k, v in t["data"].items()
                           if not (isinstance(v, str) and v.startswith("data:"))}}
            for t in tasks]
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump(kept, out)


def store_labels(db: Database, store: MLDataStore, dataset: DatasetVersion, items: list[Item],
                 task_data: TaskData, to_name: str = "text") -> dict[str, Any]:
    """Direct path: write the export per split and its rows to the label tables; idempotent
    per version."""
    created_at = datetime.now(UTC).isoformat()
    exported = annotations = 0
    for split in SPLITS:
        kept = export_path(store, dataset, split)
        present = stored_count(db, dataset, split)
        if present and kept.exists():
            exported += present  # this version's labels are stored already
            annotations += present
            continue
        if kept.exists():
            tasks = read_export(kept)
        else:
            tasks = export_tasks([i for i in items if i.split == split], task_data, created_at,
                                 to_name)
            _keep_export(kept, tasks)
        rows = rows_from_export(tasks)
        replace_labels(db, dataset, split, rows)
        exported += len(rows)
        annotations += sum(len(t["annotations"]) for t in tasks)
    return {"tool": "direct", "url": None, "tasks": len(items), "annotations": annotations,
            "exported": exported}


@dataclass
class Target:
    """What the Labeling step needs to know of a use case."""

    usecase: str
    classes: tuple[str, ...]
    to_name: str
    task_data: TaskData


def label_with_studio(db: Database, store: MLDataStore, dataset: DatasetVersion,
                      items: list[Item], target: Target, client: LabelStudioClient,
                      splits: tuple[str, ...] = SPLITS) -> dict[str, Any]:
    """Through Label Studio: per split, a project (reused), the version's missing tasks
    imported with pre-annotations, pre-annotations converted where nobody has labeled, the
    annotations exported and stored. Re-running imports nothing twice; a person's label wins."""
    config = label_config(target.classes, target.to_name)
    people = client.users()
    summary: dict[str, Any] = {"tool": "label-studio", "url": client.studio.url, "projects": {},
                               "tasks": 0, "imported": 0, "annotations": 0, "exported": 0,
                               "by_people": 0, "reused": False}
    timings = dict.fromkeys(("import", "convert", "export", "store"), 0.0)
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] += now - clock
        clock = now

    for split in splits:
        wanted = {(i.item_id, i.group): i for i in items if i.split == split}
        project = client.project(f"CDL {target.usecase} {split}", config)
        present = client.items(project)
        missing = [task(i, target.task_data, target.to_name) for key, i in wanted.items()
                   if key not in present]
        summary["imported"] += client.import_tasks(project, missing)
        lap("import")
        client.convert_predictions(project)
        lap("convert")
        tasks = [t for t in client.export(project)
                 if (t["data"].get("item_id"), t["data"].get("content")) in wanted]
        lap("export")
        rows = rows_from_export(tasks, people)
        annotations = sum(len([a for a in t.get("annotations", [])
                               if not a.get("was_cancelled")]) for t in tasks)
        _keep_export(export_path(store, dataset, split), tasks)
        replace_labels(db, dataset, split, rows, {
            "tool": "label-studio", "url": client.studio.url, "project": project,
            "tasks": len(tasks), "annotations": annotations})
        lap("store")
        summary["projects"][split] = project
        summary["tasks"] += len(tasks)
        summary["annotations"] += annotations
        summary["exported"] += len(rows)
        summary["by_people"] += sum(row[3] != DATASET_LABELER for row in rows)
    summary["timings"] = {step: round(seconds, 2) for step, seconds in timings.items()}
    return summary


def label(db: Database, store: MLDataStore, dataset: DatasetVersion, items: list[Item],
          target: Target, studio: Callable[[], LabelStudioClient] | None,
          refresh: bool = False) -> dict[str, Any]:
    """The Labeling step. With ``studio`` (opened only when needed): through Label Studio,
    reusing this version's last export unless ``refresh`` asks for a new one (after people
    edited labels); without: the direct path."""
    if studio is None:
        return store_labels(db, store, dataset, items, target.task_data, target.to_name)
    if not refresh:
        previous = last_export(db, dataset, "label-studio")
        if previous is not None:
            return previous
    return label_with_studio(db, store, dataset, items, target, studio())


def load_labels(db: Database, dataset_version: str, split: str) -> dict[str, str]:
    """item_id -> label for a split of a dataset version, as the model pipeline reads them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    with db.connect() as conn:
        rows = conn.execute(
            f"SELECT item_id, label FROM {split}_labels WHERE dataset_version = %s ORDER BY id",
            (dataset_version,),
        ).fetchall()
    return {item_id: label for item_id, label in rows}
