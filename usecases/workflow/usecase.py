"""What a use case plugs into the workflow. The steps themselves are written once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from usecases.stores.mldata import Manifest, MLData, Status, is_sample

History = list[dict[str, float]]
# (epoch, validation metrics) -> True to stop the trial early (ASHA pruning)
OnValidation = Callable[[int, dict[str, float]], bool]


@dataclass
class Candidate:
    """A raw file as collected, with the use case's verdict on it."""

    item_id: str
    path: str
    data: bytes
    label: str | None
    status: Status
    reason: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataOptions:
    """User-settable knobs of the data pipeline (CLI flags)."""

    folder: Path
    max_bytes: int
    min_chars: int
    vocab: Path | None = None  # BBC: defaults to the dataset's own bbc.vocab


@dataclass(frozen=True)
class Item:
    """One labelled example of a dataset version (an article, an image)."""

    item_id: str
    path: str  # where it lives in the raw data (a file, or file#index)
    label: str
    split: str  # "train" | "test"
    group: str  # items of one group (exact duplicates) are kept in one split
    content: str  # hash of the item's content: tells a changed item from its earlier task
    source: str  # how the use case finds its content in the ML Data store
    # who set the label and when, for a label that is not the dataset's own (a served input
    # labeled through Model Maintenance's feedback)
    labeled_by: str | None = None
    labeled_at: str | None = None


def sample_items(manifest: Manifest) -> list[Item]:
    """The labeled served inputs Model Maintenance added to a version (``SCORING_SAMPLE``
    entries): each entry's object holds one input as it was served (an article's text, an
    image's 28x28 pixels), so its content hash is its source."""
    return [Item(e.item_id, e.path, str(e.label), str(e.split), group=e.sha256,
                 content=e.sha256, source=e.sha256, labeled_by=e.notes.get("labeler"),
                 labeled_at=e.notes.get("labeled_at"))
            for e in manifest.entries if e.status == "valid" and is_sample(e)]


class UseCase(Protocol):
    name: str
    model_name: str
    model_dir: Path  # Determined model definition: trial code + experiment YAMLs
    label_to_name: str  # Label Studio object tag the labels annotate
    # True: the labels make Label Studio's round trip (pre-annotations converted, exported);
    # False: the dataset's labels are the baseline and only people's labels come back
    labels_round_trip: bool
    validation_fraction: float  # of the training split, held out for the search

    @property
    def classes(self) -> tuple[str, ...]: ...

    def default_data(self) -> Path: ...

    def scan(self, options: DataOptions) -> tuple[list[Candidate], dict[str, Any]]:
        """Collect the raw folder: every file with its verdict; the rules used."""

    def needs_split(self) -> bool:
        """True when the workflow draws the train/test split; False for an official one."""

    def items(self, manifest: Manifest, store: MLData) -> list[Item]:
        """The labelled examples of a version, with their train/test split."""

    def task_data(self, item: Item, store: MLData, media: Path | None) -> dict[str, Any]:
        """The ``data`` of the item's Label Studio task; files it names go in ``media``, the
        folder Label Studio serves them from (None: inline)."""

    def featurize(self, items: list[Item], store: MLData,
                  options: DataOptions) -> tuple[np.ndarray, dict[str, Any]]:
        """Model inputs for the items (one row each) and what identifies the transformation."""

    def train(self, config: dict[str, Any], hparams: dict[str, Any], epochs: int,
              checkpoint_root: Path, on_validation: OnValidation | None) -> tuple[History,
                                                                                  Path | None]:
        """One Determined trial; returns validation history and final checkpoint (None if
        stopped early)."""

    def export(self, checkpoint: Path, hparams: dict[str, Any], features: Path,
               folder: Path) -> None:
        """Write a registered version's serving artifacts from a Determined checkpoint."""

    def predict(self, artifact: Path, inputs: np.ndarray) -> np.ndarray:
        """Class indices predicted by a registered version's artifacts."""

    @property
    def runtime(self) -> str:
        """The MLServer runtime class inside the ``cdl_serving`` package (``module.Class``)."""

    def payload(self, items: list[Item], store: MLData) -> dict[str, Any]:
        """A V2 inference request carrying the items' raw inputs (text, pixels)."""

    def served_inputs(self, items: list[Item], store: MLData) -> list[str] | list[bytes]:
        """The items' inputs as Scoring Data keeps a served one (an article's text, an
        image's raw pixels)."""

    def input_signals(self, artifact: Path, inputs: Sequence[str | bytes]
                      ) -> dict[str, np.ndarray]:
        """Label-free signals of each input (one value per input, per signal) whose
        distributions input drift compares; ``artifact``: the served version's folder."""

    def compress(self, artifacts: Path, out: Path) -> None:
        """Write a compressed copy of the serving artifacts to ``out``."""
