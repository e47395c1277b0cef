"""The deployment pipeline against a real MLServer on 127.0.0.1 and the real database."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import torch

from usecases.bbc.dataset import CLASSES
from usecases.state import State
from usecases.stores.database import open_database
from usecases.stores.scoring import PostgresScoringStore
from usecases.workflow import deploy
from usecases.workflow.scoring import summarize

from ...cli import interruptible
from ...packaged import package, serving

# Every test here serves models a fixture trained, through a real MLServer
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both use cases trained on small data, approved, packaged and smoke-tested by `cdl demo`."""
    return package(tmp_path_factory.mktemp("deploy"), ("bbc", "fmnist"))


@pytest.mark.parametrize("name", ["bbc", "fmnist"])
def test_demo_smoke_matches_offline_and_is_scored(packaged: dict[str, Any], name: str) -> None:
    serving = packaged["reports"][name]["serving"]
    assert serving["smoke"]["requests"] == 10
    assert serving["smoke"]["matches_offline"] is True
    assert serving["smoke"]["scored"] == 10
    assert serving["url"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("name", ["bbc", "fmnist"])
def test_the_folder_is_self_contained(packaged: dict[str, Any], name: str) -> None:
    model = "bbc-news" if name == "bbc" else "fmnist"
    folder = packaged["repository"] / model
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings["implementation"].startswith("cdl_serving.")
    assert settings["parameters"]["version"] == str(packaged["reports"][name]["model"]["version"])
    code = "\n".join(p.read_text() for p in (folder / "cdl_serving").glob("*.py"))
    imports = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", code, re.M)
    assert not [m for m in imports if m.split(".")[0] in ("usecases", "determined")], imports
    assert not (folder / "artifacts" / "checkpoint").exists()


@pytest.mark.parametrize("name", ["bbc", "fmnist"])
def test_compression_is_compared_and_gated(packaged: dict[str, Any], name: str) -> None:
    comparison = packaged["reports"][name]["compression"]
    assert comparison["compressed"]["bytes"] < comparison["original"]["bytes"]
    assert comparison["kept"] == (comparison["accuracy_drop"] <= deploy.MAX_ACCURACY_DROP)
    model = "bbc-news" if name == "bbc" else "fmnist"
    meta = json.loads((packaged["repository"] / model / "artifacts" / "model.json").read_text())
    expected = comparison["compressed" if comparison["kept"] else "original"]["weights"]
    assert meta["weights"] == expected


def test_a_compressed_model_that_loses_accuracy_is_dropped(packaged: dict[str, Any],
                                                          tmp_path: Path) -> None:
    version = packaged["reports"]["bbc"]["model"]["version"]
    build = packaged["home"] / "serving" / "build" / f"bbc-news-v{version}"
    broken = tmp_path / "broken"
    shutil.copytree(build / "compressed", broken)
    meta = json.loads((broken / "artifacts" / "model.json").read_text())
    with torch.no_grad():  # the int8 weights of a network that never learned anything
        from usecases.serving.news import load_network

        network = load_network(broken / "artifacts", meta)
        for module in network.modules():
            if isinstance(module, torch.ao.nn.quantized.dynamic.Linear):
                weight, bias = module._weight_bias()
                module.set_weight_bias(torch.quantize_per_tensor(
                    torch.zeros_like(weight.dequantize()), 1.0, 0, torch.qint8), bias)
        torch.save(network.state_dict(), broken / "artifacts" / meta["weights"])
    texts = ["Profits at the bank rose as shares and the market grew.",
             "The team won the cup final with a late goal."] * 10
    batch = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [20], "data": texts}]}
    singles = [{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [t]}]}
               for t in texts[:4]]
    result = deploy.compare(build / "original", broken, singles, batch,
                            ["business", "sport"] * 10)
    assert result.original.test_accuracy == 1.0
    assert result.accuracy_drop > deploy.MAX_ACCURACY_DROP and result.kept is False


@pytest.fixture(scope="module")
def server(packaged: dict[str, Any]) -> Iterator[tuple[str, str]]:
    with serving(packaged["home"]) as running:
        yield running


def _text(data: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(data)], "data": data}]}


BAD_REQUESTS = [
    ("bbc-news", b"{not json", 422, "JSON decode error"),
    ("bbc-news", _text([""]), 400, "item 0 is empty"),
    ("bbc-news", {"inputs": [{"name": "text", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
     400, "datatype BYTES"),
    ("bbc-news", {"inputs": [{"name": "words", "datatype": "BYTES", "shape": [1],
                              "data": ["x"]}]}, 400, "input 'text' is missing"),
    ("bbc-news", _text(["vote " * 250_000]), 413, "payload too large"),
    ("fmnist", {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 27],
                            "data": [0] * 756}]}, 400, "shape [n, 28, 28]"),
    ("fmnist", {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28],
                            "data": [0.5] * 784}]}, 400, "datatype UINT8"),
    ("fmnist", {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [2, 28, 28],
                            "data": [0] * 784}]}, 400, "does not fill shape"),
    ("nope", _text(["hello"]), 404, "Model nope not found"),
]


@pytest.mark.parametrize(("model", "payload", "status", "message"), BAD_REQUESTS,
                         ids=["malformed-json", "empty-text", "wrong-dtype", "wrong-input",
                              "too-large", "wrong-shape", "wrong-pixel-dtype", "short-data",
                              "unknown-model"])
def test_bad_requests_get_a_4xx_that_says_why_and_serving_goes_on(
        server: tuple[str, str], model: str, payload: Any, status: int, message: str) -> None:
    url, _ = server
    import urllib.error
    import urllib.request

    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=body,
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == status
    assert message in err.value.read().decode()
    code, answer = deploy.infer(url, "bbc-news", _text(["The minister lost the vote."]))
    assert code == 200 and answer["outputs"][0]["data"][0] in CLASSES


def test_every_prediction_is_recorded(server: tuple[str, str]) -> None:
    url, conninfo = server
    pixels = np.zeros((3, 28, 28), np.uint8)
    pixels[:, 10:12, :] = 250  # label 3's band in the synthetic data
    code, _ = deploy.infer(url, "fmnist", {"inputs": [{
        "name": "pixels", "datatype": "UINT8", "shape": [3, 28, 28],
        "data": pixels.ravel().tolist()}]})
    assert code == 200
    deadline = time.monotonic() + 10
    rows: list[Any] = []
    while time.monotonic() < deadline and len(rows) < 3:
        with psycopg.connect(conninfo) as conn:
            rows = conn.execute(
                "SELECT prediction, input_pixels, input_sha256, latency_ms, model_version"
                " FROM scoring_data WHERE model = 'fmnist' AND input_pixels = %s",
                (pixels[0].tobytes(),)).fetchall()
        time.sleep(0.2)
    assert len(rows) == 3
    prediction, stored, digest, latency, version = rows[0]
    assert prediction == "Dress" and len(stored) == 784 and len(digest) == 64 and latency > 0
    assert version.isdigit()


def test_scoring_summary_has_counts_latency_and_drift(packaged: dict[str, Any],
                                                      server: tuple[str, str]) -> None:
    state = State.from_env(packaged["home"])
    with open_database(state) as db:
        summary = {s["model"]: s for s in summarize(PostgresScoringStore(db))}
    bbc = summary["bbc-news"]
    assert bbc["requests"] >= 10 and sum(bbc["classes"].values()) == bbc["requests"]
    assert 0 < bbc["latency_ms"]["p50"] <= bbc["latency_ms"]["p99"]
    assert bbc["drift"]["psi"] is not None


def test_a_server_started_empty_loads_each_folder_when_asked(packaged: dict[str, Any],
                                                            tmp_path: Path) -> None:
    """What `cdl demo` does: MLServer starts before any model is packaged, then loads each
    folder by name; a folder that cannot load is an error naming it, and serving goes on."""
    repository = tmp_path / "models"
    shutil.copytree(packaged["repository"] / "bbc-news", repository / "bbc-news")
    broken = repository / "broken"
    broken.mkdir()
    (broken / "model-settings.json").write_text(json.dumps(
        {"name": "broken", "implementation": "cdl_serving.missing.Runtime"}))
    with deploy.serve(repository, tmp_path / "mlserver.log", deploy.free_port(),
                      deploy.free_port(), None, at_startup=False) as server:
        server.wait_ready()
        text = _text(["The minister lost the vote."])
        code, answer = deploy.infer(server.url, "bbc-news", text)
        assert code == 404, answer
        server.load("bbc-news")
        code, answer = deploy.infer(server.url, "bbc-news", text)
        assert code == 200 and answer["outputs"][0]["data"][0] in CLASSES
        with pytest.raises(deploy.CDLError, match="could not load broken") as failed:
            server.load("broken")
        assert str(server.log) in failed.value.fix
        assert deploy.infer(server.url, "bbc-news", text)[0] == 200


def test_a_new_version_replaces_the_served_one_while_requests_keep_being_answered(
        packaged: dict[str, Any], tmp_path: Path) -> None:
    """What a promotion does to a running server: the folder is swapped for a new version and
    MLServer loads it (then unloads the old) while four clients send requests: none fails,
    and the answers come from the new version afterwards."""
    repository = tmp_path / "models"
    folder = shutil.copytree(packaged["repository"] / "bbc-news", repository / "bbc-news")
    text = _text(["The minister lost the vote."])
    with deploy.serve(repository, tmp_path / "mlserver.log", deploy.free_port(),
                      deploy.free_port(), None) as server:
        assert deploy.running_server(repository) == server.url
        answers: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def client() -> None:
            while not stop.is_set():
                try:
                    code, body = deploy.infer(server.url, "bbc-news", text, timeout=30)
                except OSError as error:
                    code, body = 0, {"error": str(error)}
                answers.append((code, body.get("model_version")))

        clients = [threading.Thread(target=client) for _ in range(4)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(1)
            settings = json.loads((folder / "model-settings.json").read_text())
            old = settings["parameters"]["version"]
            settings["parameters"]["version"] = new = str(int(old) + 1)
            deploy.write_folder(folder, "bbc-news", int(new), "runtime.NewsRuntime",
                                folder / "artifacts", 1_000_000)
            deploy.load_model(server.url, "bbc-news", server.log)
            time.sleep(1)
        finally:
            stop.set()
            for thread in clients:
                thread.join()
    assert deploy.running_server(repository) is None
    failed = [a for a in answers if a[0] != 200]
    assert not failed and len(answers) > 100, failed[:3]
    versions = [version for _, version in answers]
    assert versions[0] == old and versions[-1] == new


def test_cdl_serve_serves_until_interrupted(packaged: dict[str, Any]) -> None:
    port = deploy.free_port()
    env = {k: v for k, v in os.environ.items() if k != "CDL_DATABASE_URL"}
    process = subprocess.Popen(
        interruptible([sys.executable, "-m", "usecases.cli", "serve", "--http-port", str(port),
                       "--grpc-port", str(deploy.free_port())]),
        env={**env, "CDL_HOME": str(packaged["home"])}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        code = 0
        while time.monotonic() < deadline and code != 200:
            time.sleep(0.5)
            try:
                code, _ = deploy.infer(f"http://127.0.0.1:{port}", "bbc-news",
                                       _text(["The team won the cup."]))
            except OSError:
                code = 0
        assert code == 200
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr[-2000:]
    assert "stopped" in stderr and "Traceback" not in stderr
