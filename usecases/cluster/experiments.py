"""The model pipeline's training on a cluster: the Determined master runs the use case's own
experiment YAML (``smoke.yaml`` for ``cdl smoke``, or any of its experiment configs) in CDL's
image as the stack exports it (``images``: the CPU variant for CPU slots, the GPU variant for
CUDA slots), its trials reading the features from the Transformation Registry (Pachyderm). The
experiment's best checkpoint comes back to this machine, where the register step exports it as
it exports a local one: the same trial classes write the same checkpoint layout."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from usecases.stores.experiments import Trial
from usecases.workflow.model import SearchResult, load_experiment

if TYPE_CHECKING:
    from usecases.stores.determined import BestCheckpoint, DeterminedMaster
    from usecases.workflow.context import Case, Context
    from usecases.workflow.usecase import UseCase

# An experiment that has not completed by then fails the smoke, naming it (`cdl smoke` trains
# a few epochs on one slot: minutes, plus the image pull on a fresh node).
EXPERIMENT_TIMEOUT = 3600.0


def experiment_config(usecase: UseCase, name: str, features: str) -> dict[str, Any]:
    """The use case's experiment YAML ``name`` with its features (a folder, or the
    Transformation Registry's reference) filled in."""
    config = load_experiment(usecase.model_dir / name)
    config["data"] = {**(config.get("data") or {}), "features": features}
    return config


@dataclass(frozen=True)
class Submitted:
    """An experiment the master ran for a model, and the checkpoint the register step took."""

    experiment_id: int
    best: BestCheckpoint


class MasterTraining:
    """``Training`` on a Determined master (``workflow.model.Training``)."""

    def __init__(self, master: DeterminedMaster, images: dict[str, str], pachd: str | None,
                 timeout: float = EXPERIMENT_TIMEOUT) -> None:
        self.master = master
        self.images = images
        self.pachd = pachd  # where the trials reach pachd: its in-cluster address
        self.timeout = timeout
        # by model name, what the registry registers on the master once the version is
        # evaluated (its test metrics are part of the registered version's metadata)
        self.submitted: dict[str, Submitted] = {}

    def run(self, ctx: Context, case: Case, config: dict[str, Any],
            features: str) -> SearchResult:
        usecase = case.usecase
        sent = copy.deepcopy(config)
        sent["data"] = {**(sent.get("data") or {}), "features": features}
        if self.pachd:
            sent["data"]["pachyderm"] = self.pachd
        searcher = config["searcher"]
        with ctx.stage(case, "train", f"{case.name}: experiment on the Determined master at "
                                      f"{self.master.master}"):
            experiment_id = self.master.submit(sent, usecase.model_dir,
                                               image=self.images["cpu"],
                                               cuda_image=self.images.get("gpu"))
            ctx.display.note(f"{case.name}: experiment {experiment_id} on "
                             f"{self.master.master}")
            self.master.wait(experiment_id, self.timeout)
            best = self.master.best_checkpoint(experiment_id, str(searcher["metric"]),
                                               bool(searcher.get("smaller_is_better", False)))
            checkpoint = self.master.download(best.uuid, ctx.state.checkpoints / best.uuid)
        self.submitted[usecase.model_name] = Submitted(experiment_id, best)
        # The master keeps every trial and its metrics; the run keeps the one it registers.
        trial = Trial(best.trial_id, best.hparams, "completed", [best.validation_metrics],
                      checkpoint)
        return SearchResult(config, [trial])
