"""Training entrypoint for Fashion-MNIST: Keras 3 reporting to Determined through the Core API.

The experiment YAMLs run ``python3 -m usecases.fmnist.train``; ``cdl`` calls :func:`fit` in-process
under a Core API context without a master (``usecases.workflow.training.train_keras``). Both use
the same callback.

On a cluster the master supplies the experiment config, the trial's hyperparameters and the
checkpoint to resume from (``det.get_cluster_info()``). The trial trains for the searcher's
length: ``searcher.max_time`` epochs with ``time_metric: epochs`` (adaptive ASHA), or
``hyperparameters.epochs`` (``single``). A trial given several slots (``distributed.yaml``) trains
data-parallel with one process driving all the agent's GPUs: under Keras' ``DataParallel``
distribution with the JAX backend (the GPU image's), else under TensorFlow's
``MirroredStrategy``. Neither has run on GPUs yet.

Without a master (Determined's local training mode, e.g. to try a YAML before submitting it) the
module runs the same ``fit`` on one device, on the experiment named by ``CDL_EXPERIMENT``: see
``usecases.workflow.training.trial_inputs``.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from usecases.fmnist.model import build
from usecases.native_logs import import_keras
from usecases.serving.fashion import normalize
from usecases.workflow.model import training_epochs
from usecases.workflow.training import entrypoint, keras_callback_class, restore_keras, trial_inputs


def load_split(features: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(features / f"{split}.npz") as arrays:
        return normalize(arrays["inputs"]), arrays["labels"].astype(np.int64)


def fit(core_context: Any, callback: Any, config: dict[str, Any], hparams: dict[str, Any],
        epochs: int, latest_checkpoint: str | None = None, strategy: Any = None) -> None:
    """Train (or resume) the model for ``epochs`` epochs, validating after each."""
    keras = import_keras()

    features = Path(config["data"]["features"])
    train_x, train_y = load_split(features, "train")
    val_x, val_y = load_split(features, "val")
    keras.utils.set_random_seed(int(config.get("reproducibility", {}).get("experiment_seed", 0)))
    batch_size = int(hparams["global_batch_size"])
    decay_steps = epochs * math.ceil(len(train_x) / batch_size)
    done = 0
    if latest_checkpoint is not None:
        model, done = restore_keras(core_context, latest_checkpoint)
    else:
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = build(int(hparams["hidden_size"]), float(hparams["learning_rate"]),
                          decay_steps, int(hparams.get("steps_per_execution", 1)),
                          float(train_x.mean()), float(train_x.var()))
    model.fit(train_x, train_y, batch_size=batch_size, epochs=epochs,
              initial_epoch=done, validation_data=(val_x, val_y), callbacks=[callback],
              verbose=0)


def main() -> None:
    """Train (or resume) one trial: under the master if there is one, else in local mode."""
    from determined import core

    info, config, hparams, latest_checkpoint = trial_inputs()
    strategy: Any = None
    distributed: core.DistributedContext | None = None
    if info is not None and len(info.slot_ids) > 1:
        keras = import_keras()
        if keras.backend.backend() == "jax":  # the GPU image's backend
            keras.distribution.set_distribution(keras.distribution.DataParallel())
        else:
            import tensorflow as tf

            strategy = tf.distribute.MirroredStrategy()
        # core.init refuses a multi-slot task without a DistributedContext; with
        # MirroredStrategy this one process is the whole trial.
        distributed = core.DistributedContext(rank=0, size=1, local_rank=0, local_size=1,
                                              cross_rank=0, cross_size=1)
    epochs = training_epochs(config, hparams)
    with core.init(distributed=distributed) as core_context:
        callback = keras_callback_class()(core_context, epochs, checkpoint_every=1)
        fit(core_context, callback, config, hparams, epochs, latest_checkpoint, strategy)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    entrypoint(main)
