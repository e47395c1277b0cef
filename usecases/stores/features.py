"""Transformation Registry: model inputs derived from a dataset version, kept by what made them.

The interface the data pipeline uses is :class:`FeatureCache`: a folder per key, written whole
or not at all. Its local side, :class:`LocalFeatureCache`, keeps them under
``CDL_HOME/transforms/<usecase>-<key>``. On a cluster it is a Pachyderm repo for the features
(one commit per key, written by the transformation pipeline); a trial reads the folder the
same way from ``/pfs`` or a downloaded copy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from usecases.state import staged_dir

DONE = "done"  # written last: folders from before writes were staged have it when complete


class FeatureCache(Protocol):
    def get(self, name: str) -> Path | None:
        """The complete folder for ``name`` (``<usecase>-<key>``), None if not built yet."""

    def build(self, name: str, write: Callable[[Path], None]) -> Path:
        """Run ``write(folder)`` into a fresh folder and publish it as ``name`` in one step."""

    def reference(self, folder: Path) -> str:
        """Where a trial reads the features of ``folder`` (a folder ``get`` or ``build``
        returned): the folder itself here; ``pfs://<repo>@<commit>/<name>`` on a cluster."""


class LocalFeatureCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, name: str) -> Path | None:
        folder = self.root / name
        return folder if (folder / DONE).exists() else None

    def build(self, name: str, write: Callable[[Path], None]) -> Path:
        folder = self.root / name
        with staged_dir(folder) as staging:
            write(staging)
            (staging / DONE).touch()
        return folder

    def reference(self, folder: Path) -> str:
        return str(folder)
