"""The Fashion-MNIST classifier: Flatten → Dense(hidden, relu) → Dense(10), in Keras 3.

Imported by training and by serving; pixels are normalized here so both see the same inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (0..255) to float32 in 0..1."""
    return pixels.astype(np.float32) / 255.0


def build(hidden_size: int, learning_rate: float, decay_steps: int,
          steps_per_execution: int = 1) -> Any:
    """The compiled model; Adam's learning rate follows a cosine decay over the planned steps.

    ``steps_per_execution`` > 1 runs several batches per device call: on a GPU this model is
    launch-bound at small batches, and fusing steps is what keeps the device busy.
    """
    import keras

    model = keras.Sequential([
        keras.Input(shape=(28, 28)),
        keras.layers.Flatten(),
        keras.layers.Dense(hidden_size, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(learning_rate, max(decay_steps, 1))),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
    )
    return model
