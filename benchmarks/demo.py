"""Time each stage of `cdl demo --usecase NAME`, installs excluded.

Runs the real command in a fresh state directory (cold: new database, new dataset version,
features computed) and then again in the same one (warm: dataset and features reused), and
prints a table of the stage timings from the reports plus the wall time of each process.

    .venv/bin/python benchmarks/demo.py [--usecase bbc|fmnist] [--data DIR] [--trials N]
                                        [--repeat K] [--label-studio] [--out FILE]
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


def run_demo(home: Path, usecase: str, data: Path | None, trials: int,
             label_studio: bool) -> dict[str, Any]:
    report = home.parent / f"report-{time.monotonic_ns()}.json"
    command = [sys.executable, "-m", "usecases.cli", "demo", "--usecase", usecase,
               "--trials", str(trials), "--report", str(report),
               "--label-studio" if label_studio else "--no-label-studio"]
    if data is not None:
        command += ["--data", str(data)]
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, "CDL_HOME": str(home)}, check=True,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    result = json.loads(report.read_text())["usecases"][usecase]
    return {"wall": round(wall, 2), "timings": result["timings"],
            "test_accuracy": result["test_accuracy"], "val_accuracy": result["val_accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--usecase", choices=["bbc", "fmnist"], default="bbc")
    parser.add_argument("--data", type=Path, help="default: the use case's own default")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--label-studio", action="store_true",
                        help="label through Label Studio (default: the direct path; "
                        "benchmarks/labeling.py times Label Studio on its own)")
    parser.add_argument("--repeat", type=int, default=3, help="cold+warm pairs to run")
    parser.add_argument("--out", type=Path, help="write the raw results as JSON")
    args = parser.parse_args()

    runs: dict[str, list[dict[str, Any]]] = {"cold": [], "warm": []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "cdl"
            for kind in ("cold", "warm"):
                runs[kind].append(run_demo(home, args.usecase, args.data, args.trials,
                                           args.label_studio))

    stages = list(runs["cold"][0]["timings"])
    print(f"machine: {machine()}")
    print(f"`cdl demo --usecase {args.usecase} --trials {args.trials}"
          f"{'' if args.label_studio else ' --no-label-studio'}`, median of "
          f"{args.repeat} runs\n")
    def median(kind: str, stage: str) -> float:
        return statistics.median(r["wall"] if stage == "wall" else r["timings"].get(stage, 0.0)
                                 for r in runs[kind])

    print_table(["stage", "cold (s)", "warm (s)"],
                [[stage, f"{median('cold', stage):.1f}", f"{median('warm', stage):.1f}"]
                 for stage in [*stages, "wall"]])
    accuracies = [r["test_accuracy"] for kind in runs for r in runs[kind]]
    print(f"\ntest accuracy: min {min(accuracies):.3f}, median "
          f"{statistics.median(accuracies):.3f}, max {max(accuracies):.3f}")
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "usecase": args.usecase,
                                        "trials": args.trials,
                                        "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
