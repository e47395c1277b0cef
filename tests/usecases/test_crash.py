"""Crash-safe state and one writer at a time, through the real ``cdl``: a demo killed with
SIGKILL at any stage leaves a CDL_HOME the next demo gets through, with nothing inconsistent
left; two demos on one home never write at once; reading commands are never blocked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..cli import assert_one_line_error, cdl, environment
from ..rawdata import write_bbc

# The stages of a BBC demo, in the order they start (the run log's names).
STAGES = ("ingest", "label", "transform", "train", "register", "evaluate", "package", "serve",
          "smoke")
DEMO = ("demo", "--usecase", "bbc", "--trials", "1", "--no-label-studio", "--smoke", "5")


def _start_demo(home: Path, raw: Path, report: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "usecases.cli", *DEMO, "--data", str(raw),
                             "--report", str(report)], env=environment(home), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(log: Path, line: str, process: subprocess.Popen[str], after: int,
              timeout: float = 300) -> None:
    """Until the run log, past byte ``after``, has a line ending in ``line``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and any(entry.endswith(line) for entry in
                                log.read_bytes()[after:].decode().splitlines()):
            return
        if process.poll() is not None:
            pytest.fail(f"the demo ended ({process.returncode}) before {line!r}: "
                        f"{process.stderr.read()[-2000:] if process.stderr else ''}")
        time.sleep(0.02)
    pytest.fail(f"no {line!r} in {log} within {timeout:.0f}s")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("crash")
    raw = write_bbc(root / "raw", per_class=12)
    yield root / "cdl", raw
    cdl("db", "stop", home=root / "cdl")  # a killed demo leaves its database running


@pytest.mark.slow
def test_each_demo_killed_at_a_stage_is_followed_by_one_that_gets_past_it(
        home: tuple[Path, Path]) -> None:
    """Demo k is SIGKILLed as stage k starts; demo k+1 on the same home has to get through
    stage k (and the repairs of what k left) to reach its own kill; the last one finishes,
    serves, and leaves `cdl db check` consistent."""
    state, raw = home
    log = state / "logs" / "cdl.log"
    for stage in STAGES:
        offset = log.stat().st_size if log.exists() else 0
        victim = _start_demo(state, raw, state.parent / "killed.json")
        # "start - serve": serving is a stage of the run, not of one use case
        _wait_for(log, f"start {'-' if stage == 'serve' else 'bbc'} {stage}", victim, offset)
        victim.send_signal(signal.SIGKILL)
        victim.wait()

    report = state.parent / "after.json"
    rerun = cdl(*DEMO, "--data", str(raw), "--report", str(report), home=state)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    result = json.loads(report.read_text())["usecases"]["bbc"]
    assert result["gate_passed"] and result["serving"]["smoke"]["matches_offline"]
    assert result["serving"]["smoke"]["scored"] == 5
    check = cdl("db", "check", home=state)
    assert check.returncode == 0 and "consistent" in check.stderr, check.stderr
    served = state / "serving" / "models" / "bbc-news" / "model-settings.json"
    assert json.loads(served.read_text())["parameters"]["version"] == str(
        result["model"]["version"])


@pytest.mark.slow
def test_two_demos_on_one_home_never_write_at_once(home: tuple[Path, Path]) -> None:
    state, raw = home
    log = state / "logs" / "cdl.log"
    offset = log.stat().st_size if log.exists() else 0
    first = _start_demo(state, raw, state.parent / "first.json")
    try:
        _wait_for(log, "start bbc ingest", first, offset)
        second = cdl(*DEMO, "--data", str(raw), home=state)
        assert_one_line_error(second, "is in use by `cdl demo`", f"pid {first.pid}")
        # a reading command is not blocked while the demo writes
        scoring = cdl("scoring", "--model", "bbc-news", home=state)
        assert scoring.returncode == 0, scoring.stderr
        assert isinstance(json.loads(scoring.stdout), list)
    finally:
        assert first.wait(timeout=600) == 0, first.stderr.read() if first.stderr else ""
    assert json.loads((state.parent / "first.json").read_text())["usecases"]["bbc"][
        "gate_passed"]


@pytest.mark.slow
def test_db_check_finds_and_repairs_what_a_crash_leaves(home: tuple[Path, Path]) -> None:
    state, _ = home
    models = state / "models" / "bbc-news"
    orphan = models / "999"
    orphan.mkdir()
    (orphan / "model.pt").write_bytes(b"half")
    half = state / "mldata" / "versions" / ".cdl-tmp-manifest.json"
    half.write_text('{"vers')
    found = cdl("db", "check", home=state)
    assert found.returncode == 1
    assert "model artifacts without a registry row" in found.stderr
    assert "interrupted write" in found.stderr and "--repair" in found.stderr
    assert orphan.exists() and half.exists()  # a check alone changes nothing
    repaired = cdl("db", "check", "--repair", home=state)
    assert repaired.returncode == 0 and "all repaired" in repaired.stderr, repaired.stderr
    assert not orphan.exists() and not half.exists()
    assert cdl("db", "check", home=state).returncode == 0
