"""ML Data: a content-addressed store of raw files and immutable dataset versions.

Locally this is a folder under ``CDL_HOME/mldata``: ``objects/`` holds every file once, named by
its sha256; ``versions/<id>/manifest.json`` lists what a version contains. On a cluster the same
role is played by a Pachyderm repo (a later adapter); the workflow only uses this interface.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["valid", "quarantined", "metadata"]


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


@dataclass
class Manifest:
    version: str
    usecase: str
    source: str
    rules: dict[str, Any]
    entries: list[Entry]

    def counts(self) -> dict[str, int]:
        valid = sum(e.status == "valid" for e in self.entries)
        quarantined = sum(e.status == "quarantined" for e in self.entries)
        return {
            "ingested": valid + quarantined,
            "valid": valid,
            "quarantined": quarantined,
            "train": sum(e.split == "train" for e in self.entries),
            "test": sum(e.split == "test" for e in self.entries),
            "metadata": sum(e.status == "metadata" for e in self.entries),
        }

    def split(self, name: str) -> list[Entry]:
        return [e for e in self.entries if e.split == name]

    def to_json(self) -> str:
        body = {
            "version": self.version,
            "usecase": self.usecase,
            "source": self.source,
            "rules": self.rules,
            "counts": self.counts(),
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
        )


def version_id(usecase: str, files: Iterable[tuple[str, str, int]], rules: dict[str, Any]) -> str:
    """Derive a version id from content: (path, sha256, size) of every file plus the rules
    that decided validity and the split. Same files and rules, same id; one byte changed, new id."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"usecase": usecase, "rules": rules}, sort_keys=True).encode())
    for path, sha, size in sorted(files):
        digest.update(f"\n{path}\0{sha}\0{size}".encode())
    return f"{usecase}-{digest.hexdigest()[:16]}"


class MLDataStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "versions").mkdir(parents=True, exist_ok=True)

    def object_path(self, sha: str) -> Path:
        return self.root / "objects" / sha[:2] / sha[2:]

    def put(self, data: bytes) -> str:
        sha = sha256_bytes(data)
        target = self.object_path(sha)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            _atomic_write(target, data)
        return sha

    def get(self, sha: str) -> bytes:
        data = self.object_path(sha).read_bytes()
        if sha256_bytes(data) != sha:
            raise ValueError(f"object {sha} in {self.root} is corrupt")
        return data

    def manifest_path(self, version: str) -> Path:
        return self.root / "versions" / version / "manifest.json"

    def has(self, version: str) -> bool:
        return self.manifest_path(version).exists()

    def load(self, version: str) -> Manifest:
        return Manifest.from_json(self.manifest_path(version).read_text())

    def save(self, manifest: Manifest) -> Path:
        path = self.manifest_path(manifest.version)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, manifest.to_json().encode())
        return path

    def version_dir(self, version: str) -> Path:
        return self.manifest_path(version).parent


def _atomic_write(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, target)
