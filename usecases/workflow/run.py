"""One run of the workflow on this machine: the data, model and deployment pipelines of each
use case against one set of stores, then the approved models served together and smoke-tested.

A run writes to ``CDL_HOME``: it holds the state directory's writer lock for its whole length,
and logs each stage's start and end to ``CDL_HOME/logs/cdl.log``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Protocol

from usecases.errors import CDLError
from usecases.state import State
from usecases.stores.check import check
from usecases.stores.database import open_database
from usecases.stores.labelstudio import LabelStudioClient, open_label_studio
from usecases.stores.local import local_stores
from usecases.stores.registry import ModelVersion
from usecases.workflow import deploy, features, labeling, model
from usecases.workflow.background import Finished
from usecases.workflow.context import Case, Context, StudioOpener
from usecases.workflow.data import DatasetVersion, Prepared, check_source, ingest
from usecases.workflow.display import Display
from usecases.workflow.report import (
    DatasetReport,
    GateReport,
    ModelReport,
    RunReport,
    SearchReport,
    ServingReport,
    UseCaseReport,
)

LOG = "cdl.log"
log = logging.getLogger("cdl.run")


@contextlib.contextmanager
def run_log(state: State) -> Iterator[None]:
    """Stage starts and ends appended to ``CDL_HOME/logs/cdl.log``, one line each, flushed."""
    logger = logging.getLogger("cdl")
    handler = logging.FileHandler(state.logs / LOG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(message)s"))
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
        handler.close()


def studio_opener(services: contextlib.ExitStack, ctx: Context, port: int) -> StudioOpener:
    """Label Studio, started (or found running) the first time a step needs it, from either
    thread of the run; it stops when ``services`` closes. A failed start fails every later
    call the same way."""
    lock = threading.Lock()
    opened: list[LabelStudioClient] = []
    failed: list[CDLError] = []

    def studio() -> LabelStudioClient:
        with lock:
            if failed:
                raise failed[0]
            if not opened:
                try:
                    with ctx.display.stage("Starting Label Studio on 127.0.0.1"):
                        found = services.enter_context(
                            open_label_studio(ctx.state, ctx.stores.db.conninfo, port))
                except CDLError as exc:
                    failed.append(exc)
                    raise
                ctx.display.note(f"Label Studio at {found.url}" + (
                    f"; login in {found.credentials}" if found.credentials else ""))
                opened.append(LabelStudioClient(found))
            return opened[0]

    return studio


@contextlib.contextmanager
def open_run(state: State, display: Display, command: str,
             label_studio_port: int | None = None) -> Iterator[Context]:
    """The context of a command that writes: the writer lock, the run log, the stores over
    the database (started and stopped here if needed), Label Studio on ``label_studio_port``
    when given (else labels go the direct path), and a background worker that finishes (or,
    when the command fails, stops) before Label Studio and the database do."""
    with contextlib.ExitStack() as services:
        services.enter_context(state.writer(command))
        services.enter_context(run_log(state))
        start = time.perf_counter()
        with display.stage("Starting PostgreSQL"):
            db = services.enter_context(open_database(state))
        ctx = Context(state, local_stores(state, db), display)
        ctx.timings["database"] = round(time.perf_counter() - start, 2)
        # What a run killed earlier left half-done goes before this one writes anything.
        for finding in check(state, ctx.stores, repair=True, verify=False).findings:
            log.info("repaired %s: %s", finding.kind, finding.what)
        if label_studio_port is not None:
            ctx.studio = studio_opener(services.enter_context(contextlib.ExitStack()), ctx,
                                       label_studio_port)
        services.enter_context(ctx.background)
        yield ctx
        finish_background(ctx)


def finish_background(ctx: Context) -> list[Finished]:
    """Wait for the background work left, saying what it is; a job that failed is a note,
    not a failed command: the next run resumes it."""
    pending = ctx.background.pending()
    start = time.perf_counter()
    if pending:
        with ctx.display.stage(f"Waiting for the background: {'; '.join(pending)}"):
            finished = ctx.background.finish()
    else:
        finished = ctx.background.finish()
    if pending:
        ctx.timings["background wait"] = round(time.perf_counter() - start, 2)
    for job in finished:
        if job.error:
            ctx.display.note(f"{job.title} stopped: {job.error}. `cdl label` or the next "
                             "`cdl demo` resumes it; the labels stored are unchanged")
    return finished


def check_sources(cases: list[Case]) -> None:
    """Every use case's raw data is there before anything starts."""
    for case in cases:
        check_source(case.options.data.folder)


def prepare(ctx: Context, case: Case, dataset: DatasetVersion | None = None) -> Prepared:
    """The data pipeline up to model inputs: ingest + version (unless given), quarantine,
    labels, features."""
    dataset = dataset or ingest(ctx, case)
    summary = labeling.label(ctx, case, dataset)
    return Prepared(dataset, summary, features.transform(ctx, case, dataset))


def report(case: Case, prepared: Prepared, trained: model.Trained) -> UseCaseReport:
    version, best, result = trained.version, trained.best, trained.search
    return UseCaseReport(
        dataset=DatasetReport.of(prepared.dataset),
        labeling=prepared.labeling,
        model=ModelReport(version.name, version.version, best.hparams,
                          str(version.artifact_path), version.code_version, trained.reused),
        search=SearchReport(len(result.trials),
                            sum(t.state == "completed" for t in result.trials),
                            sum(t.state == "pruned" for t in result.trials)),
        val_accuracy=best.val_metrics["validation_accuracy"],
        val_metrics=best.val_metrics,
        test_accuracy=trained.test_accuracy,
        gate=GateReport(case.options.gate),
        gate_passed=bool(version.gate_passed),
        timings=case.timings,
    )


@dataclass
class Deployed:
    case: Case
    report: UseCaseReport
    plan: deploy.SmokePlan
    loaded: Future[None]  # MLServer loading the packaged folder


class Serving(Protocol):
    """Where the approved models of a run are served: each packaged folder loaded in the
    background as soon as it is packaged, so that serving overlaps the pipelines."""

    title: str  # what the serve stage shows

    def load(self, name: str) -> Future[None]:
        """Serve the packaged folder of model ``name`` (``deploy.served_models``)."""

    def url(self, name: str) -> str:
        """The base URL under which ``/v2/models/<name>`` answers, once loaded."""


# Serving for one run, opened within the run's stack (closed when the run ends)
ServingOpener = Callable[[Context, contextlib.ExitStack], Serving]


class LocalServing:
    """MLServer on 127.0.0.1 over the served model repository, started when the run starts
    with no model loaded; each model folder is loaded as soon as it is packaged."""

    title = "MLServer on 127.0.0.1 (started in the background): models loaded"

    def __init__(self, ctx: Context, stack: contextlib.ExitStack) -> None:
        # entered first, left last: the server stops before its loads are waited for
        self.loads = stack.enter_context(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdl-mlserver"))
        self.server = stack.enter_context(deploy.serve(
            deploy.served_models(ctx.state), ctx.state.logs / "mlserver.log",
            deploy.free_port(), deploy.free_port(), ctx.stores.db.conninfo, at_startup=False))

    def load(self, name: str) -> Future[None]:
        return self.loads.submit(self.server.load, name)

    def url(self, name: str) -> str:
        return self.server.url


def run(ctx: Context, cases: list[Case]) -> RunReport:
    """Each use case's data and model pipelines, packaging when its gate passed, then one
    MLServer over the approved models and a smoke per model.

    Every use case is ingested first, to learn what its labeling needs. If Label Studio is
    needed at all, it starts in the background, and the use cases that must wait for it go
    last, so that its start (half a minute with its migrations) overlaps the others' work.
    MLServer starts at the beginning too, and loads each model once it is packaged."""
    check_sources(cases)
    with contextlib.ExitStack() as stack:
        serving = ((ctx.stores.serving or LocalServing)(ctx, stack)
                   if any(case.options.smoke for case in cases) else None)
        reports, deployed = pipelines(ctx, cases, serving)
        if serving is not None and deployed:
            smoke_all(ctx, serving, deployed)
    background = finish_background(ctx)
    return RunReport({case.name: reports[case.name] for case in cases}, str(ctx.state.home),
                     background, dict(ctx.timings))


def pipelines(ctx: Context, cases: list[Case], serving: Serving | None
              ) -> tuple[dict[str, UseCaseReport], list[Deployed]]:
    """The data and model pipelines of each use case, in the order that keeps Label Studio's
    start off the critical path; the packaged models handed to ``serving``."""
    datasets = [ingest(ctx, case) for case in cases]
    waits = [labeling.waits_for_studio(ctx, case, dataset)
             for case, dataset in zip(cases, datasets, strict=True)]
    if ctx.studio is not None and any(wait is not None for wait in waits):
        studio = ctx.studio
        ctx.background.submit("Label Studio's start", lambda stop: studio(), yields=False)
    order = sorted(range(len(cases)), key=lambda number: bool(waits[number]))
    # Label Studio serves one request at a time: a bulk import would slow a labeling that
    # training waits for, so the imports start once the last such labeling is done.
    last_waiting = max((p for p, n in enumerate(order) if waits[n]), default=None)
    if last_waiting is not None:
        ctx.background.hold()
    reports: dict[str, UseCaseReport] = {}
    deployed: list[Deployed] = []
    for position, number in enumerate(order):
        case, dataset = cases[number], datasets[number]
        start = time.perf_counter()
        if position == 0 and "database" in ctx.timings:
            # the first use case's timings include starting the database
            case.timings["database"] = ctx.timings["database"]
        prepared = prepare(ctx, case, dataset)
        if position == last_waiting:
            ctx.background.release()
        trained = model.train_register_evaluate(ctx, case, prepared)
        reports[case.name] = result = report(case, prepared, trained)
        if serving is not None and case.options.smoke and result.gate_passed:
            result.compression, plan = deploy.package(ctx, case, prepared.dataset,
                                                      trained.version)
            deployed.append(Deployed(case, result, plan,
                                     serving.load(case.usecase.model_name)))
        case.timings["total"] = round(time.perf_counter() - start + case.timings["ingest"]
                                      + case.timings.get("database", 0.0), 2)
    return reports, deployed


def smoke_all(ctx: Context, serving: Serving, deployed: list[Deployed]) -> None:
    """Once every packaged model is served (the wait is the "serve" stage), a smoke per
    model."""
    with ctx.stage(None, "serve", serving.title):
        for one in deployed:
            one.loaded.result()
    for one in deployed:
        name = one.case.usecase.model_name
        url = serving.url(name)
        with ctx.stage(one.case, "smoke",
                       f"{one.case.name}: smoke, {len(one.plan.payloads)} requests"):
            result = deploy.smoke(url, name, one.plan.payloads, one.plan.truth,
                                  one.plan.offline, ctx.stores.scoring)
        one.report.serving = ServingReport(f"{url}/v2/models/{name}",
                                           one.report.model.version, result)
        one.case.timings["serve"] = ctx.timings["serve"]


def ingest_only(ctx: Context, cases: list[Case]) -> dict[str, dict[str, object]]:
    """``cdl ingest``: each use case's data pipeline, up to its features; nothing trained."""
    results: dict[str, dict[str, object]] = {}
    for case in cases:
        prepared = prepare(ctx, case)
        dataset = DatasetReport.of(prepared.dataset)
        results[case.name] = {"dataset": asdict(dataset), "labeling": asdict(prepared.labeling),
                              "features": str(prepared.features)}
    finish_background(ctx)
    return results


def relabel(ctx: Context, cases: list[Case]) -> dict[str, dict[str, object]]:
    """``cdl label``: export each use case's labels from Label Studio again (after people
    edited them) into the label tables of its current dataset version."""
    summaries: dict[str, dict[str, object]] = {}
    for case in cases:
        dataset = ingest(ctx, case)
        summary = labeling.label(ctx, case, dataset, refresh=True)
        summaries[case.name] = {"dataset_version": dataset.id, **asdict(summary),
                                "timings": {**summary.timings, **case.timings}}
    return summaries


def evaluate(ctx: Context, case: Case, version: int | None) -> tuple[ModelVersion, float]:
    """``cdl evaluate``: a registered version on the held-out test set of the data's current
    version, with the gate's verdict recorded on it."""
    prepared = prepare(ctx, case)
    return model.evaluate(case.usecase, ctx.stores.models, version, prepared.features,
                          case.options.gate)

