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
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from usecases.errors import CDLError
from usecases.native_logs import import_keras
from usecases.workflow.usecase import History, OnValidation

if TYPE_CHECKING:
    from determined import ClusterInfo

EXPERIMENT_ENV = "CDL_EXPERIMENT"  # the experiment YAML an entrypoint trains without a master


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

    training: dict[str, float] = {}

    class Observer(pytorch.PyTorchCallback):
        def on_training_workload_end(self, avg_metrics: dict[str, Any],
                                     batch_metrics: Any) -> None:
            # Called at every boundary, so at each epoch's validation: the epoch's mean.
            training.update({f"training_{k}": float(v) for k, v in avg_metrics.items()})

        def on_validation_end(self, metrics: dict[str, Any]) -> None:
            history.append({**training, **{k: float(v) for k, v in metrics.items()}})
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
    keras = import_keras()
    base: Any = keras.callbacks.Callback

    class DeterminedCallback(base):
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
            self.history.append({**{f"training_{k}": v for k, v in train.items()}, **val})
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
    keras = import_keras()

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


# The cluster entrypoints (``python3 -m usecases.<case>.train``) share how they get their inputs.

def local_experiment() -> tuple[dict[str, Any], dict[str, Any]]:
    """Config and hyperparameters for local training mode, from the YAML in ``CDL_EXPERIMENT``."""
    import optuna

    named = os.environ.get(EXPERIMENT_ENV)
    if not named:
        raise CDLError(f"no Determined master to supply the experiment, and {EXPERIMENT_ENV} "
                       "is not set",
                       "submit it with `det experiment create const.yaml .`, or set "
                       f"{EXPERIMENT_ENV} to an experiment YAML whose data.features is a "
                       "featurised dataset folder")
    path = Path(named)
    if not path.is_file():
        raise CDLError(f"{EXPERIMENT_ENV}={named} is not a file",
                       f"point {EXPERIMENT_ENV} at an experiment YAML")
    from usecases.workflow.model import load_experiment, sample_hparams

    config = load_experiment(path)
    features = (config.get("data") or {}).get("features")
    if not features or not (Path(features) / "train.npz").is_file():
        raise CDLError(f"data.features in {path} ({features or 'null'}) is not a featurised "
                       "dataset folder",
                       "set it to a folder with train.npz, val.npz, test.npz and classes.npy "
                       "(cdl keeps them under CDL_HOME)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = int(config.get("reproducibility", {}).get("experiment_seed", 0))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return config, sample_hparams(config["hyperparameters"], study.ask())


def cluster_trial() -> ClusterInfo | None:
    """The master's ``ClusterInfo`` when this process is a trial, else None (local mode)."""
    import determined as det

    info = det.get_cluster_info()
    return info if info is not None and info.task_type == "TRIAL" else None


def trial_inputs() -> tuple[ClusterInfo | None, dict[str, Any], dict[str, Any], str | None]:
    """(cluster info, config, hyperparameters, checkpoint to resume from) of the trial this
    process runs. On a cluster the master supplies them. Without one (local training mode):

    - ``CDL_EXPERIMENT`` names an experiment YAML whose ``data.features`` is a featurised
      dataset folder (what ``usecases.workflow.features`` writes); the repository's YAMLs
      leave it null.
    - The hyperparameters are the first point Optuna's RandomSampler, seeded with
      ``reproducibility.experiment_seed`` (default 0), draws from the YAML's space through the
      parser the local ASHA search uses: deterministic, inside the space, and a ``single``
      config's constants as written.
    - Nothing to resume; checkpoints go where Determined's local mode puts them:
      ``$XDG_DATA_HOME/determined``.
    """
    info = cluster_trial()
    if info is None:
        return None, *local_experiment(), None
    return info, info.trial._config, dict(info.trial.hparams), info.latest_checkpoint


def entrypoint(main: Callable[[], None]) -> None:
    """Run an entrypoint's ``main``: Determined's log format at INFO (the reported metrics are
    the trial's log), a CDLError as one line and exit status 1."""
    import determined as det

    logging.basicConfig(level=logging.INFO, format=det.LOG_FORMAT)
    try:
        main()
    except CDLError as exc:
        sys.exit(f"error: {exc}")
