"""Our values for every upstream chart against that chart's own values.yaml and schema.

Helm ignores a key the chart does not know, so a misspelled key deploys silently with the
chart's default (often a well-known password or a public service). Here it is an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from stacks.platform import ci, data, database, labels, pins, serving, storage, tls, training
from stacks.platform.config import PlatformConfig
from tests.charts.upstream import documented_paths, schema_errors, unknown_keys

CONFIG = PlatformConfig(domain="cdl.example.org", acmeEmail="ops@example.org",
                        gitlabUrl="https://gitlab.example.org")
S3_URL = "http://minio.cdl-storage.svc.cluster.local:9000"

# Maps the charts hand to Kubernetes (or to the tool) verbatim: their keys are Kubernetes' or the
# tool's, not the chart's, so the chart's defaults cannot list them.
RESOURCES = "a container's resources block (requests/limits), passed into the pod spec"
FREE_FORM: dict[str, dict[tuple[str, ...], str]] = {
    "minio-5.4.0": {
        ("resources",): RESOURCES,
        ("makeUserJob", "resources"): RESOURCES,
        ("makeBucketJob", "resources"): RESOURCES,
        ("makePolicyJob", "resources"): RESOURCES,
        ("consoleIngress", "annotations"): "the console Ingress's metadata.annotations",
        ("environment",): "environment variables of the MinIO server container",
    },
    "pachyderm-2.11.6": {("proxy", "resources"): RESOURCES},
    "determined-0.38.1": {
        ("resourcePools", "task_container_defaults", "gpu_pod_spec"):
            "a Kubernetes Pod the master uses as the template of GPU task pods",
        ("resourcePools", "task_container_defaults", "cpu_pod_spec"):
            "a Kubernetes Pod the master uses as the template of CPU task pods",
    },
}

BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "cert-manager-1.21.1": tls.cert_manager_values,
    "cloudnative-pg-0.29.0": database.operator_values,
    "minio-5.4.0": lambda: storage.minio_values(CONFIG, "cdl-acme"),
    "pachyderm-2.11.6": lambda: data.pachyderm_values(
        CONFIG, "cdl-acme", "minio.cdl-storage.svc.cluster.local:9000", "access", "secret"),
    "label-studio-2.0.5": lambda: labels.label_studio_values(CONFIG, "cdl-acme", S3_URL),
    "determined-0.38.1": lambda: training.determined_values(
        CONFIG, S3_URL, "db-password", "access", "secret", "admin-password"),
    "seldon-core-operator-1.17.1": serving.seldon_values,
    "kserve-0.14.1": lambda: serving.kserve_values("public"),
}


def test_every_pinned_upstream_chart_is_checked() -> None:
    checked = {pin.upstream for pin in pins.CHARTS if pin.upstream}
    assert checked == set(BUILDERS)


@pytest.mark.parametrize("chart", sorted(BUILDERS))
def test_values_use_only_keys_the_chart_knows(chart: str) -> None:
    assert unknown_keys(BUILDERS[chart](), chart, FREE_FORM.get(chart, {})) == []


@pytest.mark.parametrize("chart", sorted(BUILDERS))
def test_merged_values_satisfy_the_chart_schema(chart: str) -> None:
    assert schema_errors(BUILDERS[chart](), chart) == []


@pytest.mark.parametrize("chart", sorted(BUILDERS))
def test_free_form_paths_exist_in_our_values(chart: str) -> None:
    """An allowance for a path we no longer set would hide the next typo there."""
    def has(node: Any, path: tuple[str, ...]) -> bool:
        if not path:
            return True
        if isinstance(node, list):
            return any(has(item, path) for item in node)
        return isinstance(node, dict) and path[0] in node and has(node[path[0]], path[1:])

    values = BUILDERS[chart]()
    for path in FREE_FORM.get(chart, {}):
        assert has(values, path), f"{chart}: free-form {'.'.join(path)} is not in our values"


def test_a_misspelled_key_is_caught() -> None:
    """The check itself: a typo at each depth, in a chart with and one without a schema."""
    assert unknown_keys({"existingSecrett": "x"}, "minio-5.4.0", {}) == ["existingSecrett"]
    assert unknown_keys({"db": {"hostAdress": "x"}}, "determined-0.38.1", {}) == [
        "db.hostAdress"]
    assert unknown_keys({"global": {"pgConfig": {"hots": "x"}}}, "label-studio-2.0.5",
                        {}) == ["global.pgConfig.hots"]


def test_keys_documented_only_in_comments_are_known() -> None:
    """Determined documents db.hostAddress and initialUserPassword as commented-out keys."""
    documented = documented_paths("determined-0.38.1")
    assert {("db", "hostAddress"), ("initialUserPassword",),
            ("checkpointStorage", "endpointUrl")} <= documented
    assert ("NOTE",) not in documented_paths("minio-5.4.0")


def test_chart_defaults_with_well_known_passwords_are_overridden() -> None:
    """MinIO's default user and Pachyderm's default database passwords never survive."""
    minio = storage.minio_values(CONFIG, "cdl-acme")
    assert all("secretKey" not in user and user["existingSecret"] for user in minio["users"])
    assert minio["existingSecret"]
    pg = BUILDERS["pachyderm-2.11.6"]()["global"]["postgresql"]
    assert pg["postgresqlPassword"] == "" and pg["postgresqlPostgresPassword"] == ""
    assert pg["postgresqlExistingSecretName"]


def test_gitlab_runner_values_reference_the_token_secret() -> None:
    """No upstream copy of the GitLab Runner chart exists here; what we can check: the token
    is referenced by Secret name and jobs stay in the CI namespace."""
    values = ci.gitlab_runner_values("https://gitlab.example.org")
    assert values["runners"]["secret"] == ci.RUNNER_SECRET
    assert 'namespace = "cdl-ci"' in values["runners"]["config"]
    assert "token" not in str(values).replace("gitlab-runner-token", "")

