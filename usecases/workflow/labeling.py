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

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from usecases.stores.labels import DATASET_LABELER, SPLITS, Export, ExportSummary, Labels, Row
from usecases.workflow.context import Case, Context
from usecases.workflow.data import DatasetVersion
from usecases.workflow.usecase import Item

if TYPE_CHECKING:
    from usecases.stores.labelstudio import LabelStudioClient

PREDICTION_VERSION = "dataset-labels"
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
                 "content": item.content},
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
        rows.append(Row(exported["data"]["item_id"], exported["data"]["path"], choices[0],
                        labeler, latest.get("updated_at") or latest["created_at"]))
    return rows


def store_labels(labels: Labels, dataset: DatasetVersion, target: Target) -> ExportSummary:
    """Direct path: write the export per split and its rows to the label tables; idempotent
    per version."""
    created_at = datetime.now(UTC).isoformat()
    summary = ExportSummary(tool="direct", url=None, tasks=len(dataset.items))
    for split in SPLITS:
        kept = labels.kept(dataset.id, split)
        present = labels.count(dataset.id, split)
        if present and kept is not None:
            summary.exported += present  # this version's labels are stored already
            summary.annotations += present
            continue
        if kept is None:
            kept = export_tasks(dataset.split(split), target.task_data, created_at,
                                target.to_name)
            labels.keep(dataset.id, split, kept)
        rows = rows_from_export(kept)
        labels.replace(dataset.id, dataset.manifest.usecase, split, rows)
        summary.exported += len(rows)
        summary.annotations += sum(len(t["annotations"]) for t in kept)
    return summary


@dataclass
class Target:
    """What the Labeling step needs to know of a use case."""

    usecase: str
    classes: tuple[str, ...]
    to_name: str
    task_data: TaskData


def label_with_studio(labels: Labels, dataset: DatasetVersion, target: Target,
                      client: LabelStudioClient,
                      splits: tuple[str, ...] = SPLITS) -> ExportSummary:
    """Through Label Studio: per split, a project (reused), the version's missing tasks
    imported with pre-annotations, pre-annotations converted where nobody has labeled, the
    annotations exported and stored. Re-running imports nothing twice; a person's label wins."""
    config = label_config(target.classes, target.to_name)
    people = client.users()
    summary = ExportSummary(tool="label-studio", url=client.studio.url)
    timings = dict.fromkeys(("import", "convert", "export", "store"), 0.0)
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] += now - clock
        clock = now

    for split in splits:
        wanted = {(i.item_id, i.content): i for i in dataset.split(split)}
        project = client.project(f"CDL {target.usecase} {split}", config)
        present = client.items(project)
        missing = [task(i, target.task_data, target.to_name) for key, i in wanted.items()
                   if key not in present]
        summary.imported += client.import_tasks(project, missing)
        lap("import")
        client.convert_predictions(project)
        lap("convert")
        tasks = [t for t in client.export(project)
                 if (t["data"].get("item_id"), t["data"].get("content")) in wanted]
        lap("export")
        rows = rows_from_export(tasks, people)
        annotations = sum(len([a for a in t.get("annotations", [])
                               if not a.get("was_cancelled")]) for t in tasks)
        labels.keep(dataset.id, split, tasks)
        labels.replace(dataset.id, dataset.manifest.usecase, split, rows,
                       Export("label-studio", len(tasks), annotations, client.studio.url,
                              project))
        lap("store")
        summary.projects[split] = project
        summary.tasks += len(tasks)
        summary.annotations += annotations
        summary.exported += len(rows)
        summary.by_people += sum(row.by_a_person for row in rows)
    summary.timings = {step: round(seconds, 2) for step, seconds in timings.items()}
    return summary


def label(ctx: Context, case: Case, dataset: DatasetVersion,
          refresh: bool = False) -> ExportSummary:
    """The Labeling step. Through Label Studio when the run has one (opened only when
    needed), reusing this version's last export unless ``refresh`` asks for a new one (after
    people edited labels); otherwise the direct path."""
    usecase = case.usecase
    store = ctx.stores.mldata
    target = Target(usecase.name, usecase.classes, usecase.label_to_name,
                    lambda item: usecase.task_data(item, store))
    tool = "Label Studio" if ctx.studio else "Label Studio JSON, direct"
    with ctx.stage(case, "label", f"{usecase.name}: labels ({tool} → PostgreSQL)"):
        if ctx.studio is None:
            return store_labels(ctx.stores.labels, dataset, target)
        previous = None if refresh else ctx.stores.labels.last_export(dataset.id,
                                                                     "label-studio")
        summary = previous or label_with_studio(ctx.stores.labels, dataset, target,
                                                ctx.studio())
    ctx.display.note(f"{usecase.name}: {summary.exported} labels exported from "
                     f"{summary.url} ({summary.by_people} set by people"
                     f"{', last export reused' if summary.reused else ''})")
    return summary
