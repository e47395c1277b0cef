"""The data pipeline's ingest on a cluster (#13): the raw folder becomes a commit of the use
case's Pachyderm input repo, the validation pipeline (``usecases.cluster.worker``) decides each
file's fate in a job on that commit, and the validated files come back to this machine, where
:class:`ValidatedFolder` serves them to the workflow as the ML Data store of that version.

The download is cached under ``<cache>/<usecase>/<version>/data``, keyed by the version id
rather than the commit: the id is derived from every file's content and the rules, so it fixes
what ``data/`` holds, and ingesting the same folder again (a new commit, since Pachyderm makes
one per put) reuses the files already here. Each read is still checked against its sha256.

:class:`PachydermMLData` is the ML Data store of a cluster run over these: it ingests through
the pipeline and reads each version it ingested. :class:`PachydermFeatures` is the
Transformation Registry's side: a features folder committed to the features repo.
"""

from __future__ import annotations

from pathlib import Path

from usecases import defaults
from usecases.cluster.pipelines import (
    RAW_INPUT,
    features_repo,
    validate_pipeline,
    validate_pipeline_name,
)
from usecases.cluster.worker import DATA
from usecases.errors import CDLError
from usecases.state import staged_dir
from usecases.stores.database import Database
from usecases.stores.features import LocalFeatureCache
from usecases.stores.mldata import Counts, Manifest, record_version, sha256_bytes
from usecases.stores.pachyderm import Pachyderm
from usecases.workflow.training import format_features_reference
from usecases.workflow.usecase import DataOptions, UseCase

# How long the validation job may take (a few thousand small files: a minute, once the
# worker's image is pulled).
VALIDATE_TIMEOUT = 900.0


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

    @property
    def shas(self) -> set[str]:
        return set(self._paths)

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
        raise _written_by_pachyderm("add a file")

    def drop(self, version: str) -> None:
        raise _written_by_pachyderm(f"drop version {version}")

    def _check(self, version: str) -> None:
        if not self.has(version):
            raise CDLError(f"{self.at} holds version {self.manifest.version}, not {version}",
                           "ingest the raw folder of that version")


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


class PachydermMLData:
    """ML Data on a cluster (``stores.mldata.ValidatingMLData``): each ingest is a commit of
    the use case's input repo, validated by the pipeline's worker in ``image``; the validated
    versions of this run are read from their downloads under ``cache``, and each committed
    version gets its row (counts, quarantine list) in the cluster's database, which the label
    tables refer to."""

    def __init__(self, pachyderm: Pachyderm, db: Database, image: str, cache: Path,
                 timeout: float = VALIDATE_TIMEOUT) -> None:
        self.pachyderm = pachyderm
        self.db = db
        self.image = image
        self.cache = cache
        self.timeout = timeout
        self.folders: dict[str, ValidatedFolder] = {}  # by version id

    def ingest(self, usecase: UseCase, options: DataOptions, seed: int) -> Manifest:
        # The pipeline's worker runs with the default rules (its spec is fixed per use case).
        given = (options.max_bytes, options.min_chars, seed)
        if given != (defaults.MAX_FILE_BYTES, defaults.MIN_CHARS, defaults.SEED):
            raise CDLError("the cluster's validation pipeline applies the default rules "
                           f"(--max-bytes {defaults.MAX_FILE_BYTES}, --min-chars "
                           f"{defaults.MIN_CHARS}, seed {defaults.SEED})",
                           "leave those options at their defaults for a cluster run")
        manifest, folder, _ = ingest(self.pachyderm, usecase, options.folder, self.image,
                                     self.cache, self.timeout)
        self.folders[manifest.version] = folder
        return manifest

    def get(self, sha: str) -> bytes:
        for folder in self.folders.values():
            if sha in folder.shas:
                return folder.get(sha)
        raise CDLError(f"no validated file of this run has sha256 {sha[:12]}",
                       "ingest the version it belongs to first")

    def put(self, data: bytes) -> str:
        raise _written_by_pachyderm("add a file")

    def has(self, version: str) -> bool:
        return version in self.folders

    def load(self, version: str) -> Manifest:
        return self._folder(version).manifest

    def commit(self, manifest: Manifest) -> str:
        where = self._folder(manifest.version).commit(manifest)
        record_version(self.db, manifest, where)
        return where

    def version_dir(self, version: str) -> Path:
        return self._folder(version).root

    def versions(self) -> dict[str, Counts | None]:
        return {v: f.manifest.counts for v, f in self.folders.items()}

    def drop(self, version: str) -> None:
        raise _written_by_pachyderm(f"drop version {version}")

    def _folder(self, version: str) -> ValidatedFolder:
        if version not in self.folders:
            raise CDLError(f"dataset version {version} was not ingested by this run",
                           "ingest its raw folder through the cluster's ingest")
        return self.folders[version]


class PachydermFeatures(LocalFeatureCache):
    """The Transformation Registry on a cluster: a features folder is built here (under
    ``root``, as locally) and committed under its name to the use case's features repo the
    first time a trial needs it; the trial reads ``pfs://<repo>@<commit>/<name>``."""

    def __init__(self, pachyderm: Pachyderm, root: Path) -> None:
        super().__init__(root)
        self.pachyderm = pachyderm
        self.commits: dict[str, str] = {}  # by folder name

    def reference(self, folder: Path) -> str:
        usecase = folder.name.split("-", 1)[0]
        if folder.name not in self.commits:
            self.commits[folder.name] = self.pachyderm.put_features(usecase, folder.name,
                                                                    folder)
        return format_features_reference(features_repo(usecase), self.commits[folder.name],
                                         folder.name)


def _written_by_pachyderm(what: str) -> CDLError:
    return CDLError(f"cannot {what} in the cluster's ML Data: it is written by Pachyderm",
                    "put a new raw folder through the cluster's ingest, which commits it and "
                    "lets the validation pipeline version it")
