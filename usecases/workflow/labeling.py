"""Labels (paper §3.2): Label Studio JSON export format, stored in PostgreSQL per split.

The paper pre-created its labels from the dataset's folders because nobody labeled by hand; so
does this step. Each valid item becomes one Label Studio task whose annotation is the folder
label, exactly as Label Studio exports it; the export is kept beside the dataset version and its
rows go to ``train_labels`` / ``test_labels`` with lineage to the version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from usecases.stores.database import Database
from usecases.stores.mldata import MLDataStore
from usecases.workflow.data import DatasetVersion
from usecases.workflow.usecase import Item

FOLDER_LABELER = "cdl-folder-labels"
SPLITS = ("train", "test")


def label_result(label: str, from_name: str, to_name: str) -> list[dict[str, Any]]:
    return [{
        "from_name": from_name,
        "to_name": to_name,
        "type": "choices",
        "origin": "prediction",
        "value": {"choices": [label]},
    }]


def export_tasks(
    items: list[Item],
    task_data: Callable[[Item], dict[str, Any]],
    created_at: str,
    from_name: str = "label",
    to_name: str = "text",
) -> list[dict[str, Any]]:
    """Tasks in Label Studio's JSON export format, pre-annotated from the folder labels."""
    tasks = []
    for number, item in enumerate(items, start=1):
        result = label_result(item.label, from_name, to_name)
        tasks.append({
            "id": number,
            "data": {**task_data(item), "item_id": item.item_id, "path": item.path},
            "predictions": [{"id": number, "model_version": "folder", "result": result}],
            "annotations": [{
                "id": number,
                # made from the prediction, as Label Studio's predictions_to_annotations marks it
                "parent_prediction": number,
                "completed_by": FOLDER_LABELER,
                "created_at": created_at,
                "updated_at": created_at,
                "was_cancelled": False,
                "ground_truth": False,
                "result": result,
            }],
        })
    return tasks


def by_a_person(annotation: dict[str, Any]) -> bool:
    """Written or edited by a person, not merely converted from a pre-annotation.

    Label Studio marks converted annotations with ``parent_prediction``; a person's edit of one
    keeps that mark but sets ``updated_by`` and moves ``updated_at`` past ``created_at``."""
    if not annotation.get("parent_prediction"):
        return True
    edited_at = annotation.get("updated_at") or annotation["created_at"]
    return bool(annotation.get("updated_by")) or edited_at > annotation["created_at"]


def rows_from_export(tasks: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    """(item_id, path, label, creator, created_at) per task: a person's latest label wins over
    the pre-annotation; skipped (cancelled) annotations never count."""
    rows = []
    for task in tasks:
        live = [a for a in task.get("annotations", []) if not a.get("was_cancelled")]
        if not live:
            continue
        human = [a for a in live if by_a_person(a)]
        latest = max(human or live,
                     key=lambda a: a.get("updated_at") or a["created_at"])
        choices = [r["value"]["choices"][0] for r in latest["result"] if r["type"] == "choices"]
        if choices:
            rows.append((task["data"]["item_id"], task["data"]["path"], choices[0],
                         str(latest["completed_by"]), latest["created_at"]))
    return rows


def store_labels(
    db: Database,
    store: MLDataStore,
    dataset: DatasetVersion,
    items: list[Item],
    task_data: Callable[[Item], dict[str, Any]],
    to_name: str = "text",
) -> dict[str, int]:
    """Write the export per split and its rows to the label tables; idempotent per version."""
    created_at = datetime.now(UTC).isoformat()
    stored = {}
    for split in SPLITS:
        export_path = store.version_dir(dataset.id) / f"labels-{split}.json"
        with db.connect() as conn:
            row = conn.execute(f"SELECT count(*) FROM {split}_labels"
                               " WHERE dataset_version = %s", (dataset.id,)).fetchone()
        present = int(row[0]) if row else 0
        if present and export_path.exists():
            stored[split] = present  # this version's labels are stored already
            continue
        if export_path.exists():
            tasks = json.loads(export_path.read_text())
        else:
            tasks = export_tasks([i for i in items if i.split == split], task_data, created_at,
                                 to_name=to_name)
            export_path.write_text(json.dumps(tasks))
        rows = rows_from_export(tasks)
        with db.connect() as conn:
            if not present:
                with conn.cursor().copy(
                        f"COPY {split}_labels (usecase, dataset_version, item_id, file_path,"
                        " label, creator, created_at) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row((dataset.manifest.usecase, dataset.id, *row))
        stored[split] = len(rows)
    return stored


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
