from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from usecases.errors import CDLError
from usecases.fmnist.idx import FILES
from usecases.fmnist.usecase import CLASSES, USECASE
from usecases.stores.local import Stores
from usecases.workflow import training
from usecases.workflow.data import version
from usecases.workflow.usecase import DataOptions

from ...rawdata import write_fmnist


def _options(folder: Path) -> DataOptions:
    return DataOptions(folder=folder, max_bytes=1, min_chars=0)


def test_scan_validates_the_four_files_and_quarantines_the_rest(tmp_path: Path) -> None:
    raw = write_fmnist(tmp_path / "raw")
    (raw / "notes.txt").write_text("x")
    candidates, _ = USECASE.scan(_options(raw))
    status = {c.path: (c.status, c.reason) for c in candidates}
    assert {p for p, (s, _) in status.items() if s == "valid"} == {
        name for pair in FILES.values() for name in pair}
    assert status["notes.txt"][0] == "quarantined"


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    raw = write_fmnist(tmp_path / "raw")
    (raw / FILES["test"][1]).unlink()
    with pytest.raises(CDLError, match="lacks t10k-labels-idx1-ubyte.gz"):
        USECASE.scan(_options(raw))


def test_a_truncated_file_stops_the_ingest(tmp_path: Path) -> None:
    raw = write_fmnist(tmp_path / "raw")
    path = raw / FILES["train"][0]
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CDLError, match="train-images-idx3-ubyte.gz"):
        USECASE.scan(_options(raw))


def test_items_keep_the_official_split_and_labels(tmp_path: Path, stores: Stores) -> None:
    raw = write_fmnist(tmp_path / "raw")
    store = stores.mldata
    candidates, rules = USECASE.scan(_options(raw))
    dataset = version(store, USECASE, raw, candidates, rules, None)
    items = dataset.items
    # counts are items (images), not the four IDX files, in the report and the database alike
    assert (dataset.counts.valid, dataset.counts.train, dataset.counts.test) == (400, 300, 100)
    assert stores.mldata.versions()[dataset.id] == dataset.counts
    assert sum(i.split == "train" for i in items) == 300
    assert sum(i.split == "test" for i in items) == 100
    assert {i.label for i in items} <= set(CLASSES)
    first = items[0]
    assert first.item_id == "train/00000" and first.path == "train-images-idx3-ubyte.gz#0"
    pixels, _ = USECASE.featurize(items[:5], store, _options(raw))
    assert pixels.shape == (5, 28, 28) and pixels.dtype == np.uint8


def _features(root: Path) -> Path:
    rng = np.random.default_rng(1)
    root.mkdir()
    for split, n in (("train", 400), ("val", 100)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4: 2 * label + 6, :] = 250
        np.savez(root / f"{split}.npz", inputs=images, labels=labels)
    return root


HPARAMS = {"global_batch_size": 64, "hidden_size": 32, "learning_rate": 0.005}


def test_keras_trains_through_the_core_api_and_checkpoints(tmp_path: Path) -> None:
    config = {"data": {"features": str(_features(tmp_path / "f"))}}
    history, checkpoint = USECASE.train(config, HPARAMS, 3, tmp_path / "ckpt", None)
    assert len(history) == 3
    assert set(history[0]) == {"training_loss", "training_accuracy", "validation_loss",
                               "validation_accuracy"}
    assert history[-1]["validation_accuracy"] > 0.8
    assert checkpoint is not None and checkpoint.is_relative_to(tmp_path / "ckpt")
    assert (checkpoint / training.KERAS_MODEL_FILE).exists()

    artifact = tmp_path / "artifact"
    artifact.mkdir()
    USECASE.export(checkpoint, HPARAMS, tmp_path, artifact)
    with np.load(tmp_path / "f" / "val.npz") as arrays:
        predicted = USECASE.predict(artifact, arrays["inputs"])
        assert (predicted == arrays["labels"]).mean() > 0.8


def test_pruning_stops_a_keras_trial_without_a_checkpoint(tmp_path: Path) -> None:
    config = {"data": {"features": str(_features(tmp_path / "f"))}}
    history, checkpoint = USECASE.train(config, HPARAMS, 5, tmp_path / "ckpt",
                                        lambda epoch, metrics: epoch >= 2)
    assert len(history) == 2 and checkpoint is None


def test_preemption_checkpoints_and_stops_then_training_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from determined import core

    from usecases.fmnist.train import fit

    config: dict[str, Any] = {"data": {"features": str(_features(tmp_path / "f"))}}
    storage = tmp_path / "ckpt"
    storage.mkdir()
    with core.init(checkpoint_storage=str(storage)) as context:
        # Only a master sends preemption; here the local context is told it was asked to stop.
        monkeypatch.setattr(context.preempt, "should_preempt", lambda auto_ack=True: True)
        callback = training.keras_callback_class()(context, 4)
        fit(context, callback, config, HPARAMS, 4)
        assert len(callback.history) == 1 and callback.checkpoint is not None
        first = callback.checkpoint
    with core.init(checkpoint_storage=str(storage)) as context:
        callback = training.keras_callback_class()(context, 4)
        fit(context, callback, config, HPARAMS, 4, latest_checkpoint=first)
    assert len(callback.history) == 3  # epochs 2..4, resumed after the first
    model, done = training.restore_keras(context, str(callback.checkpoint))
    assert done == 4


@pytest.mark.parametrize("content", [b"", b"not a keras file"])
def test_a_corrupt_checkpoint_is_refused(tmp_path: Path, content: bytes) -> None:
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / training.KERAS_MODEL_FILE).write_bytes(content)
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    with pytest.raises(CDLError, match="is corrupt"):
        USECASE.export(checkpoint, HPARAMS, tmp_path, artifact)
