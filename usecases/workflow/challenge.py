"""Model Maintenance's retraining (paper §3.4): a challenger trained on the dataset version the
feedback built, promoted over the serving champion only if it is better.

Both are evaluated on the new version's test split, in two parts: the held-out test set the
champion was judged on (the items that came with the data) and the newly labeled served inputs
held out there (the feedback samples). The challenger is promoted only if it is no worse on the
first, within ``tolerance``, and better on the second; the decision and its numbers are recorded
on the challenger's version. A promotion packages the challenger into the served repository and,
when a ``cdl serve`` is running, has its MLServer load the new version before it unloads the old.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from usecases.stores.registry import ModelVersion
from usecases.workflow import deploy, model
from usecases.workflow.context import Case, Context
from usecases.workflow.data import DatasetVersion
from usecases.workflow.feedback import SAMPLE_PREFIX
from usecases.workflow.usecase import UseCase

TOLERANCE = 0.01  # of test accuracy the challenger may lose and still be promoted


@dataclass
class Scores:
    items: int
    champion: float | None
    challenger: float | None


@dataclass
class Decision:
    champion: int
    challenger: int
    dataset_version: str
    test_set: Scores  # the held-out items that came with the data
    new_samples: Scores  # the held-out labeled served inputs
    tolerance: float
    promoted: bool
    reason: str
    served: str | None = None  # the running server that switched versions, if any

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def accuracies(usecase: UseCase, version: ModelVersion, features: Path) -> tuple[
        float | None, float | None]:
    """A version's accuracy on the test split's items from the data and on its feedback
    samples (None where the part is empty)."""
    with np.load(features / "test.npz") as arrays:
        inputs, labels, ids = arrays["inputs"], arrays["labels"], arrays["item_ids"]
    correct = usecase.predict(version.artifact_path, inputs) == labels
    sample = np.char.startswith(ids.astype(str), SAMPLE_PREFIX)
    return (float(correct[~sample].mean()) if (~sample).any() else None,
            float(correct[sample].mean()) if sample.any() else None)


def decide(test: Scores, samples: Scores, gate_passed: bool,
           tolerance: float) -> tuple[bool, str]:
    if not gate_passed:
        return False, "the challenger did not pass its gate"
    if samples.items == 0 or samples.champion is None or samples.challenger is None:
        return False, "no newly labeled served input is held out to compare them on"
    assert test.champion is not None and test.challenger is not None
    if test.challenger < test.champion - tolerance:
        return False, (f"worse on the test set: {test.challenger:.4f} < {test.champion:.4f} "
                       f"- {tolerance:g}")
    if samples.challenger <= samples.champion:
        return False, (f"not better on the new samples: {samples.challenger:.4f} <= "
                       f"{samples.champion:.4f}")
    return True, (f"better on the new samples ({samples.challenger:.4f} > "
                  f"{samples.champion:.4f}) and no worse on the test set ({test.challenger:.4f}"
                  f" vs {test.champion:.4f}, tolerance {tolerance:g})")


def challenge(ctx: Context, case: Case, champion: ModelVersion, dataset: DatasetVersion,
              tolerance: float = TOLERANCE) -> Decision:
    """Train the challenger on ``dataset``, compare, record, and promote if it wins."""
    from usecases.workflow.run import prepare

    usecase, stores = case.usecase, ctx.stores
    prepared = prepare(ctx, case, dataset)
    challenger = model.train_register_evaluate(ctx, case, prepared).version
    with ctx.stage(case, "compare", f"{usecase.name}: champion v{champion.version} against "
                   f"challenger v{challenger.version}"):
        old = accuracies(usecase, champion, prepared.features)
        new = accuracies(usecase, challenger, prepared.features)
    with np.load(prepared.features / "test.npz") as arrays:
        ids = arrays["item_ids"].astype(str)
    samples = int(np.char.startswith(ids, SAMPLE_PREFIX).sum())
    test = Scores(len(ids) - samples, old[0], new[0])
    fresh = Scores(samples, old[1], new[1])
    promoted, reason = decide(test, fresh, bool(challenger.gate_passed), tolerance)
    decision = Decision(champion.version, challenger.version, dataset.id, test, fresh,
                        tolerance, promoted, reason)
    if promoted:
        deploy.package(ctx, case, dataset, challenger)
        repository = deploy.served_models(ctx.state)
        url = deploy.running_server(repository)
        if url is not None:
            with ctx.stage(case, "switch", f"{usecase.name}: MLServer at {url} switches to "
                           f"v{challenger.version}"):
                deploy.load_model(url, usecase.model_name, ctx.state.logs / "mlserver.log")
            decision.served = url
    stores.models.record_decision(challenger.name, challenger.version, decision.as_dict())
    return decision
