"""The validators the chart and platform tests rely on catch what they are there to catch."""

from __future__ import annotations

import jsonschema
import kubernetes_validate
import pytest

from tests.charts.upstream import validate_custom_resource, validate_manifest

CLUSTER = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
           "metadata": {"name": "pg"}, "spec": {"instances": 1, "storage": {"size": "1Gi"}}}


def test_a_valid_custom_resource_passes() -> None:
    assert validate_custom_resource(CLUSTER) == ["clusters.postgresql.cnpg.io-1.30.0.yaml"]


def test_a_misspelled_custom_resource_field_fails() -> None:
    """The API server would prune the typo silently; here it is an error."""
    typo = {**CLUSTER, "spec": {"instance": 1, "storage": {"size": "1Gi"}}}
    with pytest.raises(jsonschema.ValidationError, match="instance"):
        validate_custom_resource(typo)


def test_a_custom_resource_is_checked_against_every_copy_of_its_crd() -> None:
    service = {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
               "metadata": {"name": "m"},
               "spec": {"predictor": {"containers": [{"name": "kserve-container",
                                                      "image": "seldonio/mlserver:1.7.1"}]}}}
    assert validate_custom_resource(service) == [
        "inferenceservices.serving.kserve.io-0.14.1.yaml",
        "inferenceservices.serving.kserve.io-0.20.0.yaml"]


def test_a_built_in_kind_goes_through_kubernetes_validate_strict() -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
              "data": {"a": "b"}}
    validate_manifest(config)
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_manifest({**config, "dta": {"a": "b"}})
