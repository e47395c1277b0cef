"""``cdl serve`` refuses a packaged model version that failed its gate, through the real CLI."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from usecases.workflow.deploy import free_port

from ..cli import assert_one_line_error, cdl
from ..rawdata import article, write_bbc


def confusable_bbc(root: Path) -> Path:
    """Small BBC-shaped data whose tech articles read like business ones: no model tells the
    two apart, so test accuracy stays below 1 while the rest is learned."""
    raw = write_bbc(root, per_class=16)
    rng = random.Random(1)
    for path in sorted((raw / "tech").glob("*.txt")):
        path.write_text(article("business", rng))
    return raw


@pytest.mark.slow
def test_serve_refuses_a_version_that_failed_its_gate(tmp_path: Path) -> None:
    home = tmp_path / "cdl"
    raw = confusable_bbc(tmp_path / "bbc")
    demo = cdl("demo", "--usecase", "bbc", "--data", str(raw), "--trials", "1", "--smoke", "5",
               "--gate", "0.5", "--no-label-studio", home=home)
    assert demo.returncode == 0, demo.stderr[-3000:]
    settings = home / "serving" / "models" / "bbc-news" / "model-settings.json"
    version = json.loads(settings.read_text())["parameters"]["version"]

    evaluate = cdl("evaluate", "--usecase", "bbc", "--data", str(raw), "--gate", "1.0",
                   home=home)
    assert evaluate.returncode == 2, evaluate.stderr[-3000:]
    verdict = json.loads(evaluate.stdout)
    assert (verdict["name"], str(verdict["version"]), verdict["gate_passed"]) == (
        "bbc-news", version, False)

    log = home / "logs" / "mlserver.log"
    before = log.read_bytes()  # the demo's own MLServer run
    port = free_port()
    serve = cdl("serve", "--http-port", str(port), "--grpc-port", str(free_port()), home=home)
    assert_one_line_error(serve, f"bbc-news v{version}", "not approved")
    # MLServer never started: no new log lines, and its settings never named this port
    assert log.read_bytes() == before
    server_settings = json.loads((settings.parent.parent / "settings.json").read_text())
    assert server_settings["http_port"] != port
