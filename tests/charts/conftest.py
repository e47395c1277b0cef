"""The real helm v3 binary (scripts/helm.sh puts it in the venv) and a renderer over it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.charts.upstream import REPO, iter_documents

HELM = REPO / ".venv" / "bin" / "helm"
CHARTS = REPO / "charts"
Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def helm() -> Path:
    if not HELM.exists():
        pytest.fail(f"no helm binary at {HELM}: run scripts/helm.sh")
    return HELM


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """`helm template` of one of our charts with values files and --set pairs, as objects."""

    def run(chart: str, *values: Path, sets: dict[str, str] | None = None,
            namespace: str = "cdl-models", release: str = "cdl") -> list[dict[str, Any]]:
        args = ["template", release, str(CHARTS / chart), "--namespace", namespace]
        for path in values:
            args += ["-f", str(path)]
        for key, value in (sets or {}).items():
            args += ["--set", f"{key}={value}"]
        done = run_helm(helm, *args)
        if done.returncode:
            raise RenderError(done.stderr)
        return list(iter_documents(done.stdout))

    return run


class RenderError(Exception):
    pass
