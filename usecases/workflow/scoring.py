"""Scoring Data summaries: what the served models were asked and answered, and whether the
answers drift away from what they were trained on."""

from __future__ import annotations

import math
from typing import Any

from usecases.stores.database import Database

DRIFT_PSI = 0.2  # population stability index above which the class mix counts as drifted
MIN_REQUESTS_FOR_DRIFT = 30


def psi(expected: dict[str, float], observed: dict[str, float]) -> float:
    """Population stability index between two class distributions (shares summing to 1)."""
    total = 0.0
    for label in set(expected) | set(observed):
        e = max(expected.get(label, 0.0), 1e-4)
        o = max(observed.get(label, 0.0), 1e-4)
        total += (o - e) * math.log(o / e)
    return total


def shares(counts: dict[str, int]) -> dict[str, float]:
    n = sum(counts.values())
    return {k: v / n for k, v in counts.items()} if n else {}


def summarize(db: Database, model: str | None = None) -> list[dict[str, Any]]:
    """Per served model version: requests, class mix, latency percentiles and drift against
    the training labels of the dataset version it was trained on."""
    where, params = ("WHERE s.model = %s", (model,)) if model else ("", ())
    with db.connect() as conn:
        groups = conn.execute(
            "SELECT s.model, s.model_version, count(*), min(s.at), max(s.at),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY s.latency_ms),"
            " percentile_cont(0.95) WITHIN GROUP (ORDER BY s.latency_ms),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY s.latency_ms)"
            f" FROM scoring_data s {where} GROUP BY 1, 2 ORDER BY 1, 2", params).fetchall()
        summaries = []
        for name, version, n, first, last, p50, p95, p99 in groups:
            served: dict[str, int] = dict(conn.execute(
                "SELECT prediction, count(*) FROM scoring_data WHERE model = %s"
                " AND model_version = %s GROUP BY 1", (name, version)).fetchall())
            trained: dict[str, int] = dict(conn.execute(
                "SELECT l.label, count(*) FROM train_labels l JOIN model_versions m"
                " ON m.dataset_version = l.dataset_version"
                " WHERE m.name = %s AND m.version::text = %s GROUP BY 1",
                (name, version)).fetchall())
            drift: dict[str, Any] = {"reference": "training labels", "psi": None,
                                     "drifted": None}
            if trained:
                value = psi(shares(trained), shares(served))
                drift["psi"] = round(value, 4)
                drift["drifted"] = (value > DRIFT_PSI if n >= MIN_REQUESTS_FOR_DRIFT else None)
                drift["note"] = (f"PSI > {DRIFT_PSI} means drift" if n >= MIN_REQUESTS_FOR_DRIFT
                                 else f"fewer than {MIN_REQUESTS_FOR_DRIFT} requests: no verdict")
            summaries.append({
                "model": name,
                "version": version,
                "requests": n,
                "first": first.isoformat(),
                "last": last.isoformat(),
                "classes": {k: served[k] for k in sorted(served)},
                "latency_ms": {"p50": round(p50, 3), "p95": round(p95, 3),
                               "p99": round(p99, 3)},
                "drift": drift,
            })
    return summaries
