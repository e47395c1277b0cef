from __future__ import annotations

from pathlib import Path

from usecases.stores.experiments import Trial
from usecases.stores.local import Stores
from usecases.stores.mldata import Counts, Manifest


def test_a_search_is_recorded_with_every_trials_metrics_per_epoch(stores: Stores) -> None:
    stores.mldata.commit(Manifest("bbc-1", "bbc", "/raw", {}, [], Counts.of(0, [])))
    trials = [
        Trial(0, {"hidden_size": 64}, "pruned", [{"validation_accuracy": 0.5}]),
        Trial(1, {"hidden_size": 256}, "completed",
              [{"validation_accuracy": 0.6}, {"validation_accuracy": 0.9}], Path("/ckpt/1")),
    ]
    experiment = stores.experiments.record("bbc", "bbc-1", {"searcher": {"name": "adaptive"}},
                                           trials)
    assert stores.experiments.trials(experiment) == trials
    assert stores.experiments.checkpoints() == {"/ckpt/1"}
    # no model version came from it yet: a run stopped here left it behind
    assert stores.experiments.unregistered() == [experiment]
    stores.experiments.delete(experiment)
    assert stores.experiments.trials(experiment) == []
    assert stores.experiments.unregistered() == []
