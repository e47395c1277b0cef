"""The Fashion-MNIST classifier: Flatten → Dense(hidden, relu) → Dense(10), in Keras 3.

Training builds it here; serving loads the saved model and normalizes pixels with
``usecases.serving.fashion.normalize``, which training uses too.
"""

from __future__ import annotations

from typing import Any


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
