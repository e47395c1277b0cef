"""The deployment pipeline (paper §3.4): package, compress, serve, smoke.

A registered, gate-passing model version becomes a self-contained MLServer model folder:
``model-settings.json``, a copy of ``usecases/serving`` as the package ``cdl_serving`` (the
runtime and the feature code it needs) and ``artifacts/``. The same folder is what Seldon Core
(protocol v2) or KServe serve on a cluster. Locally MLServer serves it on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from usecases.errors import CDLError
from usecases.stores.registry import ModelVersion, verify_artifacts

SERVING_PACKAGE = "cdl_serving"
SERVING_SOURCE = Path(__file__).resolve().parent.parent / "serving"
MAX_ACCURACY_DROP = 0.01  # a compressed model may lose at most one point of test accuracy


def model_folder(repository: Path, name: str) -> Path:
    return repository / name


def write_folder(folder: Path, name: str, version: int, runtime: str, artifacts: Path,
                 max_request_bytes: int, max_batch_size: int = 0,
                 max_batch_time: float = 0.0) -> Path:
    """Build the MLServer model folder next to ``folder`` and swap it in atomically."""
    staging = folder.with_name(folder.name + ".staging")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shutil.copytree(SERVING_SOURCE, staging / SERVING_PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copytree(artifacts, staging / "artifacts",
                    ignore=shutil.ignore_patterns("checkpoint", "digests.json"))
    settings: dict[str, Any] = {
        "name": name,
        "implementation": f"{SERVING_PACKAGE}.{runtime}",
        "parameters": {"uri": "./artifacts", "version": str(version),
                       "extra": {"max_request_bytes": max_request_bytes}},
    }
    if max_batch_size > 1:
        settings.update(max_batch_size=max_batch_size, max_batch_time=max_batch_time)
    (staging / "model-settings.json").write_text(json.dumps(settings, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def approved(entry: ModelVersion) -> None:
    if not entry.gate_passed:
        raise CDLError(f"{entry.name} v{entry.version} did not pass its gate "
                       f"(test accuracy {entry.test_accuracy})",
                       "serve an approved version: run `cdl demo` to train one")
    verify_artifacts(entry.artifact_path)


def check_current(folder: Path, db: Any, models_root: Path) -> None:
    """Refuse to serve a folder whose version is no longer approved in the registry."""
    from usecases.stores.registry import ModelRegistry

    settings = json.loads((folder / "model-settings.json").read_text())
    version = int(settings["parameters"]["version"])
    entry = ModelRegistry(db, models_root).get(settings["name"], version)
    if not entry.gate_passed:
        raise CDLError(f"{folder} holds {entry.name} v{version}, which is not approved",
                       "run `cdl demo` to package an approved version")


class InProcess:
    """A model folder's runtime loaded in this process: the offline reference and the floor
    of serving latency."""

    def __init__(self, folder: Path) -> None:
        from mlserver.settings import ModelSettings

        settings = ModelSettings.parse_file(str(folder / "model-settings.json"))
        self.runtime = settings.implementation(settings)
        asyncio.run(self.runtime.load())

    def decode(self, payload: dict[str, Any]) -> Any:
        from mlserver.types import InferenceRequest

        request = InferenceRequest.model_validate(payload)
        inputs, _ = self.runtime.decode(self.runtime._input(request))
        return inputs

    def labels(self, payload: dict[str, Any]) -> list[str]:
        probabilities = self.runtime.infer(self.decode(payload))
        return [self.runtime.classes[i] for i in probabilities.argmax(axis=1)]

    def latency_ms(self, payloads: list[dict[str, Any]]) -> float:
        """Median time of one single-item prediction (decode + infer)."""
        times = []
        for payload in payloads:
            start = time.perf_counter()
            self.runtime.infer(self.decode(payload))
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)


def compare(original: Path, compressed: Path, payloads: list[dict[str, Any]],
            batch: dict[str, Any], truth: list[str]) -> dict[str, Any]:
    """Size, in-process latency and test accuracy of two model folders."""
    report: dict[str, Any] = {}
    for key, folder in (("original", original), ("compressed", compressed)):
        runtime = InProcess(folder)
        meta = json.loads((folder / "artifacts" / "model.json").read_text())
        predicted = runtime.labels(batch)
        report[key] = {
            "weights": meta.get("weights"),
            "bytes": (folder / "artifacts" / meta["weights"]).stat().st_size,
            "latency_ms": round(runtime.latency_ms(payloads), 3),
            "test_accuracy": float(np.mean([p == t for p, t in zip(predicted, truth,
                                                                   strict=True)])),
        }
    drop = report["original"]["test_accuracy"] - report["compressed"]["test_accuracy"]
    report["accuracy_drop"] = round(drop, 4)
    report["kept"] = drop <= MAX_ACCURACY_DROP
    return report


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


def _mlserver() -> str:
    candidate = Path(sys.executable).with_name("mlserver")
    return str(candidate) if candidate.exists() else "mlserver"


@contextlib.contextmanager
def serve(repository: Path, log: Path, http_port: int, grpc_port: int, scoring_dsn: str | None,
          workers: int = 0, timeout: float = 180.0) -> Iterator[Server]:
    """MLServer on 127.0.0.1 over every model folder in ``repository``; stopped on exit."""
    (repository / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,  # no third port; scoring data is the record of requests
        "parallel_workers": workers,
        "debug": False,
    }, indent=1))
    env = {**os.environ, "MLSERVER_METRICS_DIR": str(repository / ".metrics")}
    if scoring_dsn:
        env["CDL_SCORING_DSN"] = scoring_dsn
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen([_mlserver(), "start", str(repository)], cwd=repository,
                                   env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_ready(url, process, log, timeout)
        yield Server(url, process, log)
    finally:
        _stop(process)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise CDLError(f"MLServer exited with status {process.returncode}: {tail[0]}",
                           f"read {log}; a port in use is the usual cause (--http-port)")
        with contextlib.suppress(OSError), \
                urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.5)
    raise CDLError(f"MLServer did not become ready within {timeout:.0f}s",
                   f"read {log} for the model that failed to load")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def infer(url: str, model: str, payload: dict[str, Any],
          timeout: float = 30) -> tuple[int, dict[str, Any]]:
    """POST a V2 inference request; (HTTP status, JSON body)."""
    request = urllib.request.Request(f"{url}/v2/models/{model}/infer",
                                     data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, {"error": body.decode(errors="replace")}


def scored_since(conninfo: str, model: str, since: Any) -> int:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT count(*) FROM scoring_data WHERE model = %s AND at >= %s",
                           (model, since)).fetchone()
    return int(row[0]) if row else 0


def smoke(url: str, model: str, payloads: list[dict[str, Any]], truth: list[str],
          offline: list[str], conninfo: str | None = None) -> dict[str, Any]:
    """Each held-out example through the REST API; served must equal offline predictions.

    With ``conninfo``, also waits (up to 10 s) for the scoring rows of these requests."""
    from datetime import UTC, datetime

    since = datetime.now(UTC)
    served: list[str] = []
    for payload in payloads:
        status, body = infer(url, model, payload)
        if status != 200:
            raise CDLError(f"smoke request to {model} failed with HTTP {status}: "
                           f"{body.get('error', body)}", "read the MLServer log in CDL_HOME/logs")
        label_output = next(o for o in body["outputs"] if o["name"] == "label")
        served.extend(label_output["data"])
    result: dict[str, Any] = {
        "requests": len(payloads),
        "correct": sum(s == t for s, t in zip(served, truth, strict=True)),
        "matches_offline": served == offline,
    }
    if conninfo is not None:
        deadline = time.monotonic() + 10
        while (scored := scored_since(conninfo, model, since)) < len(payloads):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        result["scored"] = scored
    return result
