"""Training through Determined, locally: one function per framework integration.

- PyTorch: the use case's ``PyTorchTrial`` under ``det.pytorch.Trainer`` (local training mode).
- Keras 3: Determined 0.38's bundled Keras integration does not import under Keras 3, so Keras
  models report through the Core API with :class:`DeterminedCallback`; the same callback runs on
  a cluster, where ``det.core.init()`` finds the master.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from usecases.workflow.usecase import History, OnValidation


@contextlib.contextmanager
def _local_mode(model_dir: Path, checkpoint_root: Path) -> Iterator[None]:
    """Checkpoints under the state dir; Determined copies the model dir (cwd) into each."""
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(checkpoint_root)
    logging.getLogger("determined").setLevel(logging.WARNING)
    try:
        with contextlib.chdir(model_dir):
            yield
    finally:
        if previous is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = previous


class _Stop(Exception):
    pass


def train_pytorch(
    trial_class: type,
    model_dir: Path,
    config: dict[str, Any],
    hparams: dict[str, Any],
    epochs: int,
    checkpoint_root: Path,
    on_validation: OnValidation | None = None,
) -> tuple[History, Path | None]:
    """Train a PyTorchTrial with Determined's local training mode.

    ``on_validation(epoch, metrics)`` returning True stops the trial (ASHA pruning). Returns the
    validation history and the final checkpoint's folder (None when stopped early).
    """
    import torch
    from determined import pytorch

    history: History = []
    written: list[Path] = []

    class Observer(pytorch.PyTorchCallback):
        def on_validation_end(self, metrics: dict[str, Any]) -> None:
            history.append({k: float(v) for k, v in metrics.items()})
            if on_validation is not None and on_validation(len(history), history[-1]):
                raise _Stop

        def on_checkpoint_write_end(self, checkpoint_dir: str) -> None:
            written.append(Path(checkpoint_dir))

    class Observed(trial_class):
        def build_callbacks(self) -> dict[str, Any]:
            return {**super().build_callbacks(), "cdl-observer": Observer()}

    torch.manual_seed(int(config.get("reproducibility", {}).get("experiment_seed", 0)))
    with _local_mode(model_dir, checkpoint_root):
        try:
            # TensorBoard files are a cluster feature (the master serves them); none locally.
            with pytorch.init(hparams=hparams, exp_conf=config,
                              enable_tensorboard_logging=False) as context:
                trainer = pytorch.Trainer(Observed(context), context)
                trainer.fit(
                    max_length=pytorch.Epoch(epochs),
                    validation_period=pytorch.Epoch(1),
                    checkpoint_period=pytorch.Epoch(epochs),
                    checkpoint_policy="none",
                    reporting_period=pytorch.Batch(10_000),
                )
        except _Stop:
            return history, None
    return history, (written[-1] if written else None)


KERAS_MODEL_FILE = "model.keras"
KERAS_STATE_FILE = "state.json"


def keras_callback_class() -> type:
    """The callback class, built on first use so that importing this module needs no Keras."""
    import keras

    class DeterminedCallback(keras.callbacks.Callback):
        """Reports each epoch's metrics through the Core API, checkpoints at the end of
        training and when the master asks to preempt, and stops early on request."""

        def __init__(self, core_context: Any, epochs: int, checkpoint_every: int = 0,
                     on_validation: OnValidation | None = None) -> None:
            super().__init__()
            self.core = core_context
            self.epochs = epochs
            self.checkpoint_every = checkpoint_every
            self.on_validation = on_validation
            self.history: History = []
            self.checkpoint: str | None = None
            self.stopped_early = False

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            done = epoch + 1
            train = {k: float(v) for k, v in logs.items() if not k.startswith("val_")}
            val = {f"validation_{k[4:]}": float(v) for k, v in logs.items()
                   if k.startswith("val_")}
            self.core.train.report_training_metrics(steps_completed=done, metrics=train)
            self.core.train.report_validation_metrics(steps_completed=done, metrics=val)
            self.core.train.report_progress(min(done / self.epochs, 1.0))
            self.history.append(val)
            if self.on_validation is not None and self.on_validation(done, val):
                self.stopped_early = True
                self.model.stop_training = True
                return
            preempt = self.core.preempt.should_preempt()
            periodic = self.checkpoint_every and done % self.checkpoint_every == 0
            if done == self.epochs or preempt or periodic:
                self.save(done)
            if preempt:
                self.model.stop_training = True

        def save(self, epochs_done: int) -> None:
            metadata = {"steps_completed": epochs_done, "framework": f"keras-{keras.__version__}",
                        "format": "keras"}
            with self.core.checkpoint.store_path(metadata) as (path, storage_id):
                self.model.save(Path(path) / KERAS_MODEL_FILE)
                (Path(path) / KERAS_STATE_FILE).write_text(
                    json.dumps({"epochs_done": epochs_done}))
            self.checkpoint = storage_id

    return DeterminedCallback


def restore_keras(core_context: Any, storage_id: str) -> tuple[Any, int]:
    """Model and completed epochs from a checkpoint written by the callback (resume)."""
    import keras

    with core_context.checkpoint.restore_path(storage_id) as path:
        model = keras.models.load_model(Path(path) / KERAS_MODEL_FILE)
        done = int(json.loads((Path(path) / KERAS_STATE_FILE).read_text())["epochs_done"])
    return model, done


def train_keras(
    fit: Callable[[Any, Any], None],
    model_dir: Path,
    epochs: int,
    checkpoint_root: Path,
    on_validation: OnValidation | None = None,
) -> tuple[History, Path | None]:
    """Run ``fit(core_context, callback)`` under a local Core API context (no master)."""
    from determined import core

    storage = checkpoint_root / "determined"
    storage.mkdir(parents=True, exist_ok=True)
    with _local_mode(model_dir, checkpoint_root), \
            core.init(checkpoint_storage=str(storage)) as core_context:
        callback = keras_callback_class()(core_context, epochs, on_validation=on_validation)
        fit(core_context, callback)
    if callback.stopped_early or callback.checkpoint is None:
        return callback.history, None
    return callback.history, storage / callback.checkpoint
