"""ci/image.yml: the GitLab CI jobs that build the project's image with kaniko and push it to
GitLab's container registry. Neither kaniko nor a registry can be had here. What is real: the
file against GitLab's CI schema; the pipelines gitlab-ci-local plans in scratch clones of the
checkout; and each job's script, as gitlab-ci-local renders it, run by busybox's shell with
busybox's tools alone (what kaniko's debug image has) in a fresh clone, up to kaniko's
executor. A stand-in named ``executor`` takes the executor's place on PATH and records the
arguments it was given; the registry credentials file is read back as kaniko would read it.
The job they need, image-helm, runs for real (npm, bash and python3, as its Node image has them)
and hands them its artifact as GitLab would: copied into their checkout."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import REPO
from .gitlab import GITLAB_CI_LOCAL, check_schema, commit, git, listed, scratch_clone

IMAGE_FILE = REPO / "ci" / "image.yml"
IMAGE_JOBS = {"image-helm", "image-cpu", "image-gpu"}
BOTH_BUILT = {"image-helm": "on_success", "image-cpu": "on_success", "image-gpu": "on_success"}
HELM_SHA256 = re.search(r'^HELM_SHA256="([0-9a-f]{64})"$',
                        (REPO / "scripts" / "helm.sh").read_text(), re.M)[1]  # type: ignore[index]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
# What GitLab gives a job of a project group/cdl on a registry at registry.test:5050
PREDEFINED = {"CI_REGISTRY": "registry.test:5050",
              "CI_REGISTRY_IMAGE": "registry.test:5050/group/cdl",
              "CI_REGISTRY_USER": "gitlab-ci-token",
              "CI_PROJECT_URL": "https://gitlab.test/group/cdl",
              "CI_PIPELINE_SOURCE": "push", "CI_DEFAULT_BRANCH": "main"}
TORCH_PAGE = "https://wheels.test/torch-cpu/"


@pytest.fixture
def clone(tmp_path: Path, origin: Path) -> Path:
    path = tmp_path / "clone"
    scratch_clone(origin, path)
    return path


def render(clone: Path) -> str:
    """The pipeline of ``clone``'s working tree as gitlab-ci-local renders it: includes and
    `extends` merged, the jobs as GitLab runs them (its own schema check left to the tests)."""
    return subprocess.run([str(GITLAB_CI_LOCAL), "--preview", "--no-json-schema-validation"],
                          cwd=clone, capture_output=True, text=True, timeout=120,
                          check=True).stdout


def test_the_image_jobs_as_rendered_match_gitlab_ci_schema(tmp_path: Path, clone: Path) -> None:
    """Rendered, since check-jsonschema passes a hidden template (``.cdl-image``, which holds
    the jobs' content) unchecked. A misshapen template (an image's entrypoint that is not a
    list, a rule's `when` GitLab does not know) makes both jobs invalid."""
    rendered = tmp_path / "rendered.yml"
    rendered.write_text(render(clone))
    run = check_schema(rendered)
    assert run.returncode == 0, run.stdout + run.stderr
    text = IMAGE_FILE.read_text()
    for broken in (text.replace('entrypoint: [""]', 'entrypoint: ""', 1),
                   text.replace("when: manual", "when: by-hand", 1)):
        assert broken != text
        (clone / "ci" / "image.yml").write_text(broken)
        rendered.write_text(render(clone))
        run = check_schema(rendered)
        assert run.returncode == 1, run.stdout
        assert "$['image-cpu']" in run.stdout and "$['image-gpu']" in run.stdout, run.stdout


# ---- when the images are built: gitlab-ci-local's plans ----------------------------------

def images(plan: dict[str, str]) -> dict[str, str]:
    return {name: when for name, when in plan.items() if name in IMAGE_JOBS}


def test_a_change_to_the_containerfile_on_the_default_branch_builds_both_images(
        clone: Path) -> None:
    commit(clone, "main", "scripts/images/Containerfile", "# a developer's change")
    assert listed(clone) == BOTH_BUILT


def test_a_change_to_the_model_chart_on_the_default_branch_builds_both_images(
        clone: Path) -> None:
    """The image carries charts/cdl-model, which the smoke installs from inside it."""
    commit(clone, "main", "charts/cdl-model/values.yaml", "# a developer's change")
    assert listed(clone) == BOTH_BUILT


def test_a_change_to_the_project_elsewhere_builds_the_images_only_by_hand(clone: Path) -> None:
    commit(clone, "exp/tokenizer", "usecases/bbc/dataset.py", "# a developer's change")
    plan = listed(clone)
    # helm's fetch runs at once, so that a hand starting an image job waits for nothing else
    assert images(plan) == {"image-helm": "on_success", "image-cpu": "manual",
                            "image-gpu": "manual"}
    assert {"bbc-data", "bbc-model"} <= set(plan)  # the workflow's jobs run as before


@pytest.mark.parametrize("branch", ["main", "docs/readme"])
def test_a_readme_change_builds_no_image(clone: Path, branch: str) -> None:
    commit(clone, branch, "README.md", "<!-- a reader's note -->")
    assert listed(clone) == {}


def test_a_tag_builds_the_images_and_runs_no_use_case(clone: Path) -> None:
    """A tag's pipeline (no branch; the tag's commit changed BBC's code, which on the default
    branch plans BBC's jobs as well) builds the images alone."""
    commit(clone, "main", "usecases/bbc/const.yaml", "# a change a push would deploy")
    assert listed(clone, "CI_COMMIT_TAG=v0.1.0", unset=["CI_COMMIT_BRANCH"]) == BOTH_BUILT
    # gitlab-ci-local plans the jobs whatever `workflow:rules` decide (it reads only their
    # variables): the rule that lets a tag's pipeline run at all is read from the file
    workflow = yaml.safe_load((REPO / ".gitlab-ci.yml").read_text())["workflow"]["rules"]
    assert {"if": "$CI_COMMIT_TAG"} in workflow


def test_cdl_image_build_turns_the_jobs_off_or_on_whatever_changed(clone: Path) -> None:
    commit(clone, "main", "scripts/images/Containerfile", "# a developer's change")
    assert listed(clone, "CDL_IMAGE_BUILD=never") == {}
    commit(clone, "docs/readme", "README.md", "<!-- a reader's note -->")
    assert listed(clone, "CDL_IMAGE_BUILD=always") == BOTH_BUILT


# ---- what a job does: its script under busybox, up to the executor --------------------------

@dataclass
class Ran:
    run: subprocess.CompletedProcess[str]
    args: list[str]
    docker_config: Path

    def values(self, flag: str) -> list[str]:
        return [self.args[i + 1] for i, arg in enumerate(self.args[:-1]) if arg == flag]

    def build_args(self) -> dict[str, str]:
        return {name: value for name, _, value in
                (arg.partition("=") for arg in self.values("--build-arg"))}


@pytest.fixture(scope="module")
def rendered(origin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The pipeline as gitlab-ci-local renders it (includes and `extends` merged)."""
    clone = tmp_path_factory.mktemp("rendered") / "clone"
    scratch_clone(origin, clone)
    document = yaml.safe_load(render(clone))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of busybox's applets and the executor's stand-in: the PATH of the jobs."""
    found = shutil.which("busybox")
    if found is None:
        pytest.fail("the image jobs' script is run by busybox: apt-get install busybox")
    path = tmp_path_factory.mktemp("busybox")
    applets = subprocess.run([found, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        (path / applet).symlink_to(found)
    stand_in = path / "executor"
    stand_in.write_text(f'#!{found} sh\nprintf "%s\\n" "$@" >"$EXECUTOR_ARGS"\n')
    stand_in.chmod(0o755)
    return path


def expand(value: str, variables: dict[str, str]) -> str:
    """A variable's value as GitLab expands it: ``$NAME`` and ``${NAME}``, unknown ones empty."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))",
                  lambda m: variables.get(m[1] or m[2], ""), value)


def job_variables(rendered: dict[str, Any], job: str, checkout: Path,
                  project: dict[str, str]) -> dict[str, str]:
    """Predefined variables, then the file's (global, then the job's), then ``project``'s."""
    variables = {**PREDEFINED, "CI_PROJECT_DIR": str(checkout),
                 "CI_REGISTRY_PASSWORD": password(),
                 "CI_COMMIT_SHORT_SHA": git(checkout, "rev-parse", "--short", "HEAD").strip()}
    for name, value in [*(rendered.get("variables") or {}).items(),
                        *rendered[job].get("variables", {}).items(), *project.items()]:
        variables[name] = expand(str(value), variables)
    return variables


@pytest.fixture(scope="module")
def helm_job(rendered: dict[str, Any], origin: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """image-helm's script, run for real in a fresh clone with this machine's bash, npm and
    python3 (what its Node image has): the checkout it leaves, its artifacts in it."""
    checkout = tmp_path_factory.mktemp("image-helm") / "checkout"
    scratch_clone(origin, checkout)
    env = {**os.environ, **job_variables(rendered, "image-helm", checkout, {})}
    run = subprocess.run(["bash", "-e", "-c", "\n".join(rendered["image-helm"]["script"])],
                         cwd=checkout, env=env, capture_output=True, text=True, timeout=600,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    return checkout


def run_job(rendered: dict[str, Any], job: str, busybox: Path, origin: Path, tmp_path: Path,
            needed: Path, **project: str) -> Ran:
    """``job``'s script in a fresh clone, as a runner would run it in kaniko's debug image,
    with the artifacts of the jobs it needs taken from ``needed`` (their checkout)."""
    checkout = tmp_path / "checkout"
    scratch_clone(origin, checkout)
    definition = rendered[job]
    for need in definition.get("needs", []):
        for artifact in rendered[need["job"]]["artifacts"]["paths"]:
            (checkout / artifact).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(needed / artifact, checkout / artifact)
    variables = job_variables(rendered, job, checkout, project)
    docker_config = tmp_path / "kaniko" / ".docker"
    env = {**variables, "PATH": str(busybox), "HOME": str(tmp_path),
           "DOCKER_CONFIG": str(docker_config), "EXECUTOR_ARGS": str(tmp_path / "args")}
    run = subprocess.run([str(busybox / "sh"), "-e", "-c", "\n".join(definition["script"])],
                         cwd=checkout, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    recorded = tmp_path / "args"
    return Ran(run, recorded.read_text().splitlines() if recorded.exists() else [],
               docker_config)


def password() -> str:
    """A job token's stand-in, different in every run."""
    return base64.b32encode(os.urandom(15)).decode()


def test_the_cpu_job_builds_the_containerfile_online_and_pushes_both_tags(
        rendered: dict[str, Any], busybox: Path, origin: Path, tmp_path: Path,
        helm_job: Path) -> None:
    done = run_job(rendered, "image-cpu", busybox, origin, tmp_path, helm_job,
                   CDL_TORCH_FIND_LINKS=TORCH_PAGE)
    assert done.run.returncode == 0, done.run.stderr
    (context,) = done.values("--context")
    assert context.startswith("dir://")
    context_dir = Path(context.removeprefix("dir://"))
    assert done.values("--dockerfile") == [str(context_dir / "Containerfile")]
    assert (context_dir / "Containerfile").read_bytes() == (
        REPO / "scripts/images/Containerfile").read_bytes()
    sha = git(tmp_path / "checkout", "rev-parse", "--short", "HEAD").strip()
    assert done.build_args() == {
        "BASE": "debian-python", "DEBIAN": "debian:bookworm-slim", "INSTALL": "online",
        "TORCH_LOCK": "torch-cpu-py311.txt", "TORCH_FIND_LINKS": TORCH_PAGE,
        "KERAS_BACKEND": "tensorflow", "PACKAGE_INDEX": "", "VERSION": VERSION, "REVISION": sha,
        "SOURCE": PREDEFINED["CI_PROJECT_URL"]}
    assert done.values("--destination") == [
        f"registry.test:5050/group/cdl/cdl:{VERSION}-cpu",
        f"registry.test:5050/group/cdl/cdl:{sha}-cpu"]
    # what the Containerfile reads is there, as scripts/images.sh's context has it
    for name in ("image-py311.txt", "torch-cpu-py311.txt", "uv/uv.txt", "src/pyproject.toml",
                 "src/usecases/cli/__init__.py", "src/README.md"):
        assert (context_dir / name).is_file(), name
    # helm as scripts/helm.sh pins it, and the model chart's tracked files, for the smoke
    helm = context_dir / "helm" / "helm"
    assert hashlib.sha256(helm.read_bytes()).hexdigest() == HELM_SHA256
    assert os.access(helm, os.X_OK)
    chart = context_dir / "charts" / "cdl-model"
    assert sorted(str(f.relative_to(context_dir)) for f in chart.rglob("*") if f.is_file()) \
        == sorted(git(REPO, "ls-files", "charts/cdl-model").split())


def test_image_helm_fetches_the_helm_scripts_helm_sh_pins_for_the_image_jobs(
        rendered: dict[str, Any], helm_job: Path) -> None:
    """Its artifact is what the image jobs need: the pinned helm v3, runnable."""
    (artifact,) = rendered["image-helm"]["artifacts"]["paths"]
    helm = helm_job / artifact
    assert hashlib.sha256(helm.read_bytes()).hexdigest() == HELM_SHA256
    version = subprocess.run([str(helm), "version", "--short"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    assert version.startswith("v3.")
    for job in ("image-cpu", "image-gpu"):
        assert [need["job"] for need in rendered[job]["needs"]] == ["image-helm"]


def test_a_helm_other_than_the_pinned_one_stops_the_job_before_kaniko(
        rendered: dict[str, Any], busybox: Path, origin: Path, tmp_path: Path) -> None:
    """A cached or re-published helm that is not the pinned one never reaches an image."""
    other = tmp_path / "other"
    (other / ".venv" / "bin").mkdir(parents=True)
    (other / ".venv" / "bin" / "helm").write_text("#!/bin/sh\necho v3.99.0\n")
    done = run_job(rendered, "image-cpu", busybox, origin, tmp_path, other,
                   CDL_TORCH_FIND_LINKS=TORCH_PAGE)
    assert done.run.returncode == 1
    assert "is not the helm scripts/helm.sh pins" in done.run.stderr
    assert done.args == []


def test_every_build_arg_the_jobs_pass_is_one_the_containerfile_declares(
        rendered: dict[str, Any], busybox: Path, origin: Path, tmp_path: Path,
        helm_job: Path) -> None:
    done = run_job(rendered, "image-gpu", busybox, origin, tmp_path, helm_job)
    assert done.run.returncode == 0, done.run.stderr
    declared = set(re.findall(r"^ARG (\w+)", (REPO / "scripts/images/Containerfile").read_text(),
                              re.M))
    assert set(done.build_args()) <= declared, set(done.build_args()) - declared
    # the FROM ... AS name the jobs select as the base
    assert re.search(rf"^FROM \S+ AS {done.build_args()['BASE']}$",
                     (REPO / "scripts/images/Containerfile").read_text(), re.M)
    assert done.build_args()["TORCH_LOCK"] == "gpu-py311.txt"
    assert done.build_args()["KERAS_BACKEND"] == "jax"


def test_the_registry_credentials_are_the_jobs_and_stay_out_of_the_build_context(
        rendered: dict[str, Any], busybox: Path, origin: Path, tmp_path: Path,
        helm_job: Path) -> None:
    done = run_job(rendered, "image-cpu", busybox, origin, tmp_path, helm_job,
                   CDL_TORCH_FIND_LINKS=TORCH_PAGE, CI_REGISTRY_PASSWORD="job-token-of-this-run")
    assert done.run.returncode == 0, done.run.stderr
    config = json.loads((done.docker_config / "config.json").read_text())
    auth = config["auths"]["registry.test:5050"]["auth"]
    assert base64.b64decode(auth).decode() == "gitlab-ci-token:job-token-of-this-run"
    context_dir = Path(done.values("--context")[0].removeprefix("dir://"))
    for path in context_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert b"job-token-of-this-run" not in content and auth.encode() not in content


def test_a_registry_of_ones_own_takes_its_own_credentials_tags_and_the_git_tag(
        rendered: dict[str, Any], busybox: Path, origin: Path, tmp_path: Path,
        helm_job: Path) -> None:
    done = run_job(rendered, "image-gpu", busybox, origin, tmp_path, helm_job,
                   CDL_IMAGE_REGISTRY="images.test/ml", CDL_IMAGE_NAME="cdl-steps",
                   CDL_IMAGE_TAG="2026.12", CI_COMMIT_TAG="v0.1.0",
                   CDL_IMAGE_REGISTRY_USER="robot", CDL_IMAGE_REGISTRY_PASSWORD="robot-secret")
    assert done.run.returncode == 0, done.run.stderr
    sha = git(tmp_path / "checkout", "rev-parse", "--short", "HEAD").strip()
    assert done.values("--destination") == ["images.test/ml/cdl-steps:2026.12-gpu",
                                            f"images.test/ml/cdl-steps:{sha}-gpu",
                                            "images.test/ml/cdl-steps:v0.1.0-gpu"]
    config = json.loads((done.docker_config / "config.json").read_text())
    assert list(config["auths"]) == ["images.test"]
    assert base64.b64decode(config["auths"]["images.test"]["auth"]) == b"robot:robot-secret"


def test_the_cpu_job_without_torchs_cpu_build_stops_before_kaniko_saying_what_to_set(
        rendered: dict[str, Any], busybox: Path, origin: Path, tmp_path: Path,
        helm_job: Path) -> None:
    done = run_job(rendered, "image-cpu", busybox, origin, tmp_path, helm_job)
    assert done.run.returncode == 1
    assert "CDL_TORCH_FIND_LINKS" in done.run.stderr
    assert done.args == []  # the executor never ran


def test_no_credential_is_written_in_the_file() -> None:
    """The registry's credentials are GitLab's predefined (masked) variables, referenced: no
    variable of the file is named or valued like one, and nothing in it looks like an encoded
    token or a registry auth entry filled in."""
    text = IMAGE_FILE.read_text()
    assert "$CI_REGISTRY_PASSWORD" in text
    for job in yaml.safe_load(text).values():
        for name, value in (job.get("variables") or {}).items():
            assert not re.search(r"TOKEN|PASSWORD|SECRET|KEY|AUTH", name), name
            assert not re.fullmatch(r"[A-Za-z0-9+/=_-]{20,}", str(value)), (name, value)
    # a token's look: 20 characters or more of digits and letters of both cases, unbroken
    token = r"(?=[A-Za-z0-9+/]*\d)(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[A-Z])[A-Za-z0-9+/]{20,}"
    assert re.findall(token, text) == []
    assert re.findall(r'"auth":"(?!%s")', text) == []
