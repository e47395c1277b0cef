"""The MLServer runtimes. ``CDLRuntime`` holds what is not about one model (artifacts, request
limits, the V2 contract, clear 4xx errors, encoding, the scoring log); each use case adds
decoding and inference. Model code is imported when a model loads, so serving one model never
imports the other's framework."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError, MLServerError
from mlserver.types import InferenceRequest, InferenceResponse

from .contract import INPUTS, Violation, check
from .limits import MAX_REQUEST_BYTES
from .scoring import Score, ScoringLog, digest, now, spool_root

MAX_GATHERED = 32  # requests in one call of the model, at most


class BadRequest(InferenceError):
    """A request the client must fix; MLServer answers it with HTTP 400."""


@dataclass
class Items:
    """The declared input of a request, checked against its declaration: its shape and its
    items, flat in row-major order."""

    shape: list[int]
    flat: list[Any]


class CDLRuntime(MLModel):
    """Subclasses implement ``load_model``, ``decode`` and ``infer``; their input is the one
    ``contract.INPUTS`` declares under the class's name."""

    async def load(self) -> bool:
        params = self.settings.parameters
        uri = params.uri if params is not None and params.uri else "."
        source = Path(self.settings._source).parent if self.settings._source else Path.cwd()
        folder = Path(uri) if Path(uri).is_absolute() else source / uri
        self.artifacts = folder
        self.meta: dict[str, Any] = json.loads((folder / "model.json").read_text())
        self.classes: list[str] = list(self.meta["classes"])
        self.declared = INPUTS[type(self).__name__]
        extra = (params.extra or {}) if params is not None else {}
        self.max_request_bytes = int(extra.get("max_request_bytes", MAX_REQUEST_BYTES))
        self.model_version = str(self.version or "")
        self._waiting: list[tuple[Any, asyncio.Future[np.ndarray]]] = []
        self.load_model()
        # the model folder sits in the served repository, which keeps the spool of all its
        # models
        self.scoring = ScoringLog(spool_root(source.parent))
        self.scoring.start()
        # The frameworks' objects (hundreds of thousands) live as long as the model is served;
        # frozen, the collector stops walking them in each full collection, which paused
        # serving for 100-250 ms at 2000 req/s (adaptive batching's p99, benchmarks/serving.py).
        # Unfrozen and collected first, so that what a replaced version left is freed
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.ready = True
        return self.ready

    async def unload(self) -> bool:
        await self.scoring.close()
        return True

    def load_model(self) -> None:
        raise NotImplementedError

    async def _infer_together(self, inputs: Any) -> np.ndarray:
        """``infer`` once for all the requests that wait at this moment, each checked on its
        own before (so a bad request never fails another): while the model is busy, requests
        gather, and a loaded server answers them in one batch. Alone, a request waits two turns
        of the event loop, microseconds. MLServer's own adaptive batching merges requests
        before the runtime sees them, so one malformed request fails its whole batch."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[np.ndarray] = loop.create_future()
        self._waiting.append((inputs, answer))
        if len(self._waiting) == 1:
            loop.call_soon(self._gather, 0)
        return await answer

    def _gather(self, seen: int) -> None:
        if seen < len(self._waiting) < MAX_GATHERED:  # still coming: one more turn
            asyncio.get_running_loop().call_soon(self._gather, len(self._waiting))
            return
        batch, self._waiting = self._waiting, []
        try:
            parts = [inputs for inputs, _ in batch]
            probabilities = self.infer(np.concatenate(parts) if isinstance(parts[0], np.ndarray)
                                       else [item for part in parts for item in part])
        except Exception as exc:  # every request of the batch fails with it (a 500)
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        offset = 0
        for inputs, answer in batch:
            if not answer.done():  # done: cancelled, its client went away
                answer.set_result(probabilities[offset:offset + len(inputs)])
            offset += len(inputs)

    def decode(self, items: Items) -> tuple[Any, list[bytes]]:
        """Model inputs for the batch and each item's raw bytes (for size and hashes)."""
        raise NotImplementedError

    def infer(self, inputs: Any) -> np.ndarray:
        """Class probabilities, one row per item."""
        raise NotImplementedError

    def scored_input(self, raw: bytes) -> tuple[str | None, bytes | None]:
        """What the scoring log keeps of an input: (text, pixels)."""
        return None, None

    def _input(self, payload: InferenceRequest) -> Items:
        name = self.declared["name"]
        names = [i.name for i in payload.inputs]
        if name not in names:
            raise BadRequest(f"input {name!r} is missing (got {names}); see "
                             f"GET /v2/models/{self.name} for the expected inputs")
        if names != [name]:
            raise BadRequest(f"send one input, {name!r}, and no other (got {names}); see "
                             f"GET /v2/models/{self.name} for the expected inputs")
        request_input = payload.inputs[0]
        shape = list(request_input.shape)
        try:
            return Items(shape, check(self.declared, request_input.datatype, shape,
                                      request_input.data.root))
        except Violation as exc:
            raise BadRequest(str(exc)) from None

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        start = time.perf_counter()
        inputs, raws = self.decode(self._input(payload))
        size = sum(len(r) for r in raws)
        if size > self.max_request_bytes:
            raise MLServerError(f"payload too large: {size} bytes of input, the limit is "
                                f"{self.max_request_bytes}; send fewer or smaller items",
                                status_code=413)
        probabilities = await self._infer_together(inputs)
        best = probabilities.argmax(axis=1)
        labels = [self.classes[i] for i in best]
        confidences = probabilities[np.arange(len(best)), best].tolist()
        latency_ms = (time.perf_counter() - start) * 1000
        at = now()
        for raw, label, confidence in zip(raws, labels, confidences, strict=True):
            text, pixels = self.scored_input(raw)
            self.scoring.record(Score(at, self.name, self.model_version, payload.id,
                                      digest(raw), text, pixels, label, latency_ms,
                                      float(confidence)))
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

    def load_model(self) -> None:
        import torch

        from .news import load_network
        from .text import Vocabulary

        torch.set_num_threads(max(1, int(self.meta.get("threads", 1))))
        self.vocab = Vocabulary.load(self.artifacts / "vocab.txt")
        self.network = load_network(self.artifacts, self.meta)

    def decode(self, items: Items) -> tuple[list[str], list[bytes]]:
        texts, raws = [], []
        for i, item in enumerate(items.flat):
            try:
                # JSON brings str; gRPC brings the UTF-8 bytes
                text = item.decode() if isinstance(item, bytes) else item
                raw = text.encode() if isinstance(text, str) else None
            except UnicodeError:
                raise BadRequest(f"input 'text' item {i} is not valid UTF-8 text") from None
            if raw is None:
                raise BadRequest(f"input 'text' item {i} is not a string; send the article's "
                                 "text")
            if not text.strip():
                raise BadRequest(f"input 'text' item {i} is empty; send the article's text")
            if "\0" in text:  # PostgreSQL's text cannot hold it, and no article does
                raise BadRequest(f"input 'text' item {i} holds a NUL character")
            texts.append(text)
            raws.append(raw)
        return texts, raws

    def infer(self, inputs: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.network(torch.from_numpy(self.vocab.counts(inputs)))
        return torch.softmax(logits, dim=1).numpy()

    def scored_input(self, raw: bytes) -> tuple[str | None, bytes | None]:
        return raw.decode(), None


class FashionRuntime(CDLRuntime):
    """28×28 uint8 pixels in (UINT8 ``pixels``, shape [n, 28, 28]), class name out."""

    def load_model(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras

        self.model = keras.models.load_model(self.artifacts / self.meta.get("weights",
                                                                           "model.keras"))

    def decode(self, items: Items) -> tuple[np.ndarray, list[bytes]]:
        # integers only (JSON's, not true or 1.0): numpy would truncate 3.7 to 3, wrap 256 to 0
        # and read true as 1
        if set(map(type, items.flat)) != {int}:
            raise BadRequest("input 'pixels' values must be integers in 0..255")
        values = np.asarray(items.flat)  # object dtype for integers past 64 bits
        if values.dtype.kind not in "iu" or values.min() < 0 or values.max() > 255:
            raise BadRequest("input 'pixels' values must be integers in 0..255")
        pixels = values.astype(np.uint8).reshape(items.shape)
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
