"""The container image the cluster steps run in (scripts/images.sh), built here with Podman and
exercised for real, as a user that is not root: MLServer inside it serves packaged model folders
as the in-process runtime answers; the Pachyderm validation worker's command over a /pfs tree;
the BBC trial under Determined's local mode; the smoke Job's command; helm and the model chart
the smoke installs releases with; and a scan of every file for secrets."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.rawdata import add_bad_files, write_bbc
from tests.usecases.cluster.test_worker import local_manifest
from tests.usecases.test_entrypoints import VALIDATION, reduced, write_features
from usecases.bbc.dataset import CLASSES
from usecases.cluster import pipelines
from usecases.stores.mldata import Manifest
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


def test_the_validation_worker_in_the_image_quarantines_as_the_local_ingest(
        image: str, tmp_path: Path) -> None:
    """The Pachyderm pipeline's own command, in the image, over a /pfs-style tree."""
    pfs = tmp_path / "pfs"
    write_bbc(pfs / "raw", per_class=6)
    bad = add_bad_files(pfs / "raw")
    (pfs / "out").mkdir()
    subprocess.run(["chown", "-R", "10001:10001", str(pfs)], check=True)
    command = pipelines.validate_pipeline("bbc", image)["transform"]["cmd"]
    ran = podman("run", "--rm", "--network=none", "-v", f"{pfs}:/pfs", "-e", "raw_COMMIT=c0ffee",
                 image, *command)
    assert ran.returncode == 0, ran.stderr
    listed = json.loads((pfs / "out" / "quarantine.json").read_text())
    assert {q["path"]: q["reason"].split(":")[0] for q in listed} == {
        path: reason.split(":")[0] for path, reason in bad.items()}
    assert all((pfs / "out" / "quarantine" / path).is_file() for path in bad)
    manifest = Manifest.from_json((pfs / "out" / "manifest.json").read_text())
    assert manifest.source == "pfs:raw@c0ffee"
    assert manifest.version == local_manifest("bbc", pfs / "raw").version


def test_the_bbc_trial_trains_in_the_image_under_determineds_local_mode(
        image: str, tmp_path: Path) -> None:
    """The experiment YAML's entrypoint, in the image, from the model folder as Determined's
    working directory: one epoch on small data, a checkpoint and a validation report."""
    features = write_features("bbc", CLASSES, tmp_path / "features")
    config = reduced(REPO / "usecases" / "bbc" / "smoke.yaml", features, tmp_path / "exp.yaml")
    config["hyperparameters"]["epochs"] = 1
    config["data"]["features"] = "/data/features"
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "xdg").mkdir()
    subprocess.run(["chown", "-R", "10001:10001", str(tmp_path)], check=True)
    site = podman("run", "--rm", "--network=none", image, "python3", "-c",
                  "import usecases.bbc, os; print(os.path.dirname(usecases.bbc.__file__))")
    assert site.returncode == 0, site.stderr
    ran = podman("run", "--rm", "--network=none", "-v", f"{tmp_path}:/data",
                 "-e", "CDL_EXPERIMENT=/data/exp.yaml", "-e", "XDG_DATA_HOME=/data/xdg",
                 "-w", site.stdout.strip(), image, *shlex.split(config["entrypoint"]),
                 timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    reports = VALIDATION.findall(ran.stderr)
    assert len(reports) == 1, ran.stderr[-3000:]
    (checkpoint,) = (tmp_path / "xdg" / "determined").iterdir()
    assert (checkpoint / "state_dict.pth").stat().st_size > 0


def test_the_smoke_jobs_command_in_the_image(image: str, tmp_path: Path) -> None:
    """As charts/cdl-smoke runs it: read-only root, a tmpfs /tmp, the plan mounted."""
    plan = {"checks": [{"name": "determined-master",
                        "url": f"http://127.0.0.1:{deploy.free_port()}/info"}],
            "models": [], "timeoutSeconds": 5}
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    subprocess.run(["chown", "-R", "10001:10001", str(tmp_path)], check=True)
    job = ["run", "--rm", "--network=host", "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/tmp",
           "-e", "CDL_HOME=/tmp/cdl", "-v", f"{tmp_path}:/etc/cdl-smoke:ro", image]
    helped = podman(*job, "cdl", "smoke", "--help")
    assert helped.returncode == 0 and "--plan" in helped.stdout, helped.stderr
    ran = podman(*job, "cdl", "smoke", "--plan", "/etc/cdl-smoke/plan.json")
    assert ran.returncode == 1
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "determined-master" in errors[0] and "unreachable" in errors[0]
    assert "Traceback" not in ran.stderr


# The smoke's second use case reads Fashion-MNIST where the image has it (Debian's package);
# the BBC articles come from the Job's `cdl data fetch bbc`.
FMNIST_DATA = """
from usecases import defaults
from usecases.fmnist.usecase import USECASE
from usecases.workflow.usecase import DataOptions
found, _ = USECASE.scan(DataOptions(USECASE.default_data(), defaults.MAX_FILE_BYTES,
                                    defaults.MIN_CHARS))
print(USECASE.default_data(), sum(c.status == "valid" for c in found))
"""


def test_the_smoke_finds_fashion_mnist_in_the_image(image: str) -> None:
    ran = podman("run", "--rm", "--network=none", "--read-only", image, "python", "-c",
                 FMNIST_DATA)
    assert ran.returncode == 0, ran.stderr[-2000:]
    folder, valid = ran.stdout.split()
    assert folder == "/usr/share/datasets/fashion-mnist" and int(valid) == 4  # IDX files


# What the smoke does with a model version, outside any checkout: the adapter finds the chart
# from the image's environment and runs helm with no kubeconfig (in a Pod: its service account).
# Here no API server answers, so helm's own failure comes back as a CDLError.
RELEASES = """
from usecases.errors import CDLError
from usecases.stores.releases import Releases, model_chart
print(model_chart())
try:
    Releases().deploy("bbc", 1, "s3://cdl-models/bbc/1", "seldon", sys.argv[1], timeout=5)
except CDLError as failed:
    print(failed)
"""


def test_helm_in_the_image_renders_the_model_chart_the_releases_adapter_finds(
        image: str) -> None:
    """As the smoke Job runs: uid 10001, a read-only root, a tmpfs /tmp as HOME."""
    job = ["run", "--rm", "--network=none", "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/tmp",
           image]
    rendered = podman(*job, "sh", "-c", 'id -u && helm template m "$CDL_MODEL_CHART" '
                      "--set model.name=bbc --set model.version=1 "
                      "--set model.uri=s3://cdl-models/bbc/1")
    assert rendered.returncode == 0, rendered.stderr
    uid, _, manifests = rendered.stdout.partition("\n")
    assert uid == "10001"
    by_kind = {obj["kind"]: obj for obj in yaml.safe_load_all(manifests) if obj}
    assert set(by_kind) == {"SeldonDeployment", "Pod"}  # the model, and its helm test
    model = by_kind["SeldonDeployment"]
    assert model["metadata"]["labels"]["cdl.io/model-version"] == "1"
    (fetch,) = model["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["initContainers"]
    assert fetch["args"][-2:] == ["store/cdl-models/bbc/1/", "/mnt/models/bbc/"]

    ref = f"localhost:32000/cdl:{VERSION}-cpu"
    adapter = podman(*job, "python", "-c", "import sys\n" + RELEASES, ref, timeout=60)
    assert adapter.returncode == 0, adapter.stderr
    chart, _, failure = adapter.stdout.partition("\n")
    assert chart == "/opt/cdl/share/charts/cdl-model"
    assert 'helm could not install release bbc-v1 in namespace cdl-models: "Error: Kubernetes ' \
        "cluster unreachable" in failure, adapter.stdout


def test_no_file_in_the_image_holds_a_secret(image: str, tmp_path: Path) -> None:
    """scripts/images/scan.py over every file of the image; and, to show it finds what it
    looks for, over a small image with a planted key and a copy of a generated credential."""
    scan = [sys.executable, str(REPO / "scripts/images/scan.py")]
    clean = subprocess.run([*scan, image], capture_output=True, text=True, env=PODMAN_ENV,
                           timeout=900)
    assert clean.returncode == 0, clean.stderr[-3000:]
    assert "no secret in" in clean.stdout

    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "postgres-password").write_text("generated-Zq8vR2pL9xT4")
    context = tmp_path / "context"
    context.mkdir()
    key = subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519"], capture_output=True,
                         text=True, check=True).stdout
    (context / "notes.txt").write_text("password = generated-Zq8vR2pL9xT4\n")
    (context / "deploy.key").write_text(key)
    base = podman("images", "--format", "{{.Repository}}:{{.Tag}}", "localhost/cdl-base")
    (context / "Containerfile").write_text(
        f"FROM {base.stdout.split()[0]}\nCOPY notes.txt deploy.key /srv/\n")
    planted = f"localhost/cdl-scan-test:{os.getpid()}"
    built = podman("build", "--network=none", "--pull=never", "-t", planted, str(context))
    assert built.returncode == 0, built.stderr
    try:
        found = subprocess.run([*scan, planted, "--home", str(home)], capture_output=True,
                               text=True, env=PODMAN_ENV, timeout=300)
    finally:
        podman("rmi", "-f", planted)
    assert found.returncode == 1
    assert "/srv/deploy.key: private key" in found.stderr
    assert f"/srv/notes.txt: the content of {home / 'secrets' / 'postgres-password'}" \
        in found.stderr
    assert "Zq8vR2pL9xT4" not in found.stderr + found.stdout  # named, never shown
