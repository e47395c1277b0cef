"""The cluster run's orchestration: ``workflow.run.run``, the one path ``cdl demo`` and
``cdl smoke --local`` take, over the stores ``usecases.cluster.run.cluster_stores`` assembles
from a platform's outputs. No cluster runs here; what stands in for each service, and how much
of it is real:

- pachd: the gRPC stand-in of the Pachyderm adapter's contract tests, keeping each repo's files;
  a finished raw commit is validated by OUR worker (the pipeline's code), in-process.
- the Determined master: the reference master of the Determined adapter's contract tests
  (answers built from ``determined``'s bindings), whose experiment runs for real: the
  entrypoint the submitted YAML names, in Determined's local training mode, on the config the
  master was sent, reading its features through the pachd stand-in. Its checkpoint is the one
  the master hands back.
- S3 and helm: recording doubles. A "release" serves the uploaded folder through MLServer on
  127.0.0.1, so the smoke's requests, their offline comparison and their Scoring Data rows are
  real; the cluster's Seldon Core or KServe are not.
- PostgreSQL: the tests' real server stands in for the cluster's.

The adapters' own contracts (what each request carries) are tested beside each adapter; this
shows that the steps drive them in the paper's order and hand each other the right things.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import re
import shutil
import socket
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import yaml
from betterproto.lib.google.protobuf import Empty
from determined.common.api import bindings
from pachyderm_sdk.api import pfs

from stacks.platform import pins
from tests.loopback import http_server
from tests.rawdata import add_bad_files, write_bbc, write_fmnist
from tests.usecases.cluster.test_data import run_worker
from tests.usecases.stores import test_determined as reference
from tests.usecases.stores.test_determined import (  # noqa: F401 (the fixture)
    PASSWORD,
    USER,
    ReferenceMaster,
    Sent,
    _own_config,
)
from tests.usecases.stores.test_pachyderm import COMMIT, PachdStandIn, written
from tests.usecases.test_entrypoints import VALIDATION, run_entrypoint
from usecases import defaults
from usecases.cli.common import usecase_named
from usecases.cluster import outputs
from usecases.cluster.data import PachydermMLData
from usecases.cluster.experiments import MasterTraining
from usecases.cluster.pipelines import validate_pipeline_name
from usecases.cluster.run import cluster_stores, kubeconfig_file, open_cluster_run
from usecases.cluster.serving import ReleaseServing
from usecases.errors import CDLError
from usecases.state import State
from usecases.stores.database import Database
from usecases.stores.releases import release_name
from usecases.workflow import deploy, run
from usecases.workflow.context import Case, Context, RunOptions
from usecases.workflow.display import Display
from usecases.workflow.report import RunReport
from usecases.workflow.usecase import DataOptions

REGISTRY = "registry.example.org:5050/ml/cdl"
IMAGES = {v: pins.cdl_image(REGISTRY, v).ref for v in pins.IMAGE_VARIANTS}
SECRET = "s3-secret-never-shown"


class Pachd(PachdStandIn):
    """The pachd stand-in keeping each repo's files (one commit each: ids are shared)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.repos: dict[str, dict[str, bytes]] = {}

    def files_in(self, commit: pfs.Commit) -> dict[str, bytes]:
        return self.repos.get(commit.repo.name, {})

    def _modify_file(self, requests: list[pfs.ModifyFileRequest],
                     context: grpc.ServicerContext) -> Empty:
        repo = requests[0].set_commit.repo.name
        deleted, files = written(requests[1:])
        kept = {p: d for p, d in self.repos.get(repo, {}).items()
                if not any(p.startswith(prefix) for prefix in deleted)}
        self.repos[repo] = {**kept, **files}
        return Empty()

    def _finish_commit(self, request: pfs.FinishCommitRequest,
                       context: grpc.ServicerContext) -> Empty:
        repo = request.commit.repo.name
        if repo.endswith("-raw") and not request.error:
            usecase = repo.removesuffix("-raw")
            self.repos[validate_pipeline_name(usecase)] = run_worker(
                usecase, request.commit.id, self.repos[repo], self.workdir)
        return Empty()


@dataclass
class TrainingMaster(ReferenceMaster):
    """The reference master whose experiment trains: see the module's docstring."""

    workdir: Path = Path()
    trained: Path | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    log: str = ""

    def respond(self, sent: Sent) -> reference.Answer:
        if (sent.method, sent.path) == ("GET", f"/checkpoints/{reference.UUID}"):
            assert self.trained is not None, "no experiment trained"
            return 200, _archive(self.trained), "application/gzip"
        answer = super().respond(sent)
        if (sent.method, sent.path) == ("POST", "/api/v1/experiments") and answer[0] == 200:
            self._train()
        return answer

    def checkpoint(self) -> bindings.v1Checkpoint:
        found = super().checkpoint()
        assert found.training is not None
        found.training.hparams = self.config.get("hyperparameters", {})
        found.training.validationMetrics = bindings.v1Metrics(avgMetrics=self.metrics)
        return found

    def _train(self) -> None:
        experiment = self.workdir / "experiment.yaml"
        experiment.write_text(yaml.safe_dump(self.config))
        model_dir = usecase_named(self.config["name"].split("-")[0]).model_dir
        done = run_entrypoint(model_dir, self.config["entrypoint"], self.workdir, experiment)
        self.log = done.stderr
        assert done.returncode == 0, done.stderr[-3000:]
        *_, (_, last) = VALIDATION.findall(done.stderr)
        self.metrics = {k: float(v) for k, v in ast.literal_eval(last).items()}
        checkpoints = (self.workdir / "xdg" / "determined").iterdir()
        self.trained = max(checkpoints, key=lambda c: json.loads(
            (c / "metadata.json").read_text())["steps_completed"])


def _archive(folder: Path) -> bytes:
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            tar.add(path, arcname=path.relative_to(folder).as_posix())
    return gzip.compress(packed.getvalue())


@dataclass
class Bucket:
    """Stands in for ``ModelFolders``: the models bucket as a folder; what was done to it."""

    root: Path
    done: list[tuple[str, str]] = field(default_factory=list)

    def uri(self, name: str, version: int) -> str:
        return f"s3://cdl-models/{name}/{version}"

    def upload(self, folder: Path, name: str, version: int) -> str:
        shutil.copytree(folder, self.root / name / str(version))
        self.done.append(("upload", self.uri(name, version)))
        return self.uri(name, version)

    def delete(self, name: str, version: int) -> int:
        shutil.rmtree(self.root / name / str(version))
        self.done.append(("delete", self.uri(name, version)))
        return 1


@dataclass
class Releases:
    """Stands in for ``Releases``: a release serves the bucket's folder through MLServer."""

    server: deploy.Server
    repository: Path
    bucket: Bucket
    namespace: str = "cdl-models"
    done: list[tuple[str, ...]] = field(default_factory=list)

    def deploy(self, name: str, version: int, uri: str, serving: str, image: str,
               gpu: bool = False, timeout: float = 600.0) -> str:
        self.done.append(("deploy", name, str(version), uri, serving, image))
        shutil.copytree(self.bucket.root / uri.removeprefix("s3://cdl-models/"),
                        self.repository / name)
        self.server.load(name)
        return release_name(name, version)

    def url(self, name: str, version: int, serving: str) -> str:
        return self.server.url

    def remove(self, release: str, timeout: float = 300.0) -> None:
        self.done.append(("remove", release))


@pytest.fixture
def pachd(tmp_path: Path) -> Iterator[Pachd]:
    stand_in = Pachd(tmp_path)
    stand_in.server.start()
    yield stand_in
    stand_in.server.stop(grace=None)


@pytest.fixture
def master(tmp_path: Path) -> Iterator[TrainingMaster]:
    state = TrainingMaster(workdir=tmp_path / "master")
    state.workdir.mkdir()
    with http_server(type("Handler", (reference._Handler,), {"master": state})) as state.base:
        yield state


def platform(pachd: Pachd, master: TrainingMaster) -> outputs.Platform:
    """The stack's outputs as `pulumi stack output --json --show-secrets` prints them."""
    return outputs.parse({
        "urls": {"determined": master.base}, "determinedMaster": master.base,
        # the S3 store is the Bucket double; this address only has to resolve
        "s3Endpoint": f"http://127.0.0.1:{deploy.free_port()}", "images": IMAGES,
        "pachd": pachd.address, "serving": "seldon", "modelsNamespace": "cdl-models",
        "credentials": {"determined": {"username": USER, "password": PASSWORD},
                        "s3": {"accessKey": "cdl-models", "secretKey": SECRET}}},
        "test outputs")


@dataclass
class Ran:
    report: RunReport | None
    error: CDLError | None
    ctx: Context
    bucket: Bucket
    releases: Releases


def raw_folder(usecase: str, root: Path) -> tuple[Path, int]:
    """Small raw data shaped like the use case's, with bad files; how many."""
    if usecase == "bbc":
        folder = write_bbc(root / "bbc", per_class=10, seed=3)
        return folder, len(add_bad_files(folder))
    folder = write_fmnist(root / "fmnist", n_train=400, n_test=60, seed=3)
    (folder / "README.txt").write_text("not an IDX file")
    return folder, 1


def run_on_cluster(tmp_path: Path, db: Database, pachd: Pachd, master: TrainingMaster,
                   usecase: str = "bbc", gate: float = 0.0) -> Ran:
    folder, _ = raw_folder(usecase, tmp_path)
    state = State.from_env(tmp_path / "home")
    stores = cluster_stores(state, db, platform(pachd, master), None, keep=False)
    bucket = Bucket(tmp_path / "bucket")
    repository = tmp_path / "served"
    repository.mkdir()
    case = Case(usecase_named(usecase), RunOptions(
        DataOptions(folder, defaults.MAX_FILE_BYTES, defaults.MIN_CHARS), trials=1, gate=gate,
        smoke=4, experiment="smoke.yaml", retrain=True))
    with deploy.serve(repository, tmp_path / "mlserver.log", deploy.free_port(),
                      deploy.free_port(), db.conninfo, at_startup=False) as server:
        releases = Releases(server, repository, bucket)
        stores.serving = lambda ctx, stack: ReleaseServing(ctx, stack, releases, bucket,  # type: ignore[arg-type]
                                                           "seldon", IMAGES["cpu"])
        ctx = Context(state, stores, Display())
        with ctx.background:
            try:
                return Ran(run.run(ctx, [case]), None, ctx, bucket, releases)
            except CDLError as exc:
                return Ran(None, exc, ctx, bucket, releases)


def outside_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names under .svc.cluster.local do not resolve, as on a machine outside the cluster
    (without asking any DNS server)."""
    resolve = socket.getaddrinfo

    def cluster_names_unknown(host: str, *args: Any, **kwargs: Any) -> Any:
        if str(host).endswith(".svc.cluster.local"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", cluster_names_unknown)


@pytest.fixture(autouse=True)
def _no_outside_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CDL_DETERMINED_USER", "CDL_DETERMINED_PASSWORD", "CDL_S3_ACCESS_KEY",
                 "CDL_S3_SECRET_KEY", "CDL_PACHD_ADDRESS", "CDL_PACHD_TOKEN",
                 "CDL_DATABASE_URL", "CDL_LABEL_STUDIO_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.slow
@pytest.mark.parametrize("usecase", ["bbc", "fmnist"])
def test_the_workflow_runs_on_the_cluster_stores_in_the_papers_order(
        tmp_path: Path, db: Database, pachd: Pachd, master: TrainingMaster,
        usecase: str) -> None:
    ran = run_on_cluster(tmp_path, db, pachd, master, usecase)
    assert ran.error is None, ran.error
    assert ran.report is not None
    one = ran.report.usecases[usecase]
    name = usecase_named(usecase).model_name

    # ingest: the raw folder is a single commit; our worker quarantined the bad files
    _, bad = raw_folder(usecase, tmp_path / "again")
    assert one.dataset.counts.quarantined == bad == len(one.dataset.quarantined)
    assert [r.repo.name for r in pachd.sent("CreateRepo")] == [f"{usecase}-raw",
                                                               f"{usecase}-features"]
    with psycopg.connect(db.conninfo) as conn:
        ((source, where),) = conn.execute(
            "SELECT source, manifest_path FROM dataset_versions").fetchall()
        quarantined = conn.execute("SELECT count(*) FROM quarantine").fetchone()
        labels = conn.execute("SELECT count(*) FROM train_labels").fetchone()
    assert source == f"pfs:raw@{COMMIT}"
    assert where == f"pfs:{usecase}-validate@{COMMIT}/manifest.json"
    assert quarantined == (bad,) and labels is not None and labels[0] > 0

    # transform: the features committed to the Transformation Registry, under their key
    feature_files = pachd.repos[f"{usecase}-features"]
    (key,) = {path.split("/")[1] for path in feature_files}
    assert {f"/{key}/train.npz", f"/{key}/test.npz", f"/{key}/classes.npy"} <= set(feature_files)

    # train: the master got the use case's smoke.yaml in the pinned images, with the features'
    # reference, and the trial read them through pachd
    sent = yaml.safe_load(bindings.v1CreateExperimentRequest.from_json(
        master.sent("POST", "/api/v1/experiments").body).config or "")
    assert sent["name"] == f"{name}-smoke"
    assert sent["environment"]["image"] == {"cpu": IMAGES["cpu"], "cuda": IMAGES["gpu"]}
    assert sent["data"] == {"features": f"pfs://{usecase}-features@{COMMIT}/{key}",
                            "pachyderm": pachd.address}
    assert re.search(r"report_validation_metrics\(steps_completed=\d+", master.log)
    assert one.val_metrics == pytest.approx(master.metrics)

    # register: the evaluated version registered on the master with its lineage
    (registered,) = [s for s in master.requests
                     if s.method == "POST" and s.path == f"/api/v1/models/{name}/versions"]
    metadata = registered.body["metadata"]
    assert registered.body["checkpointUuid"] == reference.UUID
    assert metadata["cdl_version"] == one.model.version
    assert metadata["dataset_commit"] == f"pfs:raw@{COMMIT}"
    assert metadata["experiment_id"] == reference.EXPERIMENT_ID
    assert metadata["test_accuracy"] == pytest.approx(one.test_accuracy)
    assert metadata["gate"] == {"threshold": 0.0, "passed": True}
    assert metadata["hparams"] == one.model.hparams

    # deploy: uploaded, released in the pinned image, queried as offline, scored, removed
    uri = f"s3://cdl-models/{name}/{one.model.version}"
    release = release_name(name, one.model.version)
    assert ran.releases.done == [
        ("deploy", name, str(one.model.version), uri, "seldon", IMAGES["cpu"]),
        ("remove", release)]
    assert ran.bucket.done == [("upload", uri), ("delete", uri)]
    assert one.serving is not None and one.serving.smoke.requests == 4
    assert one.serving.smoke.matches_offline and one.serving.smoke.scored == 4

    # every step of the smoke's table, timed
    assert {"ingest", "label", "transform", "train", "register", "evaluate", "package",
            "smoke"} <= set(one.timings)


@pytest.mark.slow
def test_a_failed_experiment_stops_the_run_at_train_naming_it(
        tmp_path: Path, db: Database, pachd: Pachd, master: TrainingMaster) -> None:
    master.states = [reference.State.ACTIVE, reference.State.ERROR]

    ran = run_on_cluster(tmp_path, db, pachd, master)

    assert ran.error is not None and ran.report is None
    assert f"experiment {reference.EXPERIMENT_ID}" in ran.error.problem
    assert "ended ERROR" in ran.error.problem
    assert "experiment logs" in ran.error.fix
    assert ran.ctx.failed == ("bbc", "train")
    # nothing registered, uploaded or deployed
    assert not [s for s in master.requests if s.path.startswith("/api/v1/models")]
    assert ran.bucket.done == [] and ran.releases.done == []


def test_missing_credentials_name_the_variable_to_set(tmp_path: Path, db: Database) -> None:
    body: dict[str, Any] = {
        "urls": {}, "determinedMaster": "http://determined:8080",
        "s3Endpoint": "http://minio:9000", "images": IMAGES,
        "pachd": f"grpc://127.0.0.1:{deploy.free_port()}"}  # never reached: checked first
    state = State.from_env(tmp_path / "home")
    with pytest.raises(CDLError) as raised:
        cluster_stores(state, db, outputs.parse(body, "test"), None, keep=False)
    assert "no Determined user" in raised.value.problem
    assert "CDL_DETERMINED_USER" in raised.value.fix
    without_pachd = {k: v for k, v in body.items() if k != "pachd"}
    with pytest.raises(CDLError) as raised:
        cluster_stores(state, db, outputs.parse(without_pachd, "test"), None, keep=False)
    assert "no pachd gRPC address" in raised.value.problem
    assert "CDL_PACHD_ADDRESS" in raised.value.fix and "cdl-smoke Job" in raised.value.fix


def test_an_in_cluster_address_fails_before_the_run_where_it_does_not_resolve(
        tmp_path: Path, db: Database, pachd: Pachd, master: TrainingMaster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Run outside the cluster, the stack's in-cluster S3 endpoint would first be used at the
    deploy step, after the training: it is checked up front instead."""
    found = outputs.Platform(**{**platform(pachd, master).__dict__,
                                "s3_endpoint": "http://minio.cdl-storage.svc.cluster.local:9000"})
    outside_the_cluster(monkeypatch)
    with pytest.raises(CDLError) as raised:
        cluster_stores(State.from_env(tmp_path / "home"), db, found, None, keep=False)
    assert raised.value.problem == ("the S3 endpoint http://minio.cdl-storage.svc.cluster.local"
                                    ":9000 does not resolve here: the stack's outputs give "
                                    "in-cluster addresses")
    assert "cdl-smoke Job" in raised.value.fix and "CDL_S3_ENDPOINT" in raised.value.fix
    assert not master.requests  # nothing was submitted
    monkeypatch.setenv("CDL_S3_ENDPOINT", "http://127.0.0.1:9000")  # a port-forward
    assert cluster_stores(State.from_env(tmp_path / "home"), db, found, None, keep=False)


def test_an_in_cluster_database_fails_before_anything_else_where_it_does_not_resolve(
        tmp_path: Path, pachd: Pachd, master: TrainingMaster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = {**json.loads(json.dumps(platform(pachd, master).__dict__)),
            "database": {"host": "cdl-pg-rw.cdl-db.svc.cluster.local", "port": 5432,
                         "dbname": "cdl", "user": "cdl"}}
    found = outputs.Platform(**body)
    outside_the_cluster(monkeypatch)
    with pytest.raises(CDLError) as raised, open_cluster_run(
            State.from_env(tmp_path / "home"), Display(), found, "cdl smoke"):
        pass
    assert raised.value.problem.startswith("the database host cdl-pg-rw.cdl-db.svc.cluster.local "
                                           "does not resolve here")
    assert "CDL_DATABASE_URL" in raised.value.fix and "cdl-smoke Job" in raised.value.fix
    assert not master.requests and not pachd.requests  # nothing was contacted


def test_credentials_from_the_environment_come_before_the_outputs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    found = outputs.parse({"urls": {}, "determinedMaster": "http://d", "s3Endpoint": "http://s",
                           "images": IMAGES, "credentials": {"determined": {
                               "username": "admin", "password": "from-outputs"}}}, "test")
    assert found.secret("CDL_DETERMINED_PASSWORD", "determined", "password") == "from-outputs"
    monkeypatch.setenv("CDL_DETERMINED_PASSWORD", "from-env")
    assert found.secret("CDL_DETERMINED_PASSWORD", "determined", "password") == "from-env"
    assert found.secret("CDL_S3_SECRET_KEY", "s3", "secretKey") is None


def test_a_cluster_run_opens_on_the_clusters_database_and_this_machines_log(
        tmp_path: Path, db: Database, pachd: Pachd, master: TrainingMaster,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``open_cluster_run``: the database from ``CDL_DATABASE_URL`` (a port-forward), migrated;
    the stores' cluster sides; without a Label Studio token, the labels' direct path, said so;
    the run's log in this machine's CDL_HOME."""
    monkeypatch.setenv("CDL_DATABASE_URL", db.conninfo)
    state = State.from_env(tmp_path / "home")
    notes: list[str] = []

    class Noting(Display):
        def note(self, text: str) -> None:
            notes.append(text)

    with open_cluster_run(state, Noting(), platform(pachd, master), "cdl smoke") as ctx:
        assert isinstance(ctx.stores.training, MasterTraining)
        assert isinstance(ctx.stores.mldata, PachydermMLData)
        assert ctx.stores.db.conninfo == db.conninfo and "database" in ctx.timings
        assert ctx.studio is None
        with ctx.stage(None, "probe", "a stage"):
            pass
    assert any("CDL_LABEL_STUDIO_TOKEN" in note for note in notes)
    assert "end - probe" in (state.logs / "cdl.log").read_text()


def test_the_stacks_kubeconfig_is_a_private_file_while_the_run_lasts() -> None:
    found = outputs.parse({"urls": {}, "determinedMaster": "http://d", "s3Endpoint": "http://s",
                           "images": IMAGES, "kubeconfig": "apiVersion: v1\nkind: Config\n"},
                          "test")
    with kubeconfig_file(found) as path:
        assert path is not None and path.read_text() == "apiVersion: v1\nkind: Config\n"
        assert path.stat().st_mode & 0o777 == 0o600
    assert not path.exists()
    in_cluster = outputs.parse({"urls": {}, "determinedMaster": "http://d",
                                "s3Endpoint": "http://s", "images": IMAGES}, "test")
    with kubeconfig_file(in_cluster) as none:
        assert none is None  # helm uses the Job's service account
