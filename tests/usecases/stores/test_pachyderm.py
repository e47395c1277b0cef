"""Contract tests of the Pachyderm adapter (``usecases/stores/pachyderm.py``).

No pachd runs here. A stand-in gRPC server on 127.0.0.1 serves the method paths pachd 2.11
serves (``/pfs_v2.API/...``, ``/pps_v2.API/...``, ``/versionpb_v2.API/GetVersion``), decodes
each request with ``pachyderm_sdk``'s own message classes, answers with them and records the
requests, which the tests assert field by field. It checks the adapter's side of the contract
(what it sends, how it reads the answers), not Pachyderm's behaviour.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import asdict
from pathlib import Path
from typing import Any

import betterproto
import grpc
import pytest
from betterproto.lib.google.protobuf import BytesValue, Empty
from pachyderm_sdk.api import pfs, pps
from pachyderm_sdk.api.version import Version

from usecases.cluster.pipelines import validate_pipeline
from usecases.errors import CDLError
from usecases.stores import pachyderm as adapter
from usecases.stores.mldata import Entry, Manifest
from usecases.stores.pachyderm import Pachyderm
from usecases.workflow.deploy import free_port

COMMIT = "9f2c4e6a8b0d4f1e93a5c7e9b1d3f5a7"  # pachd's ids: 32 hex digits
IMAGE = "registry.example/cdl/cdl:0.1.0-cpu"
Answer = Callable[[Any, grpc.ServicerContext], Any]


class PachdStandIn:
    """Serves the few RPCs the adapter calls, with scripted answers; records each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.tokens: list[str | None] = []  # each request's auth token (gRPC metadata)
        self.jobs: list[pps.JobState | None] = [pps.JobState.JOB_SUCCESS]  # None: NOT_FOUND
        self.job_reason = ""
        self.files: dict[str, bytes] = {}  # the output commit's files, by path
        self.commit = COMMIT  # the id of the commits it starts
        self.raw: dict[str, bytes] = {}  # what the last ModifyFile stream added, by path
        # Called when a commit is finished without error, with its id and files: returns the
        # output commit's files (tests/usecases/cluster/test_data.py runs the real worker)
        self.pipeline: Callable[[str, dict[str, bytes]], dict[str, bytes]] | None = None
        self.fail: dict[str, grpc.StatusCode] = {}  # method -> the status it aborts with
        self._lock = threading.Lock()
        unary: dict[str, tuple[str, type[betterproto.Message], Answer]] = {
            "GetVersion": ("versionpb_v2.API", Empty,
                           lambda r, c: Version(major=2, minor=11, micro=6)),
            "CreateRepo": ("pfs_v2.API", pfs.CreateRepoRequest, lambda r, c: Empty()),
            "StartCommit": ("pfs_v2.API", pfs.StartCommitRequest,
                            lambda r, c: pfs.Commit(repo=r.branch.repo, id=self.commit,
                                                    branch=r.branch)),
            "FinishCommit": ("pfs_v2.API", pfs.FinishCommitRequest, self._finish_commit),
            "InspectCommit": ("pfs_v2.API", pfs.InspectCommitRequest,
                              lambda r, c: pfs.CommitInfo(commit=r.commit)),
            "CreatePipelineV2": ("pps_v2.API", pps.CreatePipelineV2Request,
                                 lambda r, c: pps.CreatePipelineV2Response()),
            "InspectJob": ("pps_v2.API", pps.InspectJobRequest, self._inspect_job),
        }
        streams: dict[str, tuple[str, type[betterproto.Message], Answer]] = {
            "GetFile": ("pfs_v2.API", pfs.GetFileRequest, self._get_file),
            "WalkFile": ("pfs_v2.API", pfs.WalkFileRequest, self._walk_file),
        }
        handlers: dict[str, dict[str, grpc.RpcMethodHandler]] = {}
        for name, (service, request, answer) in unary.items():
            handlers.setdefault(service, {})[name] = grpc.unary_unary_rpc_method_handler(
                self._recorded(name, answer), request_deserializer=request.FromString,
                response_serializer=bytes)
        for name, (service, request, answer) in streams.items():
            handlers[service][name] = grpc.unary_stream_rpc_method_handler(
                self._recorded(name, answer), request_deserializer=request.FromString,
                response_serializer=bytes)
        handlers["pfs_v2.API"]["ModifyFile"] = grpc.stream_unary_rpc_method_handler(
            self._recorded("ModifyFile", self._modify_file),
            request_deserializer=pfs.ModifyFileRequest.FromString, response_serializer=bytes)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        for service, methods in handlers.items():
            self.server.add_generic_rpc_handlers(
                [grpc.method_handlers_generic_handler(service, methods)])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"grpc://127.0.0.1:{self.port}"

    def sent(self, method: str) -> list[Any]:
        return [request for name, request in self.requests if name == method]

    def _recorded(self, name: str, answer: Answer) -> Answer:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            if name == "ModifyFile":
                request = list(request)
            with self._lock:
                self.requests.append((name, request))
                self.tokens.append(dict(context.invocation_metadata()).get("authn-token"))
            if name in self.fail:
                context.abort(self.fail[name], f"{name} refused by the test")
            return answer(request, context)
        return handle

    def _modify_file(self, requests: list[pfs.ModifyFileRequest],
                     context: grpc.ServicerContext) -> Empty:
        self.raw = written(requests[1:])[1]
        return Empty()

    def _finish_commit(self, request: pfs.FinishCommitRequest,
                       context: grpc.ServicerContext) -> Empty:
        if self.pipeline is not None and not request.error:
            self.files = self.pipeline(request.commit.id, self.raw)
        return Empty()

    def _inspect_job(self, request: pps.InspectJobRequest,
                     context: grpc.ServicerContext) -> pps.JobInfo:
        state = self.jobs.pop(0) if len(self.jobs) > 1 else self.jobs[0]
        if state is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job {request.job.id} not found")
        output = pfs.Commit(repo=pfs.Repo(name=request.job.pipeline.name, type="user",
                                          project=request.job.pipeline.project),
                            id=request.job.id)  # a job's output commit shares its id
        return pps.JobInfo(job=request.job, state=state, reason=self.job_reason,
                           output_commit=output)

    def files_in(self, commit: pfs.Commit) -> dict[str, bytes]:
        """The files a commit holds: the output commit's (one for all, in these tests)."""
        return self.files

    def _get_file(self, request: pfs.GetFileRequest,
                  context: grpc.ServicerContext) -> Iterator[BytesValue]:
        files = self.files_in(request.file.commit)
        if request.file.path not in files:
            context.abort(grpc.StatusCode.NOT_FOUND, f"file {request.file.path} not found")
        data = files[request.file.path]
        # in two messages, as pachd streams a file in chunks
        yield BytesValue(value=data[:len(data) // 2])
        yield BytesValue(value=data[len(data) // 2:])

    def _walk_file(self, request: pfs.WalkFileRequest,
                   context: grpc.ServicerContext) -> Iterator[pfs.FileInfo]:
        root = request.file.path.rstrip("/") + "/"
        files = self.files_in(request.file.commit)
        yield pfs.FileInfo(file=pfs.File(commit=request.file.commit, path=root),
                           file_type=pfs.FileType.DIR)
        for path in sorted(p for p in files if p.startswith(root)):
            yield pfs.FileInfo(file=pfs.File(commit=request.file.commit, path=path),
                               file_type=pfs.FileType.FILE, size_bytes=len(files[path]))


@pytest.fixture
def pachd() -> Iterator[PachdStandIn]:
    stand_in = PachdStandIn()
    stand_in.server.start()
    yield stand_in
    stand_in.server.stop(grace=None)


@pytest.fixture
def store(pachd: PachdStandIn) -> Pachyderm:
    connected = Pachyderm(pachd.address)
    assert pachd.requests == [("GetVersion", Empty())]
    pachd.requests.clear()
    return connected


def assert_repo(repo: pfs.Repo, name: str) -> None:
    assert (repo.name, repo.type, repo.project.name) == (name, "user", "default")


def written(requests: Iterable[pfs.ModifyFileRequest]) -> tuple[list[str], dict[str, bytes]]:
    """The deletes and the files of one ModifyFile stream, chunks joined in order."""
    deleted: list[str] = []
    files: dict[str, bytes] = {}
    for request in requests:
        field = betterproto.which_one_of(request, "body")[0]
        if field == "delete_file":
            deleted.append(request.delete_file.path)
        elif field == "add_file":
            add = request.add_file
            files[add.path] = files.get(add.path, b"") + add.raw
    return deleted, files


def folder(root: Path, files: dict[str, bytes]) -> Path:
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def test_contract_connect_reports_pachds_version(pachd: PachdStandIn) -> None:
    assert Pachyderm(pachd.address).version == "2.11.6"
    assert pachd.sent("GetVersion") == [Empty()]


def test_contract_ensure_repos_creates_the_raw_and_features_repos_idempotently(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    store.ensure_repos("bbc")
    sent = pachd.sent("CreateRepo")
    assert [request.repo.name for request in sent] == ["bbc-raw", "bbc-features"]
    for request in sent:
        assert_repo(request.repo, request.repo.name)
        assert request.update is True  # pachd: create if missing, else leave it
        assert request.description.startswith("CDL ")


def test_contract_put_raw_writes_the_folder_as_one_commit_on_master(
        pachd: PachdStandIn, store: Pachyderm, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter, "BUFFER_SIZE", 4)  # several chunks per file
    files = {"bbc.vocab": b"the\nof\nmarket\n", "business/001.txt": b"Profit news\n\nprofit.\n",
             "tech/002.txt": b"\xff not UTF-8", "tech/empty.txt": b""}
    assert store.put_raw("bbc", folder(tmp_path / "raw", files)) == COMMIT

    assert [name for name, _ in pachd.requests] == ["StartCommit", "ModifyFile", "FinishCommit"]
    (start,) = pachd.sent("StartCommit")
    assert start.branch.name == "master"
    assert_repo(start.branch.repo, "bbc-raw")
    assert start.parent == pfs.Commit()  # the branch's head is the parent
    (stream,) = pachd.sent("ModifyFile")
    assert betterproto.which_one_of(stream[0], "body")[0] == "set_commit"
    assert stream[0].set_commit.id == COMMIT
    assert_repo(stream[0].set_commit.branch.repo, "bbc-raw")
    deleted, put = written(stream[1:])
    assert deleted == ["/"]  # the version holds exactly the folder's files, not its parent's
    assert put == {f"/{path}": data for path, data in files.items()}
    assert len(stream) > 2 + len(files)  # chunked
    (finish,) = pachd.sent("FinishCommit")
    assert (finish.commit.id, finish.error, finish.force) == (COMMIT, "", False)


def test_contract_put_features_replaces_only_its_key(
        pachd: PachdStandIn, store: Pachyderm, tmp_path: Path) -> None:
    features = {"vectors.npy": b"\x93NUMPY", "vocab/index.json": b"{}"}
    assert store.put_features("bbc", f"{COMMIT}-tfidf", folder(tmp_path / "f", features)) == COMMIT
    (start,) = pachd.sent("StartCommit")
    assert_repo(start.branch.repo, "bbc-features")
    deleted, put = written(pachd.sent("ModifyFile")[0][1:])
    assert deleted == [f"/{COMMIT}-tfidf/"]  # a directory: its path ends in "/"
    assert put == {f"/{COMMIT}-tfidf/{path}": data for path, data in features.items()}
    with pytest.raises(CDLError, match="one path segment"):
        store.put_features("bbc", "a/b", tmp_path / "f")


def test_contract_a_failed_write_finishes_the_commit_as_failed(
        pachd: PachdStandIn, store: Pachyderm, tmp_path: Path) -> None:
    pachd.fail["ModifyFile"] = grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(CDLError, match="could not write 1 files to bbc-raw") as raised:
        store.put_raw("bbc", folder(tmp_path / "raw", {"a.txt": b"a"}))
    assert "RESOURCE_EXHAUSTED" in str(raised.value)
    (finish,) = pachd.sent("FinishCommit")
    assert finish.commit.id == COMMIT
    assert "RESOURCE_EXHAUSTED" in finish.error  # no job runs on a half-written version


def test_contract_create_pipeline_sends_the_spec_as_json_with_update(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    spec = validate_pipeline("bbc", IMAGE)
    store.create_pipeline(spec)
    (request,) = pachd.sent("CreatePipelineV2")
    assert json.loads(request.create_pipeline_request_json) == spec
    assert (request.update, request.reprocess, request.dry_run) == (True, False, False)


def test_contract_wait_polls_the_commits_job_then_waits_for_its_output_commit(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    pachd.jobs = [None, pps.JobState.JOB_CREATED, pps.JobState.JOB_RUNNING,
                  pps.JobState.JOB_SUCCESS]
    store.wait_validated("bbc", COMMIT, timeout=10, poll=0.01)
    polls = pachd.sent("InspectJob")
    assert len(polls) == 4
    for request in polls:
        assert request.job.id == COMMIT  # the job of the commit set the raw commit opened
        assert request.job.pipeline.name == "bbc-validate"
        assert request.job.pipeline.project.name == "default"
        assert request.wait is False  # polled against a deadline, never blocking
    (wait,) = pachd.sent("InspectCommit")
    assert_repo(wait.commit.repo, "bbc-validate")
    assert wait.commit.id == COMMIT
    assert wait.wait == pfs.CommitState.FINISHED


def test_contract_a_failed_job_is_an_error_naming_the_job_and_its_logs(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    pachd.jobs = [pps.JobState.JOB_RUNNING, pps.JobState.JOB_FAILURE]
    pachd.job_reason = "datum 7d1f failed: error: no valid file"
    with pytest.raises(CDLError) as raised:
        store.wait_validated("bbc", COMMIT, timeout=10, poll=0.01)
    message = str(raised.value)
    assert f"job {COMMIT} of pipeline default/bbc-validate ended JOB_FAILURE" in message
    assert "no valid file" in message
    assert f"pachctl logs --project default --pipeline bbc-validate --job {COMMIT}" in message
    assert pachd.sent("InspectCommit") == []


def test_contract_a_job_that_does_not_end_by_the_deadline_is_an_error(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    pachd.jobs = [pps.JobState.JOB_STARTING]
    with pytest.raises(CDLError, match="is still JOB_STARTING after 0 s") as raised:
        store.wait_validated("bbc", COMMIT, timeout=0.2, poll=0.05)
    assert "pachctl inspect pipeline bbc-validate" in raised.value.fix


def test_contract_read_validated_reads_the_output_commits_manifest_and_quarantine(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    entries = [Entry("business/001", "business/001.txt", "ab" * 32, 20, "business", "valid",
                     split="train"),
               Entry("tech/002", "tech/002.txt", "cd" * 32, 11, None, "quarantined",
                     reason="not valid UTF-8")]
    manifest = Manifest("v1", "bbc", f"pfs:raw@{COMMIT}", {"min_chars": 1}, entries)
    quarantine = [{"path": "tech/002.txt", "sha256": "cd" * 32, "size": 11,
                   "reason": "not valid UTF-8"}]
    pachd.files = {"/manifest.json": manifest.to_json().encode(),
                   "/quarantine.json": json.dumps(quarantine).encode()}
    version = store.read_validated("bbc", COMMIT)
    assert version.commit == COMMIT
    assert asdict(version.manifest) == asdict(manifest)
    assert version.quarantine == quarantine
    sent = pachd.sent("GetFile")
    assert [request.file.path for request in sent] == ["/manifest.json", "/quarantine.json"]
    for request in sent:
        assert_repo(request.file.commit.repo, "bbc-validate")
        assert request.file.commit.id == COMMIT
        assert request.offset == 0


def test_contract_download_copies_the_files_under_a_folder(
        pachd: PachdStandIn, store: Pachyderm, tmp_path: Path) -> None:
    pachd.files = {"/data/business/001.txt": b"Profit", "/data/bbc.vocab": b"the\n",
                   "/quarantine/tech/002.txt": b"\xff", "/manifest.json": b"{}"}
    got = store.download("bbc-validate", COMMIT, "data", tmp_path / "v")
    assert sorted(got) == [tmp_path / "v/bbc.vocab", tmp_path / "v/business/001.txt"]
    assert (tmp_path / "v/business/001.txt").read_bytes() == b"Profit"
    (walk,) = pachd.sent("WalkFile")
    assert walk.file.path == "/data"
    assert_repo(walk.file.commit.repo, "bbc-validate")
    assert walk.file.commit.id == COMMIT
    assert sorted(r.file.path for r in pachd.sent("GetFile")) == [
        "/data/bbc.vocab", "/data/business/001.txt"]


def test_contract_a_refused_token_is_an_error_that_names_the_fix(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    pachd.fail["CreateRepo"] = grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(CDLError, match="refused to create repo bbc-raw") as raised:
        store.ensure_repos("bbc")
    assert "token" in raised.value.fix


def test_contract_a_pachd_lost_mid_run_is_reported_unreachable(
        pachd: PachdStandIn, store: Pachyderm) -> None:
    pachd.server.stop(grace=None)
    with pytest.raises(CDLError, match=f"pachd at {pachd.address} is unreachable"):
        store.ensure_repos("bbc")
    with pytest.raises(CDLError, match=f"pachd at {pachd.address} is unreachable"):
        store.download("bbc-validate", COMMIT, "data", Path("unused"))


def test_contract_an_address_that_never_answers_fails_within_the_connect_timeout() -> None:
    with socket.socket() as listener, socket.socket() as first:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        # With its one-slot queue taken, the kernel drops further connection attempts, as a
        # firewall that drops packets does: gRPC alone would wait 20 s
        first.connect(listener.getsockname())
        address = f"grpc://127.0.0.1:{listener.getsockname()[1]}"
        # "timed out" is the adapter's own bounded connect; gRPC would say otherwise, later
        with pytest.raises(CDLError, match=rf"pachd at {address} is unreachable \(timed out\)"):
            Pachyderm(address, connect_timeout=1)


def test_contract_an_unreachable_pachd_fails_in_seconds() -> None:
    port = free_port()  # nothing listens on it
    with pytest.raises(CDLError, match=f"pachd at grpc://127.0.0.1:{port} is unreachable") \
            as raised:
        Pachyderm(f"grpc://127.0.0.1:{port}", connect_timeout=2)
    assert "port-forward" in raised.value.fix
    with pytest.raises(CDLError, match="is not a pachd address"):
        Pachyderm("ftp://127.0.0.1:1")
