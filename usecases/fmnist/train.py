"""Training entrypoint for Fashion-MNIST: Keras 3 reporting to Determined through the Core API.

On a cluster the experiment YAMLs run ``python3 -m usecases.fmnist.train``; locally ``cdl`` calls
:func:`fit` under a Core API context without a master. Both use the same callback.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from usecases.fmnist.model import build
from usecases.serving.fashion import normalize
from usecases.workflow.training import keras_callback_class, restore_keras


def load_split(features: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(features / f"{split}.npz") as arrays:
        return normalize(arrays["inputs"]), arrays["labels"].astype(np.int64)


def fit(core_context: Any, callback: Any, config: dict[str, Any], hparams: dict[str, Any],
        epochs: int, latest_checkpoint: str | None = None, strategy: Any = None) -> None:
    """Train (or resume) the model for ``epochs`` epochs, validating after each."""
    import keras

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
                          decay_steps, int(hparams.get("steps_per_execution", 1)))
    model.fit(train_x, train_y, batch_size=batch_size, epochs=epochs,
              initial_epoch=done, validation_data=(val_x, val_y), callbacks=[callback],
              verbose=0)


def main() -> None:
    """Cluster entrypoint: hyperparameters, length and resume point come from the master."""
    import determined as det
    import tensorflow as tf
    from determined import core

    info = det.get_cluster_info()
    assert info is not None and info.task_type == "TRIAL", "run this under a Determined trial"
    config, hparams = info.trial._config, dict(info.trial.hparams)
    searcher = config["searcher"]
    epochs = int(searcher["max_time"] if searcher.get("time_metric") == "epochs"
                 else hparams["epochs"])
    # Several slots on one agent: one process drives all its GPUs (synchronous data parallel).
    strategy = tf.distribute.MirroredStrategy() if len(info.slot_ids) > 1 else None
    with core.init() as core_context:
        callback = keras_callback_class()(core_context, epochs, checkpoint_every=1)
        fit(core_context, callback, config, hparams, epochs, info.latest_checkpoint, strategy)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
