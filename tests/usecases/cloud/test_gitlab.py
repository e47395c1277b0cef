"""Contract tests of Model Maintenance's cluster trigger (usecases/cloud/gitlab.py): python-gitlab
against a server answering like GitLab's pipeline trigger API (gitlab_reference.py), not a
GitLab. The slow scenario (tests/usecases/workflow/test_maintenance_cycle.py) triggers it with a
real dataset version through ``cdl maintain --challenge --via gitlab``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from usecases.cloud import gitlab
from usecases.errors import CDLError
from usecases.workflow.deploy import free_port

from ...cli import assert_one_line_error, cdl
from .gitlab_reference import PROJECT_ID, PROJECT_PATH, ReferenceGitLab, reference_gitlab

VARIABLES = gitlab.challenge_variables("fmnist", "fmnist-d8765fbb15650d6e", 1, 0.01)


@pytest.fixture
def server() -> Iterator[ReferenceGitLab]:
    with reference_gitlab(secrets.token_hex(13)) as running:
        yield running


def test_the_trigger_sends_the_decision_as_variables_and_returns_the_pipeline(
        server: ReferenceGitLab) -> None:
    triggered = gitlab.trigger(server.base, PROJECT_PATH, server.token, "main", VARIABLES)
    ((method, path, body),) = server.requests
    assert (method, path) == ("POST", "/api/v4/projects/cdl%2Fcdl/trigger/pipeline")
    assert body == {"ref": "main", "token": server.token, "variables": {
        "CDL_MAINTAIN": "challenge", "CDL_MAINTAIN_USECASE": "fmnist",
        "CDL_MAINTAIN_DATASET": "fmnist-d8765fbb15650d6e", "CDL_MAINTAIN_CHAMPION": "1",
        "CDL_MAINTAIN_TOLERANCE": "0.01"}}
    assert triggered.id == 258 and triggered.status == "created" and triggered.ref == "main"
    assert triggered.web_url == f"{server.base}/cdl/cdl/-/pipelines/258"
    assert server.token not in repr(triggered)


def test_a_numeric_project_id_works_too(server: ReferenceGitLab) -> None:
    gitlab.trigger(server.base, str(PROJECT_ID), server.token, "main", VARIABLES)
    assert server.requests[0][1] == f"/api/v4/projects/{PROJECT_ID}/trigger/pipeline"


def test_a_token_of_another_project_is_refused_naming_what_to_check(
        server: ReferenceGitLab) -> None:
    wrong = secrets.token_hex(13)
    with pytest.raises(CDLError) as refused:
        gitlab.trigger(server.base, PROJECT_PATH, wrong, "main", VARIABLES)
    assert "refused the trigger for project cdl/cdl: 404 Not Found" in str(refused.value)
    assert gitlab.TOKEN in refused.value.fix and wrong not in str(refused.value)


def test_an_unknown_ref_is_an_error_naming_it(server: ReferenceGitLab) -> None:
    with pytest.raises(CDLError) as refused:
        gitlab.trigger(server.base, PROJECT_PATH, server.token, "release", VARIABLES)
    assert "on 'release'" in str(refused.value) and "Reference not found" in str(refused.value)
    assert "--ref" in refused.value.fix


def test_an_unreachable_gitlab_is_an_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CDLError) as unreachable:
        gitlab.trigger(url, PROJECT_PATH, "t", "main", VARIABLES, timeout=5)
    assert f"GitLab at {url} did not answer" in str(unreachable.value)


def test_missing_settings_are_named() -> None:
    with pytest.raises(CDLError) as missing:
        gitlab.settings({gitlab.URL: "https://gitlab.example.org", gitlab.PROJECT: "cdl/cdl"})
    assert str(missing.value).startswith(f"{gitlab.TOKEN} not set")
    assert gitlab.settings({gitlab.URL: "https://gitlab.example.org/", gitlab.PROJECT: "7",
                            gitlab.TOKEN: "x"}) == ("https://gitlab.example.org", "7", "x")


def test_the_cli_asks_for_the_settings_before_anything_else(tmp_path: Path) -> None:
    run = cdl("maintain", "--usecase", "bbc", "--challenge", "--via", "gitlab",
              home=tmp_path / "home", env={gitlab.URL: "", gitlab.PROJECT: "",
                                           gitlab.TOKEN: ""})
    assert_one_line_error(run, gitlab.URL, gitlab.PROJECT, gitlab.TOKEN, "--via gitlab")


def test_via_gitlab_needs_challenge(tmp_path: Path) -> None:
    run = cdl("maintain", "--usecase", "bbc", "--via", "gitlab", home=tmp_path / "home")
    assert_one_line_error(run, "--via gitlab only applies to --challenge")
