"""The scratch GitLab the CI tests push to: the checkout, as it is on disk, as its main branch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .gitlab import GITLAB_CI_LOCAL, git, push_checkout


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare repository holding the checkout as its main branch, as GitLab would."""
    if not GITLAB_CI_LOCAL.exists():
        pytest.fail(f"no gitlab-ci-local at {GITLAB_CI_LOCAL}: run scripts/gitlab-ci-local.sh")
    if shutil.which("rsync") is None:
        pytest.fail("gitlab-ci-local needs rsync: apt-get install rsync")
    root = tmp_path_factory.mktemp("gitlab")
    bare = root / "cdl.git"
    git(None, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    push_checkout(bare, root / "checkout")
    return bare
