"""Model Maintenance (paper §3.1, §3.4): read the serving version's Scoring Data over a window
and say whether the model still sees what it was trained on, with the evidence.

- Prediction drift: the served class mix against the training labels' (PSI, the thresholds of
  ``workflow.scoring``).
- Input drift, needing no labels: each use case's per-input signals (BBC: text length and
  out-of-vocabulary rate; Fashion-MNIST: mean intensity, spread, background share), the served
  inputs' against the training split's, by the two-sample Kolmogorov-Smirnov test (scipy). A
  signal drifts when the test rejects at ``KS_ALPHA`` *and* the distributions differ by at least
  ``KS_MIN_STATISTIC``: with thousands of requests a test alone flags differences too small to
  matter.
- Live accuracy needs labels for served inputs; none exist before they are labeled, and the
  verdict says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from usecases.stores.local import Stores
from usecases.stores.registry import ModelVersion
from usecases.workflow.scoring import DRIFT_PSI, MIN_REQUESTS_FOR_DRIFT, drift
from usecases.workflow.usecase import UseCase

KS_ALPHA = 0.01
KS_MIN_STATISTIC = 0.1
REFERENCE_SAMPLE = 5000  # training inputs the input signals are compared with, at most
LOW_CONFIDENCE = 0.5  # a prediction the model gave less than even odds


@dataclass
class Signal:
    name: str
    test: str
    statistic: float | None
    p_value: float | None
    drifted: bool | None  # None: too few served inputs for a verdict
    reference: dict[str, float]  # n, mean, median of the training split's values
    served: dict[str, float]


@dataclass
class Verdict:
    usecase: str
    model: str
    version: int
    since: str
    requests: int
    prediction_drift: dict[str, Any]
    input_drift: list[Signal]
    live_accuracy: dict[str, Any]
    confidence: dict[str, float]  # of the served predictions: n, mean, share below LOW
    verdict: str  # "drift" | "no drift" | "no verdict"
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summary(values: np.ndarray) -> dict[str, float]:
    if not len(values):
        return {"n": 0}
    return {"n": len(values), "mean": round(float(values.mean()), 4),
            "median": round(float(np.median(values)), 4)}


def ks_signal(name: str, reference: np.ndarray, served: np.ndarray) -> Signal:
    """One input signal, the served values against the training split's."""
    if len(served) < MIN_REQUESTS_FOR_DRIFT or not len(reference):
        return Signal(name, "two-sample Kolmogorov-Smirnov", None, None, None,
                      _summary(reference), _summary(served))
    from scipy.stats import ks_2samp

    result = ks_2samp(reference, served)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    return Signal(name, "two-sample Kolmogorov-Smirnov", round(statistic, 4), p_value,
                  p_value < KS_ALPHA and statistic >= KS_MIN_STATISTIC,
                  _summary(reference), _summary(served))


def reference_inputs(stores: Stores, usecase: UseCase, version: ModelVersion,
                     seed: int = 0) -> list[str] | list[bytes]:
    """A sample of the training split's inputs of the dataset version the model came from."""
    manifest = stores.mldata.load(version.dataset_version)
    train = [item for item in usecase.items(manifest, stores.mldata) if item.split == "train"]
    if len(train) > REFERENCE_SAMPLE:
        picked = np.random.default_rng(seed).choice(len(train), REFERENCE_SAMPLE, replace=False)
        train = [train[i] for i in sorted(picked)]
    return usecase.served_inputs(train, stores.mldata)


def monitor(stores: Stores, usecase: UseCase, version: ModelVersion,
            since: datetime) -> Verdict:
    """The verdict on the version's Scoring Data since ``since``, with its evidence."""
    served = stores.scoring.served_inputs(version.name, str(version.version), since)
    classes = dict(Counter(row.prediction for row in served))
    predictions = drift(stores.scoring.training_classes(version.name, str(version.version)),
                        classes)
    predictions["served"] = {k: classes[k] for k in sorted(classes)}
    reference = usecase.input_signals(version.artifact_path,
                                      reference_inputs(stores, usecase, version))
    observed = usecase.input_signals(version.artifact_path, [row.input for row in served])
    signals = [ks_signal(name, reference[name], observed[name]) for name in reference]
    reasons = ([f"class mix PSI {predictions['psi']} > {DRIFT_PSI}"]
               if predictions["drifted"] else [])
    reasons += [f"{s.name}: KS statistic {s.statistic} (p = {s.p_value:.2g})"
                for s in signals if s.drifted]
    if reasons:
        outcome = "drift"
    elif predictions["drifted"] is None and all(s.drifted is None for s in signals):
        outcome = "no verdict"
        reasons = [f"{len(served)} predictions in the window; a verdict needs "
                   f"{MIN_REQUESTS_FOR_DRIFT}"]
    else:
        outcome = "no drift"
    known = np.array([row.confidence for row in served if row.confidence is not None])
    confidence: dict[str, float] = {"n": len(known)}
    if len(known):
        confidence |= {"mean": round(float(known.mean()), 4),
                       f"below {LOW_CONFIDENCE}": round(float((known < LOW_CONFIDENCE).mean()), 4)}
    return Verdict(usecase.name, version.name, version.version, since.isoformat(), len(served),
                   predictions, signals,
                   {"labeled": 0, "accuracy": None,
                    "note": "no served input has a label yet: none is sent to labeling"},
                   confidence, outcome, reasons)
