"""Time `cdl demo` (both use cases, Label Studio in the loop) stage by stage: a first run on a
fresh `CDL_HOME`, then a re-run on the same one, for each of several seeds.

Each first run starts from nothing: a new embedded PostgreSQL, Label Studio's first start with
its migrations, a new dataset version, features computed, the ASHA searches, MLServer and the
smoke. The re-run finds the dataset version, features, label exports and models of the same
inputs and reuses them. Prints one row per stage (median, min, max over the seeds), the wall
time of each `cdl demo` process, the work done in the background, and each run's test accuracy.

    .venv/bin/python benchmarks/demo.py [--seeds 1 2 3] [--trials N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, print_table

from usecases.workflow.deploy import free_port

KINDS = ("first", "re-run")


def run_demo(home: Path, seed: int, trials: int) -> dict[str, Any]:
    report = home.parent / f"report-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "usecases.cli", "demo", "--seed", str(seed),
               "--trials", str(trials), "--report", str(report),
               "--label-studio-port", str(free_port())]
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, "CDL_HOME": str(home)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    body = json.loads(report.read_text())
    stages: dict[str, float] = {f"- {name}": seconds for name, seconds in body["timings"].items()
                                if name != "serve"}
    stages["- serve"] = body["timings"].get("serve", 0.0)
    for name, result in body["usecases"].items():
        for stage, seconds in result["timings"].items():
            if stage not in ("total", "serve", "database"):
                stages[f"{name} {stage}"] = seconds
    return {"wall": round(wall, 2), "stages": stages,
            "background": body["background"],
            "test_accuracy": {n: r["test_accuracy"] for n, r in body["usecases"].items()},
            "model_reused": {n: r["model"]["reused"] for n, r in body["usecases"].items()}}


def spread(values: list[float]) -> list[str]:
    return [f"{statistics.median(values):.1f}", f"{min(values):.1f}", f"{max(values):.1f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--out", type=Path, help="write the raw results as JSON")
    args = parser.parse_args()

    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "cdl"
            for kind in KINDS:
                runs[kind].append(run_demo(home, seed, args.trials))

    stages = list(dict.fromkeys(s for kind in KINDS for r in runs[kind] for s in r["stages"]))
    print(f"machine: {machine()}")
    print(f"`cdl demo --trials {args.trials} --seed S` for S in {args.seeds}: a first run on a "
          "fresh CDL_HOME, then a re-run; seconds\n")
    rows = [[stage, *spread([r["stages"].get(stage, 0.0) for r in runs["first"]]),
             *spread([r["stages"].get(stage, 0.0) for r in runs["re-run"]])]
            for stage in stages]
    rows.append(["**wall (process)**", *spread([r["wall"] for r in runs["first"]]),
                 *spread([r["wall"] for r in runs["re-run"]])])
    print_table(["stage", "first median", "min", "max", "re-run median", "min", "max"], rows)
    print("\nbackground work of the first runs (from queued to done; waited = what the run "
          "waited for at its end):")
    for number, result in enumerate(runs["first"]):
        jobs = "; ".join(f"{j['title']} {j['seconds']:.0f} s (waited {j['waited']:.0f} s)"
                         for j in result["background"])
        print(f"- seed {args.seeds[number]}: {jobs}")
    for name in runs["first"][0]["test_accuracy"]:
        values = [r["test_accuracy"][name] for r in runs["first"]]
        print(f"\n{name} test accuracy (first runs, seeds {args.seeds}): "
              f"{', '.join(f'{v:.4f}' for v in values)}; median {statistics.median(values):.4f}")
    reused = all(all(r["model_reused"].values()) for r in runs["re-run"])
    print(f"\nre-runs reused every model: {reused}")
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "seeds": args.seeds,
                                        "trials": args.trials, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
