"""What the page shows, gathered from the run's report (``reports/run.json``) and the stores."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from usecases.errors import CDLError
from usecases.serving.scoring import Spooled
from usecases.stores.experiments import Trial, registered_trial
from usecases.stores.labels import ExportRecord
from usecases.stores.local import Stores
from usecases.stores.registry import ModelVersion
from usecases.workflow.maintenance import Verdict, monitor
from usecases.workflow.scoring import summarize
from usecases.workflow.usecase import UseCase

RUN_FILE = "run.json"
MAINTENANCE_HOURS = 24


@dataclass
class Section:
    """One use case: its part of the run's report, and what the stores hold about it."""

    name: str
    run: dict[str, Any]  # the use case's entry of the run report (UseCaseReport.to_dict)
    version: ModelVersion | None  # the model version the run registered or reused
    trials: list[Trial] = field(default_factory=list)  # the search behind that version
    exports: list[ExportRecord] = field(default_factory=list)  # the dataset version's labels
    scoring: list[dict[str, Any]] = field(default_factory=list)  # per served version
    trained_classes: dict[str, dict[str, int]] = field(default_factory=dict)  # by version
    maintenance: Verdict | None = None  # Model Maintenance's monitor over the last day

    @property
    def best_trial(self) -> int | None:
        found = registered_trial(self.trials, self.version.hparams) if self.version else None
        return found.number if found else None


@dataclass
class Content:
    generated_at: str
    cdl_home: str
    sections: list[Section]
    timings: dict[str, float]
    background: list[dict[str, Any]]


def load_run(reports: Path) -> dict[str, Any]:
    """The newest run's report, as ``cdl demo`` keeps it."""
    path = reports / RUN_FILE
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise CDLError(f"no run is recorded in {reports}",
                       "run `cdl demo` first: it records its run there") from None
    except (OSError, ValueError) as exc:
        raise CDLError(f"cannot read the run report {path} ({type(exc).__name__})",
                       "run `cdl demo` again to record a new one") from None
    if not isinstance(body, dict) or not isinstance(body.get("usecases"), dict):
        raise CDLError(f"{path} is not a run report of `cdl demo`",
                       "run `cdl demo` again to record a new one")
    return body


def gather(stores: Stores, run: dict[str, Any], spooled: Iterable[Spooled] = (),
           usecases: Mapping[str, UseCase] | None = None) -> Content:
    """The page's content: the run's report joined with the registry, the Experiment
    Registry, the label exports and the Scoring Data (``spooled``: the spool's rows, read
    before this call); with ``usecases`` (by name), Model Maintenance's verdict on each
    version over the last ``MAINTENANCE_HOURS``."""
    waiting = list(spooled)
    sections = []
    for name, body in run["usecases"].items():
        model = body.get("model", {})
        version = None
        if model.get("name") and model.get("version"):
            try:
                version = stores.models.get(model["name"], int(model["version"]))
            except CDLError:
                version = None  # the registry was reset after the run: the run's report stays
        trials = (stores.experiments.trials(version.experiment_id)
                  if version is not None and version.experiment_id is not None else [])
        dataset = body.get("dataset", {}).get("version")
        exports = stores.labels.exports(dataset) if dataset else []
        scoring = summarize(stores.scoring, model.get("name"), waiting) \
            if model.get("name") else []
        trained = {str(s["version"]): stores.scoring.training_classes(s["model"], s["version"])
                   for s in scoring if "classes" in s}
        usecase = (usecases or {}).get(name)
        verdict = None
        if usecase is not None and version is not None and scoring:
            since = datetime.now(UTC) - timedelta(hours=MAINTENANCE_HOURS)
            verdict = monitor(stores, usecase, version, since)
        sections.append(Section(name, body, version, trials, exports, scoring, trained,
                                verdict))
    return Content(datetime.now(UTC).isoformat(timespec="seconds"), str(run.get("cdl_home", "")),
                   sections, dict(run.get("timings", {})), list(run.get("background", [])))
