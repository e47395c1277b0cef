"""Labels (paper §3.2): Label Studio tasks and annotations, exported to PostgreSQL per split.

The paper releases validated data to Label Studio, which exports labels in its JSON format;
they are stored in ``train_labels`` / ``test_labels`` with the labeler, the time and the dataset
version. Every valid item of a version becomes a task, pre-annotated with the dataset's own
label (folder or IDX file), and the dataset's labels are the baseline in the label tables.

Two shapes, by use case:

- **Round trip** (BBC, as in the paper): the pre-annotations are converted into annotations
  where nobody has labeled, and the labels are read back from Label Studio's export.
- **Dataset labels with people's corrections** (Fashion-MNIST: its labels came with the data,
  and the paper did not label it): 70,000 tasks are imported in the background, their images as
  files Label Studio serves, not data URLs in its database; nothing is converted.

Either way an export asks Label Studio only for the tasks people (or the conversion) touched
since the previous export began, and merges them into the tables: a person's label wins, a
skipped or deleted annotation falls back to the dataset's label. Re-running imports only the
tasks a project lacks, so an import killed midway resumes. Without Label Studio (the
foundation's direct path), the same export format is written here and stored the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

from usecases.stores.labels import DATASET_LABELER, SPLITS, Export, ExportSummary, Labels, Row
from usecases.workflow.context import Case, Context
from usecases.workflow.data import DatasetVersion
from usecases.workflow.usecase import Item

if TYPE_CHECKING:
    from usecases.stores.labelstudio import LabelStudioClient

TOOL = "label-studio"
PREDICTION_VERSION = "dataset-labels"
# (item, the folder Label Studio serves files from, or None) -> the task's ``data``
TaskData = Callable[[Item, Path | None], dict[str, Any]]
# Label Studio's object tag for what a use case labels (its ``label_to_name``)
OBJECT_TAGS = {"text": "Text", "image": "Image"}
# Changes are asked for since the previous listing less this, in case Label Studio's clock
# runs behind ours: a task listed twice is merged twice, harmlessly.
CLOCK_MARGIN = timedelta(seconds=60)


@dataclass
class Target:
    """What the Labeling step needs to know of a use case."""

    usecase: str
    classes: tuple[str, ...]
    to_name: str
    task_data: TaskData
    round_trip: bool = True


def label_config(classes: tuple[str, ...], to_name: str, round_trip: bool = True) -> str:
    """A single-choice classification interface over the use case's classes; without a round
    trip (no pre-annotation) it shows the dataset's label above the choices."""
    choices = "".join(f"<Choice value={quoteattr(c)}/>" for c in classes)
    header = "" if round_trip else '<Header value="Dataset label: $dataset_label"/>'
    return (f"<View><{OBJECT_TAGS[to_name]} name={quoteattr(to_name)} value="
            f"{quoteattr('$' + to_name)}/>{header}<Choices name=\"label\" "
            f"toName={quoteattr(to_name)} choice=\"single\">{choices}</Choices></View>")


def label_result(label: str, to_name: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": to_name, "type": "choices",
             "value": {"choices": [label]}}]


def task(item: Item, data: dict[str, Any], to_name: str,
         round_trip: bool = True) -> dict[str, Any]:
    """An item as a Label Studio task, pre-annotated with the dataset's label for a round
    trip, else carrying it as data to show (a prediction per task makes Label Studio's import
    3.5 times slower: 70,000 of them would cost a minute and a half). ``content`` (the item's
    content hash) tells a changed file from the task made for its earlier content."""
    made: dict[str, Any] = {
        "data": {**data, "item_id": item.item_id, "path": item.path, "content": item.content}}
    if round_trip:
        made["predictions"] = [{"model_version": PREDICTION_VERSION,
                                "result": label_result(item.label, to_name)}]
    else:
        made["data"]["dataset_label"] = item.label
    return made


def export_tasks(items: list[Item], task_data: TaskData, created_at: str,
                 to_name: str) -> list[dict[str, Any]]:
    """Without Label Studio: the tasks as its JSON export writes them once the pre-annotations
    are converted (``parent_prediction`` marks such an annotation)."""
    tasks = []
    for number, item in enumerate(items, start=1):
        made = task(item, task_data(item, None), to_name)
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


def credited(rows: list[Row], items: list[Item]) -> list[Row]:
    """Rows where a converted pre-annotation carries a label someone set before the item
    joined the version (a feedback sample's) name that person, not the dataset."""
    setters = {i.item_id: i for i in items if i.labeled_by}
    return [Row(r.item_id, r.path, r.label, str(setters[r.item_id].labeled_by),
                setters[r.item_id].labeled_at or r.labeled_at)
            if not r.by_a_person and r.item_id in setters else r for r in rows]


def baseline(items: list[Item], at: str) -> list[Row]:
    """The items' own labels: the dataset's, or a feedback sample's with who set it."""
    return [Row(i.item_id, i.path, i.label, i.labeled_by or DATASET_LABELER,
                i.labeled_at or at) for i in items]


def store_baseline(labels: Labels, dataset: DatasetVersion) -> None:
    """The dataset's own labels, for each split of the version that has none stored yet."""
    at = datetime.now(UTC).isoformat()
    for split in SPLITS:
        if not labels.count(dataset.id, split):
            labels.replace(dataset.id, dataset.manifest.usecase, split,
                           baseline(dataset.split(split), at))


def store_labels(labels: Labels, dataset: DatasetVersion, target: Target) -> ExportSummary:
    """Direct path: for a round-trip use case, write the export per split and its rows to the
    label tables (idempotent per version); otherwise the dataset's labels stand."""
    store_baseline(labels, dataset)
    summary = ExportSummary(tool="direct", url=None, labels=len(dataset.items))
    if not target.round_trip:
        return summary
    summary.tasks = len(dataset.items)
    created_at = datetime.now(UTC).isoformat()
    for split in SPLITS:
        kept = labels.kept(dataset.id, split)
        if kept is None:
            kept = export_tasks(dataset.split(split), target.task_data, created_at,
                                target.to_name)
            labels.keep(dataset.id, split, kept)
            labels.replace(dataset.id, dataset.manifest.usecase, split,
                           credited(rows_from_export(kept), dataset.split(split)))
        summary.exported += len(kept)
        summary.annotations += sum(len(t["annotations"]) for t in kept)
    return summary


def _key(task: dict[str, Any]) -> tuple[str, str]:
    return str(task["data"].get("item_id")), str(task["data"].get("content"))


def open_project(client: LabelStudioClient, target: Target, split: str) -> tuple[int,
                                                                                 Path | None]:
    """The split's project (created once) and the folder its tasks' files are served from
    (None for a Label Studio that serves none of ours)."""
    project = client.project(f"CDL {target.usecase} {split}",
                             label_config(target.classes, target.to_name, target.round_trip))
    media = client.studio.media / target.usecase if client.studio.media else None
    if media is not None and target.to_name == "image":
        media.mkdir(parents=True, exist_ok=True)
        client.media_storage(project, media)
    return project, media


def import_tasks(labels: Labels, dataset: DatasetVersion, target: Target,
                 client: LabelStudioClient, split: str, opened: tuple[int, Path | None],
                 stop: threading.Event | None = None) -> int:
    """The split's tasks its project (``opened``: from :func:`open_project`) lacks, imported
    in batches and recorded once all are in; returns how many were imported (stops between
    batches when ``stop`` is set)."""
    from usecases.stores.labelstudio import IMPORT_BATCH

    project, media = opened
    wanted = {(i.item_id, i.content): i for i in dataset.split(split)}
    count = client.task_count(project)
    if labels.imported(dataset.id, split) == project and count >= len(wanted):
        return 0  # recorded complete, and no task deleted since: listing 60,000 takes a minute
    present = client.items(project) if count else set()
    missing = [item for key, item in wanted.items() if key not in present]
    imported = 0
    for start in range(0, len(missing), IMPORT_BATCH):
        if stop is not None and stop.is_set():
            return imported
        batch = [task(item, target.task_data(item, media), target.to_name, target.round_trip)
                 for item in missing[start:start + IMPORT_BATCH]]
        imported += client.import_tasks(project, batch)
    labels.record_import(dataset.id, target.usecase, split, project, len(wanted))
    return imported


def export_changed(labels: Labels, dataset: DatasetVersion, client: LabelStudioClient,
                   split: str, project: int, people: dict[int, str]) -> tuple[int, int]:
    """The split's tasks changed since the previous export, merged into the label tables;
    returns (annotations read, rows written)."""
    previous = labels.listed_at(dataset.id, split, TOOL)
    since = datetime.fromisoformat(previous) - CLOCK_MARGIN if previous else None
    listed_at = datetime.now(UTC)
    wanted = {(i.item_id, i.content): i for i in dataset.split(split)}
    tasks = [t for t in client.changed(project, since) if _key(t) in wanted]
    found = {row.item_id: row for row in credited(rows_from_export(tasks, people),
                                                  list(wanted.values()))}
    fallback = {row.item_id: row for row in baseline([wanted[_key(t)] for t in tasks],
                                                     listed_at.isoformat())}
    rows = [found.get(item_id) or fallback[item_id] for item_id in fallback]
    if tasks:
        kept = {t["data"]["item_id"]: t for t in labels.kept(dataset.id, split) or []}
        kept.update((t["data"]["item_id"], t) for t in tasks)
        labels.keep(dataset.id, split, list(kept.values()))
    annotations = sum(len([a for a in t.get("annotations", []) if not a.get("was_cancelled")])
                      for t in tasks)
    labels.merge(dataset.id, dataset.manifest.usecase, split, rows,
                 Export(TOOL, len(wanted), annotations, client.studio.url, project,
                        listed_at.isoformat()))
    return annotations, len(rows)


def label_with_studio(labels: Labels, dataset: DatasetVersion, target: Target,
                      client: LabelStudioClient,
                      splits: tuple[str, ...] = SPLITS) -> ExportSummary:
    """Through Label Studio, now: per split, the project's missing tasks imported,
    pre-annotations converted where nobody has labeled (round trip only), the tasks changed
    since the previous export merged into the label tables."""
    store_baseline(labels, dataset)
    people = client.users()
    summary = ExportSummary(tool=TOOL, url=client.studio.url)
    timings = dict.fromkeys(("import", "convert", "export"), 0.0)
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] += now - clock
        clock = now

    for split in splits:
        opened = open_project(client, target, split)
        project = opened[0]
        summary.imported += import_tasks(labels, dataset, target, client, split, opened)
        lap("import")
        if target.round_trip:
            client.convert_predictions(project)
            lap("convert")
        annotations, exported = export_changed(labels, dataset, client, split, project, people)
        lap("export")
        summary.projects[split] = project
        summary.tasks += len(dataset.split(split))
        summary.annotations += annotations
        summary.exported += exported
        summary.by_people += labels.by_people(dataset.id, split)
        summary.labels += labels.count(dataset.id, split)
    summary.timings = {step: round(seconds, 2) for step, seconds in timings.items()}
    return summary


def import_in_background(labels: Labels, dataset: DatasetVersion, target: Target,
                         client: Callable[[], LabelStudioClient],
                         stop: threading.Event) -> int:
    """Every split's missing tasks, for a run's background worker."""
    opened = client()
    return sum(import_tasks(labels, dataset, target, opened, split,
                            open_project(opened, target, split), stop) for split in SPLITS)


def baseline_export(labels: Labels, dataset: DatasetVersion) -> ExportSummary:
    """The export of a version whose use case has no project in Label Studio yet: nobody can
    have labeled its items there, so the dataset's labels stand as of now."""
    store_baseline(labels, dataset)
    listed_at = datetime.now(UTC).isoformat()
    for split in SPLITS:
        labels.merge(dataset.id, dataset.manifest.usecase, split, [],
                     Export(TOOL, 0, 0, listed_at=listed_at))
    return ExportSummary(tool=TOOL, url=None, labels=len(dataset.items))


def target_of(ctx: Context, case: Case) -> Target:
    usecase, store = case.usecase, ctx.stores.mldata
    return Target(usecase.name, usecase.classes, usecase.label_to_name,
                  lambda item, media: usecase.task_data(item, store, media),
                  usecase.labels_round_trip)


def waits_for_studio(ctx: Context, case: Case, dataset: DatasetVersion,
                     refresh: bool = False) -> bool | None:
    """Whether the Labeling step of this version needs Label Studio before training (True),
    only in the background (False), or not at all (None)."""
    if ctx.studio is None:
        return None
    labels = ctx.stores.labels
    complete = all(labels.imported(dataset.id, split) is not None for split in SPLITS)
    if not refresh and labels.last_export(dataset.id, TOOL) is not None:
        return None if complete else False
    return (refresh or case.usecase.labels_round_trip
            or labels.projects_exist(case.usecase.name))


def describe(summary: ExportSummary, round_trip: bool) -> str:
    if summary.tool == "direct":
        return f"{summary.labels} labels stored" + ("" if round_trip else
                                                   " (the dataset's own)")
    if summary.reused:
        source = ", last export reused"
    elif summary.url:
        source = f", {summary.exported} from this export of {summary.url}"
    else:
        source = " (the dataset's own: no Label Studio project had them yet)"
    text = f"{summary.labels} labels in force, {summary.by_people} set by people{source}"
    if summary.importing:
        text += f"; {summary.importing} tasks go to Label Studio in the background"
    return text


def label(ctx: Context, case: Case, dataset: DatasetVersion,
          refresh: bool = False) -> ExportSummary:
    """The Labeling step. Through Label Studio when the run has one (opened only when
    needed), reusing this version's last export unless ``refresh`` asks for a new one (after
    people edited labels), its missing tasks imported in the run's background when nothing
    waits for them; otherwise the direct path."""
    usecase = case.usecase
    target = target_of(ctx, case)
    labels = ctx.stores.labels
    tool = "Label Studio" if ctx.studio else "Label Studio JSON, direct"
    with ctx.stage(case, "label", f"{usecase.name}: labels ({tool} → PostgreSQL)"):
        if ctx.studio is None:
            summary = store_labels(labels, dataset, target)
        else:
            now = waits_for_studio(ctx, case, dataset, refresh)
            if now:
                summary = label_with_studio(labels, dataset, target, ctx.studio())
            else:
                summary = (labels.last_export(dataset.id, TOOL)
                           or baseline_export(labels, dataset))
                if now is False:
                    studio = ctx.studio
                    summary.importing = len(dataset.items)
                    ctx.background.submit(
                        f"{usecase.name}: {len(dataset.items)} tasks into Label Studio",
                        lambda stop: import_in_background(labels, dataset, target, studio,
                                                          stop))
    ctx.display.note(f"{usecase.name}: {describe(summary, target.round_trip)}")
    return summary
