"""The Labeling step through a real Label Studio (started by the tests, no fake server)."""

from __future__ import annotations

import io
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from label_studio_sdk import LabelStudio
from PIL import Image

from usecases.bbc.dataset import TextRules, scan
from usecases.bbc.usecase import USECASE as BBC
from usecases.errors import CDLError
from usecases.fmnist.usecase import CLASSES as FASHION_CLASSES
from usecases.fmnist.usecase import USECASE as FMNIST
from usecases.stores import labelstudio
from usecases.stores.labels import DATASET_LABELER, ExportSummary
from usecases.stores.labelstudio import ADMIN, EmbeddedLabelStudio, LabelStudioClient, Studio
from usecases.workflow import labeling
from usecases.workflow.context import Case, Context, RunOptions
from usecases.workflow.data import DatasetVersion, SplitRules, version
from usecases.workflow.usecase import DataOptions, UseCase

from ...conftest import free_port
from ...rawdata import write_bbc, write_fmnist

# Every test here boots a real Label Studio
pytestmark = pytest.mark.slow


def _bbc(tmp_path: Path, ctx: Context) -> DatasetVersion:
    raw = write_bbc(tmp_path / "raw", per_class=4)
    rules = TextRules()
    return version(ctx.stores.mldata, BBC, raw, scan(raw, rules), rules.as_dict(), SplitRules())


def label(ctx: Context, usecase: UseCase, dataset: DatasetVersion, client: LabelStudioClient,
          refresh: bool = False) -> ExportSummary:
    """The Labeling step of a run whose Label Studio is ``client``."""
    ctx.studio = lambda: client
    case = Case(usecase, RunOptions(DataOptions(Path(dataset.manifest.source), 1, 0)))
    return labeling.label(ctx, case, dataset, refresh)


def _stored(ctx: Context, dataset: DatasetVersion) -> dict[str, tuple[str, str]]:
    with ctx.stores.db.connect() as conn:
        rows = conn.execute(
            "SELECT item_id, label, creator FROM train_labels WHERE dataset_version = %s"
            " UNION ALL SELECT item_id, label, creator FROM test_labels"
            " WHERE dataset_version = %s", (dataset.id, dataset.id)).fetchall()
    return {item_id: (label, creator) for item_id, label, creator in rows}


def test_bbc_round_trip_stores_every_valid_item_with_its_version(
        tmp_path: Path, ctx: Context, label_studio: Studio) -> None:
    dataset = _bbc(tmp_path, ctx)
    items = dataset.items
    client = LabelStudioClient(label_studio)
    summary = label(ctx, BBC, dataset, client)
    assert summary.tool == "label-studio" and summary.url == label_studio.url
    assert summary.tasks == summary.annotations == summary.exported == len(items) == 20
    assert summary.imported == 20 and summary.by_people == 0 and summary.labels == 20
    stored = _stored(ctx, dataset)
    assert stored == {i.item_id: (i.label, DATASET_LABELER) for i in items}
    sdk = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = sdk.projects.get(id=summary.projects["train"])
    assert project.title == "CDL bbc train"
    assert all(f'value="{c}"' in (project.label_config or "") for c in BBC.classes)
    (task, *_) = list(sdk.tasks.list(project=project.id, fields="all"))
    assert task.data["text"].strip() and task.data["item_id"] in stored


def test_a_project_label_studio_refuses_names_why(label_studio: Studio) -> None:
    with pytest.raises(CDLError, match="could not create a project .*title"):
        LabelStudioClient(label_studio).project("x", "<View></View>")


def _fashion(tmp_path: Path, ctx: Context, n_train: int = 30) -> DatasetVersion:
    raw = write_fmnist(tmp_path / "raw", n_train=n_train, n_test=10)
    candidates, rules = FMNIST.scan(DataOptions(folder=raw, max_bytes=1, min_chars=0))
    return version(ctx.stores.mldata, FMNIST, raw, candidates, rules, None)


def _sdk(studio: Studio) -> LabelStudio:
    return LabelStudio(base_url=studio.url, api_key=studio.token)


def _tasks(studio: Studio, project: int) -> list[Any]:
    return list(_sdk(studio).tasks.list(project=project, fields="all", page_size=1000))


def _project(studio: Studio, title: str) -> int:
    (project,) = [p for p in _sdk(studio).projects.list() if p.title == title]
    return int(project.id)


def test_fashion_labels_stand_at_once_and_the_images_follow_in_the_background(
        tmp_path: Path, ctx: Context, label_studio: Studio) -> None:
    dataset = _fashion(tmp_path, ctx)
    items = dataset.items
    summary = label(ctx, FMNIST, dataset, LabelStudioClient(label_studio))
    # no project had these images: nobody can have labeled them, the dataset's labels stand
    assert (summary.labels, summary.by_people, summary.importing) == (40, 0, 40)
    assert _stored(ctx, dataset) == {i.item_id: (i.label, DATASET_LABELER) for i in items}
    (job,) = ctx.background.finish()
    assert job.error is None
    for split in ("train", "test"):
        assert ctx.stores.labels.imported(dataset.id, split) is not None
        tasks = _tasks(label_studio, _project(label_studio, f"CDL fmnist {split}"))
        assert {t.data["item_id"] for t in tasks} == {i.item_id for i in items
                                                     if i.split == split}
        # nothing converted, no pre-annotation: the dataset's label is shown as data
        truth = {i.item_id: i.label for i in items}
        assert all(not t.annotations and not t.predictions for t in tasks)
        assert all(t.data["dataset_label"] == truth[t.data["item_id"]] for t in tasks)
    project = _sdk(label_studio).projects.get(id=_project(label_studio, "CDL fmnist test"))
    assert all(f'value="{c}"' in (project.label_config or "") for c in FASHION_CLASSES)
    assert "$dataset_label" in (project.label_config or "")
    # an image is a file Label Studio serves, not a data URL in its database
    url = tasks[0].data["image"]
    assert url.startswith("/data/local-files/?d=fmnist/")
    served = httpx.get(label_studio.url + url,
                       headers={"Authorization": f"Token {label_studio.token}"})
    assert served.status_code == 200 and served.content.startswith(b"\x89PNG")
    image = Image.open(io.BytesIO(served.content))
    assert image.size == (28, 28)
    # a re-run reuses the export and has nothing to import
    again = label(ctx, FMNIST, dataset, LabelStudioClient(label_studio))
    assert again.reused and again.importing == 0 and not ctx.background.pending()
    assert again.labels == 40


def _annotate(studio: Studio, task: Any, label: str, to_name: str,
              skipped: bool = False) -> Any:
    return _sdk(studio).annotations.create(id=task.id, was_cancelled=skipped, result=[
        {"from_name": "label", "to_name": to_name, "type": "choices",
         "value": {"choices": [label]}}])


def test_a_person_labels_a_fashion_image_and_only_touched_tasks_are_exported(
        tmp_path: Path, ctx: Context, label_studio: Studio) -> None:
    dataset = _fashion(tmp_path, ctx)
    client = LabelStudioClient(label_studio)
    label(ctx, FMNIST, dataset, client)
    ctx.background.finish()
    train = sorted(_tasks(label_studio, _project(label_studio, "CDL fmnist train")),
                   key=lambda t: t.data["item_id"])
    labeled, skipped, deleted = train[:3]
    truth = {i.item_id: i.label for i in dataset.items}
    other = next(c for c in FASHION_CLASSES if c != truth[labeled.data["item_id"]])
    _annotate(label_studio, labeled, other, "image")
    _annotate(label_studio, skipped, other, "image", skipped=True)
    removed = _annotate(label_studio, deleted, other, "image")
    summary = label(ctx, FMNIST, dataset, client, refresh=True)
    assert summary.imported == 0 and summary.exported == 3 and summary.by_people == 2
    stored = _stored(ctx, dataset)
    assert stored[labeled.data["item_id"]] == (other, ADMIN)
    assert stored[skipped.data["item_id"]] == (truth[skipped.data["item_id"]],
                                               DATASET_LABELER)  # a skip never counts
    # deleting the annotation brings the dataset's label back at the next export
    _sdk(label_studio).annotations.delete(id=removed.id)
    again = label(ctx, FMNIST, dataset, client, refresh=True)
    assert again.by_people == 1 and again.labels == 40
    assert _stored(ctx, dataset)[deleted.data["item_id"]] == (truth[deleted.data["item_id"]],
                                                               DATASET_LABELER)
    kept = ctx.stores.labels.kept(dataset.id, "train")
    assert kept is not None and {t["data"]["item_id"] for t in kept} == {
        t.data["item_id"] for t in (labeled, skipped, deleted)}
    # the kept export names each image (its URL), it does not carry it
    assert all(t["data"]["image"].startswith("/data/local-files/") for t in kept)


def test_label_studio_killed_mid_import_loses_no_label_and_the_next_run_resumes(
        tmp_path: Path, ctx: Context, label_studio: Studio,
        label_studio_server: EmbeddedLabelStudio, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(labelstudio, "IMPORT_BATCH", 50)
    dataset = _fashion(tmp_path, ctx, n_train=1500)
    before = {i.item_id: (i.label, DATASET_LABELER) for i in dataset.items}
    label(ctx, FMNIST, dataset, LabelStudioClient(label_studio))
    deadline = time.monotonic() + 120
    project = None
    while time.monotonic() < deadline:
        found = [p for p in _sdk(label_studio).projects.list() if p.title == "CDL fmnist train"]
        if found and (found[0].task_number or 0) >= 100:
            project = int(found[0].id)
            break
        time.sleep(0.05)
    assert project is not None, "the background import did not start"
    server = json.loads((label_studio_server.root / "server.json").read_text())
    os.killpg(int(server["pid"]), signal.SIGKILL)
    (job,) = ctx.background.finish()
    assert job.error is not None and "cannot reach Label Studio" in job.error
    assert _stored(ctx, dataset) == before  # every stored label is still there
    assert ctx.stores.labels.imported(dataset.id, "train") is None
    restarted = label_studio_server.start()
    # the next run goes on where the import stopped: no task twice, none missing
    summary = label(ctx, FMNIST, dataset, LabelStudioClient(restarted))
    assert summary.reused and summary.importing == len(dataset.items)
    (job,) = ctx.background.finish()
    assert job.error is None
    tasks = _tasks(restarted, project)
    ids = [t.data["item_id"] for t in tasks]
    assert len(ids) == len(set(ids)) == 1500
    assert ctx.stores.labels.imported(dataset.id, "train") == project
    assert _stored(ctx, dataset) == before


def test_rerunning_imports_nothing_twice(tmp_path: Path, ctx: Context,
                                         label_studio: Studio) -> None:
    dataset = _bbc(tmp_path, ctx)
    items = dataset.items
    client = LabelStudioClient(label_studio)
    first = label(ctx, BBC, dataset, client)
    again = label(ctx, BBC, dataset, client, refresh=True)
    assert again.imported == 0 and again.tasks == first.tasks == 20
    sdk = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    for split, project in first.projects.items():
        assert again.projects[split] == project
        assert sdk.projects.get(id=project).task_number == sum(i.split == split for i in items)
    assert len(ctx.stores.labels.load(dataset.id, "train")) + len(
        ctx.stores.labels.load(dataset.id, "test")) == 20


def _relabel(sdk: LabelStudio, project: int, to: str) -> str:
    """A person changes the converted annotation of the project's first task in the UI."""
    (task, *_) = list(sdk.tasks.list(project=project, fields="all"))
    (annotation,) = sdk.annotations.list(id=task.id)
    assert annotation.id is not None
    sdk.annotations.update(id=annotation.id, result=[
        {"from_name": "label", "to_name": "text", "type": "choices",
         "value": {"choices": [to]}}])
    return str(task.data["item_id"])


def test_a_label_a_person_changed_wins_on_the_next_export(
        tmp_path: Path, ctx: Context, label_studio: Studio) -> None:
    dataset = _bbc(tmp_path, ctx)
    items = dataset.items
    client = LabelStudioClient(label_studio)
    first = label(ctx, BBC, dataset, client)
    sdk = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    item_id = _relabel(sdk, first.projects["train"], "tech")
    original = next(i.label for i in items if i.item_id == item_id)
    assert original != "tech"  # the first task is a business article (classes in order)
    # the demo reuses the version's last export; `cdl label` (refresh) takes the person's label
    assert label(ctx, BBC, dataset, client).reused
    assert _stored(ctx, dataset)[item_id] == (original, DATASET_LABELER)
    second = label(ctx, BBC, dataset, client, refresh=True)
    assert second.by_people == 1 and second.labels == 20 and 1 <= second.exported <= 20
    assert _stored(ctx, dataset)[item_id] == ("tech", ADMIN)
    # converting again does not bring the pre-annotation back over the person's label
    third = label(ctx, BBC, dataset, client, refresh=True)
    assert third.annotations == 20
    assert _stored(ctx, dataset)[item_id] == ("tech", ADMIN)


@pytest.mark.parametrize("broken", ["wrong token", "unreachable"])
def test_a_broken_label_studio_is_a_clear_error_and_loses_no_label(
        tmp_path: Path, ctx: Context, label_studio: Studio, broken: str) -> None:
    dataset = _bbc(tmp_path, ctx)
    label(ctx, BBC, dataset, LabelStudioClient(label_studio))
    before = _stored(ctx, dataset)
    bad = (Studio(label_studio.url, "0" * 40) if broken == "wrong token"
           else Studio(f"http://127.0.0.1:{free_port()}", label_studio.token))
    with pytest.raises(CDLError) as raised:
        label(ctx, BBC, dataset, LabelStudioClient(bad), refresh=True)
    message: Any = str(raised.value)
    expected = "refused the API token" if broken == "wrong token" else "cannot reach"
    assert expected in message and bad.url in message and "0" * 40 not in message
    assert "labels already stored are unchanged" in message
    assert _stored(ctx, dataset) == before and len(before) == 20
