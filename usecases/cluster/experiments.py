"""The experiments the cluster smoke submits: the use case's own YAML (``smoke.yaml``, or any of
its experiment configs), its data filled in as ``cdl`` fills it locally, and CDL's image as the
stack exports it (``images``: the pins of ``stacks/platform/pins.py`` from the stack's
registry), the CPU variant for CPU slots and the GPU variant for CUDA slots."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from usecases.workflow.model import load_experiment

if TYPE_CHECKING:
    from usecases.cluster.outputs import Platform
    from usecases.stores.determined import DeterminedMaster
    from usecases.workflow.usecase import UseCase


def experiment_config(usecase: UseCase, name: str, features: str) -> dict[str, Any]:
    """The use case's experiment YAML ``name`` with its features (a folder, or the
    Transformation Registry's reference) filled in."""
    config = load_experiment(usecase.model_dir / name)
    config["data"] = {**(config.get("data") or {}), "features": features}
    return config


def submit(master: DeterminedMaster, platform: Platform, usecase: UseCase, name: str,
           features: str) -> int:
    """Create the experiment on the master, in the stack's pinned image; its id."""
    return master.submit(experiment_config(usecase, name, features), usecase.model_dir,
                         image=platform.images["cpu"], cuda_image=platform.images.get("gpu"))
