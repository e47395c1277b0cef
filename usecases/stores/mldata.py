"""ML Data: raw files stored once by content, and immutable dataset versions over them.

The interface the data pipeline uses is :class:`MLData`. Its local side, :class:`LocalMLData`,
is a folder under ``CDL_HOME/mldata`` (``objects/`` holds every file once, named by its
sha256; ``versions/<id>/manifest.json`` lists what a version contains) plus the version's row
and its quarantine list in PostgreSQL. On a cluster the same interface is a Pachyderm 2.11 input
repo per use case: ``put`` is a file in an open commit, a version is a commit (its id is the
lineage key the label tables carry), the manifest a file in it, and the rows go to the cluster's
PostgreSQL as here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from psycopg.types.json import Jsonb

from usecases.errors import CDLError
from usecases.state import atomic_write
from usecases.stores.database import Database

if TYPE_CHECKING:
    from usecases.workflow.usecase import DataOptions, UseCase

Status = Literal["valid", "quarantined", "metadata"]
_FIX_CORRUPT = ("run `cdl db check --repair` (it drops the damaged version), then `cdl demo` "
                "to ingest the raw data again")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Entry:
    """One file of a dataset version, with what the validation decided about it."""

    item_id: str
    path: str
    sha256: str
    size: int
    label: str | None
    status: Status
    reason: str | None = None
    split: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Counts:
    """A dataset version's size in items (articles, images): the one meaning of "counts" that
    the report, the manifest and the ``dataset_versions`` row share. A quarantined file counts
    as one ingested item, since what it holds cannot be read."""

    ingested: int
    valid: int
    quarantined: int
    train: int
    test: int

    @classmethod
    def of(cls, quarantined: int, splits: Iterable[str]) -> Counts:
        """From the number of quarantined files and the split of every valid item."""
        listed = list(splits)
        return cls(ingested=len(listed) + quarantined, valid=len(listed),
                   quarantined=quarantined, train=listed.count("train"),
                   test=listed.count("test"))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, stored: dict[str, int] | None) -> Counts | None:
        """Counts as stored; None for what was written before counts meant items (file
        counts, with other keys)."""
        if stored is None or set(stored) != set(cls.__dataclass_fields__):
            return None
        return cls(**stored)


@dataclass
class Manifest:
    version: str
    usecase: str
    source: str
    rules: dict[str, Any]
    entries: list[Entry]
    counts: Counts | None = None  # in items; set once the use case has read the version

    def files(self) -> dict[str, int]:
        """How many files the version holds, by status (not items: one Fashion-MNIST IDX file
        holds 60,000 images)."""
        return {status: sum(e.status == status for e in self.entries)
                for status in ("valid", "quarantined", "metadata")}

    @property
    def quarantined(self) -> list[Entry]:
        return [e for e in self.entries if e.status == "quarantined"]

    def split(self, name: str) -> list[Entry]:
        return [e for e in self.entries if e.split == name]

    def to_json(self) -> str:
        body = {
            "version": self.version,
            "usecase": self.usecase,
            "source": self.source,
            "rules": self.rules,
            "files": self.files(),
            "counts": self.counts.as_dict() if self.counts else None,
            "entries": [asdict(e) for e in self.entries],
        }
        return json.dumps(body, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        body = json.loads(text)
        return cls(
            version=body["version"],
            usecase=body["usecase"],
            source=body["source"],
            rules=body["rules"],
            entries=[Entry(**e) for e in body["entries"]],
            counts=Counts.from_dict(body.get("counts")),
        )


SCORING_SAMPLE = "scoring-sample"  # ``notes["kind"]`` of a served input labeled as feedback


def is_sample(entry: Entry) -> bool:
    return entry.notes.get("kind") == SCORING_SAMPLE


def version_id(usecase: str, files: Iterable[tuple[str, str, int]], rules: dict[str, Any]) -> str:
    """Derive a version id from content: (path, sha256, size) of every file plus the rules
    that decided validity and the split. Same files and rules, same id; one byte changed, new id."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"usecase": usecase, "rules": rules}, sort_keys=True).encode())
    for path, sha, size in sorted(files):
        digest.update(f"\n{path}\0{sha}\0{size}".encode())
    return f"{usecase}-{digest.hexdigest()[:16]}"


class MLData(Protocol):
    """Raw files by content and the dataset versions over them. Hashable: readers cache
    decoded objects per store."""

    def __hash__(self) -> int: ...

    def put(self, data: bytes) -> str:
        """Store a file's bytes (once); return its sha256."""

    def get(self, sha: str) -> bytes:
        """A stored file's bytes, checked against its sha256."""

    def has(self, version: str) -> bool: ...

    def load(self, version: str) -> Manifest: ...

    def commit(self, manifest: Manifest) -> str:
        """Make a version durable: its manifest, its row with its counts and its quarantine
        list. Committing the same version again updates its counts. Returns where the manifest
        lives."""

    def version_dir(self, version: str) -> Path:
        """Where files that belong to a version (label exports) are kept."""

    def versions(self) -> dict[str, Counts | None]:
        """Every recorded version with the counts in its row."""

    def drop(self, version: str) -> None:
        """Forget a version whose manifest is lost or damaged (repair), keeping its objects."""


def record_version(db: Database, manifest: Manifest, where: str) -> None:
    """A committed version's row (with its counts; updated when committed again) and its
    quarantine list, in the database the label tables refer to; ``where`` is where its
    manifest lives (a file here, a Pachyderm commit on a cluster)."""
    if manifest.counts is None:
        raise ValueError("a manifest is committed with its item counts")
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO dataset_versions (id, usecase, source, counts, manifest_path)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET counts = EXCLUDED.counts",
            (manifest.version, manifest.usecase, manifest.source,
             Jsonb(manifest.counts.as_dict()), where),
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO quarantine (dataset_version, path, sha256, reason)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                [(manifest.version, e.path, e.sha256, e.reason)
                 for e in manifest.quarantined],
            )


@runtime_checkable
class ValidatingMLData(MLData, Protocol):
    """ML Data whose own pipeline collects, validates and versions a raw folder (Pachyderm's
    on a cluster) instead of taking the files one by one from the workflow, as the local
    store does."""

    def ingest(self, usecase: UseCase, options: DataOptions, seed: int) -> Manifest:
        """The version of ``options.folder``, validated and split (``seed``) by the store's
        pipeline, its files readable here; not yet committed (no counts)."""


class LocalMLData:
    def __init__(self, root: Path, db: Database) -> None:
        self.root = root
        self.db = db
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "versions").mkdir(parents=True, exist_ok=True)

    def object_path(self, sha: str) -> Path:
        return self.root / "objects" / sha[:2] / sha[2:]

    def put(self, data: bytes) -> str:
        sha = sha256_bytes(data)
        target = self.object_path(sha)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            atomic_write(target, data)
        return sha

    def get(self, sha: str) -> bytes:
        path = self.object_path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CDLError(f"ML Data object {sha[:12]} is missing from {self.root}",
                           _FIX_CORRUPT) from None
        if sha256_bytes(data) != sha:
            raise CDLError(f"ML Data object {path} is corrupt (checksum mismatch)",
                           _FIX_CORRUPT)
        return data

    def manifest_path(self, version: str) -> Path:
        return self.root / "versions" / version / "manifest.json"

    def has(self, version: str) -> bool:
        return self.manifest_path(version).exists()

    def load(self, version: str) -> Manifest:
        path = self.manifest_path(version)
        try:
            return Manifest.from_json(path.read_text())
        except FileNotFoundError:
            raise CDLError(f"dataset version {version} has no manifest in {self.root}",
                           _FIX_CORRUPT) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CDLError(f"manifest {path} is damaged ({type(exc).__name__})",
                           _FIX_CORRUPT) from None

    def commit(self, manifest: Manifest) -> str:
        if manifest.counts is None:
            raise ValueError("a manifest is committed with its item counts")
        path = self.manifest_path(manifest.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, manifest.to_json())
        record_version(self.db, manifest, str(path))
        return str(path)

    def version_dir(self, version: str) -> Path:
        return self.manifest_path(version).parent

    def versions(self) -> dict[str, Counts | None]:
        with self.db.connect() as conn:
            rows = conn.execute("SELECT id, counts FROM dataset_versions").fetchall()
        return {vid: Counts.from_dict(counts) for vid, counts in rows}

    def drop(self, version: str) -> None:
        with self.db.connect() as conn:
            for table in ("train_labels", "test_labels", "label_exports", "label_imports",
                          "quarantine"):
                conn.execute(f"DELETE FROM {table} WHERE dataset_version = %s",
                             (version,))
            conn.execute("DELETE FROM dataset_versions WHERE id = %s"
                         " AND NOT EXISTS (SELECT 1 FROM model_versions m"
                         " WHERE m.dataset_version = %s)", (version, version))
