"""The V2 contract of both served models, against a real MLServer: the metadata declares every
input and output, and an exhaustive table of malformed requests (datatype × shape × data,
sizes and nesting, and broken envelopes) is answered 4xx, never 2xx and never 5xx."""

from __future__ import annotations

import http.client
import json
import math
import shutil
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from usecases.serving.contract import BATCH, tensors
from usecases.workflow import deploy

pytestmark = pytest.mark.slow

TEXT = "The team won the cup final with a late goal."


@dataclass(frozen=True)
class Model:
    name: str
    runtime: str
    classes: int
    input: str
    datatype: str
    good: Any  # one valid item: a text, or a pixel
    bad: tuple[Any, ...]  # items that break it
    shapes: tuple[tuple[int, ...], ...]

    def valid_shape(self, shape: tuple[int, ...]) -> bool:
        declared = tensors(self.runtime, self.classes)["inputs"][0]["shape"]
        return len(shape) == len(declared) and all(
            d >= 1 and w in (BATCH, d) for d, w in zip(shape, declared, strict=True))


BBC = Model("bbc-news", "NewsRuntime", 5, "text", "BYTES", TEXT,
            ("", "   ", "a\u0000b", None, 7, 1.5, True, {"text": TEXT}),
            ((), (0,), (-1,), (1,), (2,), (3,), (10**9,), (2**62,), (1, 1), (2, 1), (-1, 1),
             (1, 2)))
FMNIST = Model("fmnist", "FashionRuntime", 10, "pixels", "UINT8", 7,
               (-1, 256, 1.5, True, None, "7", {"v": 7}, 2**70, 1e308),
               ((), (1,), (784,), (1, 784), (28, 28), (0, 28, 28), (-1, 28, 28), (1, 28, 28),
                (2, 28, 28), (1, 28, 27), (1, 27, 28), (1, 28, 28, 1), (10**9, 28, 28),
                (-1, -28, -28)))
DATATYPES = ("BYTES", "UINT8", "INT64", "FP32", "BOOL", "FOO")


def _nest(flat: list[Any], shape: tuple[int, ...]) -> list[Any]:
    if len(shape) == 1:
        return flat
    step = len(flat) // shape[0]
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _data(model: Model, shape: tuple[int, ...]) -> Iterator[tuple[str, Any, bool]]:
    """(what, data, whether it fills ``shape`` with valid items)."""
    size = math.prod(shape) if shape and min(shape) >= 1 else 0
    fills = 1 <= size <= 2 * 784
    items = [model.good] * (size if fills else 1)
    yield "flat", items, fills
    if len(shape) > 1 and fills:
        yield "nested", _nest(items, shape), True
        yield "ragged", _nest(items, shape)[:-1] + [[model.good]], False
    yield "one-short", items[:-1], False
    yield "one-more", [*items, model.good], False
    yield "one-level-deeper", [[item] for item in items], False
    yield "empty", [], False
    yield "scalar", model.good, False
    yield "null", None, False
    yield "object", {"data": items}, False
    deep: Any = items
    for _ in range(64):
        deep = [deep]
    yield "deep", deep, False
    for bad in model.bad:
        yield f"item={bad!r}", [bad, *items[1:]], False


def _body(model: Model, tensor: dict[str, Any], **envelope: Any) -> bytes:
    return json.dumps({"inputs": [{"name": model.input, **tensor}], **envelope}).encode()


def corpus(model: Model) -> Iterator[tuple[str, bytes, bool]]:
    """(case, request body, whether it is valid) over datatype × shape × data, and the
    requests no table of tensors makes."""
    for datatype in DATATYPES:
        for shape in model.shapes:
            for what, data, fills in _data(model, shape):
                yield (f"{datatype} {list(shape)} {what}",
                       _body(model, {"datatype": datatype, "shape": list(shape), "data": data}),
                       fills and datatype == model.datatype and model.valid_shape(shape))
    one = {"datatype": model.datatype, "shape": [1, 28, 28] if model is FMNIST else [1],
           "data": [model.good] * (784 if model is FMNIST else 1)}
    big = ({"shape": [1400, 28, 28], "data": [model.good] * (1400 * 784)} if model is FMNIST
           else {"shape": [1], "data": ["vote " * 230_000]})
    single = {"name": model.input, **one}
    yield "good", _body(model, one), True
    yield "too-large", _body(model, {**one, **big}), False
    yield "not-json", b"{not json", False
    yield "not-utf8", b'{"inputs": [\xff]}', False
    if model is BBC:
        yield "lone-surrogate", _body(model, one).replace(b'"The', b'"\\ud800The'), False
    without = [{k: v for k, v in single.items() if k != key}
               for key in ("datatype", "shape", "data")]
    envelopes: list[Any] = [
        [], {}, {"inputs": None}, {"inputs": []}, {"inputs": {}}, {"inputs": [{}]},
        {"inputs": [single, single]}, {"inputs": [single, {**single, "name": "extra"}]},
        {"inputs": [{**single, "name": "other"}]}, *({"inputs": [w]} for w in without),
        {"inputs": [{**single, "shape": "1"}]}, {"inputs": [{**single, "shape": [1.5]}]},
        {"inputs": [single], "id": 5}, {"inputs": [single], "parameters": "np"}]
    for envelope in envelopes:
        yield f"envelope {json.dumps(envelope)[:60]}", json.dumps(envelope).encode(), False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, bbc_folder: Path,
           fmnist_folder: Path) -> Iterator[str]:
    repository = tmp_path_factory.mktemp("contract") / "models"
    for folder in (bbc_folder, fmnist_folder):
        shutil.copytree(folder, repository / folder.name)
    with deploy.serve(repository, repository.parent / "mlserver.log", deploy.free_port(),
                      deploy.free_port(), None) as running:
        yield running.url


@pytest.mark.parametrize("model", [BBC, FMNIST], ids=lambda m: m.name)
def test_metadata_declares_every_input_and_output(server: str, model: Model) -> None:
    with urllib.request.urlopen(f"{server}/v2/models/{model.name}", timeout=30) as answer:
        metadata = json.loads(answer.read())
    declared = tensors(model.runtime, model.classes)
    for side in ("inputs", "outputs"):
        assert [{k: t[k] for k in ("name", "datatype", "shape")} for t in metadata[side]] == (
            declared[side])
    # an answer for three items has the declared outputs, the batch dimension being 3
    request = json.loads(next(body for case, body, _ in corpus(model) if case == "good"))
    request["inputs"][0]["shape"][0] = 3
    request["inputs"][0]["data"] *= 3
    code, answer = deploy.infer(server, model.name, request)
    assert code == 200, answer
    assert [(o["name"], o["datatype"], o["shape"]) for o in answer["outputs"]] == [
        (t["name"], t["datatype"], [3 if d == BATCH else d for d in t["shape"]])
        for t in declared["outputs"]]


@pytest.mark.parametrize("model", [BBC, FMNIST], ids=lambda m: m.name)
def test_malformed_requests_get_4xx_never_2xx_or_5xx(server: str, model: Model) -> None:
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    wrong = []
    cases = list(corpus(model))
    assert len(cases) > 1000
    for case, body, valid in cases:
        try:
            connection.request("POST", f"/v2/models/{model.name}/infer", body,
                               {"Content-Type": "application/json"})
            answer = connection.getresponse()
            status, text = answer.status, answer.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()  # the server dropped the connection: reconnect for the next
            status, text = 0, repr(exc).encode()
        if (status == 200) != valid or not (valid or 400 <= status < 500):
            wrong.append(f"{case}: {status} {text[:200]!r}")
    assert not wrong, f"{len(wrong)} of {len(cases)} wrong:\n" + "\n".join(wrong[:40])
    good = next(body for case, body, _ in cases if case == "good")
    code, reply = deploy.infer(server, model.name, json.loads(good))
    assert code == 200 and reply["outputs"][0]["name"] == "label"
    with urllib.request.urlopen(f"{server}/v2/health/ready", timeout=30) as ready:
        assert ready.status == 200


def _good_requests(model: Model, n: int) -> list[dict[str, Any]]:
    """N valid requests of 1 to 3 items, each item its own: texts or images that differ."""
    requests = []
    for i in range(n):
        items = 1 + i % 3
        if model is BBC:
            data: list[Any] = [f"{TEXT} Goal number {i * 3 + k} in minute {k}." * (1 + k)
                               for k in range(items)]
            shape = [items]
        else:
            data = [(i * 7 + k * 31 + p) % 256 for k in range(items) for p in range(784)]
            shape = [items, 28, 28]
        requests.append({"inputs": [{"name": model.input, "datatype": model.datatype,
                                     "shape": shape, "data": data}]})
    return requests


@pytest.mark.parametrize("model", [BBC, FMNIST], ids=lambda m: m.name)
def test_concurrent_requests_are_each_answered_as_alone(server: str, model: Model) -> None:
    """The runtime runs the model once for the requests that wait together: under load, every
    good request still gets the answer it gets alone, and a malformed one beside it gets its
    4xx without failing the others."""
    good = _good_requests(model, 48)
    alone = []
    for payload in good:
        status, body = deploy.infer(server, model.name, payload)
        assert status == 200, body
        alone.append(body["outputs"])
    bad = [json.loads(body) for case, body, valid in corpus(model)
           if not valid and case.startswith(f"{model.datatype} ")][:48]
    mixed = [(i, p) for i, p in enumerate(good)] + [(None, p) for p in bad]
    mixed = [x for pair in zip(mixed[:48], mixed[48:], strict=True) for x in pair] * 4
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda job: deploy.infer(server, model.name, job[1]), mixed))
    for (index, payload), (status, body) in zip(mixed, answers, strict=True):
        if index is None:
            assert 400 <= status < 500, (payload, status, body)
            continue
        assert status == 200, body
        label, probabilities = body["outputs"]
        assert label["data"] == alone[index][0]["data"]
        assert np.allclose(probabilities["data"], alone[index][1]["data"], atol=1e-5)
