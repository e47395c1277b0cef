"""The part of every CDL MLServer runtime that is not about one model: artifacts, request
limits, clear 4xx errors, encoding and the scoring log."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError, MLServerError
from mlserver.types import InferenceRequest, InferenceResponse, RequestInput

from .scoring import Score, ScoringLog, digest, now

DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024


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
        self.max_request_bytes = int(extra.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES))
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

