"""The data pipeline's ingest on a cluster (#13): the raw folder becomes a commit of the use
case's Pachyderm input repo, the validation pipeline (``usecases.cluster.worker``) decides each
file's fate in a job on that commit, and the validated files come back to this machine, where
:class:`ValidatedFolder` serves them to the workflow as the ML Data store of that version.

The download is cached under ``<cache>/<usecase>/<version>/data``, keyed by the version id
rather than the commit: the id is derived from every file's content and the rules, so it fixes
what ``data/`` holds, and ingesting the same folder again (a new commit, since Pachyderm makes
one per put) reuses the files already here. Each read is still checked against its sha256.
"""

from __future__ import annotations

from pathlib import Path

from usecases.cluster.pipelines import RAW_INPUT, validate_pipeline, validate_pipeline_name
from usecases.cluster.worker import DATA
from usecases.errors import CDLError
from usecases.state import staged_dir
from usecases.stores.mldata import Counts, Manifest, sha256_bytes
from usecases.stores.pachyderm import Pachyderm
from usecases.workflow.usecase import UseCase


class ValidatedFolder:
    """The read side of ``MLData`` over one validated version downloaded from Pachyderm: the
    files of its output commit's ``data/`` under ``root/data``, and its manifest.

    ``commit`` records the counts ``workflow.data.commit_version`` computes (the version
    itself is already durable: it is the output commit); ``put`` and ``drop`` are refused,
    since the cluster's ML Data is written by Pachyderm alone."""

    def __init__(self, root: Path, manifest: Manifest, commit: str) -> None:
        self.root = root
        self.manifest = manifest
        self.commit_id = commit
        self.at = f"{validate_pipeline_name(manifest.usecase)}@{commit}"
        self._paths = {e.sha256: e.path for e in manifest.entries if e.status != "quarantined"}

    def get(self, sha: str) -> bytes:
        fix = (f"delete {self.root} and ingest again: the version is downloaded anew "
               f"from {self.at}")
        if sha not in self._paths:
            raise CDLError(f"no validated file of {self.at} has sha256 {sha[:12]}",
                           "read the version's items from its own manifest")
        path = self.root / DATA / self._paths[sha]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CDLError(f"validated file {path} of {self.at} is missing", fix) from None
        if sha256_bytes(data) != sha:
            raise CDLError(f"validated file {path} of {self.at} is corrupt (checksum mismatch)",
                           fix)
        return data

    def has(self, version: str) -> bool:
        return version == self.manifest.version

    def load(self, version: str) -> Manifest:
        self._check(version)
        return self.manifest

    def version_dir(self, version: str) -> Path:
        self._check(version)
        return self.root

    def versions(self) -> dict[str, Counts | None]:
        return {self.manifest.version: self.manifest.counts}

    def commit(self, manifest: Manifest) -> str:
        self._check(manifest.version)
        if manifest.counts is None:
            raise ValueError("a manifest is committed with its item counts")
        self.manifest.counts = manifest.counts
        return f"pfs:{self.at}/manifest.json"

    def put(self, data: bytes) -> str:
        raise self._written_by_pachyderm("add a file")

    def drop(self, version: str) -> None:
        raise self._written_by_pachyderm(f"drop version {version}")

    def _check(self, version: str) -> None:
        if not self.has(version):
            raise CDLError(f"{self.at} holds version {self.manifest.version}, not {version}",
                           "ingest the raw folder of that version")

    def _written_by_pachyderm(self, what: str) -> CDLError:
        return CDLError(f"cannot {what} in {self.at}: the cluster's ML Data is written by "
                        "Pachyderm", "put a new raw folder through the cluster's ingest, which "
                        "commits it and lets the validation pipeline version it")


def ingest(pachyderm: Pachyderm, usecase: UseCase, folder: Path, image: str, cache: Path,
           timeout: float) -> tuple[Manifest, ValidatedFolder, str]:
    """Ingest, validate, quarantine and version ``folder`` on the cluster: the raw folder is
    one commit of the use case's input repo, validated by the pipeline's worker in ``image``.
    Returns the version's manifest (its ``source`` is ``pfs:raw@<commit>``), the store of its
    validated files, and the commit id, the version's lineage key."""
    pachyderm.ensure_repos(usecase.name)
    pachyderm.create_pipeline(validate_pipeline(usecase.name, image))
    commit = pachyderm.put_raw(usecase.name, folder)
    pachyderm.wait_validated(usecase.name, commit, timeout=timeout)
    validated = pachyderm.read_validated(usecase.name, commit)
    manifest, output = validated.manifest, f"{validate_pipeline_name(usecase.name)}@{commit}"
    fix = f"see what the worker wrote with `pachctl list file {output}`"
    if manifest.source != f"pfs:{RAW_INPUT}@{commit}":
        raise CDLError(f"the manifest of {output} names {manifest.source} as its source, "
                       f"not raw commit {commit}", fix)
    if sorted(q["path"] for q in validated.quarantine) != sorted(
            e.path for e in manifest.quarantined):
        raise CDLError(f"quarantine.json of {output} disagrees with its manifest", fix)
    root = cache / usecase.name / manifest.version
    if not (root / DATA).is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        with staged_dir(root) as staging:
            pachyderm.download(validate_pipeline_name(usecase.name), commit, DATA,
                               staging / DATA)
    return manifest, ValidatedFolder(root, manifest, commit), commit
