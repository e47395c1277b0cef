""".gitlab-ci.yml, the Code Repository's CI/CD: checked against GitLab's CI schema (the copy
check-jsonschema vendors), then run for real by gitlab-ci-local's shell executor in scratch
clones, each from a real commit on a branch, the jobs running `cdl` on generated data (helpers
in tests/ci/gitlab.py). The image jobs (ci/image.yml) are tests/ci/test_image_job.py's."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ..conftest import REPO
from ..rawdata import write_bbc
from .gitlab import GITLAB_CI_LOCAL, PIPELINE_FILES, check_schema, commit, planned, scratch_clone

WORKFLOW_JOBS = {f"{u}-{stage}" for u in ("bbc", "fmnist")
                 for stage in ("data", "model", "review", "deploy")}


def test_the_pipelines_match_gitlab_ci_schema() -> None:
    run = check_schema(*PIPELINE_FILES)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_schema_check_catches_a_misshapen_job(tmp_path: Path) -> None:
    """The check is not vacuous: a rule GitLab does not know, or `needs:` not a list, is
    refused, naming the job."""
    text = (REPO / "ci" / "bbc.yml").read_text()
    for broken in (text.replace("      when: never", "      when: sometimes", 1),
                   text.replace("  needs: [bbc-model]\n  resource_group",
                                "  needs: bbc-model\n  resource_group", 1)):
        assert broken != text
        path = tmp_path / "broken.yml"
        path.write_text(broken)
        run = check_schema(path)
        assert run.returncode == 1 and "bbc-" in run.stdout, run.stdout


def test_rules_not_only_and_no_secret_in_the_pipelines() -> None:
    """`rules:` everywhere (never `only:`/`except:`); no credential-like variable with a value
    in the files (they are protected, masked CI/CD variables); no docker-in-docker."""
    for path in PIPELINE_FILES:
        document = yaml.safe_load(path.read_text())
        jobs = {name: job for name, job in document.items()
                if isinstance(job, dict) and name != "variables"}
        defined = [("variables", name) for name in document.get("variables") or {}]
        for name, job in jobs.items():
            assert not {"only", "except"} & set(job), (path, name)
            defined += [(name, variable) for variable in job.get("variables") or {}]
        for where, variable in defined:
            assert not any(word in variable for word in ("TOKEN", "PASSWORD", "SECRET", "KEY")
                           ), (path, where, variable)
        assert "dind" not in path.read_text()


# ---- gitlab-ci-local ----------------------------------------------------------------------

@dataclass
class Pipeline:
    clone: Path
    run: subprocess.CompletedProcess[str]

    @property
    def output(self) -> str:
        return self.run.stdout + self.run.stderr

    def passed(self) -> set[str]:
        return {line.split()[1] for line in self.output.splitlines()
                if line.strip().startswith("PASS ")}

    def failed(self) -> set[str]:
        return {line.split()[1] for line in self.output.splitlines()
                if line.strip().startswith("FAIL ")}

    def started(self) -> set[str]:
        return {line.split()[0] for line in self.output.splitlines()
                if line.split()[1:3] == ["starting", "shell"]}

    def artifact(self, job: str, path: str) -> Path:
        return self.clone / ".gitlab-ci-local" / "artifacts" / job / path


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datasets")
    write_bbc(root / "bbc", per_class=16)
    return root


def pipeline(tmp_path: Path, origin: Path, datasets: Path, branch: str, path: str,
             **variables: str) -> Pipeline:
    clone = tmp_path / "clone"
    scratch_clone(origin, clone)
    comment = "<!-- a reader's note -->" if path.endswith(".md") else "# a developer's change"
    commit(clone, branch, path, comment)
    settings = {"CDL": f"{sys.executable} -m usecases.cli",  # the checkout's own code
                "CDL_HOME": str(tmp_path / "home"), "CDL_DATASETS": str(datasets),
                "CDL_USECASES": "bbc", "CDL_TRIALS": "1", "CDL_SMOKE": "5",
                "CDL_OPTIONS": "--no-label-studio",
                # no kaniko here, as on a project with shell runners only
                "CDL_IMAGE_BUILD": "never", **variables}
    args = [str(GITLAB_CI_LOCAL), "--force-shell-executor", "--shell-isolation"]
    for name, value in settings.items():
        args += ["--variable", f"{name}={value}"]
    env = {k: v for k, v in os.environ.items() if k not in ("CDL_DATABASE_URL", "VIRTUAL_ENV")}
    run = subprocess.run(args, cwd=clone, capture_output=True, text=True, timeout=1200,
                         env={**env, "NO_COLOR": "1", "FORCE_COLOR": "0"}, check=False)
    return Pipeline(clone, run)


@pytest.mark.slow
def test_an_experiment_branch_ingests_trains_and_passes_the_gate_with_its_report(
        tmp_path: Path, origin: Path, datasets: Path) -> None:
    done = pipeline(tmp_path, origin, datasets, "exp/tokenizer", "usecases/bbc/dataset.py")
    assert done.run.returncode == 0, done.output[-4000:]
    assert done.passed() == {"bbc-data", "bbc-model"}, done.output[-4000:]
    junit = ET.parse(done.artifact("bbc-model", "report/junit.xml")).getroot()
    assert junit.get("tests") == "1" and junit.get("failures") == "0"
    env = dict(line.split("=", 1) for line in
               done.artifact("bbc-model", "report/model.env").read_text().splitlines())
    assert env["CDL_BBC_MODEL_VERSION"] == "1" and env["CDL_BBC_GATE_PASSED"] == "true"
    summary = done.artifact("bbc-model", "report/summary.md").read_text()
    assert env["CDL_BBC_DATASET_VERSION"] in summary and "| 1 |" in summary
    run = json.loads(done.artifact("bbc-model", "report/run.json").read_text())
    assert run["usecases"]["bbc"]["dataset"]["reused"] is True  # the data job's version


@pytest.mark.slow
def test_a_gate_above_the_model_fails_the_pipeline_before_any_deploy(
        tmp_path: Path, origin: Path, datasets: Path) -> None:
    done = pipeline(tmp_path, origin, datasets, "main", "usecases/bbc/const.yaml",
                    CDL_GATE="1.0", CDL_DATASETS=str(_mislabeled(datasets, tmp_path)))
    assert done.run.returncode != 0
    assert done.failed() == {"bbc-model"}, done.output[-4000:]
    assert "bbc-deploy" not in done.started(), done.output[-4000:]
    junit = ET.parse(done.artifact("bbc-model", "report/junit.xml")).getroot()
    assert junit.get("failures") == "1"
    assert "below the gate 1" in junit.find("testcase/failure").get("message", "")  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_default_branch_deploys_and_the_served_model_answers(
        tmp_path: Path, origin: Path, datasets: Path) -> None:
    done = pipeline(tmp_path, origin, datasets, "main", "usecases/bbc/const.yaml")
    assert done.run.returncode == 0, done.output[-4000:]
    assert done.passed() == {"bbc-model", "bbc-deploy"}, done.output[-4000:]
    deployed = json.loads(done.artifact("bbc-deploy", "report/deploy.json").read_text())
    bbc = deployed["usecases"]["bbc"]
    assert bbc["model"]["reused"] is True and bbc["model"]["version"] == 1  # the model job's
    smoke = bbc["serving"]["smoke"]
    assert smoke["requests"] == 5 and smoke["matches_offline"] is True
    assert smoke["scored"] == 5


@pytest.mark.slow
def test_a_readme_change_runs_no_workflow_job(tmp_path: Path, origin: Path,
                                              datasets: Path) -> None:
    done = pipeline(tmp_path, origin, datasets, "docs/readme", "README.md")
    assert done.run.returncode == 0, done.output[-4000:]
    assert not (done.started() & WORKFLOW_JOBS), done.output[-4000:]
    assert not (tmp_path / "home").exists()


def _mislabeled(datasets: Path, tmp_path: Path) -> Path:
    """The generated articles with a quarter of each class filed under the next class: no
    model reaches a test accuracy of 1 on them."""
    root = tmp_path / "mislabeled"
    shutil.copytree(datasets, root)
    classes = sorted(p.name for p in (root / "bbc").iterdir() if p.is_dir())
    for number, label in enumerate(classes):
        target = root / "bbc" / classes[(number + 1) % len(classes)]
        for article in sorted((root / "bbc" / label).glob("*.txt"))[:4]:
            article.rename(target / f"from-{label}-{article.name}")
    return root


def test_a_model_maintenance_trigger_runs_the_challenger_job_alone(tmp_path: Path,
                                                                    origin: Path) -> None:
    """The pipeline `cdl maintain --challenge --via gitlab` starts: its variables select the
    `maintain` job and nothing of the push workflow (jobs as gitlab-ci-local decides them)."""
    clone = tmp_path / "clone"
    scratch_clone(origin, clone)
    commit(clone, "main", "usecases/bbc/const.yaml", "# a change a push would deploy")
    assert planned(clone, "CI_PIPELINE_SOURCE=trigger", "CDL_MAINTAIN=challenge",
                   "CDL_MAINTAIN_USECASE=fmnist") == {"maintain"}
    # the same commit pushed: BBC's code changed, so BBC's jobs run and Fashion-MNIST's do not;
    # the project's image holds that code, so it is built again first
    assert planned(clone) == {"image-helm", "image-cpu", "image-gpu", "bbc-model",
                              "bbc-deploy"}
