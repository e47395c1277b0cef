"""The persistence entities of a run, assembled once: the local side (embedded PostgreSQL and
the state directory) of every store. A cluster run assembles the same :class:`Stores` from
its own sides (``usecases.cluster.run``: Pachyderm, the Determined master and registry, S3, the
cluster's PostgreSQL, cdl-model releases); the pipeline steps only see the interfaces."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from usecases.state import State
from usecases.stores.database import Database, open_database
from usecases.stores.experiments import Experiments, LocalExperiments
from usecases.stores.features import FeatureCache, LocalFeatureCache
from usecases.stores.feedback import Feedback, PostgresFeedback
from usecases.stores.labels import Labels, LocalLabels
from usecases.stores.mldata import LocalMLData, MLData
from usecases.stores.registry import LocalModelRegistry, ModelRegistry
from usecases.stores.scoring import PostgresScoringStore, ScoringStore

if TYPE_CHECKING:
    from usecases.workflow.model import Training
    from usecases.workflow.run import ServingOpener


@dataclass
class Stores:
    db: Database  # where services that write for themselves (Label Studio, MLServer) connect
    mldata: MLData
    labels: Labels
    features: FeatureCache
    experiments: Experiments
    models: ModelRegistry
    scoring: ScoringStore
    feedback: Feedback
    # Where experiments run and approved models are served. None: on this machine
    # (Determined's local training mode with ASHA here; MLServer on 127.0.0.1). A cluster
    # sets both: the Determined master, and a cdl-model release per version.
    training: Training | None = None
    serving: ServingOpener | None = None


def local_stores(state: State, db: Database) -> Stores:
    return Stores(
        db=db,
        mldata=LocalMLData(state.mldata, db),
        labels=LocalLabels(db, state.mldata / "versions"),
        features=LocalFeatureCache(state.transforms),
        experiments=LocalExperiments(db),
        models=LocalModelRegistry(db, state.models),
        scoring=PostgresScoringStore(db),
        feedback=PostgresFeedback(db),
    )


@contextlib.contextmanager
def open_stores(state: State) -> Iterator[Stores]:
    """The stores over the workflow's database (started here if needed, stopped on exit)."""
    with open_database(state) as db:
        yield local_stores(state, db)
