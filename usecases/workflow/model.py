"""The model pipeline (paper §3.3): search, train, register, evaluate, gate.

Training always goes through Determined: locally through its local training mode (no master),
with the trial class and experiment YAML that a cluster runs unchanged. The local search runs
ASHA (Optuna's successive-halving pruner) over the search space of the same YAML. How one trial
trains (PyTorchTrial or Keras through the Core API) is the use case's ``train``.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import optuna
import yaml

from usecases.errors import CDLError
from usecases.stores.experiments import Trial, registered_trial
from usecases.stores.registry import (
    Confusion,
    ModelRegistry,
    ModelVersion,
    code_version,
    verify_artifacts,
)
from usecases.workflow.context import Case, Context
from usecases.workflow.data import Prepared
from usecases.workflow.display import Progress
from usecases.workflow.usecase import History, OnValidation, UseCase

# (config, hparams, epochs, on_validation) -> (validation history, final checkpoint or None)
TrainFn = Callable[[dict[str, Any], dict[str, Any], int, OnValidation | None],
                   tuple[History, Path | None]]


@dataclass
class SearchResult:
    config: dict[str, Any]
    trials: list[Trial] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return str(self.config["searcher"]["metric"])

    def best(self) -> tuple[Trial, Path]:
        """The best completed trial and its checkpoint."""
        done = [(t, t.checkpoint) for t in self.trials
                if t.state == "completed" and t.checkpoint is not None]
        if not done:
            raise CDLError("no trial completed training", "raise --trials or check the logs")
        sign = -1 if self.config["searcher"].get("smaller_is_better", False) else 1
        return max(done, key=lambda pair: sign * pair[0].val_metrics[self.metric])


def discard_checkpoints(result: SearchResult, keep: Trial) -> None:
    """Delete the losing trials' checkpoints (as save_trial_best does on a cluster)."""
    for trial in result.trials:
        if trial is not keep and trial.checkpoint is not None and trial.checkpoint.exists():
            shutil.rmtree(trial.checkpoint)
            trial.checkpoint = None


def load_experiment(path: Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CDLError(f"cannot read the experiment config {path} ({type(exc).__name__})",
                       "restore it from the repository") from None
    if not isinstance(config, dict) or "hyperparameters" not in config:
        raise CDLError(f"{path} is not a Determined experiment config",
                       "restore it from the repository")
    return config


def sample_hparams(space: dict[str, Any], trial: optuna.Trial) -> dict[str, Any]:
    """Draw one point from a Determined hyperparameter space through an Optuna trial."""
    hparams: dict[str, Any] = {}
    for name, spec in space.items():
        if not isinstance(spec, dict):
            hparams[name] = spec
            continue
        kind = spec["type"]
        if kind == "const":
            hparams[name] = spec["val"]
        elif kind == "categorical":
            hparams[name] = trial.suggest_categorical(name, spec["vals"])
        elif kind == "int":
            hparams[name] = trial.suggest_int(name, spec["minval"], spec["maxval"])
        elif kind == "double":
            hparams[name] = trial.suggest_float(name, spec["minval"], spec["maxval"])
        elif kind == "log":
            base = float(spec.get("base", 10))
            low, high = base ** spec["minval"], base ** spec["maxval"]
            hparams[name] = trial.suggest_float(name, low, high, log=True)
        else:
            raise CDLError(f"hyperparameter {name!r} has unsupported type {kind!r}",
                           "use const, categorical, int, double or log")
    return hparams


def training_epochs(config: dict[str, Any], hparams: dict[str, Any]) -> int:
    searcher = config["searcher"]
    if searcher.get("time_metric") == "epochs":
        return int(searcher["max_time"])
    if "epochs" not in hparams:
        raise CDLError(f"experiment {config.get('name', '?')} says neither how many epochs to "
                       "train (hyperparameters.epochs) nor searcher.time_metric: epochs",
                       "add hyperparameters.epochs, or searcher max_time with time_metric: "
                       "epochs")
    return int(hparams["epochs"])


def search(
    train: TrainFn,
    config: dict[str, Any],
    max_trials: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> SearchResult:
    """ASHA over the experiment's search space, each trial trained by Determined."""
    searcher = config["searcher"]
    metric = searcher["metric"]
    direction = "minimize" if searcher.get("smaller_is_better", False) else "maximize"
    max_epochs = int(searcher.get("max_time", 1))
    divisor = int(searcher.get("divisor", 4))
    min_epochs = max(1, math.floor(max_epochs / divisor ** 2))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction=direction,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs,
                                                      reduction_factor=divisor),
    )
    result = SearchResult(config)

    def objective(trial: optuna.Trial) -> float:
        hparams = sample_hparams(config["hyperparameters"], trial)

        def on_validation(epoch: int, metrics: dict[str, float]) -> bool:
            trial.report(metrics[metric], epoch)
            if progress is not None:
                progress(trial.number, epoch, metrics)
            # A trial that trained its full length completes (as Determined's ASHA lets it):
            # pruned there, its finished training would be thrown away.
            return epoch < max_epochs and trial.should_prune()

        history, checkpoint = train(config, hparams, max_epochs, on_validation)
        state = "completed" if checkpoint is not None else "pruned"
        result.trials.append(Trial(trial.number, hparams, state, history, checkpoint))
        if checkpoint is None:
            raise optuna.TrialPruned()
        return history[-1][metric]

    study.optimize(objective, n_trials=max_trials)
    return result


def single(
    train: TrainFn,
    config: dict[str, Any],
    progress: Progress | None = None,
) -> SearchResult:
    """One training run with the fixed hyperparameters of a single-searcher config."""
    # A single run's hyperparameters are constants, written plain or as {type: const}.
    hparams = {name: spec["val"] if isinstance(spec, dict) and spec.get("type") == "const"
               else spec for name, spec in config["hyperparameters"].items()}
    epochs = training_epochs(config, hparams)

    def on_validation(epoch: int, metrics: dict[str, float]) -> bool:
        if progress is not None:
            progress(0, epoch, metrics)
        return False

    history, checkpoint = train(config, hparams, epochs, on_validation)
    result = SearchResult(config)
    result.trials.append(Trial(0, hparams, "completed", history, checkpoint))
    return result


@dataclass
class Trained:
    """The model pipeline's result: the evaluated version, the search behind it."""

    version: ModelVersion
    best: Trial
    search: SearchResult
    test_accuracy: float
    reused: bool = False  # an earlier version trained from the same inputs


def evaluate(usecase: UseCase, registry: ModelRegistry, version: int | None, features: Path,
             threshold: float) -> tuple[ModelVersion, float]:
    """Test accuracy of a registered version, recorded on it with the gate's verdict."""
    entry = registry.get(usecase.model_name, version)
    verify_artifacts(entry.artifact_path)
    with np.load(features / "test.npz") as arrays:
        inputs, labels = arrays["inputs"], arrays["labels"]
    predicted = usecase.predict(entry.artifact_path, inputs)
    accuracy = float((predicted == labels).mean())
    classes = list(usecase.classes)
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    confusion = Confusion(classes, matrix.tolist())
    return registry.record_evaluation(entry.name, entry.version, accuracy, threshold,
                                      confusion), accuracy


class Training(Protocol):
    """Where an experiment runs: on this machine (:class:`LocalTraining`), or on a Determined
    master (``usecases.cluster.training``). Either returns the search with its best trial's
    checkpoint on this machine, for the register step to export."""

    def run(self, ctx: Context, case: Case, config: dict[str, Any],
            features: str) -> SearchResult:
        """Train ``config`` (its ``data.features`` the local folder) as one stage of ``case``;
        ``features`` is where the trials read the features from (the Transformation
        Registry's reference)."""


class LocalTraining:
    """Determined's local training mode: one training, or ASHA over the search space of the
    same YAML when its searcher is not ``single``."""

    def run(self, ctx: Context, case: Case, config: dict[str, Any],
            features: str) -> SearchResult:
        usecase, options, name = case.usecase, case.options, case.name

        def train(config: dict[str, Any], hparams: dict[str, Any], epochs: int,
                  on_validation: OnValidation | None) -> tuple[History, Path | None]:
            return usecase.train(config, hparams, epochs, ctx.state.checkpoints, on_validation)

        if config["searcher"]["name"] != "single":
            epochs = int(config["searcher"]["max_time"])
            with ctx.stage(case, "search",
                           f"{name}: ASHA search over {options.trials} trials"):
                return search(train, config, options.trials, options.seed,
                              ctx.display.trials(options.trials, epochs))
        epochs = training_epochs(config, config["hyperparameters"])
        with ctx.stage(case, "train", f"{name}: training (single run)"):
            return single(train, config, ctx.display.trials(1, epochs))


def train_register_evaluate(ctx: Context, case: Case, prepared: Prepared) -> Trained:
    """Search (ASHA) or train once, register the best checkpoint, evaluate it, apply the gate.
    Where the training runs is the stores' choice (``Stores.training``)."""
    usecase, options, stores = case.usecase, case.options, ctx.stores
    name = usecase.name
    # a search is what the experiment's searcher says (cdl smoke's smoke.yaml trains once)
    config = load_experiment(usecase.model_dir / (options.experiment or (
        "adaptive.yaml" if options.trials > 1 else "const.yaml")))
    config["data"] = {**config.get("data", {}), "features": str(prepared.features)}
    code = code_version(usecase.model_dir)
    key = training_key(prepared, config, options.trials, options.seed, code)
    reused = None if options.retrain else stores.models.trained(usecase.model_name, key)
    if reused is not None:
        with ctx.stage(case, "search", f"{name}: model v{reused.version} reused (same data, "
                       "features, code and search; --retrain trains anew)"):
            result, best = earlier_search(ctx, config, reused)
        registered = reused
    else:
        training = stores.training or LocalTraining()
        result = training.run(ctx, case, config, stores.features.reference(prepared.features))
        best, checkpoint = result.best()
        with ctx.stage(case, "register", f"{name}: registering the best checkpoint"):
            discard_checkpoints(result, keep=best)
            experiment = stores.experiments.record(name, prepared.dataset.id, result.config,
                                                   result.trials)
            registered = stores.models.register(
                usecase.model_name, name, prepared.dataset.id, experiment, best.hparams,
                best.val_metrics, code,
                lambda folder: usecase.export(checkpoint, best.hparams, prepared.features,
                                              folder), key)
    with ctx.stage(case, "evaluate", f"{name}: evaluating on the held-out test set"):
        evaluated, accuracy = evaluate(usecase, stores.models, registered.version,
                                       prepared.features, options.gate)
    return Trained(evaluated, best, result, accuracy, reused=reused is not None)


def training_key(prepared: Prepared, config: dict[str, Any], trials: int, seed: int,
                 code: str) -> str:
    """What a model version is trained from, as one digest: the dataset version, the
    features (their folder is named by their own cache key), the experiment config, the
    search budget and seed, and the code: its commit and, since a checkout may have local
    changes, the digest of the ``usecases`` sources themselves."""
    inputs = {"dataset": prepared.dataset.id, "features": prepared.features.name,
              "config": config, "trials": trials, "seed": seed, "code": code,
              "sources": sources_digest()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def sources_digest() -> str:
    root = Path(__file__).resolve().parents[1]  # the usecases package
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".yaml", ".sql") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def earlier_search(ctx: Context, config: dict[str, Any],
                   version: ModelVersion) -> tuple[SearchResult, Trial]:
    """The recorded search a reused version came from, and its winning trial."""
    trials = (ctx.stores.experiments.trials(version.experiment_id)
              if version.experiment_id is not None else [])
    best = (registered_trial(trials, version.hparams)
            or Trial(0, version.hparams, "completed", [version.val_metrics]))
    return SearchResult(config, trials or [best]), best
