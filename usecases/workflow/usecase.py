"""What a use case plugs into the workflow. The steps themselves are written once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from usecases.stores.mldata import Entry, MLDataStore
from usecases.workflow.data import Candidate


@dataclass
class DataOptions:
    """User-settable knobs of the data pipeline (CLI flags)."""

    folder: Path
    max_bytes: int
    min_chars: int
    vocab: Path | None = None  # BBC: defaults to the dataset's own bbc.vocab


class UseCase(Protocol):
    name: str
    model_name: str
    model_dir: Path  # Determined model definition: trial + experiment YAMLs
    label_to_name: str  # Label Studio object tag the labels annotate

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def trial_class(self) -> type: ...

    def default_data(self) -> Path: ...

    def scan(self, options: DataOptions) -> tuple[list[Candidate], dict[str, Any]]:
        """Collect the raw folder: every file with its label and verdict; the rules used."""

    def task_data(self, entry: Entry, store: MLDataStore) -> dict[str, Any]:
        """The ``data`` of the item's Label Studio task."""

    def featurize(self, entries: list[Entry], store: MLDataStore,
                  options: DataOptions) -> tuple[np.ndarray, dict[str, Any]]:
        """Model inputs for the entries (one row each) and what identifies the transformation."""

    def export(self, checkpoint: Path, hparams: dict[str, Any], features: Path,
               folder: Path) -> None:
        """Write a registered version's serving artifacts from a Determined checkpoint."""

    def predict(self, artifact: Path, inputs: np.ndarray) -> np.ndarray:
        """Class indices predicted by a registered version's artifacts."""
