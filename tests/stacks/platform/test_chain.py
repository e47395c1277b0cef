"""The whole program (stacks/__main__.py) under mocks: provision → configure → provider →
platform, in one `pulumi up`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stacks.config import ConfigError
from tests.stacks.conftest import VALID, Run
from tests.stacks.platform.conftest import RELEASE

RunProgram = Callable[[dict[str, Any]], Run]
COMMAND = "command:local:Command"
PROVIDER = "pulumi:providers:kubernetes"


def test_the_platform_is_deployed_through_the_configured_cluster(run_program: RunProgram
                                                                 ) -> None:
    run = run_program({**VALID, "domain": "cdl.example.org", "serving": "kserve"})
    site, token = run.of(COMMAND)
    assert site.inputs["stdin"] == run.exports["inventory"]
    assert "gitlab-runner-token" in token.inputs["create"]
    (provider,) = run.of(PROVIDER)
    assert provider.name == "cluster"
    releases = run.of(RELEASE)
    assert {r.inputs["name"] for r in releases} >= {"determined", "kserve", "pachyderm"}
    for release in releases:
        assert release.provider and "::cluster::" in release.provider, release.name
    assert run.exports["urls"]["determined"] == "https://determined.cdl.example.org"
    assert {"kubeconfig", "credentials", "determinedMaster", "s3Endpoint"} <= set(run.exports)


def test_the_stacks_gitlab_host_makes_the_runners_token(run_program: RunProgram) -> None:
    """With a GitLab host and its URL, the runner is deployed with the token the configure
    step read (no cdl:gitlabAdminToken); without a GitLab host, no runner."""
    settings = {**VALID, "domain": "cdl.example.org", "gitlabUrl": "https://gitlab.example.org"}
    assert "gitlab-runner" in {r.inputs["name"] for r in run_program(settings).of(RELEASE)}
    alone = run_program({**settings, "gitlab": False})
    assert "gitlab-runner" not in {r.inputs["name"] for r in alone.of(RELEASE)}


def test_without_a_domain_only_the_hosts_are_configured(run_program: RunProgram) -> None:
    run = run_program(VALID)
    assert len(run.of(COMMAND)) == 2  # the site playbook, and reading the runner's token
    assert not run.of(RELEASE) and not run.of(PROVIDER)
    assert "urls" not in run.exports


def test_a_misspelled_platform_key_stops_the_program(run_program: RunProgram) -> None:
    with pytest.raises(ConfigError, match="cdl:servng: unknown key"):
        run_program({**VALID, "domain": "cdl.example.org", "servng": "kserve"})
