"""`cdl smoke --plan`, what charts/cdl-smoke's Job runs, against a real MLServer serving a real
BBC model folder (trained and packaged by ``cdl demo`` on small raw data): the V2 endpoints the
Job checks on a cluster, and every failure a real server can give it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.packaged import package, serving
from usecases.workflow.deploy import free_port

CDL = Path(sys.executable).parent / "cdl"
REQUEST = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                       "data": ["Profits at the bank rose as shares and the market grew."]}]}

pytestmark = pytest.mark.slow  # the model folder is trained first


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    packaged = package(tmp_path_factory.mktemp("smoke"), ("bbc",), smoke=5)
    with serving(packaged["home"]) as (url, _):
        yield url


def smoke(plan: dict[str, Any], tmp_path: Path) -> tuple[int, list[dict[str, Any]], str]:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan))
    done = subprocess.run([str(CDL), "smoke", "--plan", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    return (done.returncode, [json.loads(line) for line in done.stdout.splitlines()],
            done.stderr)


def model(server: str, name: str = "bbc-news", **extra: Any) -> dict[str, Any]:
    return {"name": name, "url": f"{server}/v2/models/{name}", "request": REQUEST, **extra}


def test_a_healthy_platform_passes(server: str, tmp_path: Path) -> None:
    code, report, _ = smoke({"timeoutSeconds": 10,
                          "checks": [{"name": "ready", "url": f"{server}/v2/health/ready"},
                                     {"name": "absent", "status": 404,
                                      "url": f"{server}/v2/models/nope/ready"}],
                          "models": [model(server, minOutputs=2)]}, tmp_path)
    assert code == 0, report
    assert [(r["kind"], r["name"], r["ok"]) for r in report] == [
        ("endpoint", "ready", True), ("endpoint", "absent", True), ("model", "bbc-news", True)]


def test_every_failure_is_reported_and_fails_the_job(server: str, tmp_path: Path) -> None:
    misnamed = {**model(server), "name": "bbc"}  # the plan's name is not the served one
    unanswerable = model(server, request={"inputs": [
        {"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]})
    code, report, stderr = smoke({"timeoutSeconds": 10,
                          "checks": [{"name": "gone", "url": f"{server}/nothing"},
                                     {"name": "closed", "url": f"http://127.0.0.1:{free_port()}/"}],
                          "models": [model(server, "nope"), misnamed, unanswerable,
                                     model(server, minOutputs=3)]}, tmp_path)
    assert code == 1
    assert [r["ok"] for r in report] == [False] * 6
    problems = [r["problem"] for r in report]
    assert problems[0] == "HTTP 404, expected 200"
    assert problems[1].startswith("unreachable: [Errno 111]")
    assert problems[2] == "not ready (HTTP 404)"
    assert problems[3] == "metadata does not name bbc (HTTP 200)"
    assert problems[4].startswith("inference failed (HTTP 400)") and "BYTES" in problems[4]
    assert problems[5] == "2 outputs, expected at least 3"  # label and probabilities
    # one line naming the first failure, no traceback
    assert "error: smoke failed at reach: gone at " in stderr and "(and 5 more)" in stderr
    assert "Traceback" not in stderr
