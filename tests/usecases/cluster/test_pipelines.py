"""The data pipeline's Pachyderm specs against Pachyderm 2.11.6's own CreatePipelineRequest
schema (draft-04, camelCase only, no unknown keys), read from the upstream copy."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.charts.upstream import upstream_root
from usecases.cluster import pipelines

IMAGE = "registry.example/cdl/cdl:0.1.0-cpu"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    path = upstream_root() / "pachyderm-2.11.6" / "CreatePipelineRequest.schema.json"
    schema = json.loads(path.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema)


@pytest.mark.parametrize("usecase", ["bbc", "fmnist"])
def test_each_validation_pipeline_is_valid_against_pachyderms_schema(
        validator: jsonschema.Draft4Validator, usecase: str) -> None:
    spec = pipelines.validate_pipeline(usecase, IMAGE)
    assert sorted(e.message for e in validator.iter_errors(spec)) == []
    # the worker reads the input Pachyderm mounts and runs in the image it is given
    assert spec["transform"]["image"] == IMAGE
    command = spec["transform"]["cmd"]
    assert command[:3] == ["python", "-m", "usecases.cluster.worker"]
    assert command[command.index("--input") + 1] == f"/pfs/{spec['input']['pfs']['name']}"
    assert spec["input"]["pfs"]["repo"] == pipelines.raw_repo(usecase)
    assert spec["input"]["pfs"]["glob"] == "/"  # the split needs every file in one datum


def test_the_schema_refuses_the_snake_case_the_papers_specs_used(
        validator: jsonschema.Draft4Validator) -> None:
    """Not vacuous: the paper's Pachyderm 1.x keys (snake_case) and an unknown key are refused."""
    spec = pipelines.validate_pipeline("bbc", IMAGE)
    spec["parallelism_spec"] = spec.pop("parallelismSpec")
    assert any("parallelism_spec" in e.message for e in validator.iter_errors(spec))
    spec = pipelines.validate_pipeline("bbc", IMAGE)
    spec["transform"]["entrypoint"] = ["python"]
    assert list(validator.iter_errors(spec))
