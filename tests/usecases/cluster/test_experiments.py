"""Contract test: the experiments the cluster smoke submits name CDL's pinned image, as the
stack exports it, through the Determined adapter, against the loopback master of
tests/usecases/stores/test_determined.py (answers built from determined's bindings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from determined.common.api import bindings

from stacks.platform import pins
from tests.usecases.stores.test_determined import (  # noqa: F401 (fixtures)
    PASSWORD,
    USER,
    ReferenceMaster,
    _own_config,
    master,
)
from usecases.cli.common import usecase_named
from usecases.cluster import experiments, outputs
from usecases.stores.determined import DeterminedMaster


def platform_of(registry: str) -> outputs.Platform:
    """The stack's outputs as `pulumi up` exports them (images from the pins)."""
    body = {"urls": {}, "determinedMaster": "https://determined.example.org",
            "s3Endpoint": "http://minio:9000", "credentials": {},
            "images": {v: pins.cdl_image(registry, v).ref for v in pins.IMAGE_VARIANTS}}
    return outputs.parse(json.loads(json.dumps(body)), "test outputs")


@pytest.mark.parametrize("usecase", ["bbc", "fmnist"])
def test_contract_the_smoke_experiment_runs_in_the_pinned_image(
        master: ReferenceMaster, usecase: str) -> None:  # noqa: F811
    registry = "registry.example.org:5050/ml/cdl"
    experiment_id = experiments.submit(
        DeterminedMaster(master.base, USER, PASSWORD), platform_of(registry),
        usecase_named(usecase), "smoke.yaml", "pfs:bbc-features@0a1b2c/features")
    assert experiment_id > 0
    created = bindings.v1CreateExperimentRequest.from_json(
        master.sent("POST", "/api/v1/experiments").body)
    config = yaml.safe_load(created.config or "")
    assert config["environment"]["image"] == {
        "cpu": f"{registry}/cdl:{pins.CDL_VERSION}-cpu",
        "cuda": f"{registry}/cdl:{pins.CDL_VERSION}-gpu"}
    assert config["data"]["features"] == "pfs:bbc-features@0a1b2c/features"
    assert config["name"] == f"{usecase_named(usecase).model_name}-smoke"
    assert config["searcher"]["name"] == "single"


def test_the_repositorys_yaml_is_left_as_it_is(tmp_path: Path) -> None:
    usecase = usecase_named("bbc")
    before = (usecase.model_dir / "smoke.yaml").read_text()
    config = experiments.experiment_config(usecase, "smoke.yaml", str(tmp_path))
    assert config["data"]["features"] == str(tmp_path)
    assert (usecase.model_dir / "smoke.yaml").read_text() == before
