"""The V2 contract of the served models: every input and output, with its datatype and its
shape (-1 for the batch).

Packaging writes these declarations into ``model-settings.json`` (``inputs`` / ``outputs``),
which MLServer answers ``GET /v2/models/<name>`` from; the runtime checks each request input
against the same declaration here, so what the metadata promises is what the server enforces.
No imports beyond the standard library: the workflow reads it without loading MLServer.
"""

from __future__ import annotations

import math
from typing import Any

BATCH = -1  # a dimension of any size from 1: the number of items in the request

INPUTS: dict[str, dict[str, Any]] = {
    "NewsRuntime": {"name": "text", "datatype": "BYTES", "shape": [BATCH]},
    "FashionRuntime": {"name": "pixels", "datatype": "UINT8", "shape": [BATCH, 28, 28]},
}


def tensors(runtime: str, n_classes: int) -> dict[str, list[dict[str, Any]]]:
    """``inputs`` and ``outputs`` of ``model-settings.json`` for a runtime class (its name, or
    its dotted path as packaging names it) predicting ``n_classes`` classes."""
    return {
        "inputs": [INPUTS[runtime.rsplit(".", 1)[-1]]],
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [BATCH, 1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [BATCH, n_classes]},
        ],
    }


class Violation(ValueError):
    """A request input that breaks its declaration; the message says what to send instead."""


def spelled(shape: list[int]) -> str:
    """A declared shape as a person reads it: ``[n, 28, 28]``."""
    return "[" + ", ".join("n" if d == BATCH else str(d) for d in shape) + "]"


def check(declared: dict[str, Any], datatype: str, shape: list[int], data: Any) -> list[Any]:
    """The input's items, flat in row-major order, once its datatype and shape are the
    declared ones and its data holds exactly what the shape says (flat, or nested as the
    shape)."""
    name, want = declared["name"], declared["shape"]
    if datatype != declared["datatype"]:
        raise Violation(f"input {name!r} must have datatype {declared['datatype']}, not "
                        f"{datatype}")
    if len(shape) != len(want) or any(d < 1 or (w != BATCH and d != w)
                                      for d, w in zip(shape, want, strict=True)):
        raise Violation(f"input {name!r} must have shape {spelled(want)}, not {shape}")
    flat = _flat(data, shape)
    if flat is None:
        raise Violation(f"input {name!r} data does not fill shape {shape}: send "
                        f"{math.prod(shape)} values, flat or nested as the shape")
    return flat


def _flat(data: Any, shape: list[int]) -> list[Any] | None:
    if not isinstance(data, list):
        return None
    if list not in set(map(type, data)):  # flat (the set is made at C speed: 784 pixels)
        return data if len(data) == math.prod(shape) else None
    if len(data) != shape[0] or len(shape) == 1:
        return None
    flat: list[Any] = []
    for item in data:
        inner = _flat(item, shape[1:])
        if inner is None:
            return None
        flat.extend(inner)
    return flat
