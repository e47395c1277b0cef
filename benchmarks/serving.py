"""Serving throughput and latency on loopback, for both models, in one run, side by side:

- in-process: the runtime's decode + infer in this process, one item at a time (the floor);
- MLServer as `cdl serve` runs it (V2 REST; the runtime runs the model once for the requests
  that wait together), and with MLServer's adaptive batching on top, Scoring Data on;
- the paper's approach: the same model files and code behind Seldon Core's Python wrapper
  (seldon-core 1.18.2, `benchmarks/seldon/`), run in a network namespace because it binds
  0.0.0.0.

Load comes from `wrk` (closed loop: each connection sends its next request when the last one is
answered) at fixed concurrencies, one single-item request each.

    .venv/bin/python benchmarks/serving.py --home CDL_HOME [--concurrency 1 4 16]
        [--duration 10] [--batching SIZE:SECONDS ...] [--workers N ...] [--no-seldon]
        [--out FILE]

CDL_HOME must hold packaged models (`cdl demo` makes them). Needs root (network namespace) and
Debian's wrk.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import machine, print_table  # noqa: E402

from usecases.state import State  # noqa: E402
from usecases.stores.database import open_database  # noqa: E402
from usecases.workflow import deploy  # noqa: E402

SELDON = REPO / "benchmarks" / "seldon"
NETNS = "cdlbench"
MODELS = {"bbc-news": "NewsModel", "fmnist": "FashionModel"}
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("CDL_BODY"), "r")
wrk.body = f:read("*a")
f:close()
"""


def bodies(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """One test example as a V2 request and as a Seldon request."""
    meta = json.loads((folder / "artifacts" / "model.json").read_text())
    if meta["usecase"] == "bbc":
        text = ("Shares in the bank rose after it reported record profits, as investors bet "
                "that the economy would keep growing through the next quarter.")
        return ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [text]}]},
                {"data": {"ndarray": [text]}})
    pixels = [[(r * 28 + c) % 256 for c in range(28)] for r in range(28)]
    flat = [v for row in pixels for v in row]
    return ({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 28, 28],
                         "data": flat}]},
            {"data": {"ndarray": [pixels]}})


def in_process(folder: Path, payload: dict[str, Any], n: int = 500) -> dict[str, float]:
    runtime = deploy.InProcess(folder)
    for _ in range(20):
        runtime.latency_ms([payload])
    times = [runtime.latency_ms([payload]) for _ in range(n)]
    return {"rps": 1000 / statistics.mean(times), "p50_ms": statistics.median(times),
            "p99_ms": sorted(times)[int(0.99 * len(times)) - 1]}


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, body: dict[str, Any], connections: int, duration: int,
        netns: str | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "body.json").write_text(json.dumps(body))
        (Path(tmp) / "post.lua").write_text(LUA)
        command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
                   "-s", str(Path(tmp) / "post.lua"), url]
        if netns:
            command = ["ip", "netns", "exec", netns, *command]
        out = subprocess.run(command, capture_output=True, text=True, check=True,
                             env={**os.environ, "CDL_BODY": str(Path(tmp) / "body.json")}).stdout
    return wrk_figures(out)


def wrk_figures(out: str) -> dict[str, float]:
    """Throughput, median and p99 latency, non-2xx answers and socket errors from wrk's report
    (run with --latency)."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {p: float(v) * _UNITS[u] for p, v, u in
               re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        out)
    return {"rps": rps, "p50_ms": latency["50"], "p99_ms": latency["99"],
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
            "errors": int(errors.group(1)) if errors else 0,
            "socket_errors": sum(map(int, sockets.groups())) if sockets else 0}


@contextlib.contextmanager
def mlserver(home: Path, batch: int, workers: int, scoring_dsn: str | None,
             batch_time: float = 0.002) -> Iterator[deploy.Server]:
    """MLServer over a copy of the packaged models, with adaptive batching set as asked."""
    with tempfile.TemporaryDirectory() as tmp:
        repository = Path(tmp) / "models"
        shutil.copytree(home / "serving" / "models", repository)
        for settings_file in repository.glob("*/model-settings.json"):
            settings = json.loads(settings_file.read_text())
            settings.pop("max_batch_size", None)
            settings.pop("max_batch_time", None)
            if batch > 1:
                settings.update(max_batch_size=batch, max_batch_time=batch_time)
            settings_file.write_text(json.dumps(settings))
        with deploy.serve(repository, Path(tmp) / "mlserver.log", deploy.free_port(),
                          deploy.free_port(), scoring_dsn, workers) as server:
            yield server


@contextlib.contextmanager
def seldon(model_class: str, folder: Path, port: int) -> Iterator[str]:
    subprocess.run([str(SELDON / "run.sh"), model_class, str(folder), str(port), NETNS],
                   check=True, capture_output=True)
    try:
        yield f"http://127.0.0.1:{port}/api/v1.0/predictions"
    finally:
        subprocess.run([str(SELDON / "stop.sh"), str(port), NETNS], check=False,
                       capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--batching", nargs="*", default=["8:0.002"],
                        metavar="SIZE:SECONDS",
                        help="MLServer's adaptive batching to try: max_batch_size and "
                             "max_batch_time (the runtime's own gathering is always on)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="MLServer inference worker processes to try")
    parser.add_argument("--no-seldon", action="store_true")
    parser.add_argument("--no-scoring", action="store_true",
                        help="MLServer without Scoring Data, to see what recording costs")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    folders = {name: args.home / "serving" / "models" / name for name in MODELS}
    rows: list[dict[str, Any]] = []
    for name, folder in folders.items():
        v2, _ = bodies(folder)
        rows.append({"model": name, "server": "in-process (floor)", "concurrency": 1,
                     **in_process(folder, v2)})
    configs = [(w, 1, 0.0) for w in args.workers]
    for batching in args.batching:
        size, seconds = batching.split(":")
        configs.append((args.workers[0], int(size), float(seconds)))
    for workers, batch, batch_time in configs:
        label = (f"MLServer, {workers} worker{'s' if workers != 1 else ''}"
                 + (f", adaptive batch ≤{batch}, " + (f"waits ≤{batch_time * 1000:g} ms"
                                                      if batch_time >= 1e-4 else "no wait")
                    if batch > 1 else "")
                 + (", no scoring" if args.no_scoring else ""))
        with open_database(State.from_env(args.home)) as db, mlserver(
                args.home, batch, workers, None if args.no_scoring else db.conninfo,
                batch_time) as server:
            for name, folder in folders.items():
                v2, _ = bodies(folder)
                for c in args.concurrency:
                    rows.append({"model": name, "server": label, "concurrency": c, **wrk(
                        f"{server.url}/v2/models/{name}/infer", v2, c, args.duration)})
                    time.sleep(1)
    if not args.no_seldon:
        for name, folder in folders.items():
            _, body = bodies(folder)
            with seldon(MODELS[name], folder, 9000) as url:
                for c in args.concurrency:
                    rows.append({"model": name, "server": "Seldon wrapper 1.18.2",
                                 "concurrency": c,
                                 **wrk(url, body, c, args.duration, netns=NETNS)})

    print(f"machine: {machine()}; {args.duration} s per cell, single-item requests\n")
    print_table(["model", "server", "concurrency", "req/s", "p50 ms", "p99 ms", "errors"],
                [[r["model"], r["server"], r["concurrency"], f"{r['rps']:.0f}",
                  f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", r.get("errors", 0)] for r in rows])
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
