"""What the CI tests share: GitLab's CI schema check, and gitlab-ci-local over scratch clones of
the checkout (see ``conftest.origin``).

gitlab-ci-local decides ``rules:changes`` as ``git diff --name-only origin/<default branch>``:
a commit not pushed to the scratch clone's origin is the change a push would bring."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from ..conftest import REPO

GITLAB_CI_LOCAL = REPO / ".venv" / "bin" / "gitlab-ci-local"
PIPELINE_FILES = [REPO / ".gitlab-ci.yml", *sorted((REPO / "ci").glob("*.yml"))]


def check_schema(*paths: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the copy of GitLab's CI schema it vendors."""
    return subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"),
                           "--builtin-schema", "vendor.gitlab-ci", "--data-transform",
                           "gitlab-ci", *map(str, paths)],
                          capture_output=True, text=True, timeout=120, check=False)


def git(cwd: Path | None, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "cdl test", "GIT_AUTHOR_EMAIL": "test@cdl.invalid",
           "GIT_COMMITTER_NAME": "cdl test", "GIT_COMMITTER_EMAIL": "test@cdl.invalid"}
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env,
                          check=True, timeout=120).stdout


def push_checkout(bare: Path, work: Path) -> None:
    """The checkout as it is on disk (committed or not: the pipeline files being edited are the
    ones under test), pushed as one commit to ``bare``'s main branch, as GitLab would hold it."""
    listed = git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted but not yet staged is listed too
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    git(None, "init", "-q", "--initial-branch=main", str(work))
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "the checkout")
    git(work, "push", "-q", str(bare), "HEAD:refs/heads/main")


def scratch_clone(origin: Path, clone: Path) -> None:
    git(None, "clone", "-q", str(origin), str(clone))
    git(clone, "remote", "set-head", "origin", "main")  # gitlab-ci-local's default branch


def commit(clone: Path, branch: str, path: str, line: str) -> None:
    """A real commit on ``branch``: one comment line appended to ``path``."""
    if branch != "main":
        git(clone, "checkout", "-q", "-b", branch)
    with (clone / path).open("a") as file:
        file.write(f"\n{line}\n")
    git(clone, "commit", "-q", "-am", f"{path}: {line}")


def listed(clone: Path, *variables: str, unset: Iterable[str] = ()) -> dict[str, str]:
    """Each job of the pipeline gitlab-ci-local plans in ``clone`` (with ``NAME=value``
    variables, without the predefined ones named in ``unset``) and its ``when``; a job whose
    rules leave it out is not listed."""
    args = [str(GITLAB_CI_LOCAL), "--list-json"]
    for variable in variables:
        args += ["--variable", variable]
    for name in unset:
        args += ["--unset-variable", name]
    run = subprocess.run(args, cwd=clone, capture_output=True, text=True, timeout=120,
                         check=True)
    listing = run.stdout[run.stdout.index("\n[") + 1:] if not run.stdout.startswith(
        "[") else run.stdout
    return {job["name"]: job["when"] for job in json.loads(listing) if job["when"] != "never"}


def planned(clone: Path, *variables: str) -> set[str]:
    return set(listed(clone, *variables))
