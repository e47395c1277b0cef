"""Soak: MLServer as `cdl serve` runs it, both models, Scoring Data on, under a steady mix of
good and malformed requests for many minutes; what it shows per minute is whether the server
holds up: its memory, its errors and its tail latency.

Two `wrk` processes share the connections: most send good single-item V2 requests to both
models in turn (the plain JSON form), the rest cycle through the malformed requests of the
tests' hostile corpus (tests/usecases/serving/test_contract.py, those under 64 KiB). An error is
a good request not answered 2xx, a malformed one not answered 4xx, or a socket error (wrk's
timeout is 2 s). Each minute is one pair of wrk runs; the server's resident memory (every
process of its group) is read after each. At the end the server is stopped, which drains its
Scoring Data queue, and the rows it stored are set against the good answers counted.

    .venv/bin/python benchmarks/soak.py --home CDL_HOME [--minutes 10] [--connections 16]
        [--bad-connections 4] [--out FILE]

CDL_HOME must hold packaged models (`cdl demo` makes them). Needs Debian's wrk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import machine, print_table  # noqa: E402
from serving import MODELS, bodies, mlserver, wrk_figures  # noqa: E402

from tests.usecases.serving.test_contract import BBC, FMNIST, corpus  # noqa: E402
from usecases.state import State  # noqa: E402
from usecases.stores.database import open_database  # noqa: E402
from usecases.stores.scoring import PostgresScoringStore  # noqa: E402

MIXED = REPO / "benchmarks" / "mixed.lua"
MAX_BAD_BYTES = 64 * 1024  # the corpus's multi-MB requests would make this a bandwidth test


def request_files(home: Path, folder: Path) -> tuple[Path, Path]:
    """The good and the malformed requests, one "PATH BODY" line each."""
    good, bad = folder / "good.txt", folder / "bad.txt"
    with good.open("wb") as out:
        for name in MODELS:
            v2, _ = bodies(home / "serving" / "models" / name)
            out.write(f"/v2/models/{name}/infer {json.dumps(v2)}\n".encode())
    count = 0
    with bad.open("wb") as out:
        for model in (BBC, FMNIST):
            for _, body, valid in corpus(model):
                if not valid and len(body) <= MAX_BAD_BYTES and b"\n" not in body:
                    out.write(f"/v2/models/{model.name}/infer ".encode() + body + b"\n")
                    count += 1
    print(f"{count} malformed requests in rotation", file=sys.stderr)
    return good, bad


def wrk(url: str, requests: Path, expect: str, connections: int,
        seconds: int) -> subprocess.Popen[str]:
    return subprocess.Popen(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                             "-s", str(MIXED), url, "--", str(requests), expect],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def figures(process: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = process.communicate()
    if process.returncode != 0 or "cdl-unexpected" not in out:
        raise SystemExit(f"wrk failed ({process.returncode}):\n{out}")
    unexpected = int(out.rsplit("cdl-unexpected", 1)[1].split()[0])
    return {**wrk_figures(out), "unexpected": unexpected}


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the process group ``pgid``."""
    total_kb = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = (proc / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        total_kb += next((int(line.split()[1]) for line in status.splitlines()
                          if line.startswith("VmRSS:")), 0)
    return total_kb / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--bad-connections", type=int, default=4,
                        help="of --connections, how many send malformed requests")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    good_connections = args.connections - args.bad_connections
    if not 1 <= args.bad_connections < args.connections:
        parser.error("--bad-connections must be at least 1 and fewer than --connections")

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, open_database(State.from_env(args.home)) as db:
        good, bad = request_files(args.home, Path(tmp))
        with mlserver(args.home, 1, 0, db.conninfo) as server:
            figures(wrk(server.url, good, "2xx", good_connections, 5))  # warm-up
            start = datetime.now(UTC)
            rss_start = group_rss_mb(server.process.pid)
            for minute in range(1, args.minutes + 1):
                runs = (wrk(server.url, good, "2xx", good_connections, 60),
                        wrk(server.url, bad, "4xx", args.bad_connections, 60))
                ok, malformed = (figures(run) for run in runs)
                rss = group_rss_mb(server.process.pid)
                rows.append({
                    "minute": minute, "good_requests": ok["requests"], "good_rps": ok["rps"],
                    "good_p99_ms": ok["p99_ms"], "bad_requests": malformed["requests"],
                    "bad_p99_ms": malformed["p99_ms"],
                    "errors": int(ok["unexpected"] + malformed["unexpected"]
                                  + ok["socket_errors"] + malformed["socket_errors"]),
                    "rss_mb": rss, "rss_growth_mb": rss - rss_start})
                print(f"minute {minute}: {rows[-1]}", file=sys.stderr, flush=True)
        # the server has stopped: its Scoring Data queue is drained
        scoring = PostgresScoringStore(db)
        stored = sum(scoring.count_since(name, start) for name in MODELS)
    answered = sum(row["good_requests"] for row in rows)

    print(f"machine: {machine()}; {args.minutes} min at {args.connections} connections "
          f"({args.bad_connections} of them malformed requests), Scoring Data on\n")
    print_table(["minute", "good req/s", "good p99 ms", "malformed req/s", "malformed p99 ms",
                 "errors", "RSS MB", "RSS growth MB"],
                [[r["minute"], f"{r['good_rps']:.0f}", f"{r['good_p99_ms']:.1f}",
                  f"{r['bad_requests'] / 60:.0f}", f"{r['bad_p99_ms']:.1f}", r["errors"],
                  f"{r['rss_mb']:.0f}", f"{r['rss_growth_mb']:+.1f}"] for r in rows])
    print(f"\ngood requests answered: {answered}; Scoring Data rows stored: {stored} "
          f"(at most {good_connections} a minute may be stored but not counted as answered: "
          "requests in flight when a minute's wrk stops)")
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "rows": rows,
                                        "answered": answered, "stored": stored}, indent=1))


if __name__ == "__main__":
    main()
