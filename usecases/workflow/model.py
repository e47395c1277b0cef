"""The model pipeline (paper §3.3): search, train, register, evaluate, gate.

Training always goes through Determined: locally through its local training mode (no master),
with the trial class and experiment YAML that a cluster runs unchanged. The local search runs
ASHA (Optuna's successive-halving pruner) over the search space of the same YAML.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml

from usecases.errors import CDLError

TrialFactory = Callable[..., Any]
Progress = Callable[[int, int, dict[str, float]], None]


@dataclass
class TrialOutcome:
    number: int
    hparams: dict[str, Any]
    state: str  # "completed" | "pruned"
    epochs: int
    val_metrics: dict[str, float]
    checkpoint: Path | None = None


@dataclass
class SearchResult:
    config: dict[str, Any]
    trials: list[TrialOutcome] = field(default_factory=list)

    @property
    def metric(self) -> str:
        return str(self.config["searcher"]["metric"])

    def best(self) -> TrialOutcome:
        done = [t for t in self.trials if t.state == "completed" and t.checkpoint is not None]
        if not done:
            raise CDLError("no trial completed training", "raise --trials or check the logs")
        sign = -1 if self.config["searcher"].get("smaller_is_better", False) else 1
        return max(done, key=lambda t: sign * t.val_metrics[self.metric])


def discard_checkpoints(result: SearchResult, keep: TrialOutcome) -> None:
    """Delete the losing trials' checkpoints (as save_trial_best does on a cluster)."""
    for trial in result.trials:
        if trial is not keep and trial.checkpoint is not None and trial.checkpoint.exists():
            shutil.rmtree(trial.checkpoint)
            trial.checkpoint = None


def load_experiment(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
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
    return int(hparams["epochs"])


@contextlib.contextmanager
def _determined_local(model_dir: Path, checkpoint_root: Path) -> Iterator[None]:
    """Local training mode: checkpoints under the state dir, code copied from the model dir."""
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(checkpoint_root)
    logging.getLogger("determined").setLevel(logging.WARNING)
    try:
        with contextlib.chdir(model_dir):
            yield
    finally:
        if previous is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = previous


class _Pruned(Exception):
    pass


def train(
    trial_class: type,
    config: dict[str, Any],
    hparams: dict[str, Any],
    epochs: int,
    model_dir: Path,
    checkpoint_root: Path,
    on_validation: Callable[[int, dict[str, float]], bool] | None = None,
) -> tuple[list[dict[str, float]], Path | None]:
    """Train one trial with Determined's local training mode.

    ``on_validation(epoch, metrics)`` returning True stops the trial (ASHA pruning). Returns the
    validation history and the final checkpoint's folder (None when stopped early).
    """
    import torch
    from determined import pytorch

    history: list[dict[str, float]] = []
    written: list[Path] = []

    class Observer(pytorch.PyTorchCallback):
        def on_validation_end(self, metrics: dict[str, Any]) -> None:
            history.append({k: float(v) for k, v in metrics.items()})
            if on_validation is not None and on_validation(len(history), history[-1]):
                raise _Pruned

        def on_checkpoint_write_end(self, checkpoint_dir: str) -> None:
            written.append(Path(checkpoint_dir))

    class Observed(trial_class):
        def build_callbacks(self) -> dict[str, Any]:
            return {**super().build_callbacks(), "cdl-observer": Observer()}

    torch.manual_seed(int(config.get("reproducibility", {}).get("experiment_seed", 0)))
    with _determined_local(model_dir, checkpoint_root):
        try:
            # TensorBoard files are a cluster feature (the master serves them); none locally.
            with pytorch.init(hparams=hparams, exp_conf=config,
                              enable_tensorboard_logging=False) as context:
                trainer = pytorch.Trainer(Observed(context), context)
                trainer.fit(
                    max_length=pytorch.Epoch(epochs),
                    validation_period=pytorch.Epoch(1),
                    checkpoint_period=pytorch.Epoch(epochs),
                    checkpoint_policy="none",
                    reporting_period=pytorch.Batch(10_000),
                )
        except _Pruned:
            return history, None
    return history, (written[-1] if written else None)


def search(
    trial_class: type,
    config: dict[str, Any],
    max_trials: int,
    model_dir: Path,
    checkpoint_root: Path,
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
            return trial.should_prune()

        history, checkpoint = train(trial_class, config, hparams, max_epochs, model_dir,
                                    checkpoint_root, on_validation)
        state = "completed" if checkpoint is not None else "pruned"
        result.trials.append(TrialOutcome(trial.number, hparams, state, len(history),
                                          history[-1] if history else {}, checkpoint))
        if checkpoint is None:
            raise optuna.TrialPruned()
        return history[-1][metric]

    study.optimize(objective, n_trials=max_trials)
    return result


def single(
    trial_class: type,
    config: dict[str, Any],
    model_dir: Path,
    checkpoint_root: Path,
    progress: Progress | None = None,
) -> SearchResult:
    """One training run with the fixed hyperparameters of a single-searcher config."""
    hparams = dict(config["hyperparameters"])
    epochs = training_epochs(config, hparams)

    def on_validation(epoch: int, metrics: dict[str, float]) -> bool:
        if progress is not None:
            progress(0, epoch, metrics)
        return False

    history, checkpoint = train(trial_class, config, hparams, epochs, model_dir, checkpoint_root,
                                on_validation)
    result = SearchResult(config)
    result.trials.append(TrialOutcome(0, hparams, "completed", len(history),
                                      history[-1] if history else {}, checkpoint))
    return result
