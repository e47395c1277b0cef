"""The MLServer runtimes. ``CDLRuntime`` holds what is not about one model (artifacts, request
limits, clear 4xx errors, encoding, the scoring log); each use case adds decoding and inference.
Model code is imported when a model loads, so serving one model never imports the other's
framework."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError, MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, RequestInput

from .limits import MAX_REQUEST_BYTES
from .scoring import Score, ScoringLog, digest, now

IMAGE_SHAPE = (28, 28)  # Fashion-MNIST


class BadRequest(InferenceError):
    """A request the client must fix; MLServer answers it with HTTP 400."""


class CDLRuntime(MLModel):
    """Subclasses set ``input_name``, implement ``load_model``, ``decode`` and ``infer``."""

    input_name = "input"

    async def load(self) -> bool:
        params = self.settings.parameters
        uri = params.uri if params is not None and params.uri else "."
        folder = Path(uri)
        if not folder.is_absolute() and self.settings._source:
            folder = Path(self.settings._source).parent / folder
        self.artifacts = folder
        self.meta: dict[str, Any] = json.loads((folder / "model.json").read_text())
        self.classes: list[str] = list(self.meta["classes"])
        extra = (params.extra or {}) if params is not None else {}
        self.max_request_bytes = int(extra.get("max_request_bytes", MAX_REQUEST_BYTES))
        self.model_version = str(self.version or "")
        self.scoring = ScoringLog()
        self.load_model()
        self.ready = True
        return self.ready

    async def unload(self) -> bool:
        await self.scoring.close()
        return True

    def load_model(self) -> None:
        raise NotImplementedError

    def decode(self, request_input: RequestInput) -> tuple[Any, list[bytes]]:
        """Model inputs for the batch and each item's raw bytes (for size and hashes)."""
        raise NotImplementedError

    def infer(self, inputs: Any) -> np.ndarray:
        """Class probabilities, one row per item."""
        raise NotImplementedError

    def scored_input(self, raw: bytes) -> tuple[str | None, bytes | None]:
        """What the scoring log keeps of an input: (text, pixels)."""
        return None, None

    def _input(self, payload: InferenceRequest) -> RequestInput:
        for request_input in payload.inputs:
            if request_input.name == self.input_name:
                return request_input
        names = [i.name for i in payload.inputs]
        raise BadRequest(f"input {self.input_name!r} is missing (got {names}); see "
                         f"GET /v2/models/{self.name} for the expected inputs")

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        start = time.perf_counter()
        inputs, raws = self.decode(self._input(payload))
        size = sum(len(r) for r in raws)
        if size > self.max_request_bytes:
            raise MLServerError(f"payload too large: {size} bytes of input, the limit is "
                                f"{self.max_request_bytes}; send fewer or smaller items",
                                status_code=413)
        probabilities = self.infer(inputs)
        labels = [self.classes[i] for i in probabilities.argmax(axis=1)]
        latency_ms = (time.perf_counter() - start) * 1000
        at = now()
        for raw, label in zip(raws, labels, strict=True):
            text, pixels = self.scored_input(raw)
            self.scoring.record(Score(at, self.name, self.model_version, payload.id,
                                      digest(raw), text, pixels, label, latency_ms))
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                StringCodec.encode_output("label", labels),
                NumpyCodec.encode_output("probabilities", probabilities.astype(np.float32)),
            ],
        )


class NewsRuntime(CDLRuntime):
    """Text in (BYTES ``text``, shape [n]), class name and probabilities out."""

    input_name = "text"

    def load_model(self) -> None:
        import torch

        from .news import Vocabulary, load_network

        torch.set_num_threads(max(1, int(self.meta.get("threads", 1))))
        self.vocab = Vocabulary.load(self.artifacts / "vocab.txt")
        self.network = load_network(self.artifacts, self.meta)

    def decode(self, request_input: Any) -> tuple[list[str], list[bytes]]:
        if request_input.datatype != "BYTES":
            raise BadRequest(f"input 'text' must have datatype BYTES, not "
                             f"{request_input.datatype}")
        try:
            texts = StringCodec.decode_input(request_input)
        except Exception as exc:
            raise BadRequest(f"input 'text' is not a list of UTF-8 strings ({exc})") from None
        if not texts:
            raise BadRequest("input 'text' holds no items")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise BadRequest(f"input 'text' item {i} is empty; send the article's text")
        return texts, [t.encode() for t in texts]

    def infer(self, inputs: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.network(torch.from_numpy(self.vocab.counts(inputs)))
        return torch.softmax(logits, dim=1).numpy()

    def scored_input(self, raw: bytes) -> tuple[str | None, bytes | None]:
        return raw.decode(), None


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
            pixels = NumpyCodec.decode_input(request_input)
        except Exception as exc:
            raise BadRequest(f"input 'pixels' data does not fill shape {shape} ({exc})") from None
        pixels = np.asarray(pixels).reshape(-1, *IMAGE_SHAPE)
        if pixels.min() < 0 or pixels.max() > 255:
            raise BadRequest("input 'pixels' values must lie in 0..255")
        pixels = pixels.astype(np.uint8)
        return pixels, [image.tobytes() for image in pixels]

    def infer(self, inputs: np.ndarray) -> np.ndarray:
        from .fashion import normalize

        # predict_on_batch runs the compiled predict function: ~4x faster than calling the
        # model eagerly for one image (0.75 ms against 3 ms on 2 CPU cores)
        logits = np.asarray(self.model.predict_on_batch(normalize(inputs)))
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    def scored_input(self, raw: bytes) -> tuple[str | None, bytes | None]:
        return None, raw  # the 28×28 image itself: 784 bytes, its own thumbnail
