"""`cdl smoke` as a user runs it: ``--local`` end to end on the real datasets (the workflow's
one orchestration path, the local stores behind its interfaces), and ``--stack`` / ``--outputs``
against a platform that cannot be reached."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli import assert_one_line_error, cdl
from tests.conftest import datasets_root
from usecases.workflow.deploy import free_port

STEPS = ("ingest", "label", "transform", "train", "register", "evaluate", "package", "serve",
         "smoke")


def step_rows(stderr: str) -> dict[str, list[str]]:
    """The step table's rows: step -> the seconds per use case."""
    rows = {}
    for line in stderr.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line) if c.strip()]
        if cells and cells[0] in STEPS:
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.slow
def test_local_smoke_runs_both_use_cases(
        tmp_path: Path, bbc_raw: Path) -> None:
    """Trains, registers, gates, serves and queries both models. (A short name: PostgreSQL's
    socket lives in the test's folder, and a socket path has at most 107 bytes.)"""
    env = {"CDL_DATASETS": str(datasets_root())}
    ran = cdl("smoke", "--local", "--no-label-studio", "--requests", "10", home=tmp_path,
              env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "smoke passed: bbc, fmnist trained, registered, gated, served and queried" in ran.stderr
    rows = step_rows(ran.stderr)
    assert list(rows) == list(STEPS)  # every step of the paper's order, timed, for both
    assert all(len(times) == 2 and all(float(t) >= 0 for t in times) for times in rows.values())
    # both packaged into the model repository MLServer served
    served = {p.parent.name
              for p in (tmp_path / "serving" / "models").glob("*/model-settings.json")}
    assert served == {"bbc-news", "fmnist"}

    # The same smoke with a gate no model meets: it fails naming the step (the version is
    # reused: same data, features, code and config)
    failed = cdl("smoke", "--local", "--no-label-studio", "--usecase", "bbc", "--gate", "1.0",
                 home=tmp_path, env=env)
    assert_one_line_error(failed, "smoke failed at bbc: evaluate: test accuracy")
    assert step_rows(failed.stderr)["evaluate"]


def test_an_unreachable_platform_fails_fast_naming_the_endpoint(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({
        "urls": {"determined": base, "labels": base, "pachyderm": base},
        "determinedMaster": base, "s3Endpoint": base,
        "images": {"cpu": "localhost:32000/cdl:0.1.0-cpu"},
        "credentials": {"determined": {"username": "admin", "password": "s3cr3t-value"}}}))
    ran = cdl("smoke", "--outputs", str(outputs), home=tmp_path)
    assert_one_line_error(ran, f"determined-master at {base}/info: unreachable")
    assert "s3cr3t-value" not in ran.stdout + ran.stderr


@pytest.mark.parametrize(("args", "needle"), [
    ((), "exactly one of --local, --stack, --outputs, --plan"),
    (("--local", "--outputs", "x.json"), "(given: --local, --outputs)"),
    (("--outputs", "missing.json"), "outputs file missing.json does not exist"),
    (("--plan", "missing.json"), "smoke plan missing.json is not readable JSON"),
])
def test_wrong_invocations_get_one_line_errors(tmp_path: Path, args: tuple[str, ...],
                                               needle: str) -> None:
    assert_one_line_error(cdl("smoke", *args, home=tmp_path), needle)


def test_outputs_without_the_platform_say_what_to_deploy(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"inventory": {}, "kubeconfig": "..."}))
    assert_one_line_error(cdl("smoke", "--outputs", str(outputs), home=tmp_path),
                          "has no platform outputs", "cdl:domain")


def test_stack_without_the_pulumi_cli_points_at_outputs(tmp_path: Path) -> None:
    ran = cdl("smoke", "--stack", "dev", home=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert_one_line_error(ran, "the Pulumi CLI is not installed here", "--outputs FILE")
