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
import random
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from usecases.errors import CDLError
from usecases.serving.contract import tensors
from usecases.state import State, atomic_write, staged_dir
from usecases.stores.registry import ModelRegistry, ModelVersion, verify_artifacts
from usecases.stores.scoring import ScoringStore
from usecases.workflow.context import Case, Context
from usecases.workflow.data import DatasetVersion
from usecases.workflow.report import Compression, FolderFigures, SmokeResult

SERVING_PACKAGE = "cdl_serving"
SERVING_SOURCE = Path(__file__).resolve().parent.parent / "serving"
MAX_ACCURACY_DROP = 0.01  # a compressed model may lose at most one point of test accuracy


def model_folder(repository: Path, name: str) -> Path:
    return repository / name


def write_folder(folder: Path, name: str, version: int, runtime: str, artifacts: Path,
                 max_request_bytes: int, max_batch_size: int = 0,
                 max_batch_time: float = 0.0) -> Path:
    """Build the MLServer model folder beside ``folder`` (under a hidden name, which neither
    MLServer nor ``cdl serve`` loads) and swap it in for ``folder`` in one step: a server
    reading ``folder`` sees the old folder or the new one, never none."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(folder) as staging:
        shutil.copytree(SERVING_SOURCE, staging / SERVING_PACKAGE,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(artifacts, staging / "artifacts",
                        ignore=shutil.ignore_patterns("checkpoint", "digests.json"))
        classes = json.loads((staging / "artifacts" / "model.json").read_text())["classes"]
        settings: dict[str, Any] = {
            "name": name,
            "implementation": f"{SERVING_PACKAGE}.{runtime}",
            "parameters": {"uri": "./artifacts", "version": str(version),
                           "extra": {"max_request_bytes": max_request_bytes}},
            # the V2 metadata (GET /v2/models/<name>): what the runtime enforces
            **tensors(runtime, len(classes)),
        }
        if max_batch_size > 1:
            settings.update(max_batch_size=max_batch_size, max_batch_time=max_batch_time)
        (staging / "model-settings.json").write_text(json.dumps(settings, indent=1))
    return folder


def approved(entry: ModelVersion) -> None:
    if not entry.gate_passed:
        raise CDLError(f"{entry.name} v{entry.version} did not pass its gate "
                       f"(test accuracy {entry.test_accuracy})",
                       "serve an approved version: run `cdl demo` to train one")
    verify_artifacts(entry.artifact_path)


def check_current(folder: Path, registry: ModelRegistry) -> None:
    """Refuse to serve a folder whose version is no longer approved in the registry."""
    try:
        settings = json.loads((folder / "model-settings.json").read_text())
        version = int(settings["parameters"]["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CDLError(f"{folder} is not a complete model folder ({type(exc).__name__})",
                       "run `cdl demo` to package the approved models again") from None
    entry = registry.get(settings["name"], version)
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
        # A loop of its own, never made current: asyncio.run() would leave this thread with no
        # current loop, and a later asyncio.get_event_loop() (Pulumi's runtime calls it) fails
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.runtime.load())
        finally:
            loop.close()

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


def figures(folder: Path, payloads: list[dict[str, Any]], batch: dict[str, Any],
            truth: list[str]) -> FolderFigures:
    """Size, in-process latency and test accuracy of a model folder."""
    runtime = InProcess(folder)
    meta = json.loads((folder / "artifacts" / "model.json").read_text())
    predicted = runtime.labels(batch)
    return FolderFigures(
        weights=meta.get("weights"),
        bytes=(folder / "artifacts" / meta["weights"]).stat().st_size,
        latency_ms=round(runtime.latency_ms(payloads), 3),
        test_accuracy=float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])))


def compare(original: Path, compressed: Path, payloads: list[dict[str, Any]],
            batch: dict[str, Any], truth: list[str]) -> Compression:
    """The two folders' figures; the compressed one is kept if it loses at most
    ``MAX_ACCURACY_DROP`` of test accuracy."""
    before = figures(original, payloads, batch, truth)
    after = figures(compressed, payloads, batch, truth)
    drop = before.test_accuracy - after.test_accuracy
    return Compression(before, after, round(drop, 4), drop <= MAX_ACCURACY_DROP)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    timeout: float = 180.0

    def wait_ready(self) -> None:
        _wait_ready(self.url, self.process, self.log, self.timeout)

    def load(self, name: str) -> None:
        """Load (or load again) the model folder ``name`` from the server's repository, once
        the server is ready."""
        self.wait_ready()
        load_model(self.url, name, self.log, self.timeout)


def load_model(url: str, name: str, log: Path, timeout: float = 180.0) -> None:
    """Ask the MLServer at ``url`` to (re)load the model folder ``name`` of its repository.
    MLServer loads a new version before it unloads the one it serves, and (with no parallel
    workers, the default) our runtimes' load holds its event loop: requests wait for the switch
    instead of failing."""
    request = urllib.request.Request(f"{url}/v2/repository/models/{name}/load",
                                     data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace").strip()
    except OSError as error:  # the server stopped while loading
        detail = str(error)
    raise CDLError(f"MLServer could not load {name}: {detail}",
                   f"read {log} for the runtime's error")


def running_server(repository: Path) -> str | None:
    """The URL of an MLServer serving ``repository`` now (a ``cdl serve``), if any."""
    try:
        recorded = json.loads((repository / SERVER_RECORD).read_text())
        settings = json.loads((repository / "settings.json").read_text())
        pid, port = int(recorded["pid"]), int(settings["http_port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return f"http://127.0.0.1:{port}" if process_running(pid, "mlserver") else None


def _mlserver() -> str:
    candidate = Path(sys.executable).with_name("mlserver")
    return str(candidate) if candidate.exists() else "mlserver"


@contextlib.contextmanager
def serve(repository: Path, log: Path, http_port: int, grpc_port: int, scoring_dsn: str | None,
          workers: int = 0, timeout: float = 180.0, at_startup: bool = True) -> Iterator[Server]:
    """MLServer on 127.0.0.1 over every model folder in ``repository``; stopped on exit.

    With ``at_startup`` it loads every folder and is ready on entry; without, it loads none
    and entry returns at once: the process starts while the caller works, and
    ``Server.load`` loads each folder when it is packaged.

    A server left running by a command that was killed (kill -9 leaves its session alive) is
    stopped first; one whose command still runs (a ``cdl serve``) is left alone."""
    _stop_orphan(repository)
    atomic_write(repository / "settings.json", json.dumps({
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_endpoint": None,  # no third port; scoring data is the record of requests
        "parallel_workers": workers,
        "load_models_at_startup": at_startup,
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
    owner = repository / SERVER_RECORD
    atomic_write(owner, json.dumps({"pid": process.pid, "owner": os.getpid()}))
    server = Server(f"http://127.0.0.1:{http_port}", process, log, timeout)
    try:
        if at_startup:
            server.wait_ready()
        yield server
    finally:
        _stop(process)
        owner.unlink(missing_ok=True)


SERVER_RECORD = ".mlserver.json"  # the server started here and the process that started it


def process_running(pid: int, name: str) -> bool:
    try:
        return name in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def _stop_orphan(repository: Path) -> None:
    try:
        recorded = json.loads((repository / SERVER_RECORD).read_text())
        pid, owner = int(recorded["pid"]), int(recorded["owner"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if process_running(pid, "mlserver") and not Path(f"/proc/{owner}").exists():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    (repository / SERVER_RECORD).unlink(missing_ok=True)


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


def smoke(url: str, model: str, payloads: list[dict[str, Any]], truth: list[str],
          offline: list[str], scoring: ScoringStore | None = None) -> SmokeResult:
    """Each held-out example through the REST API; served must equal offline predictions.

    With ``scoring``, also waits (up to 10 s) for the Scoring Data rows of these requests."""
    since = datetime.now(UTC)
    served: list[str] = []
    for payload in payloads:
        status, body = infer(url, model, payload)
        if status != 200:
            raise CDLError(f"smoke request to {model} failed with HTTP {status}: "
                           f"{body.get('error', body)}", "read the MLServer log in CDL_HOME/logs")
        label_output = next(o for o in body["outputs"] if o["name"] == "label")
        served.extend(label_output["data"])
    result = SmokeResult(requests=len(payloads),
                         correct=sum(s == t for s, t in zip(served, truth, strict=True)),
                         matches_offline=served == offline)
    if scoring is not None:
        deadline = time.monotonic() + 10
        while (scored := scoring.count_since(model, since)) < len(payloads):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        result.scored = scored
    return result


@dataclass
class SmokePlan:
    """What the smoke sends (single-item requests) and expects (true and offline labels)."""

    payloads: list[dict[str, Any]]
    truth: list[str]
    offline: list[str]


def package(ctx: Context, case: Case, dataset: DatasetVersion,
            version: ModelVersion) -> tuple[Compression, SmokePlan]:
    """Package an approved version for MLServer (compressed when that costs at most a point of
    accuracy) into the served model repository; and the smoke's plan."""
    usecase, options = case.usecase, case.options
    entry = ctx.stores.models.get(usecase.model_name, version.version)
    approved(entry)
    store = ctx.stores.mldata
    test = dataset.split("test")
    truth = [i.label for i in test]
    sample = random.Random(options.seed).sample(range(len(test)), min(options.smoke, len(test)))
    singles = [usecase.payload([test[i]], store) for i in sample]
    build = ctx.state.dir("serving", "build", f"{usecase.model_name}-v{entry.version}")
    with ctx.stage(case, "package", f"{usecase.name}: packaging + compression for MLServer"):
        def folder(target: Path, artifacts: Path) -> Path:
            return write_folder(target, usecase.model_name, entry.version, usecase.runtime,
                                artifacts, options.max_request_bytes)

        original = folder(build / "original", entry.artifact_path)
        compressed_artifacts = build / "compressed-artifacts"
        if compressed_artifacts.exists():
            shutil.rmtree(compressed_artifacts)
        usecase.compress(entry.artifact_path, compressed_artifacts)
        compressed = folder(build / "compressed", compressed_artifacts)
        comparison = compare(original, compressed, singles[:50], usecase.payload(test, store),
                             truth)
        chosen = compressed if comparison.kept else original
        served = folder(model_folder(served_models(ctx.state), usecase.model_name),
                        chosen / "artifacts")
        offline = InProcess(served).labels(usecase.payload([test[i] for i in sample], store))
    before, after = comparison.original, comparison.compressed
    ctx.display.note(f"{usecase.name}: compressed {after.weights} "
                     f"{'kept' if comparison.kept else 'dropped'} (accuracy "
                     f"{before.test_accuracy:.4f} → {after.test_accuracy:.4f}, "
                     f"{before.bytes} → {after.bytes} bytes)")
    return comparison, SmokePlan(singles, [truth[i] for i in sample], offline)


def served_models(state: State) -> Path:
    """The model repository MLServer serves (``cdl serve``, the demo's smoke)."""
    return state.dir("serving", "models")


def packaged_folders(repository: Path) -> list[Path]:
    """The complete model folders in a repository (a hidden one is a write in progress)."""
    return sorted(p.parent for p in repository.glob("*/model-settings.json")
                  if not p.parent.name.startswith("."))


def packaged_versions(repository: Path) -> dict[str, int]:
    """Model name -> the version its packaged folder serves; unreadable folders left out."""
    versions: dict[str, int] = {}
    for folder in packaged_folders(repository):
        try:
            settings = json.loads((folder / "model-settings.json").read_text())
            versions[str(settings["name"])] = int(settings["parameters"]["version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return versions
