"""Every rule of the policy pack, called in-process on compliant and violating resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from policies import rules
from policies.rules import (
    CHART_HELD_CREDENTIALS,
    CHART_HELD_KEY,
    HELM_RELEASE,
    INSTANCE,
    PORT,
    RULES,
    SEC_GROUP_RULE,
    VOLUME,
    ChartValue,
    chart_values,
    gpu_node_off_flavor,
    helm_chart_unpinned,
    helm_plaintext_secrets,
    outside_security_group,
    volume_too_large,
    world_open_admin_ports,
)
from stacks import compute
from stacks.config import MAX_VOLUME_GB
from tests.stacks.conftest import VALID, Run


def _rule(**props: Any) -> dict[str, Any]:
    return {"direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
            "securityGroupId": "sg", **props}


@pytest.mark.parametrize("port", rules.ADMIN_PORTS)
@pytest.mark.parametrize("world", ["0.0.0.0/0", "::/0"])
def test_admin_port_open_to_the_world_is_refused(port: int, world: str) -> None:
    props = _rule(remoteIpPrefix=world, portRangeMin=port, portRangeMax=port)
    assert world_open_admin_ports(SEC_GROUP_RULE, props) == [
        f"ingress from {world} to port {port}: allow only your admin networks (cdl:adminCidrs)"]


@pytest.mark.parametrize("props", [
    _rule(remoteIpPrefix="0.0.0.0/0"),  # every port
    _rule(remoteIpPrefix="0.0.0.0/0", protocol=None, portRangeMin=1, portRangeMax=65535),
    _rule(portRangeMin=22, portRangeMax=22),  # no source at all admits every source
    _rule(remoteIpPrefix="0.0.0.0/0", portRangeMin=5000, portRangeMax=10000),
])
def test_wide_rules_that_cover_admin_ports_are_refused(props: dict[str, Any]) -> None:
    assert world_open_admin_ports(SEC_GROUP_RULE, props)


@pytest.mark.parametrize("props", [
    _rule(remoteIpPrefix="203.0.113.0/24", portRangeMin=22, portRangeMax=22),
    _rule(remoteIpPrefix="0.0.0.0/0", portRangeMin=443, portRangeMax=443),
    _rule(remoteGroupId="sg"),
    _rule(remoteIpPrefix="0.0.0.0/0", protocol="icmp"),
    _rule(remoteIpPrefix="0.0.0.0/0", portRangeMin=22, portRangeMax=22, direction="egress"),
])
def test_narrow_rules_pass(props: dict[str, Any]) -> None:
    assert world_open_admin_ports(SEC_GROUP_RULE, props) == []


def _gpu_node(**props: Any) -> dict[str, Any]:
    return {"metadata": {"cdl_role": "gpu_node"}, "flavorName": "g1.t4", **props}


def test_gpu_node_on_the_configured_flavor_passes() -> None:
    assert gpu_node_off_flavor(INSTANCE, _gpu_node(), ["g1.t4"]) == []
    assert gpu_node_off_flavor(INSTANCE, {"flavorName": "m1.small",
                                          "metadata": {"cdl_role": "gitlab"}}, ["g1.t4"]) == []


def test_gpu_node_on_another_flavor_is_refused() -> None:
    assert gpu_node_off_flavor(INSTANCE, _gpu_node(flavorName="m1.xlarge"), ["g1.t4"]) == [
        "GPU node on flavor 'm1.xlarge'; expected one of g1.t4 (flavorName)"]
    assert "no GPU flavor is configured" in gpu_node_off_flavor(INSTANCE, _gpu_node(), [])[0]


def test_instance_security_groups() -> None:
    assert outside_security_group(INSTANCE, {"securityGroups": ["cdl"]}) == []
    assert outside_security_group(INSTANCE, {"networks": [{"port": "p1"}]}) == []
    assert outside_security_group(INSTANCE, {"networks": [{"uuid": "net"}]})
    assert outside_security_group(INSTANCE, {"networks": []})
    assert outside_security_group(PORT, {"securityGroupIds": ["sg"]}) == []
    assert outside_security_group(PORT, {"networkId": "net"})
    assert outside_security_group(PORT, {"securityGroupIds": ["sg"], "portSecurityEnabled": False})
    assert outside_security_group(PORT, {"noSecurityGroups": True})


def test_volume_sizes() -> None:
    assert volume_too_large(VOLUME, {"size": 200}) == []
    assert volume_too_large(VOLUME, {"size": MAX_VOLUME_GB + 1})
    assert volume_too_large(VOLUME, {"size": 0})
    assert volume_too_large(VOLUME, {"size": 300}, max_gb=256)
    boot = {"blockDevices": [{"destinationType": "volume", "volumeSize": 100_000}]}
    assert volume_too_large(INSTANCE, boot) == [
        f"blockDevices[0].volumeSize = 100000 GB; keep volumes between 1 and {MAX_VOLUME_GB} GB"]


def test_policy_and_program_share_the_volume_ceiling_and_gpu_metadata() -> None:
    assert rules.MAX_VOLUME_GB == MAX_VOLUME_GB
    assert rules.ROLE_KEY == compute.ROLE_KEY


@pytest.mark.parametrize(("props", "ok"), [
    ({"chart": "cloudnative-pg", "version": "0.23.2"}, True),
    ({"chart": "oci://registry/charts/x", "version": "1.2.3-rc.1"}, True),
    ({"chart": "./charts/model-serving"}, True),
    ({"chart": "determined"}, False),
    ({"chart": "determined", "version": ""}, False),
    ({"chart": "determined", "version": "^0.38"}, False),
    ({"chart": "determined", "version": ">=0.38.0"}, False),
    ({"chart": "determined", "version": "0.38.x"}, False),
    ({"chart": "determined", "version": "*"}, False),
])
def test_helm_chart_version_pinned(props: dict[str, Any], ok: bool) -> None:
    assert (helm_chart_unpinned(HELM_RELEASE, props) == []) is ok


def test_helm_values_without_secrets_pass() -> None:
    values = {"auth": {"existingSecret": "pg-credentials", "secretKeys": {"adminPasswordKey":
                                                                           "password"}},
              "minio": {"rootUser": "admin", "existingSecret": "minio-root"},
              "tokenSecretName": "runner-token", "replicas": 2, "tls": {"enabled": True},
              "password": ""}
    assert helm_plaintext_secrets(HELM_RELEASE, {"chart": "x", "values": values}) == []


@pytest.mark.parametrize(("values", "path"), [
    ({"auth": {"postgresPassword": "hunter2"}}, "values.auth.postgresPassword"),
    ({"minio": {"rootPassword": "minio123"}}, "values.minio.rootPassword"),
    ({"runner": {"runnerToken": "glrt-abc"}}, "values.runner.runnerToken"),
    ({"s3": [{"secretKey": "abc"}]}, "values.s3[0].secretKey"),
    ({"apiKey": "k"}, "values.apiKey"),
    ({"tls": {"key": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}}, "values.tls.key"),
])
def test_helm_values_with_plaintext_secrets_are_refused(values: dict[str, Any],
                                                        path: str) -> None:
    (message,) = helm_plaintext_secrets(HELM_RELEASE, {"chart": "x", "values": values})
    assert message.startswith(f"{path} holds a secret in plain text")


def _release(chart: str, values: dict[str, Any], version: str = "1.0.0") -> dict[str, Any]:
    return {"chart": chart, "version": version, "values": values}


def _flagged(props: dict[str, Any], **allowed: Any) -> list[str]:
    return [m.split(" holds ")[0] for m in helm_plaintext_secrets(HELM_RELEASE, props, **allowed)]


_S3_USER = {"accessKey": "cdl", "existingSecret": "cdl-s3", "existingSecretKey": "secretKey"}


@pytest.mark.parametrize(("chart", "values"), [
    # {secretName, secretKey}: the key inside the named Secret (Label Studio, and the shape of
    # every extraEnvironmentSecrets entry).
    ("label-studio", {"global": {"pgConfig": {"password": {"secretName": "cdl-pg",
                                                           "secretKey": "password"}}}}),
    ("x", {"env": {"API_TOKEN": {"secretName": "api", "secretKey": "token"}}}),
    ("x", {"env": [{"name": "PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "pg", "key": "password"}}}]}),
    ("x", {"auth": {"passwordSecretName": "pg", "tokenSecretRef": "t", "existingSecret": "pg"}}),
    # Keys a named chart documents as a Secret's name or a user name.
    ("gitlab-runner", {"runners": {"secret": "gitlab-runner-token"}}),
    ("minio", {"users": [_S3_USER, {**_S3_USER, "accessKey": "other"}]}),
    ("oci://registry/charts/minio", {"users": [_S3_USER]}),
])
def test_helm_values_that_reference_a_secret_pass(chart: str, values: dict[str, Any]) -> None:
    assert _flagged(_release(chart, values)) == []


@pytest.mark.parametrize(("chart", "values", "paths"), [
    # Without a Secret named beside it, secretKey is the credential itself.
    ("label-studio", {"pgConfig": {"password": {"secretName": "", "secretKey": "hunter2"}}},
     ["values.pgConfig.password.secretKey"]),
    ("label-studio", {"global": {"persistence": {"config": {"s3": {"secretKey": "sk"}}}}},
     ["values.global.persistence.config.s3.secretKey"]),
    # A chart's documented exception is that chart's alone, at that path alone.
    ("x", {"runners": {"secret": "glrt-abc"}}, ["values.runners.secret"]),
    ("gitlab-runner", {"runners": {"token": "glrt-abc"}}, ["values.runners.token"]),
    ("x", {"users": [{"accessKey": "AKIAEXAMPLE"}]}, ["values.users[0].accessKey"]),
    ("minio", {"users": [{"accessKey": "console", "secretKey": "console123"}],
               "rootPassword": "minio123"},
     ["values.users[0].secretKey", "values.rootPassword"]),
    ("minio", {"users": {"accessKey": "AKIAEXAMPLE"}}, ["values.users.accessKey"]),
])
def test_helm_values_that_only_look_like_references_are_refused(
        chart: str, values: dict[str, Any], paths: list[str]) -> None:
    assert _flagged(_release(chart, values)) == paths


def test_chart_held_credentials_pass_only_where_allowed() -> None:
    determined = {"db": {"password": "p"}, "initialUserPassword": "a",
                  "webhooks": {"token": "t"}}
    assert _flagged(_release("determined", determined, "0.38.1")) == ["values.webhooks.token"]
    assert _flagged(_release("repo/determined", determined, "0.38.1")) == [
        "values.webhooks.token"]
    # Another version of the chart may read them from a Secret: the allowance does not carry.
    assert len(_flagged(_release("determined", determined, "0.39.0"))) == 3
    assert len(_flagged(_release("determined", determined, "0.38.1"), allowed=())) == 3
    # The same path in another chart is refused.
    assert _flagged(_release("pachyderm", {"db": {"password": "p"}}, "2.11.6")) == [
        "values.db.password"]
    own = [ChartValue("x", "auth.token", "x 1.0 takes its token only as a value")]
    assert _flagged(_release("x", {"auth": {"token": "t"}}), allowed=own) == []


def test_the_secrets_policy_takes_its_allowlist_from_config() -> None:
    rule = {r.name: r for r in RULES}["helm-values-without-plaintext-secrets"]
    determined = _release("determined", {"db": {"password": "p"}}, "0.38.1")
    assert rule.check(HELM_RELEASE, determined, {}) == []
    assert rule.check(HELM_RELEASE, determined, {CHART_HELD_KEY: []})
    entry = {"chart": "x", "path": "auth.token", "reason": "x 1.0 takes it only as a value"}
    assert rule.check(HELM_RELEASE, _release("x", {"auth": {"token": "t"}}),
                      {CHART_HELD_KEY: [entry]}) == []
    assert rule.check(HELM_RELEASE, determined, {CHART_HELD_KEY: [entry]})


def test_the_allowlist_schema_describes_its_default() -> None:
    rule = {r.name: r for r in RULES}["helm-values-without-plaintext-secrets"]
    schema = rule.config_schema[CHART_HELD_KEY]
    jsonschema.validate(schema["default"], schema)
    assert chart_values(schema["default"]) == CHART_HELD_CREDENTIALS
    assert all(entry.reason and entry.version for entry in CHART_HELD_CREDENTIALS)
    for wrong in ([{"chart": "x", "path": "a.token"}],
                  [{"chart": "x", "path": "a.token", "reason": "r", "why": "extra"}]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)


def test_rules_ignore_types_they_do_not_cover() -> None:
    props = {"size": 10**6, "remoteIpPrefix": "0.0.0.0/0", "direction": "ingress",
             "values": {"password": "x"}, "metadata": {"cdl_role": "gpu_node"}}
    for rule in RULES:
        assert rule.check("random:index/randomPassword:RandomPassword", props, {}) == []


def test_pack_rules_use_their_config() -> None:
    by_name = {rule.name: rule for rule in RULES}
    gpu = by_name["gpu-nodes-on-configured-flavor"]
    assert gpu.check(INSTANCE, _gpu_node(), {"gpuFlavors": ["g1.t4"]}) == []
    assert gpu.check(INSTANCE, _gpu_node(), {"gpuFlavors": ["g2.a100"]})
    volume = by_name["volume-sizes-bounded"]
    assert volume.check(VOLUME, {"size": 300}, {"maxVolumeGb": 256})
    assert volume.check(VOLUME, {"size": 300}, {}) == []
    assert len(by_name) == len(RULES) == 6


def test_every_resource_the_program_declares_complies(
        run_program: Callable[[dict[str, Any]], Run]) -> None:
    run = run_program({**VALID, "gpuNodeCount": 3, "dataVolumeGb": 500})
    violations = [(r.typ, r.name, message) for r in run.resources for rule in RULES
                  for message in rule.check(r.typ, r.inputs, {"gpuFlavors": ["g1.t4"]})]
    assert violations == []


def test_world_admin_stack_is_refused_by_the_pack(
        run_program: Callable[[dict[str, Any]], Run]) -> None:
    run = run_program({**VALID, "adminCidrs": ["0.0.0.0/0"], "allowWorldAdmin": True})
    refused = {(r.name, m) for r in run.of(SEC_GROUP_RULE) for m in
               world_open_admin_ports(r.typ, r.inputs)}
    assert {name for name, _ in refused} == {"cdl-cluster-ssh-0", "cdl-cluster-kube-api-0",
                                             "cdl-gitlab-ssh-0"}
