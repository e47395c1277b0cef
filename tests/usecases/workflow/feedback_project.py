"""The feedback project ``cdl maintain --feedback`` filled, read through Label Studio's API as
a person's tools would: for the tests that label its tasks."""

from __future__ import annotations

from typing import Any

from label_studio_sdk import LabelStudio

from usecases.state import State
from usecases.stores.database import EmbeddedPostgres
from usecases.stores.labelstudio import EmbeddedLabelStudio


def feedback_tasks(state: State, usecase: str) -> tuple[LabelStudio, list[Any]]:
    """The SDK client of the running Label Studio and every task of the use case's feedback
    project."""
    studio = EmbeddedLabelStudio(state, EmbeddedPostgres(state).conninfo()).running()
    assert studio is not None, "Label Studio is not running"
    sdk = LabelStudio(base_url=studio.url, api_key=studio.token)
    (project,) = [p for p in sdk.projects.list() if p.title == f"CDL {usecase} feedback"]
    return sdk, list(sdk.tasks.list(project=project.id, fields="all", page_size=500))


def annotate(sdk: LabelStudio, task: Any, choice: str) -> None:
    """Annotate ``task`` with ``choice``, as a person does in Label Studio."""
    sdk.annotations.create(id=task.id, result=[{
        "from_name": "label", "to_name": "image", "type": "choices",
        "value": {"choices": [choice]}}])
