"""The GitLab host: backups scheduled, and with the omnibus package installed, every service
running and GitLab answering."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import in_group


def test_backups_scheduled(host: Any, groups: set[str]) -> None:
    in_group(groups, "gitlab")
    cron = host.file("/etc/cron.d/cdl-gitlab-backup")
    assert cron.exists
    assert "gitlab-backup create CRON=1" in cron.content_string
    assert "gitlab-ctl backup-etc" in cron.content_string


@pytest.mark.gitlab_app
def test_services_running(host: Any, groups: set[str]) -> None:
    in_group(groups, "gitlab")
    with host.sudo():
        assert host.run("gitlab-ctl status").rc == 0


@pytest.mark.gitlab_app
def test_gitlab_answers(host: Any, groups: set[str]) -> None:
    in_group(groups, "gitlab")
    # The readiness probe answers from localhost (GitLab's default monitoring allowlist).
    code = host.check_output("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/-/readiness")
    assert code == "200"
