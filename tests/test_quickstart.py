"""The README's demo command as a new user runs it: a clone with no datasets beside it (the
machine's shared copy hidden in a mount namespace of the test's own), the raw BBC archive
fetched from a mirror on 127.0.0.1 (``CDL_BBC_URL``), verified, and the demo run on it."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO
from .usecases.data.server import Served, file_server
from .usecases.data.test_bbc import PATH, members, zipped

# Where scripts/setup.sh looks for a copy of the datasets, besides the clone's own ../shared
SHARED = Path("/work/shared")


@pytest.mark.slow
def test_the_demo_command_in_a_clone_without_datasets_fetches_them(tmp_path: Path,
                                                                   bbc_raw: Path) -> None:
    clone = tmp_path / "clone"  # the committed tree, as a user clones it
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    assert not (clone.parent / "shared").exists()
    hide = f"mount -t tmpfs cdl-hidden {shlex.quote(str(SHARED))} && " if SHARED.exists() else ""
    env = {k: v for k, v in os.environ.items() if k not in ("CDL_DATASETS", "VIRTUAL_ENV")}
    with file_server() as mirror:
        mirror.files[PATH] = Served(zipped(members(bbc_raw)))
        run = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             hide + "exec scripts/setup.sh demo --usecase bbc --trials 1 --smoke 5"
             " --no-label-studio"],
            cwd=clone, capture_output=True, text=True, timeout=1800,
            env={**env, "CDL_BBC_URL": mirror.url(PATH), "CDL_HOME": str(tmp_path / "home")})
        assert run.returncode == 0, run.stderr[-3000:]
        assert [r.path for r in mirror.log if r.status in (200, 206)] == [PATH]
    assert "no raw BBC dataset beside the repository; fetching it" in run.stderr
    assert (tmp_path / "home" / "datasets" / "bbc" / "bbc.vocab").exists()
    bbc = json.loads((clone / ".cdl" / "report.json").read_text())["usecases"]["bbc"]
    assert bbc["dataset"]["counts"]["valid"] == 2225 and bbc["gate_passed"] is True
    # setup's own output fits a screen, with the demo's
    assert len((run.stdout + run.stderr).splitlines()) <= 40, run.stdout + run.stderr
