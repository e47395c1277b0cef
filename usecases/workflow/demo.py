"""``cdl demo``: the data, model and deployment pipelines of each use case on this machine."""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from psycopg.types.json import Jsonb

from usecases.errors import CDLError
from usecases.state import State
from usecases.stores.database import Database, open_database
from usecases.stores.labelstudio import LabelStudioClient, open_label_studio
from usecases.stores.mldata import MLDataStore
from usecases.stores.registry import ModelRegistry, code_version, verify_artifacts
from usecases.workflow import data, deploy, features, labeling, model
from usecases.workflow.usecase import DataOptions, History, Item, OnValidation, UseCase


class Display:
    """How the pipeline shows progress; the CLI draws it, tests stay quiet."""

    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        yield

    def trials(self, total: int, epochs: int) -> Callable[[int, int, dict[str, float]], None]:
        return lambda trial, epoch, metrics: None

    def note(self, text: str) -> None:
        pass


@dataclass
class DemoOptions:
    data: DataOptions
    trials: int = 4
    gate: float = 0.7
    seed: int = 42
    smoke: int = 20  # held-out examples sent through the served model; 0: no deployment
    max_request_bytes: int = 1024 * 1024


@dataclass
class Timer:
    timings: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def __call__(self, name: str, display: Display, title: str) -> Iterator[None]:
        start = time.perf_counter()
        with display.stage(title):
            yield
        self.timings[name] = round(time.perf_counter() - start, 2)


def record_search(db: Database, usecase: str, dataset_version: str,
                  result: model.SearchResult) -> int:
    with db.connect() as conn:
        row = conn.execute(
            "INSERT INTO experiments (usecase, dataset_version, config) VALUES (%s, %s, %s)"
            " RETURNING id", (usecase, dataset_version, Jsonb(result.config))).fetchone()
        assert row is not None
        experiment_id = int(row[0])
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO trials (experiment_id, number, hparams, state, epochs, val_metrics,"
                " checkpoint) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(experiment_id, t.number, Jsonb(t.hparams), t.state, t.epochs,
                  Jsonb(t.val_metrics), str(t.checkpoint) if t.checkpoint else None)
                 for t in result.trials],
            )
    return experiment_id


def evaluate(usecase: UseCase, registry: ModelRegistry, name: str, version: int | None,
             features_dir: Path, threshold: float) -> tuple[Any, float]:
    """Test accuracy of a registered version, recorded on it with the gate's verdict."""
    entry = registry.get(name, version)
    verify_artifacts(entry.artifact_path)
    with np.load(features_dir / "test.npz") as arrays:
        inputs, labels = arrays["inputs"], arrays["labels"]
    predicted = usecase.predict(entry.artifact_path, inputs)
    accuracy = float((predicted == labels).mean())
    return registry.record_evaluation(name, entry.version, accuracy, threshold), accuracy


def item_counts(dataset: data.DatasetVersion, items: list[Item]) -> dict[str, int]:
    """Counts in items (articles, images): a quarantined file counts as one ingested item."""
    quarantined = dataset.manifest.counts()["quarantined"]
    return {
        "ingested": len(items) + quarantined,
        "valid": len(items),
        "quarantined": quarantined,
        "train": sum(i.split == "train" for i in items),
        "test": sum(i.split == "test" for i in items),
    }


Studio = Callable[[], LabelStudioClient] | None  # opens Label Studio on first use; None: direct


@dataclass
class Prepared:
    dataset: data.DatasetVersion
    items: list[Item]
    features: Path
    labeling: dict[str, Any]

    def counts(self) -> dict[str, int]:
        return item_counts(self.dataset, self.items)


def ingest(usecase: UseCase, state: State, options: DataOptions, db: Database,
           display: Display, timer: Timer, seed: int) -> tuple[data.DatasetVersion, list[Item]]:
    """Collect, validate, quarantine and version the raw data; the version's valid items."""
    data.check_source(options.folder)
    store = MLDataStore(state.mldata)
    with timer("ingest", display, f"{usecase.name}: ingesting {options.folder}"):
        candidates, rules = usecase.scan(options)
        split = data.SplitRules(seed=seed) if usecase.needs_split() else None
        dataset = data.ingest(store, db, usecase.name, options.folder, candidates, rules, split)
        items = usecase.items(dataset, store)
    counts = item_counts(dataset, items)
    display.note(
        f"dataset {dataset.id} ({'reused' if dataset.reused else 'new'}): "
        f"{counts['ingested']} ingested = {counts['valid']} valid + "
        f"{counts['quarantined']} quarantined"
    )
    for entry in dataset.manifest.entries:
        if entry.status == "quarantined":
            display.note(f"quarantined {entry.path}: {entry.reason}")
    return dataset, items


def label(usecase: UseCase, state: State, db: Database, dataset: data.DatasetVersion,
          items: list[Item], studio: Studio, display: Display, timer: Timer,
          refresh: bool = False) -> dict[str, Any]:
    store = MLDataStore(state.mldata)
    target = labeling.Target(usecase.name, usecase.classes, usecase.label_to_name,
                             lambda item: usecase.task_data(item, store))
    tool = "Label Studio" if studio else "Label Studio JSON, direct"
    with timer("label", display, f"{usecase.name}: labels ({tool} → PostgreSQL)"):
        summary = labeling.label(db, store, dataset, items, target, studio, refresh)
    if studio:
        display.note(f"{usecase.name}: {summary['exported']} labels exported from "
                     f"{summary['url']} ({summary['by_people']} set by people"
                     f"{', last export reused' if summary.get('reused') else ''})")
    return summary


def prepare(usecase: UseCase, state: State, options: DataOptions, db: Database, studio: Studio,
            display: Display, timer: Timer, seed: int) -> Prepared:
    """Data pipeline up to model inputs: ingest + version, quarantine, labels, features."""
    dataset, items = ingest(usecase, state, options, db, display, timer, seed)
    summary = label(usecase, state, db, dataset, items, studio, display, timer)
    with timer("transform", display, f"{usecase.name}: features"):
        features_dir, _ = features.build_features(usecase, db, MLDataStore(state.mldata),
                                                  dataset, items, options, state.transforms)
    return Prepared(dataset, items, features_dir, summary)


def run_usecase(usecase: UseCase, state: State, db: Database, options: DemoOptions,
                studio: Studio, display: Display,
                timer: Timer) -> tuple[dict[str, Any], Prepared]:
    """Data pipeline, labels, search/train, register, evaluate, gate. Returns the report."""
    prepared = prepare(usecase, state, options.data, db, studio, display, timer, options.seed)
    dataset, features_dir = prepared.dataset, prepared.features

    def train(config: dict[str, Any], hparams: dict[str, Any], epochs: int,
              on_validation: OnValidation | None) -> tuple[History, Path | None]:
        return usecase.train(config, hparams, epochs, state.checkpoints, on_validation)

    name = usecase.name
    if options.trials > 1:
        config = model.load_experiment(usecase.model_dir / "adaptive.yaml")
        config["data"] = {**config.get("data", {}), "features": str(features_dir)}
        epochs = int(config["searcher"]["max_time"])
        with timer("search", display, f"{name}: ASHA search over {options.trials} trials"):
            result = model.search(train, config, options.trials, options.seed,
                                  display.trials(options.trials, epochs))
    else:
        config = model.load_experiment(usecase.model_dir / "const.yaml")
        config["data"] = {**config.get("data", {}), "features": str(features_dir)}
        epochs = model.training_epochs(config, config["hyperparameters"])
        with timer("train", display, f"{name}: training (single run)"):
            result = model.single(train, config, display.trials(1, epochs))
    best = result.best()
    assert best.checkpoint is not None
    checkpoint = best.checkpoint
    with timer("register", display, f"{name}: registering the best checkpoint"):
        model.discard_checkpoints(result, keep=best)
        experiment_id = record_search(db, name, dataset.id, result)
        registry = ModelRegistry(db, state.models)
        version = registry.register(
            usecase.model_name, name, dataset.id, experiment_id, best.hparams,
            best.val_metrics, code_version(usecase.model_dir),
            lambda folder: usecase.export(checkpoint, best.hparams, features_dir, folder),
        )
    with timer("evaluate", display, f"{name}: evaluating on the held-out test set"):
        evaluated, accuracy = evaluate(usecase, registry, usecase.model_name, version.version,
                                       features_dir, options.gate)
    return {
        "dataset": {
            "version": dataset.id,
            "reused": dataset.reused,
            "counts": prepared.counts(),
            "quarantined": [{"path": e.path, "reason": e.reason}
                            for e in dataset.manifest.entries if e.status == "quarantined"],
            "manifest": str(dataset.manifest_path),
        },
        "labeling": prepared.labeling,
        "model": {
            "name": usecase.model_name,
            "version": evaluated.version,
            "hparams": best.hparams,
            "artifact": str(evaluated.artifact_path),
            "code_version": evaluated.code_version,
        },
        "search": {
            "trials": len(result.trials),
            "completed": sum(t.state == "completed" for t in result.trials),
            "pruned": sum(t.state == "pruned" for t in result.trials),
        },
        "val_accuracy": best.val_metrics["validation_accuracy"],
        "val_metrics": best.val_metrics,
        "test_accuracy": accuracy,
        "gate": {"threshold": options.gate},
        "gate_passed": bool(evaluated.gate_passed),
        "timings": timer.timings,
    }, prepared


def deploy_usecase(usecase: UseCase, state: State, db: Database, options: DemoOptions,
                   prepared: Prepared, report: dict[str, Any], display: Display,
                   timer: Timer) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """Package the approved version (compressed when that costs at most a point of accuracy);
    return the smoke's single-item requests, their true labels and the offline predictions."""
    registry = ModelRegistry(db, state.models)
    entry = registry.get(usecase.model_name, report["model"]["version"])
    deploy.approved(entry)
    store = MLDataStore(state.mldata)
    test = [i for i in prepared.items if i.split == "test"]
    truth = [i.label for i in test]
    sample = random.Random(options.seed).sample(range(len(test)), min(options.smoke, len(test)))
    singles = [usecase.payload([test[i]], store) for i in sample]
    build = state.dir("serving", "build", f"{usecase.model_name}-v{entry.version}")
    with timer("package", display, f"{usecase.name}: packaging + compression for MLServer"):
        original = deploy.write_folder(build / "original", usecase.model_name, entry.version,
                                       usecase.runtime, entry.artifact_path,
                                       options.max_request_bytes)
        compressed_artifacts = build / "compressed-artifacts"
        if compressed_artifacts.exists():
            shutil.rmtree(compressed_artifacts)
        usecase.compress(entry.artifact_path, compressed_artifacts)
        compressed = deploy.write_folder(build / "compressed", usecase.model_name,
                                         entry.version, usecase.runtime, compressed_artifacts,
                                         options.max_request_bytes)
        comparison = deploy.compare(original, compressed, singles[:50],
                                    usecase.payload(test, store), truth)
        chosen = compressed if comparison["kept"] else original
        folder = deploy.write_folder(
            deploy.model_folder(state.dir("serving", "models"), usecase.model_name),
            usecase.model_name, entry.version, usecase.runtime, chosen / "artifacts",
            options.max_request_bytes)
        offline = deploy.InProcess(folder).labels(
            usecase.payload([test[i] for i in sample], store))
    display.note(f"{usecase.name}: compressed {comparison['compressed']['weights']} "
                 f"{'kept' if comparison['kept'] else 'dropped'} (accuracy "
                 f"{comparison['original']['test_accuracy']:.4f} → "
                 f"{comparison['compressed']['test_accuracy']:.4f}, "
                 f"{comparison['original']['bytes']} → {comparison['compressed']['bytes']} "
                 f"bytes)")
    report["compression"] = comparison
    return singles, [truth[i] for i in sample], offline


def studio_opener(services: contextlib.ExitStack, state: State, db: Database, port: int,
                  display: Display) -> Callable[[], LabelStudioClient]:
    """Label Studio, started (or found running) the first time a step needs it; it stops when
    ``services`` closes."""
    opened: list[LabelStudioClient] = []

    def studio() -> LabelStudioClient:
        if not opened:
            with display.stage("Starting Label Studio on 127.0.0.1"):
                found = services.enter_context(open_label_studio(state, db.conninfo, port))
            display.note(f"Label Studio at {found.url}" + (
                f"; login in {found.credentials}" if found.credentials else ""))
            opened.append(LabelStudioClient(found))
        return opened[0]

    return studio


def run(runs: list[tuple[UseCase, DemoOptions]], state: State, display: Display,
        label_studio_port: int | None = None) -> dict[str, dict[str, Any]]:
    """Each use case in turn against one database (started and stopped here if needed), then
    the approved models served together by one MLServer and smoke-tested. Labels go through
    Label Studio on ``label_studio_port`` unless it is None."""
    for _, options in runs:
        data.check_source(options.data.folder)
    reports: dict[str, dict[str, Any]] = {}
    smokes: dict[str, tuple[list[dict[str, Any]], list[str], list[str]]] = {}
    with contextlib.ExitStack() as services:
        start = time.perf_counter()
        timer = Timer()  # the first use case's timings include starting the database
        with timer("database", display, "Starting PostgreSQL"):
            db = services.enter_context(open_database(state))
        studio = (None if label_studio_port is None
                  else studio_opener(services, state, db, label_studio_port, display))
        for usecase, options in runs:
            report, prepared = run_usecase(usecase, state, db, options, studio, display, timer)
            reports[usecase.name] = report
            if options.smoke and report["gate_passed"]:
                smokes[usecase.name] = deploy_usecase(usecase, state, db, options, prepared,
                                                      report, display, timer)
            timer.timings["total"] = round(time.perf_counter() - start, 2)
            start, timer = time.perf_counter(), Timer()
        if smokes:
            serve_and_smoke(runs, smokes, reports, state, db, display)
    return reports


def relabel(usecases: list[tuple[UseCase, DataOptions]], state: State, display: Display,
            label_studio_port: int, seed: int = 42) -> dict[str, dict[str, Any]]:
    """``cdl label``: export each use case's labels from Label Studio again (after people
    edited them) into the label tables of its current dataset version."""
    summaries = {}
    with contextlib.ExitStack() as services:
        db = services.enter_context(open_database(state))
        studio = studio_opener(services, state, db, label_studio_port, display)
        for usecase, options in usecases:
            timer = Timer()
            dataset, items = ingest(usecase, state, options, db, display, timer, seed)
            summary = label(usecase, state, db, dataset, items, studio, display, timer,
                            refresh=True)
            summaries[usecase.name] = {"dataset_version": dataset.id, **summary,
                                       "timings": timer.timings}
    return summaries


def serve_and_smoke(runs: list[tuple[UseCase, DemoOptions]],
                    smokes: dict[str, tuple[list[dict[str, Any]], list[str], list[str]]],
                    reports: dict[str, dict[str, Any]], state: State, db: Database,
                    display: Display) -> None:
    timer = Timer()
    with contextlib.ExitStack() as stack:
        with timer("serve", display, "Starting MLServer on 127.0.0.1"):
            server = stack.enter_context(deploy.serve(
                state.dir("serving", "models"), state.logs / "mlserver.log", deploy.free_port(),
                deploy.free_port(), db.conninfo))
        for usecase, _ in runs:
            if usecase.name not in smokes:
                continue
            payloads, truth, offline = smokes[usecase.name]
            with timer(f"smoke_{usecase.name}", display,
                       f"{usecase.name}: smoke, {len(payloads)} requests"):
                result = deploy.smoke(server.url, usecase.model_name, payloads, truth, offline,
                                      db.conninfo)
            reports[usecase.name]["serving"] = {
                "url": f"{server.url}/v2/models/{usecase.model_name}",
                "model_version": reports[usecase.name]["model"]["version"],
                "smoke": result,
            }
    for name in smokes:
        reports[name]["timings"]["serve"] = timer.timings["serve"]
        reports[name]["timings"]["smoke"] = timer.timings[f"smoke_{name}"]


def gate_error(name: str, report: dict[str, Any]) -> CDLError | None:
    if report["gate_passed"]:
        return None
    return CDLError(
        f"{name}: test accuracy {report['test_accuracy']:.3f} is below the gate "
        f"{report['gate']['threshold']:g}; the model version stays registered but not approved",
        "look at the data and the search (more --trials), or lower --gate deliberately",
    )
