"""Contract tests of the Determined master adapter (usecases/stores/determined.py): the
``determined`` SDK 0.38.1 against a server on 127.0.0.1 whose answers are built from the SDK's own
REST message types (``determined.common.api.bindings``); not a Determined master, and nothing in
it was recorded from one. Every request is kept and asserted field by field: these are what a
master would be sent. Whether a real master accepts them (config validation, scheduling,
checkpoint storage) only ``cdl smoke --stack`` on a deployed cluster can show.
"""

from __future__ import annotations

import base64
import concurrent.futures
import gzip
import io
import json
import shutil
import socket
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from determined.common.api import bindings, salt_and_hash

from tests.loopback import http_server
from usecases.errors import CDLError
from usecases.stores import determined
from usecases.stores.determined import BestCheckpoint, DeterminedMaster
from usecases.workflow.deploy import free_port

REPO = Path(__file__).resolve().parents[3]
BBC, FMNIST = REPO / "usecases" / "bbc", REPO / "usecases" / "fmnist"
USER, PASSWORD, TOKEN = "cdl", "Contract-test-7", "v2.public.reference-session-token"
EXPERIMENT_ID, TRIAL_ID = 41, 97
UUID = "7d3c8a53-6f0e-4bd9-9b8e-2a1c55f0e1a4"
AT = "2026-12-03T01:12:49.068Z"
CPU_IMAGE, CUDA_IMAGE = "registry.cdl.internal/cdl:0.1.0-cpu", "registry.cdl.internal/cdl:0.1.0-gpu"
HPARAMS = {"global_batch_size": 128, "hidden_size": 256, "dropout": 0.5,
           "learning_rate": 0.005, "weight_decay": 0.01, "epochs": 16}
VALIDATION = {"validation_loss": 0.2113, "validation_accuracy": 0.9461}
STORAGE = {"type": "s3", "bucket": "cdl-checkpoints", "endpoint_url": "http://minio:9000"}
State = bindings.experimentv1State
Answer = tuple[int, bytes, str]


def _json(status: int, message: Any) -> Answer:
    return status, json.dumps(message.to_json(omit_unset=True)).encode(), "application/json"


def _grpc_error(status: int, code: int, message: str) -> Answer:
    return _json(status, bindings.runtimeError(code=code, message=message, details=[]))


@dataclass
class Sent:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class ReferenceMaster:
    """What the master holds; a test changes it to stage a failure."""

    base: str = ""
    # GetExperiment answers these in turn, the last one from then on
    states: list[State] = field(default_factory=lambda: [State.ACTIVE, State.RUNNING,
                                                          State.COMPLETED])
    with_checkpoint: bool = True
    refusal: str | None = None  # CreateExperiment's InvalidArgument message, when set
    models: dict[str, int] = field(default_factory=dict)  # name: versions so far
    config: dict[str, Any] = field(default_factory=dict)
    requests: list[Sent] = field(default_factory=list)

    def experiment(self, state: State) -> bindings.v1Experiment:
        return bindings.v1Experiment(
            archived=False, config=self.config, id=EXPERIMENT_ID, jobId="2b5e0f7c-job",
            name=str(self.config.get("name")), numTrials=1, originalConfig=yaml.dump(self.config),
            projectId=1, projectOwnerId=1, searcherType="single", startTime=AT, state=state,
            username=USER, trialIds=[TRIAL_ID])

    def checkpoint(self) -> bindings.v1Checkpoint:
        return bindings.v1Checkpoint(
            metadata={"determined_version": "0.38.1", "steps_completed": 288},
            resources={"state_dict.pth": "3946803", "metadata.json": "73"},
            state=bindings.checkpointv1State.COMPLETED, uuid=UUID, reportTime=AT,
            training=bindings.v1CheckpointTrainingMetadata(
                experimentConfig={**self.config, "checkpoint_storage": STORAGE},
                experimentId=EXPERIMENT_ID, trialId=TRIAL_ID, hparams=HPARAMS,
                searcherMetric=VALIDATION["validation_loss"],
                validationMetrics=bindings.v1Metrics(avgMetrics=VALIDATION)))

    def model(self, name: str) -> bindings.v1Model:
        return bindings.v1Model(archived=False, creationTime=AT, id=3, lastUpdatedTime=AT,
                                metadata={}, name=name, numVersions=self.models[name],
                                userId=2, username=USER, workspaceId=1)

    def respond(self, sent: Sent) -> Answer:
        self.requests.append(sent)
        route, body = (sent.method, sent.path), sent.body
        if route == ("POST", "/api/v1/auth/login"):
            if body != {"username": USER, "password": salt_and_hash(PASSWORD), "isHashed": True}:
                return _grpc_error(401, 16, "invalid credentials")
            return _json(200, bindings.v1LoginResponse(token=TOKEN, user=bindings.v1User(
                active=True, admin=False, username=USER, id=2)))
        if sent.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _grpc_error(401, 16, "unauthenticated")
        parts = sent.path.strip("/").split("/")
        if route == ("POST", "/api/v1/experiments"):
            if self.refusal:
                return _grpc_error(400, 3, self.refusal)
            self.config = yaml.safe_load(body["config"])
            return _json(200, bindings.v1CreateExperimentResponse(
                config=self.config, experiment=self.experiment(State.ACTIVE)))
        if route == ("GET", f"/api/v1/experiments/{EXPERIMENT_ID}"):
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return _json(200, bindings.v1GetExperimentResponse(experiment=self.experiment(state)))
        if route == ("GET", f"/api/v1/experiments/{EXPERIMENT_ID}/checkpoints"):
            found = [self.checkpoint()] if self.with_checkpoint else []
            return _json(200, bindings.v1GetExperimentCheckpointsResponse(
                checkpoints=found, pagination=bindings.v1Pagination(
                    offset=0, limit=1, startIndex=0, endIndex=len(found), total=len(found))))
        if sent.method == "GET" and parts[:3] == ["api", "v1", "models"] and len(parts) == 4:
            if parts[3] not in self.models:
                return _grpc_error(404, 5, f'model "{parts[3]}" not found')
            return _json(200, bindings.v1GetModelResponse(model=self.model(parts[3])))
        if route == ("POST", "/api/v1/models"):
            self.models[body["name"]] = 0
            return _json(200, bindings.v1PostModelResponse(model=self.model(body["name"])))
        if sent.method == "POST" and parts[:3] == ["api", "v1", "models"] and parts[4:] == [
                "versions"]:
            self.models[parts[3]] += 1
            return _json(200, bindings.v1PostModelVersionResponse(modelVersion=(
                bindings.v1ModelVersion(
                    checkpoint=self.checkpoint(), creationTime=AT, id=11, lastUpdatedTime=AT,
                    model=self.model(parts[3]), version=self.models[parts[3]],
                    metadata=body.get("metadata"), userId=2, username=USER))))
        if route == ("GET", f"/api/v1/checkpoints/{UUID}"):
            return _json(200, bindings.v1GetCheckpointResponse(checkpoint=self.checkpoint()))
        if route == ("GET", f"/checkpoints/{UUID}"):
            return 200, _checkpoint_archive(), "application/gzip"
        return _grpc_error(404, 5, "not found")

    def routes(self) -> list[tuple[str, str]]:
        return [(sent.method, sent.path) for sent in self.requests]

    def sent(self, method: str, path: str) -> Sent:
        (found,) = [s for s in self.requests if (s.method, s.path) == (method, path)]
        return found


def _checkpoint_archive() -> bytes:
    """The checkpoint's files as the master streams them: a gzipped tar."""
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for name, data in (("state_dict.pth", b"weights"), ("metadata.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(packed.getvalue())


class _Handler(BaseHTTPRequestHandler):
    master: ReferenceMaster

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, data, kind = self.master.respond(Sent(
            self.command, url.path, parse_qs(url.query), dict(self.headers),
            json.loads(raw) if raw else None))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are kept in ReferenceMaster.requests."""


@pytest.fixture(autouse=True)
def _own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's config directory (token and certificate stores) is the test's own."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for name in ("DET_MASTER_CERT_FILE", "DET_MASTER_CERT_NAME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def master() -> Iterator[ReferenceMaster]:
    state = ReferenceMaster()
    with http_server(type("Handler", (_Handler,), {"master": state})) as state.base:
        yield state


def _config(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / "const.yaml").read_text())
    return loaded


def _files(sent: Sent) -> dict[str, bindings.v1File]:
    request = bindings.v1CreateExperimentRequest.from_json(sent.body)
    return {f.path: f for f in request.modelDefinition or [] if f.type == ord(tarfile.REGTYPE)}


def test_contract_bbc_submit_wait_best_checkpoint_register(
        master: ReferenceMaster, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(BBC)
    cluster = DeterminedMaster(master.base, USER, PASSWORD)
    experiment_id = cluster.submit(config, BBC, CPU_IMAGE)
    cluster.wait(experiment_id, timeout_s=30, poll_s=0.01)
    best = cluster.best_checkpoint(experiment_id, "validation_loss", smaller_is_better=True)
    lineage = {"dataset_commit": "bbc-features@5e0c1f2a", "hparams": best.hparams,
               "validation_metrics": best.validation_metrics,
               "test_metrics": {"test_accuracy": 0.9528}, "code_version": "3f0a941-dirty"}
    version = cluster.register("bbc-news", best.uuid, lineage)

    assert experiment_id == EXPERIMENT_ID and version == 1
    assert best == BestCheckpoint(UUID, TRIAL_ID, HPARAMS, VALIDATION)
    experiment = f"/api/v1/experiments/{EXPERIMENT_ID}"
    assert master.routes() == [
        ("POST", "/api/v1/auth/login"), ("POST", "/api/v1/experiments"),
        ("GET", experiment), ("GET", experiment), ("GET", experiment),  # wait: 3 states
        ("GET", experiment), ("GET", f"{experiment}/checkpoints"),  # best_checkpoint
        ("GET", "/api/v1/models/bbc-news"), ("POST", "/api/v1/models"),
        ("POST", "/api/v1/models/bbc-news/versions")]
    assert all(s.headers["Authorization"] == f"Bearer {TOKEN}" for s in master.requests[1:])
    assert PASSWORD not in json.dumps(master.requests[0].body)  # salted and hashed

    created = bindings.v1CreateExperimentRequest.from_json(
        master.sent("POST", "/api/v1/experiments").body)
    assert created.activate is True and created.projectId is None
    sent_config = yaml.safe_load(created.config or "")
    assert sent_config == {**config, "environment": {"image": CPU_IMAGE}}
    assert sent_config["entrypoint"] == "python3 -m usecases.bbc.train"
    assert sent_config["searcher"] == {"name": "single", "metric": "validation_loss",
                                       "smaller_is_better": True}
    assert "environment" not in config  # the caller's dict is left as it was
    files = _files(master.sent("POST", "/api/v1/experiments"))
    assert {"__init__.py", "const.yaml", "adaptive.yaml", "dataset.py", "train.py",
            "trial.py"} <= set(files)
    assert base64.b64decode(files["trial.py"].content) == (BBC / "trial.py").read_bytes()

    checkpoints = master.sent("GET", f"{experiment}/checkpoints").query
    assert checkpoints == {"sortByMetric": ["validation_loss"], "orderBy": ["ORDER_BY_ASC"],
                           "limit": ["1"], "offset": ["0"], "states": ["STATE_COMPLETED"]}
    model = bindings.v1PostModelRequest.from_json(master.sent("POST", "/api/v1/models").body)
    assert model.name == "bbc-news" and model.workspaceName is None
    assert master.sent("POST", "/api/v1/models/bbc-news/versions").body == {
        "checkpointUuid": UUID, "modelName": "bbc-news", "metadata": lineage}
    assert not (tmp_path / "config" / "determined" / "auth.json").exists()  # no token cached
    assert capsys.readouterr().out == ""  # the SDK's upload progress stays out of the CLI's


def test_contract_fmnist_cpu_and_cuda_images_and_an_existing_model(
        master: ReferenceMaster) -> None:
    master.models["fmnist"] = 2
    cluster = DeterminedMaster(master.base, USER, PASSWORD)
    cluster.submit(_config(FMNIST), FMNIST, CPU_IMAGE, cuda_image=CUDA_IMAGE)
    version = cluster.register("fmnist", UUID, {"dataset_commit": "fmnist@d8765fbb"})

    created = master.sent("POST", "/api/v1/experiments").body
    sent_config = yaml.safe_load(created["config"])
    assert sent_config["environment"] == {"image": {"cpu": CPU_IMAGE, "cuda": CUDA_IMAGE}}
    assert sent_config["entrypoint"] == "python3 -m usecases.fmnist.train"
    assert {"model.py", "train.py", "idx.py", "const.yaml"} <= set(_files(
        master.sent("POST", "/api/v1/experiments")))
    assert version == 3 and ("POST", "/api/v1/models") not in master.routes()
    assert master.sent("POST", "/api/v1/models/fmnist/versions").body["metadata"] == {
        "dataset_commit": "fmnist@d8765fbb"}


def test_contract_the_model_folder_is_sent_without_what_detignore_excludes(
        master: ReferenceMaster, tmp_path: Path) -> None:
    folder = tmp_path / "bbc"
    shutil.copytree(BBC, folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    own = {p.relative_to(folder).as_posix() for p in folder.rglob("*")
           if p.is_file() and p.name != ".detignore"}
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "trial.cpython-311.pyc").write_bytes(b"\x00")
    with (folder / ".detignore").open("a") as detignore:
        detignore.write("checkpoints/\n")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "state_dict.pth").write_bytes(b"weights")

    DeterminedMaster(master.base, USER, PASSWORD).submit(_config(BBC), folder, CPU_IMAGE)
    assert set(_files(master.sent("POST", "/api/v1/experiments"))) == own


def test_contract_without_an_image_the_config_is_sent_as_it_is(master: ReferenceMaster) -> None:
    DeterminedMaster(master.base, USER, PASSWORD).submit(_config(BBC), BBC)
    sent = yaml.safe_load(master.sent("POST", "/api/v1/experiments").body["config"])
    assert sent == _config(BBC)


def test_a_cuda_image_alone_is_refused_before_anything_is_sent(master: ReferenceMaster) -> None:
    cluster = DeterminedMaster(master.base, USER, PASSWORD)
    with pytest.raises(CDLError, match="without a CPU image"):
        cluster.submit(_config(BBC), BBC, cuda_image=CUDA_IMAGE)
    assert ("POST", "/api/v1/experiments") not in master.routes()


@pytest.mark.parametrize("ended", [State.ERROR, State.CANCELED, State.STOPPING_ERROR])
def test_contract_an_experiment_that_does_not_complete_names_its_id_state_and_logs(
        master: ReferenceMaster, ended: State) -> None:
    master.states = [State.ACTIVE, ended]
    cluster = DeterminedMaster(master.base, USER, PASSWORD)
    with pytest.raises(CDLError) as failed:
        cluster.wait(EXPERIMENT_ID, timeout_s=30, poll_s=0.01)
    state = ended.name
    assert failed.value.problem == f"experiment {EXPERIMENT_ID} on {master.base} ended {state}"
    assert f"det -m {master.base} experiment logs {EXPERIMENT_ID}" in failed.value.fix
    assert f"det -m {master.base} trial logs TRIAL_ID" in failed.value.fix


def test_contract_a_paused_experiment_is_to_be_resumed(master: ReferenceMaster) -> None:
    master.states = [State.PAUSED]
    with pytest.raises(CDLError) as failed:
        DeterminedMaster(master.base, USER, PASSWORD).wait(EXPERIMENT_ID, 30, poll_s=0.01)
    assert failed.value.problem.endswith("ended PAUSED")
    assert failed.value.fix == (f"resume it: `det -m {master.base} experiment activate "
                                f"{EXPERIMENT_ID}`")


def test_contract_an_experiment_still_running_at_the_timeout_names_its_state(
        master: ReferenceMaster) -> None:
    master.states = [State.RUNNING]
    with pytest.raises(CDLError) as failed:
        DeterminedMaster(master.base, USER, PASSWORD).wait(EXPERIMENT_ID, 0.2, poll_s=0.05)
    assert failed.value.problem == (f"experiment {EXPERIMENT_ID} on {master.base} did not "
                                    "complete within 0.2 s (state RUNNING)")
    assert f"experiment kill {EXPERIMENT_ID}" in failed.value.fix
    assert len(master.routes()) > 3  # it polled, then gave up


def test_contract_no_completed_checkpoint_is_an_error_naming_the_metric(
        master: ReferenceMaster) -> None:
    master.with_checkpoint = False
    with pytest.raises(CDLError) as failed:
        DeterminedMaster(master.base, USER, PASSWORD).best_checkpoint(
            EXPERIMENT_ID, "validation_accuracy", smaller_is_better=False)
    assert "no completed checkpoint with a validation of 'validation_accuracy'" in str(
        failed.value)
    query = master.sent("GET", f"/api/v1/experiments/{EXPERIMENT_ID}/checkpoints").query
    assert query["orderBy"] == ["ORDER_BY_DESC"]


@pytest.mark.filterwarnings("ignore:Python 3.14 will, by default, filter:DeprecationWarning")
def test_contract_download_goes_through_the_master(master: ReferenceMaster,
                                                   tmp_path: Path) -> None:
    got = DeterminedMaster(master.base, USER, PASSWORD).download(UUID, tmp_path / "ckpt")
    assert got == tmp_path / "ckpt"
    assert (got / "state_dict.pth").read_bytes() == b"weights"
    assert master.routes()[1:] == [("GET", f"/api/v1/checkpoints/{UUID}"),
                                   ("GET", f"/checkpoints/{UUID}")]
    assert master.sent("GET", f"/checkpoints/{UUID}").headers["Accept"] == "application/gzip"


def test_contract_a_wrong_password_is_an_error_naming_the_master_and_user(
        master: ReferenceMaster) -> None:
    with pytest.raises(CDLError) as refused:
        DeterminedMaster(master.base, USER, "not-the-password")
    assert refused.value.problem == (f"the Determined master at {master.base} refused the "
                                     f"login of user '{USER}'")
    assert "password" in refused.value.fix and "not-the-password" not in str(refused.value)
    assert master.routes() == [("POST", "/api/v1/auth/login")]  # once, no retry


def test_contract_a_master_that_refuses_an_experiment_is_an_error_quoting_it(
        master: ReferenceMaster) -> None:
    master.refusal = "invalid experiment configuration: searcher.max_trials is required"
    cluster = DeterminedMaster(master.base, USER, PASSWORD)
    with pytest.raises(CDLError) as refused:
        cluster.submit(_config(BBC), BBC, CPU_IMAGE)
    assert refused.value.problem == (f"the Determined master at {master.base} could not "
                                     f"create an experiment from {BBC}: {master.refusal}")


def test_an_unreadable_ca_certificate_is_an_error_before_any_request(
        master: ReferenceMaster, tmp_path: Path) -> None:
    with pytest.raises(CDLError, match="cannot read the master's CA certificate"):
        DeterminedMaster(master.base, USER, PASSWORD, cert_path=str(tmp_path / "ca.pem"))
    assert master.requests == []


def test_an_unreachable_master_is_an_error_naming_its_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CDLError) as unreachable:
        DeterminedMaster(url, USER, PASSWORD)
    assert unreachable.value.problem == (f"the Determined master at {url} did not answer "
                                         "(log in): [Errno 111] Connection refused")
    assert f"det -m {url} master info" in unreachable.value.fix


def test_a_master_that_accepts_but_never_answers_times_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(determined, "TIMEOUT", (0.5, 0.5))
    # the socket closes first, so a login that had no timeout ends when the test does
    with concurrent.futures.ThreadPoolExecutor(1) as pool, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nothing ever reads or answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        login = pool.submit(DeterminedMaster, url, USER, PASSWORD)
        # without a timeout the login would wait for as long as the socket stays open
        with pytest.raises(CDLError) as silent_master:
            login.result(timeout=20)
    assert silent_master.value.problem == (f"the Determined master at {url} did not answer "
                                           "(log in): timed out")
