"""Labels: the label tables per split, every export that set them, and the exports themselves.

The interface the Labeling step and the model pipeline use is :class:`Labels`. Its local side,
:class:`LocalLabels`, keeps the rows in the project's PostgreSQL (``train_labels``,
``test_labels``, ``label_exports``, and ``label_imports`` for the tasks a version has in Label
Studio) and each split's exported tasks, gzipped, beside the dataset version's manifest. On a
cluster the rows live in the same tables of the cluster's PostgreSQL
(CloudNativePG), and the exports go to the dataset version's Pachyderm commit (or S3) instead of
the local version folder; Label Studio itself is reached through ``stores.labelstudio`` in both.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from usecases.errors import CDLError
from usecases.state import atomic_write
from usecases.stores.database import Database

SPLITS = ("train", "test")
DATASET_LABELER = "cdl-dataset-labels"  # who a pre-annotation's label comes from


@dataclass(frozen=True)
class Row:
    """One labeled item as the label tables hold it."""

    item_id: str
    path: str
    label: str
    labeler: str
    labeled_at: str

    @property
    def by_a_person(self) -> bool:
        return self.labeler != DATASET_LABELER


@dataclass(frozen=True)
class Export:
    """Where a split's labels came from: Label Studio at a URL and project, or the direct
    path (no URL, no project)."""

    tool: str
    tasks: int
    annotations: int
    url: str | None = None
    project: int | None = None
    listed_at: str | None = None  # when Label Studio was asked for its changed tasks


@dataclass
class ExportSummary:
    """What the Labeling step reports for a dataset version, both splits together."""

    tool: str
    url: str | None
    tasks: int = 0  # tasks of the version's items in Label Studio (or in the direct export)
    annotations: int = 0  # annotations this export read
    exported: int = 0  # label rows this export wrote
    labels: int = 0  # label rows in force for the version
    imported: int = 0  # tasks imported by this run (so far, when importing in the background)
    by_people: int = 0  # label rows in force set by people
    importing: int = 0  # tasks still being imported in the background
    projects: dict[str, int] = field(default_factory=dict)
    reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportRecord:
    """One recorded export of a split's labels (the ``label_exports`` row): lineage."""

    split: str
    tool: str
    url: str | None
    project: int | None
    tasks: int
    annotations: int
    exported: int
    by_people: int
    exported_at: str


def _split(split: str) -> str:
    if split not in SPLITS:
        raise CDLError(f"unknown split {split!r}", f"use one of: {', '.join(SPLITS)}")
    return split


class Labels(Protocol):
    def count(self, version: str, split: str) -> int:
        """Labels stored for a split of a dataset version."""

    def replace(self, version: str, usecase: str, split: str, rows: list[Row],
                export: Export | None = None) -> None:
        """The split's labels for the version become ``rows`` and the export that made them is
        recorded, atomically: a failed write leaves what was stored before."""

    def merge(self, version: str, usecase: str, split: str, rows: list[Row],
              export: Export) -> None:
        """The labels of the rows' items become ``rows``, the others stay; the export is
        recorded; atomically."""

    def by_people(self, version: str, split: str) -> int:
        """Labels in force for a split that people set."""

    def listed_at(self, version: str, split: str, tool: str) -> str | None:
        """When the newest export through ``tool`` began listing changed tasks: the next one
        asks for tasks changed since then."""

    def record_import(self, version: str, usecase: str, split: str, project: int,
                      tasks: int) -> None:
        """Every task of the split's items is in the Label Studio project."""

    def imported(self, version: str, split: str) -> int | None:
        """The project holding all the split's tasks, None until their import is complete."""

    def projects_exist(self, usecase: str) -> bool:
        """Whether tasks of the use case were ever imported into Label Studio (people may have
        labeled there)."""

    def load(self, version: str, split: str) -> dict[str, str]:
        """item_id -> label, as the model pipeline reads them."""

    def last_export(self, version: str, tool: str) -> ExportSummary | None:
        """The newest export through ``tool`` for both splits, summed; None unless both
        splits have one."""

    def exports(self, version: str) -> list[ExportRecord]:
        """Every export recorded for the version, oldest first."""

    def keep(self, version: str, split: str, tasks: list[dict[str, Any]]) -> None:
        """Keep a split's exported tasks (Label Studio's JSON format)."""

    def kept(self, version: str, split: str) -> list[dict[str, Any]] | None:
        """The kept export of a split, None when there is none."""


class LocalLabels:
    def __init__(self, db: Database, versions_root: Path) -> None:
        self.db = db
        self.versions_root = versions_root  # ML Data's versions/ folder

    def export_path(self, version: str, split: str) -> Path:
        return self.versions_root / version / f"labels-{_split(split)}.json.gz"

    def count(self, version: str, split: str) -> int:
        with self.db.connect() as conn:
            row = conn.execute(f"SELECT count(*) FROM {_split(split)}_labels"
                               " WHERE dataset_version = %s", (version,)).fetchone()
        return int(row[0]) if row else 0

    def replace(self, version: str, usecase: str, split: str, rows: list[Row],
                export: Export | None = None) -> None:
        self._write(version, usecase, split, rows, export, whole_split=True)

    def merge(self, version: str, usecase: str, split: str, rows: list[Row],
              export: Export) -> None:
        self._write(version, usecase, split, rows, export, whole_split=False)

    def _write(self, version: str, usecase: str, split: str, rows: list[Row],
               export: Export | None, whole_split: bool) -> None:
        table = f"{_split(split)}_labels"
        with self.db.connect() as conn:
            if whole_split:
                conn.execute(f"DELETE FROM {table} WHERE dataset_version = %s", (version,))
            elif rows:
                conn.execute(f"DELETE FROM {table} WHERE dataset_version = %s"
                             " AND item_id = ANY(%s)", (version, [r.item_id for r in rows]))
            with conn.cursor().copy(
                    f"COPY {table} (usecase, dataset_version, item_id, file_path, label,"
                    " creator, created_at) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((usecase, version, row.item_id, row.path, row.label,
                                    row.labeler, row.labeled_at))
            if export is not None:
                conn.execute(
                    "INSERT INTO label_exports (dataset_version, split, tool, url, project,"
                    " tasks, annotations, exported, by_people, listed_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s,"
                    f" (SELECT count(*) FROM {table} WHERE dataset_version = %s"
                    "   AND creator <> %s), %s)",
                    (version, split, export.tool, export.url, export.project, export.tasks,
                     export.annotations, len(rows), version, DATASET_LABELER,
                     export.listed_at))

    def by_people(self, version: str, split: str) -> int:
        with self.db.connect() as conn:
            row = conn.execute(f"SELECT count(*) FROM {_split(split)}_labels"
                               " WHERE dataset_version = %s AND creator <> %s",
                               (version, DATASET_LABELER)).fetchone()
        return int(row[0]) if row else 0

    def listed_at(self, version: str, split: str, tool: str) -> str | None:
        with self.db.connect() as conn:
            row = conn.execute(
                "SELECT listed_at FROM label_exports WHERE dataset_version = %s AND split = %s"
                " AND tool = %s AND listed_at IS NOT NULL ORDER BY listed_at DESC LIMIT 1",
                (version, _split(split), tool)).fetchone()
        return row[0].isoformat() if row else None

    def record_import(self, version: str, usecase: str, split: str, project: int,
                      tasks: int) -> None:
        with self.db.connect() as conn:
            conn.execute(
                "INSERT INTO label_imports (dataset_version, split, usecase, project, tasks)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (dataset_version, split) DO UPDATE"
                " SET project = EXCLUDED.project, tasks = EXCLUDED.tasks, finished_at = now()",
                (version, _split(split), usecase, project, tasks))

    def imported(self, version: str, split: str) -> int | None:
        with self.db.connect() as conn:
            row = conn.execute("SELECT project FROM label_imports WHERE dataset_version = %s"
                               " AND split = %s", (version, _split(split))).fetchone()
        return int(row[0]) if row else None

    def projects_exist(self, usecase: str) -> bool:
        with self.db.connect() as conn:
            return conn.execute(
                "SELECT EXISTS (SELECT 1 FROM label_imports WHERE usecase = %s) OR EXISTS"
                " (SELECT 1 FROM label_exports e JOIN dataset_versions v"
                "  ON v.id = e.dataset_version WHERE v.usecase = %s AND e.project IS NOT NULL)",
                (usecase, usecase)).fetchone() == (True,)

    def load(self, version: str, split: str) -> dict[str, str]:
        with self.db.connect() as conn:
            rows = conn.execute(
                f"SELECT item_id, label FROM {_split(split)}_labels"
                " WHERE dataset_version = %s ORDER BY id", (version,)).fetchall()
        return {item_id: label for item_id, label in rows}

    def last_export(self, version: str, tool: str) -> ExportSummary | None:
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (split) split, url, project, tasks, annotations, exported,"
                " by_people FROM label_exports WHERE dataset_version = %s AND tool = %s"
                " ORDER BY split, exported_at DESC, id DESC", (version, tool)).fetchall()
        if len(rows) != len(SPLITS):
            return None
        return ExportSummary(
            tool=tool, url=rows[0][1], projects={r[0]: r[2] for r in rows},
            tasks=sum(r[3] for r in rows), annotations=sum(r[4] for r in rows),
            exported=sum(r[5] for r in rows), by_people=sum(r[6] for r in rows),
            labels=sum(self.count(version, split) for split in SPLITS), reused=True)

    def exports(self, version: str) -> list[ExportRecord]:
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT split, tool, url, project, tasks, annotations, exported, by_people,"
                " exported_at FROM label_exports WHERE dataset_version = %s"
                " ORDER BY exported_at, id", (version,)).fetchall()
        return [ExportRecord(split, tool, url, project, tasks, annotations, exported, by_people,
                             at.isoformat())
                for split, tool, url, project, tasks, annotations, exported, by_people, at
                in rows]

    def keep(self, version: str, split: str, tasks: list[dict[str, Any]]) -> None:
        # Without inline data URLs (the item's path and content hash name what was labeled;
        # the image itself is in ML Data), compressed: Label Studio's export of the 60k
        # Fashion-MNIST training images is 69 MB of JSON even so, 4.8 MB gzipped.
        kept = [{**t, "data": {k: v for k, v in t["data"].items()
                               if not (isinstance(v, str) and v.startswith("data:"))}}
                for t in tasks]
        path = self.export_path(version, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, gzip.compress(json.dumps(kept).encode(), compresslevel=6))

    def kept(self, version: str, split: str) -> list[dict[str, Any]] | None:
        path = self.export_path(version, split)
        if not path.exists():
            return None
        try:
            with gzip.open(path, "rt", encoding="utf-8") as kept:
                tasks: list[dict[str, Any]] = json.load(kept)
        except (OSError, EOFError, ValueError) as exc:
            raise CDLError(f"label export {path} is damaged ({type(exc).__name__})",
                           f"delete {path}; the next `cdl demo` exports the labels again"
                           ) from None
        return tasks
