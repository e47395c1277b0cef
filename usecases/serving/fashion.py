"""Fashion-MNIST at serving time: pixel normalization and the MLServer runtime.

Training imports ``normalize`` from here, so both sides scale pixels the same way.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .runtime import BadRequest, CDLRuntime

IMAGE_SHAPE = (28, 28)


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (0..255) to float32 in 0..1."""
    return pixels.astype(np.float32) / 255.0


class FashionRuntime(CDLRuntime):
    """28×28 uint8 pixels in (UINT8 ``pixels``, shape [n, 28, 28]), class name out."""

    input_name = "pixels"

    def load_model(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        self.model = keras.models.load_model(self.artifacts / self.meta.get("weights",
                                                                           "model.keras"))

    def decode(self, request_input: Any) -> tuple[np.ndarray, list[bytes]]:
        if request_input.datatype != "UINT8":
            raise BadRequest(f"input 'pixels' must have datatype UINT8 (0..255), not "
                             f"{request_input.datatype}")
        shape = list(request_input.shape)
        if len(shape) != 3 or tuple(shape[1:]) != IMAGE_SHAPE or shape[0] < 1:
            raise BadRequest(f"input 'pixels' must have shape [n, 28, 28], not {shape}")
        try:
            from mlserver.codecs import NumpyCodec

            pixels = NumpyCodec.decode_input(request_input)
        except Exception as exc:
            raise BadRequest(f"input 'pixels' data does not fill shape {shape} ({exc})") from None
        pixels = np.asarray(pixels).reshape(-1, *IMAGE_SHAPE)
        if pixels.min() < 0 or pixels.max() > 255:
            raise BadRequest("input 'pixels' values must lie in 0..255")
        pixels = pixels.astype(np.uint8)
        return pixels, [image.tobytes() for image in pixels]

    def infer(self, inputs: np.ndarray) -> np.ndarray:
        logits = np.asarray(self.model(normalize(inputs), training=False))
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def scored_input(self, raw: bytes) -> tuple[str | None, bytes | None]:
        return None, raw  # the 28×28 image itself: 784 bytes, its own thumbnail
