"""Time the Labeling step through a real Label Studio, in the foreground: import, convert,
export + store.

Starts the embedded PostgreSQL and Label Studio in a fresh state directory, ingests the real
datasets, and labels the full BBC training split (1,780 articles, the round trip) and N
Fashion-MNIST training images (default 10,000: imported as image files, nothing converted)
through Label Studio, then does it again (a re-run: nothing imported, only tasks touched since
the first export listed). Prints one table row per pass. `cdl demo` imports Fashion-MNIST in
the background instead; this measures what that background work costs.

    .venv/bin/python benchmarks/labeling.py [--images N] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import machine, print_table

from usecases import defaults
from usecases.bbc.usecase import USECASE as BBC
from usecases.fmnist.usecase import USECASE as FMNIST
from usecases.state import State
from usecases.stores.database import open_database
from usecases.stores.labelstudio import (
    EmbeddedLabelStudio,
    LabelStudioClient,
)
from usecases.stores.local import local_stores
from usecases.workflow import data, labeling
from usecases.workflow.deploy import free_port
from usecases.workflow.usecase import DataOptions, UseCase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--out", type=Path, help="write the raw results as JSON")
    args = parser.parse_args()

    rows: list[list[object]] = []
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as services:
        state = State.from_env(Path(tmp) / "cdl")
        db = services.enter_context(open_database(state))
        server = EmbeddedLabelStudio(state, db.conninfo, free_port())
        start = time.perf_counter()
        studio = server.start()
        services.callback(server.stop)
        print(f"Label Studio first start (with migrations): {time.perf_counter() - start:.1f} s")
        client = LabelStudioClient(studio)
        stores = local_stores(state, db)
        store = stores.mldata
        cases: list[tuple[UseCase, int | None]] = [(BBC, None), (FMNIST, args.images)]
        for usecase, limit in cases:
            folder = usecase.default_data()
            options = DataOptions(folder=folder, max_bytes=defaults.MAX_FILE_BYTES,
                                  min_chars=defaults.MIN_CHARS)
            candidates, rules = usecase.scan(options)
            split = data.SplitRules() if usecase.needs_split() else None
            dataset = data.version(store, usecase, folder, candidates, rules, split)
            dataset.items = dataset.split("train")[:limit]
            target = labeling.Target(usecase.name, usecase.classes, usecase.label_to_name,
                                     lambda item, media, u=usecase: u.task_data(item, store,
                                                                                media),
                                     usecase.labels_round_trip)
            for run in ("first", "re-run"):
                begin = time.perf_counter()
                summary = labeling.label_with_studio(stores.labels, dataset, target, client,
                                                     splits=("train",))
                total = time.perf_counter() - begin
                steps = summary.timings
                items = dataset.items
                rows.append([usecase.name, len(items), run, summary.imported,
                             steps["import"], steps.get("convert", "-"), steps["export"],
                             summary.exported, round(total, 1)])
                results.append({"usecase": usecase.name, "items": len(items), "run": run,
                                **steps, "total": round(total, 2),
                                "exported": summary.exported})
    print(f"machine: {machine()}")
    print_table(["use case", "tasks", "pass", "imported", "find + import s", "convert s",
                 "export + store s", "rows exported", "total s"], rows)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
