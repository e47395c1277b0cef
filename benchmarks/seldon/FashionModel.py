"""Fashion-MNIST behind Seldon Core's Python wrapper: the model MLServer's FashionRuntime serves.

X holds n images of 28×28 pixels in 0..255 (any numeric dtype, shape [n, 28, 28]); the answer
is one row of class probabilities per image. The Keras file and the pixel normalization come
from the model folder (CDL_MODEL_FOLDER) and its ``cdl_serving`` package, as in MLServer.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from model_folder import ModelFolder

# a 400 with a reason, as MLServer's BadRequest; a plain exception would be a 500
from seldon_core.flask_utils import SeldonMicroserviceException as BadRequest

IMAGE_SHAPE = (28, 28)


class FashionModel(ModelFolder):
    def load_model(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        self.model = keras.models.load_model(self.artifacts / self.meta.get("weights",
                                                                           "model.keras"))

    def predict(self, X: Any, features_names: Any = None) -> np.ndarray:
        from cdl_serving.fashion import normalize

        pixels = np.asarray(X)
        if pixels.ndim != 3 or pixels.shape[1:] != IMAGE_SHAPE or pixels.shape[0] < 1:
            raise BadRequest(f"pixels must have shape [n, 28, 28], not {list(pixels.shape)}")
        if pixels.min() < 0 or pixels.max() > 255:
            raise BadRequest("pixel values must lie in 0..255")
        # as FashionRuntime.infer: uint8 pixels, normalized, the compiled predict function
        # (predict_on_batch, not an eager call), then a stable softmax
        logits = np.asarray(self.model.predict_on_batch(normalize(pixels.astype(np.uint8))))
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)
