"""ML Data and the Transformation Registry on a cluster: Pachyderm 2.11 through ``pachyderm_sdk``,
which the post-deployment smoke tests drive (#13).

Per use case, an input repo (``usecases.cluster.pipelines.raw_repo``): a collected version of
the raw files is one commit, whose id is the dataset version's lineage key. The clean/validate
step is the pipeline of ``usecases.cluster.pipelines``; its job on that commit has the commit's
id, and so has its output commit, which holds what ``usecases.cluster.worker`` wrote
(``manifest.json``, ``quarantine.json``, ``data/``, ``quarantine/``). The Transformation
Registry is one more repo (``features_repo``): a features folder is one commit, under its key.

Thin over the SDK's ``Client``. A failure a user can act on is a ``CDLError``: an unreachable
pachd, found by a TCP connect bounded by ``connect_timeout`` (gRPC alone waits about 20 s on an
address that does not answer); a refused token; a failed job, with the ``pachctl logs`` command
that shows why. The SDK's calls take no deadline, so the wait for a job polls its state
against one instead of blocking in ``inspect_job(wait=True)``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import grpc
from pachyderm_sdk import Client
from pachyderm_sdk.api import pfs, pps
from pachyderm_sdk.api.pfs.extension import BUFFER_SIZE

from usecases.cluster.pipelines import features_repo, raw_repo, validate_pipeline_name
from usecases.cluster.worker import MANIFEST, QUARANTINE_LIST
from usecases.errors import CDLError
from usecases.stores.mldata import Manifest

BRANCH = "master"
NAMESPACE = "cdl-data"  # where the platform runs pachd (stacks/platform/wiring.py), for the fixes
_ENDED = {pps.JobState.JOB_SUCCESS, pps.JobState.JOB_FAILURE, pps.JobState.JOB_KILLED,
          pps.JobState.JOB_UNRUNNABLE}
_DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


@dataclass(frozen=True)
class ValidatedVersion:
    """What the validation pipeline's job wrote for one raw commit."""

    commit: str  # the raw commit's id, which the job and its output commit share
    manifest: Manifest
    quarantine: list[dict[str, Any]]  # path, sha256, size, reason of each quarantined file


class Pachyderm:
    """One pachd, one project: ``address`` is ``grpc://HOST:PORT`` (``grpcs://`` for TLS)."""

    def __init__(self, address: str, auth_token: str | None = None, project: str = "default",
                 root_certs: bytes | None = None, connect_timeout: float = 5.0) -> None:
        self.address = address
        self.project = project
        try:
            self.client = Client.from_pachd_address(address, auth_token=auth_token,
                                                    root_certs=root_certs)
        except ValueError as exc:
            raise CDLError(f"{address!r} is not a pachd address ({exc})",
                           "pass grpc://HOST:PORT, or grpcs://HOST:PORT for TLS (after "
                           "`pachctl port-forward`: grpc://localhost:30650)") from exc
        host, port = self.client.address.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=connect_timeout).close()
        except OSError as exc:
            raise self._unreachable(str(exc) or type(exc).__name__) from exc
        with self._rpc("report its version"):
            found = self.client.get_version()
        self.version = f"{found.major}.{found.minor}.{found.micro}"

    def ensure_repos(self, usecase: str) -> None:
        """Create the use case's input repo and its features repo where they do not exist."""
        for name, description in (
                (raw_repo(usecase), f"CDL ML Data: {usecase}'s raw files, a commit per version"),
                (features_repo(usecase), f"CDL Transformation Registry: {usecase}'s features")):
            # update=True: pachd's idempotent "make sure it exists"
            with self._rpc(f"create repo {name}"):
                self.client.pfs.create_repo(repo=self._repo(name), description=description,
                                            update=True)

    def create_pipeline(self, spec: dict[str, Any]) -> None:
        """Create the pipeline of ``spec`` (CreatePipelineRequest JSON), or update it."""
        with self._rpc(f"create or update pipeline {spec['pipeline']['name']}"):
            self.client.pps.create_pipeline_v2(create_pipeline_request_json=json.dumps(spec),
                                               update=True)

    def put_raw(self, usecase: str, folder: Path) -> str:
        """Commit the files under ``folder`` as the use case's next dataset version (the commit
        holds exactly them); returns the commit id, the version's lineage key."""
        return self._put(raw_repo(usecase), "/", folder, f"CDL: raw {usecase} files")

    def put_features(self, usecase: str, key: str, folder: Path) -> str:
        """Commit a features folder under ``/<key>/`` of the use case's features repo, replacing
        what that key held; returns the commit id."""
        if not key or "/" in key:
            raise CDLError(f"features key {key!r} is not one path segment",
                           "name the features by their key alone, e.g. <version>-<transform>")
        return self._put(features_repo(usecase), f"/{key}/", folder,
                         f"CDL: {usecase} features {key}")

    def wait_validated(self, usecase: str, commit: str, timeout: float = 900.0,
                       poll: float = 2.0) -> None:
        """Wait for the validation job on raw commit ``commit`` and for its output commit."""
        name = validate_pipeline_name(usecase)
        job = pps.Job(pipeline=pps.Pipeline(project=pfs.Project(name=self.project), name=name),
                      id=commit)
        deadline = time.monotonic() + timeout
        while True:  # the SDK decodes an enum field as a plain int, hence JobState(...) below
            info = self._job(job)
            if info is not None and info.state in _ENDED:
                break
            if time.monotonic() >= deadline:
                state = pps.JobState(info.state).name if info is not None else "not created"
                raise CDLError(
                    f"Pachyderm job {commit} of pipeline {self.project}/{name} is still {state} "
                    f"after {timeout:.0f} s",
                    f"see why with `pachctl inspect pipeline {name} --project {self.project}` "
                    f"(a worker image that cannot be pulled keeps a job starting) and "
                    f"{self._logs(name, commit)}")
            time.sleep(poll)
        if info.state != pps.JobState.JOB_SUCCESS:
            raise CDLError(
                f"Pachyderm job {commit} of pipeline {self.project}/{name} ended "
                f"{pps.JobState(info.state).name}: {info.reason or 'no reason given'}",
                f"read the worker's output: {self._logs(name, commit)}")
        with self._rpc(f"wait for commit {name}@{commit}"):
            self.client.pfs.inspect_commit(commit=self._commit(name, commit),
                                           wait=pfs.CommitState.FINISHED)

    def read_validated(self, usecase: str, commit: str) -> ValidatedVersion:
        """The manifest and the quarantine list the validation wrote for ``commit``."""
        out = self._commit(validate_pipeline_name(usecase), commit)
        return ValidatedVersion(commit, Manifest.from_json(self._read(out, MANIFEST).decode()),
                                json.loads(self._read(out, QUARANTINE_LIST)))

    def download(self, repo: str, commit: str, folder: str, dest: Path) -> list[Path]:
        """Copy the files under ``/<folder>/`` of ``repo@commit`` into ``dest``, e.g. the
        validated files (``data``) of an output commit; returns the files written."""
        at = self._commit(repo, commit)
        root = PurePosixPath("/", folder)
        with self._rpc(f"list {root} of {repo}@{commit}"):
            paths = [info.file.path for info in self.client.pfs.walk_file(
                file=pfs.File(commit=at, path=str(root)))
                if info.file_type == pfs.FileType.FILE]
        written = []
        for path in paths:
            relative = PurePosixPath(path).relative_to(root)
            if ".." in relative.parts:
                raise CDLError(f"{repo}@{commit} holds a path outside {root}: {path}",
                               "rewrite that commit without the path")
            target = dest.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self._read(at, path))
            written.append(target)
        return written

    def _put(self, repo: str, prefix: str, folder: Path, description: str) -> str:
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not files:
            raise CDLError(f"{folder} holds no files to commit to {repo}",
                           "pass the folder that holds them")
        branch = pfs.Branch(repo=self._repo(repo), name=BRANCH)
        with self._rpc(f"start a commit on {repo}@{BRANCH}"):
            commit = self.client.pfs.start_commit(branch=branch, description=description)
        try:
            with self._rpc(f"write {len(files)} files to {repo}@{commit.id}"):
                self.client.pfs.modify_file(_writes(commit, prefix, folder, files))
        except CDLError as exc:
            # Finished with an error, a half-written version is marked failed: no job runs on it
            with suppress(CDLError), self._rpc(f"finish commit {repo}@{commit.id}"):
                self.client.pfs.finish_commit(commit=commit, error=exc.problem)
            raise
        with self._rpc(f"finish commit {repo}@{commit.id}"):
            self.client.pfs.finish_commit(commit=commit)
        return str(commit.id)

    def _job(self, job: pps.Job) -> pps.JobInfo | None:
        with self._rpc(f"inspect job {job.id}"):
            try:
                return self.client.pps.inspect_job(job=job)
            except grpc.RpcError as exc:
                if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None  # the pipeline has not made it yet
                raise

    def _read(self, commit: pfs.Commit, path: str) -> bytes:
        with self._rpc(f"read {path} of {commit.repo.name}@{commit.id}"):
            return b"".join(chunk.value for chunk in self.client.pfs.get_file(
                file=pfs.File(commit=commit, path=str(PurePosixPath("/", path)))))

    def _repo(self, name: str) -> pfs.Repo:
        return pfs.Repo(name=name, project=pfs.Project(name=self.project))  # type: "user"

    def _commit(self, repo: str, commit: str) -> pfs.Commit:
        return pfs.Commit(repo=self._repo(repo), id=commit)

    def _logs(self, pipeline: str, job: str) -> str:
        return f"`pachctl logs --project {self.project} --pipeline {pipeline} --job {job}`"

    def _unreachable(self, reason: str) -> CDLError:
        return CDLError(f"pachd at {self.address} is unreachable ({reason})",
                        f"check the address and that pachd runs (`kubectl -n {NAMESPACE} get pods "
                        "-l app=pachd`); from outside the cluster run `pachctl port-forward` "
                        "and pass grpc://localhost:30650")

    @contextmanager
    def _rpc(self, what: str) -> Iterator[None]:
        try:
            yield
        except ConnectionError as exc:  # how the SDK reports an unreachable pachd on some calls
            raise self._unreachable(str(exc).strip()) from exc
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            if code == grpc.StatusCode.UNAVAILABLE:
                raise self._unreachable(details) from exc
            if code in _DENIED:
                raise CDLError(f"pachd at {self.address} refused to {what}: {details}",
                               f"pass the token of a user with access to project {self.project} "
                               "(as a cluster admin: `pachctl auth get-robot-token cdl`)") from exc
            raise CDLError(f"pachd at {self.address} could not {what}: "
                           f"{code.name if code else 'error'}: {details}",
                           f"see pachd's log: `kubectl -n {NAMESPACE} logs deploy/pachd`") from exc


def _writes(commit: pfs.Commit, prefix: str, folder: Path,
            files: list[Path]) -> Iterator[pfs.ModifyFileRequest]:
    """One ModifyFile stream: the commit, the prefix emptied (a path ending in "/" deletes a
    directory), then each file in chunks (consecutive adds of a path append)."""
    yield pfs.ModifyFileRequest(set_commit=commit)
    yield pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=prefix))
    for path in files:
        target = prefix + path.relative_to(folder).as_posix()
        with path.open("rb") as source:
            while True:
                chunk = source.read(BUFFER_SIZE)
                yield pfs.ModifyFileRequest(add_file=pfs.AddFile(path=target, raw=chunk))
                if len(chunk) < BUFFER_SIZE:
                    break
