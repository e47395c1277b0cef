"""Scoring Data summaries: what the served models were asked and answered, whether the
answers drift away from what they were trained on, and whether rows are missing."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from usecases.serving.scoring import Spooled
from usecases.stores.scoring import ScoringStore

DRIFT_PSI = 0.2  # population stability index above which the class mix counts as drifted
MIN_REQUESTS_FOR_DRIFT = 30
SHARE_FLOOR = 1e-4  # stands in for a class absent on one side, whose log ratio is infinite


def psi(expected: dict[str, float], observed: dict[str, float]) -> float:
    """Population stability index between two class distributions (shares summing to 1)."""
    total = 0.0
    for label in set(expected) | set(observed):
        e = max(expected.get(label, 0.0), SHARE_FLOOR)
        o = max(observed.get(label, 0.0), SHARE_FLOOR)
        total += (o - e) * math.log(o / e)
    return total


def shares(counts: dict[str, int]) -> dict[str, float]:
    n = sum(counts.values())
    return {k: v / n for k, v in counts.items()} if n else {}


def verdict(value: float, requests: int) -> tuple[bool | None, str]:
    """Whether a PSI means drift, with the reason; no verdict on too few requests."""
    if requests < MIN_REQUESTS_FOR_DRIFT:
        return None, f"fewer than {MIN_REQUESTS_FOR_DRIFT} requests: no verdict"
    return value > DRIFT_PSI, f"PSI > {DRIFT_PSI} means drift"


def drift(trained: dict[str, int], served: dict[str, int]) -> dict[str, Any]:
    """The served class mix against the training labels' mix."""
    if not trained:
        return {"reference": "training labels", "psi": None, "drifted": None,
                "note": "no training labels for this version: no reference"}
    value = psi(shares(trained), shares(served))
    drifted, note = verdict(value, sum(served.values()))
    return {"reference": "training labels", "psi": round(value, 4), "drifted": drifted,
            "note": note}


def _complete() -> dict[str, int]:
    return {"servers": 0, "spooled": 0, "lost": 0}


def completeness(store: ScoringStore, spooled: Iterable[Spooled],
                 model: str | None = None) -> dict[tuple[str, str], dict[str, int]]:
    """Per model version: its scoring logs (servers), rows waiting in the spool, and rows
    lost: numbers of a log's sequence neither in the table nor in the spool. Read the spool
    first, then call this: a row the loader moves meanwhile is then found in the table."""
    waiting: dict[str, set[int]] = defaultdict(set)
    names: dict[str, tuple[str, str]] = {}
    for row in spooled:
        if model is None or row.model == model:
            waiting[row.server_id].add(row.seq)
            names[row.server_id] = (row.model, row.model_version)
    pairs = [(server, seq) for server, seqs in waiting.items() for seq in seqs]
    stored = {s.server_id: s for s in store.server_rows(pairs, model)}
    result: dict[tuple[str, str], dict[str, int]] = defaultdict(_complete)
    for server in sorted(set(stored) | set(waiting)):
        seqs, seen = waiting.get(server, set()), stored.get(server)
        rows, last, both = (seen.rows, seen.last, seen.spooled_stored) if seen else (0, 0, 0)
        entry = result[(seen.model, seen.version) if seen else names[server]]
        entry["servers"] += 1
        entry["spooled"] += len(seqs) - both
        entry["lost"] += max(last, max(seqs, default=0)) - rows - (len(seqs) - both)
    return dict(result)


def summarize(store: ScoringStore, model: str | None = None,
              spooled: Iterable[Spooled] = ()) -> list[dict[str, Any]]:
    """Per served model version: requests, class mix, latency percentiles, drift against
    the training labels of the dataset version it was trained on, and completeness (see
    :func:`completeness`; ``spooled``: the spool's rows, read before this call). A version
    whose rows are all still in the spool has only its model, version and completeness."""
    counts = completeness(store, spooled, model)
    summaries: list[dict[str, Any]] = []
    for served in store.served_versions(model):
        classes = store.served_classes(served.model, served.version)
        summaries.append({
            "model": served.model,
            "version": served.version,
            "requests": served.requests,
            "first": served.first.isoformat(),
            "last": served.last.isoformat(),
            "classes": {k: classes[k] for k in sorted(classes)},
            "latency_ms": {"p50": round(served.p50_ms, 3), "p95": round(served.p95_ms, 3),
                           "p99": round(served.p99_ms, 3)},
            "drift": drift(store.training_classes(served.model, served.version), classes),
            "completeness": counts.pop((served.model, served.version), _complete()),
        })
    summaries += [{"model": name, "version": version, "completeness": entry}
                  for (name, version), entry in sorted(counts.items())]
    return summaries
