"""Contract test: the experiments the cluster smoke submits name CDL's pinned image, as the
stack exports it, read their features from the Transformation Registry through pachd, and come
back as the best checkpoint on this machine; through the Determined adapter, against the
loopback master of tests/usecases/stores/test_determined.py (answers built from determined's
bindings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from determined.common.api import bindings

from stacks.platform import pins
from tests.usecases.stores import test_determined as determined_test
from tests.usecases.stores.test_determined import (  # noqa: F401 (fixtures)
    PASSWORD,
    USER,
    ReferenceMaster,
    _own_config,
    master,
)
from usecases import defaults
from usecases.cli.common import usecase_named
from usecases.cluster import experiments, outputs
from usecases.stores.determined import DeterminedMaster
from usecases.workflow.context import Case, Context, RunOptions
from usecases.workflow.usecase import DataOptions

PACHD = "grpc://pachd.cdl-data.svc.cluster.local:30650"


def platform_of(registry: str) -> outputs.Platform:
    """The stack's outputs as `pulumi up` exports them (images from the pins)."""
    body = {"urls": {}, "determinedMaster": "https://determined.example.org",
            "s3Endpoint": "http://minio:9000", "credentials": {},
            "images": {v: pins.cdl_image(registry, v).ref for v in pins.IMAGE_VARIANTS}}
    return outputs.parse(json.loads(json.dumps(body)), "test outputs")


@pytest.mark.parametrize("usecase", ["bbc", "fmnist"])
def test_contract_the_smoke_experiment_runs_in_the_pinned_image(
        master: ReferenceMaster, usecase: str, ctx: Context, tmp_path: Path) -> None:  # noqa: F811
    registry = "registry.example.org:5050/ml/cdl"
    chosen = usecase_named(usecase)
    platform = platform_of(registry)
    training = experiments.MasterTraining(DeterminedMaster(master.base, USER, PASSWORD),
                                          platform.images, PACHD, timeout=30)
    case = Case(chosen, RunOptions(DataOptions(tmp_path, defaults.MAX_FILE_BYTES,
                                               defaults.MIN_CHARS), experiment="smoke.yaml"))
    config = experiments.experiment_config(chosen, "smoke.yaml", str(tmp_path / "features"))

    result = training.run(ctx, case, config, "pfs://bbc-features@0a1b2c/bbc-0123456789abcdef")

    created = bindings.v1CreateExperimentRequest.from_json(
        master.sent("POST", "/api/v1/experiments").body)
    sent = yaml.safe_load(created.config or "")
    assert sent["environment"]["image"] == {
        "cpu": f"{registry}/cdl:{pins.CDL_VERSION}-cpu",
        "cuda": f"{registry}/cdl:{pins.CDL_VERSION}-gpu"}
    # the trials read the features through pachd's in-cluster address
    assert sent["data"] == {"features": "pfs://bbc-features@0a1b2c/bbc-0123456789abcdef",
                            "pachyderm": PACHD}
    assert sent["name"] == f"{chosen.model_name}-smoke"
    assert sent["searcher"]["name"] == "single"
    # the run keeps the local folder in its own config (its training key), the master the ref
    assert result.config["data"]["features"] == str(tmp_path / "features")
    (trial,) = result.trials
    assert trial.checkpoint is not None
    assert trial.checkpoint == ctx.state.checkpoints / determined_test.UUID
    assert (trial.checkpoint / "state_dict.pth").read_bytes() == b"weights"
    assert trial.val_metrics == determined_test.VALIDATION
    assert training.submitted[chosen.model_name].experiment_id == determined_test.EXPERIMENT_ID
    assert case.timings["train"] >= 0


def test_the_repositorys_yaml_is_left_as_it_is(tmp_path: Path) -> None:
    usecase = usecase_named("bbc")
    before = (usecase.model_dir / "smoke.yaml").read_text()
    config = experiments.experiment_config(usecase, "smoke.yaml", str(tmp_path))
    assert config["data"]["features"] == str(tmp_path)
    assert (usecase.model_dir / "smoke.yaml").read_text() == before
