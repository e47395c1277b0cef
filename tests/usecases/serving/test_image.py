"""The container image the cluster steps run in (scripts/images.sh), built here with Podman and
exercised for real: MLServer inside it serves packaged model folders as the in-process runtime
answers, as a user that is not root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from usecases.workflow import deploy

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
PODMAN_ENV = {**os.environ, "CONTAINERS_CONF": str(REPO / "scripts/images/containers.conf")}
VERSION = "0.1.0"


def podman(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, env=PODMAN_ENV,
                          timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    built = subprocess.run([str(REPO / "scripts/images.sh"), "cpu"], capture_output=True,
                           text=True, timeout=1800)
    assert built.returncode == 0, built.stderr[-3000:]
    return f"localhost/cdl:{VERSION}-cpu"


def test_the_image_runs_as_a_user_that_is_not_root_and_says_what_it_is(image: str) -> None:
    ran = podman("run", "--rm", "--network=none", image, "sh", "-c", "id -u; cdl --help")
    assert ran.returncode == 0, ran.stderr
    uid, _, usage = ran.stdout.partition("\n")
    assert uid != "0" and "Usage: cdl" in usage
    labels = json.loads(podman("image", "inspect", "--format", "{{json .Labels}}",
                               image).stdout)
    assert labels["org.opencontainers.image.version"] == VERSION
    assert labels["org.opencontainers.image.revision"]


@pytest.fixture
def served(image: str, tmp_path: Path, bbc_folder: Path, fmnist_folder: Path) -> Iterator[str]:
    repository = tmp_path / "models"
    for folder in (bbc_folder, fmnist_folder):
        shutil.copytree(folder, repository / folder.name)
    port = deploy.free_port()
    (repository / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": deploy.free_port(),
        "metrics_endpoint": None, "parallel_workers": 0, "load_models_at_startup": True}))
    subprocess.run(["chown", "-R", "10001:10001", str(repository)], check=True)
    name = f"cdl-test-{port}"
    started = podman("run", "-d", "--rm", "--name", name, "--network=host",
                     "-v", f"{repository}:/models", "-w", "/models",
                     "-e", "MLSERVER_METRICS_DIR=/models/.metrics",
                     image, "mlserver", "start", "/models")
    assert started.returncode == 0, started.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as ready:
                    if ready.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("MLServer in the image did not become ready:\n"
                        + podman("logs", name).stderr[-3000:])
        yield url
    finally:
        podman("rm", "-f", name)


def test_mlserver_in_the_image_answers_as_the_runtime_in_process(
        served: str, bbc_folder: Path, fmnist_folder: Path) -> None:
    requests = {
        bbc_folder: [{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                                  "data": ["The match ended in a draw.",
                                           "Shares fell as the bank cut its forecast."]}]}],
        fmnist_folder: [{"inputs": [{"name": "pixels", "datatype": "UINT8",
                                     "shape": [2, 28, 28],
                                     "data": [(i * 13) % 256 for i in range(2 * 784)]}]}],
    }
    for folder, payloads in requests.items():
        reference = deploy.InProcess(folder)
        for payload in payloads:
            status, body = deploy.infer(served, folder.name, payload)
            assert status == 200, body
            assert body["outputs"][0]["data"] == reference.labels(payload)
