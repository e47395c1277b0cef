"""The Labeling step through a real Label Studio (started by the tests, no fake server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from label_studio_sdk import LabelStudio

from usecases.bbc.dataset import TextRules, scan
from usecases.bbc.usecase import USECASE as BBC
from usecases.errors import CDLError
from usecases.fmnist.usecase import CLASSES as FASHION_CLASSES
from usecases.fmnist.usecase import USECASE as FMNIST
from usecases.stores.labels import DATASET_LABELER, ExportSummary
from usecases.stores.labelstudio import ADMIN, LabelStudioClient, Studio
from usecases.workflow import labeling
from usecases.workflow.context import Case, Context, RunOptions
from usecases.workflow.data import DatasetVersion, SplitRules, version
from usecases.workflow.usecase import DataOptions, UseCase

from ...conftest import free_port
from ...rawdata import write_bbc, write_fmnist


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
    assert summary.imported == 20 and summary.by_people == 0
    stored = _stored(ctx, dataset)
    assert stored == {i.item_id: (i.label, DATASET_LABELER) for i in items}
    sdk = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = sdk.projects.get(id=summary.projects["train"])
    assert project.title == "CDL bbc train"
    assert all(f'value="{c}"' in (project.label_config or "") for c in BBC.classes)
    (task, *_) = list(sdk.tasks.list(project=project.id, fields="all"))
    assert task.data["text"].strip() and task.data["item_id"] in stored
    # the server's own copies of the exports are cleaned up
    assert label_studio.exports is not None and label_studio.exports.is_dir()
    assert not list(label_studio.exports.glob("project-*.json"))


def test_a_project_label_studio_refuses_names_why(label_studio: Studio) -> None:
    with pytest.raises(CDLError, match="could not create a project .*title"):
        LabelStudioClient(label_studio).project("x", "<View></View>")


def test_fashion_images_reach_label_studio_as_data_urls(
        tmp_path: Path, ctx: Context, label_studio: Studio) -> None:
    raw = write_fmnist(tmp_path / "raw", n_train=30, n_test=10)
    candidates, rules = FMNIST.scan(DataOptions(folder=raw, max_bytes=1, min_chars=0))
    dataset = version(ctx.stores.mldata, FMNIST, raw, candidates, rules, None)
    items = dataset.items
    client = LabelStudioClient(label_studio)
    summary = label(ctx, FMNIST, dataset, client)
    assert summary.exported == len(items) == 40
    assert _stored(ctx, dataset) == {i.item_id: (i.label, DATASET_LABELER) for i in items}
    sdk = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)
    project = sdk.projects.get(id=summary.projects["test"])
    assert all(f'value="{c}"' in (project.label_config or "") for c in FASHION_CLASSES)
    (task, *_) = list(sdk.tasks.list(project=project.id, fields="all"))
    assert task.data["image"].startswith("data:image/png;base64,")
    # the export kept beside the manifest names the images without carrying them
    kept = ctx.stores.labels.kept(dataset.id, "test")
    assert kept is not None
    assert {t["data"]["item_id"] for t in kept} == {i.item_id for i in items if i.split == "test"}
    assert all("image" not in t["data"] and t["annotations"] for t in kept)


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
    assert second.by_people == 1 and second.exported == 20
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
