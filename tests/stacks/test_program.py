"""The whole program under mocks: what it declares for 1 and 3 GPU nodes, with and without GitLab,
the security rules, the inventory, and existing-hosts mode."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from stacks.config import ConfigError
from tests.stacks.conftest import VALID, Run

RunProgram = Callable[[dict[str, Any]], Run]
INSTANCE = "openstack:compute/instance:Instance"
RULE = "openstack:networking/secGroupRule:SecGroupRule"
ADMIN_PORTS = {22, 5432, 6443, 16443, 8080, 9000}


def _counts(run: Run) -> Counter[str]:
    return Counter(r.typ.split(":")[-1] for r in run.resources if r.typ.startswith("openstack:"))


@pytest.mark.parametrize("nodes", [1, 3])
@pytest.mark.parametrize("gitlab", [True, False])
def test_resources_for_node_count_and_gitlab(run_program: RunProgram, nodes: int,
                                              gitlab: bool) -> None:
    run = run_program({**VALID, "gpuNodeCount": nodes, "gitlab": gitlab, "dataVolumeGb": 200})
    g = int(gitlab)
    admin, ingress = len(VALID["adminCidrs"]), 1
    assert _counts(run) == {
        "Network": 1, "Subnet": 1, "Router": 1, "RouterInterface": 1, "Keypair": 1,
        "ServerGroup": 1, "SecGroup": 1 + g, "Port": nodes + g, "Instance": nodes + g,
        "FloatingIp": 1 + g, "Volume": nodes, "VolumeAttach": nodes,
        "SecGroupRule": (2 * admin + 2 * ingress + 1) + g * (admin + 2 * ingress + 2),
    }
    gpu = [r for r in run.of(INSTANCE) if r.inputs["metadata"]["cdl_role"] == "gpu_node"]
    assert len(gpu) == nodes
    assert {r.inputs["flavorName"] for r in gpu} == {"g1.t4"}
    inventory = yaml.safe_load(run.exports["inventory"])["all"]["children"]
    assert len(inventory["gpu_nodes"]["hosts"]) == nodes
    assert list(inventory["k8s_control"]["hosts"]) == ["cdl-gpu-0"]
    assert len(inventory["gitlab"]["hosts"]) == g


def test_gpu_nodes_boot_from_volume_in_a_soft_anti_affinity_group(run_program: RunProgram) -> None:
    run = run_program({**VALID, "gpuNodeCount": 3, "bootVolumeGb": 120})
    (group,) = run.of("openstack:compute/serverGroup:ServerGroup")
    assert group.inputs["policies"] == "soft-anti-affinity"
    for node in (r for r in run.of(INSTANCE) if r.name.startswith("cdl-gpu-")):
        (boot,) = node.inputs["blockDevices"]
        assert (boot["sourceType"], boot["destinationType"], boot["uuid"], boot["volumeSize"],
                boot["bootIndex"]) == ("image", "volume", "image-id", 120, 0)
        assert node.inputs["schedulerHints"] == [{"group": "cdl-gpu-id"}]
        assert node.inputs["keyPair"] == "cdl-test"
        (network,) = node.inputs["networks"]
        assert network["port"] == f"{node.name}-id"


def test_floating_ip_only_on_first_node_and_gitlab(run_program: RunProgram) -> None:
    run = run_program({**VALID, "gpuNodeCount": 3})
    fips = run.of("openstack:networking/floatingIp:FloatingIp")
    assert sorted((f.name, f.inputs["portId"], f.inputs["pool"]) for f in fips) == [
        ("cdl-gitlab", "cdl-gitlab-id", "public"), ("cdl-gpu-0", "cdl-gpu-0-id", "public")]
    (router,) = run.of("openstack:networking/router:Router")
    assert router.inputs["externalNetworkId"] == "external-net-id"


def test_every_port_carries_a_security_group(run_program: RunProgram) -> None:
    run = run_program({**VALID, "gpuNodeCount": 3})
    groups = {r.name: r for r in run.of("openstack:networking/port:Port")}
    assert {n: p.inputs["securityGroupIds"] for n, p in groups.items()} == {
        "cdl-gpu-0": ["cdl-cluster-id"], "cdl-gpu-1": ["cdl-cluster-id"],
        "cdl-gpu-2": ["cdl-cluster-id"], "cdl-gitlab": ["cdl-gitlab-id"]}


def _world(rule: dict[str, Any]) -> bool:
    prefix = rule.get("remoteIpPrefix")
    return prefix is not None and ipaddress.ip_network(prefix).prefixlen == 0


def test_admin_ports_only_from_admin_cidrs(run_program: RunProgram) -> None:
    run = run_program(VALID)
    rules = [r.inputs for r in run.of(RULE)]
    for port in (22, 16443):
        sources = {(r["securityGroupId"], r["remoteIpPrefix"]) for r in rules
                   if r.get("portRangeMin") == port}
        assert {prefix for _, prefix in sources} == set(VALID["adminCidrs"])
    assert not [r for r in rules if _world(r) and r.get("portRangeMin") in ADMIN_PORTS]
    world_open = {r.get("portRangeMin") for r in rules if _world(r)}
    assert world_open == {80, 443}


def test_traffic_between_nodes_only_from_the_cluster_group(run_program: RunProgram) -> None:
    run = run_program(VALID)
    rules = [r.inputs for r in run.of(RULE)]
    unrestricted = [r for r in rules if r.get("portRangeMin") is None]
    assert unrestricted == [{"securityGroupId": "cdl-cluster-id", "direction": "ingress",
                             "ethertype": "IPv4", "remoteGroupId": "cdl-cluster-id"}]
    # No rule names a database, object store or dashboard port at all.
    assert not {r.get("portRangeMin") for r in rules} & {5432, 6443, 8080, 9000}


def test_ingress_sources_are_configurable(run_program: RunProgram) -> None:
    run = run_program({**VALID, "ingressCidrs": ["192.0.2.0/24"], "gitlab": False})
    web = {r.inputs["remoteIpPrefix"] for r in run.of(RULE) if r.inputs.get("portRangeMin") == 443}
    assert web == {"192.0.2.0/24"}


def test_three_nodes_reach_private_nodes_through_the_first(run_program: RunProgram) -> None:
    run = run_program({**VALID, "gpuNodeCount": 3, "gitlab": False})
    hosts = yaml.safe_load(run.exports["inventory"])["all"]["children"]["gpu_nodes"]["hosts"]
    first = hosts["cdl-gpu-0"]
    assert first["ansible_host"] == run.exports["nodeAddresses"]["cdl-gpu-0"]["public"]
    for name in ("cdl-gpu-1", "cdl-gpu-2"):
        assert hosts[name]["ansible_host"] == run.exports["nodeAddresses"][name]["internal"]
        assert hosts[name]["ansible_ssh_common_args"] == \
            f"-o ProxyJump=debian@{first['ansible_host']}"


def test_existing_hosts_declare_nothing_on_openstack(run_program: RunProgram) -> None:
    hosts = [{"address": "192.0.2.10", "role": "gpu", "sshUser": "admin"},
             {"address": "192.0.2.11", "role": "gpu", "sshUser": "admin"},
             {"address": "gitlab.example.org", "role": "gitlab", "sshUser": "debian"}]
    run = run_program({"hosts": hosts})
    assert not [r for r in run.resources if r.typ.startswith("openstack:")]
    inventory = yaml.safe_load(run.exports["inventory"])["all"]["children"]
    assert inventory == {
        "gpu_nodes": {"hosts": {
            "cdl-gpu-0": {"ansible_host": "192.0.2.10", "ansible_user": "admin",
                          "cdl_internal_address": "192.0.2.10"},
            "cdl-gpu-1": {"ansible_host": "192.0.2.11", "ansible_user": "admin",
                          "cdl_internal_address": "192.0.2.11"}}},
        "k8s_control": {"hosts": {
            "cdl-gpu-0": {"ansible_host": "192.0.2.10", "ansible_user": "admin",
                          "cdl_internal_address": "192.0.2.10"}}},
        "gitlab": {"hosts": {
            "cdl-gitlab": {"ansible_host": "gitlab.example.org", "ansible_user": "debian",
                           "cdl_internal_address": "gitlab.example.org"}}},
    }


def test_existing_hosts_inventory_has_the_cloud_shape(run_program: RunProgram) -> None:
    cloud = yaml.safe_load(run_program(VALID).exports["inventory"])
    own = yaml.safe_load(run_program({"hosts": [
        {"address": "192.0.2.10", "role": "gpu"},
        {"address": "192.0.2.11", "role": "gitlab"}]}).exports["inventory"])

    def shape(doc: dict[str, Any]) -> dict[str, list[tuple[str, list[str]]]]:
        return {group: [(name, sorted(values)) for name, values in body["hosts"].items()]
                for group, body in doc["all"]["children"].items()}

    assert shape(cloud) == shape(own)


def test_done_when_gpu_node_count_instances_and_no_world_open_admin_port(
        run_program: RunProgram) -> None:
    """The issue's acceptance check: PULUMI_CONFIG set to a valid config, program under mocks."""
    run = run_program({**VALID, "gpuNodeCount": 2})
    gpu = [r for r in run.of(INSTANCE) if r.inputs["metadata"]["cdl_role"] == "gpu_node"]
    assert len(gpu) == 2
    assert not [r for r in run.of(RULE)
                if _world(r.inputs) and r.inputs.get("portRangeMin") in ADMIN_PORTS]


def test_done_when_world_admin_cidr_stops_the_program(run_program: RunProgram) -> None:
    with pytest.raises(ConfigError, match="cdl:adminCidrs"):
        run_program({**VALID, "adminCidrs": ["0.0.0.0/0"]})


def test_world_admin_cidr_allowed_only_when_asked(run_program: RunProgram) -> None:
    run = run_program({**VALID, "adminCidrs": ["0.0.0.0/0"], "allowWorldAdmin": True})
    assert [r for r in run.of(RULE) if _world(r.inputs) and r.inputs.get("portRangeMin") == 22]


def test_instance_metadata_feeds_the_day_two_inventory(run_program: RunProgram) -> None:
    run = run_program({**VALID, "gpuNodeCount": 2, "sshUser": "admin"})
    metadata = {r.name: r.inputs["metadata"] for r in run.of(INSTANCE)}
    assert metadata == {
        "cdl-gpu-0": {"cdl_role": "gpu_node", "cdl_ssh_user": "admin", "cdl_k8s_control": "true"},
        "cdl-gpu-1": {"cdl_role": "gpu_node", "cdl_ssh_user": "admin"},
        "cdl-gitlab": {"cdl_role": "gitlab", "cdl_ssh_user": "admin"},
    }


def test_metallb_addresses_are_kept_out_of_dhcp_and_allowed_on_gpu_ports(
        run_program: RunProgram) -> None:
    run = run_program({**VALID, "gpuNodeCount": 2, "subnetCidr": "10.30.0.0/23"})
    (subnet,) = run.of("openstack:networking/subnet:Subnet")
    assert subnet.inputs["allocationPools"] == [{"start": "10.30.0.10", "end": "10.30.1.223"}]
    pairs = {p.name: p.inputs.get("allowedAddressPairs")
             for p in run.of("openstack:networking/port:Port")}
    assert pairs == {"cdl-gpu-0": [{"ipAddress": "10.30.1.224/27"}],
                     "cdl-gpu-1": [{"ipAddress": "10.30.1.224/27"}], "cdl-gitlab": None}
    variables = yaml.safe_load(run.exports["inventory"])["all"]["vars"]
    assert variables == {"base_firewall_internal_cidr": "10.30.0.0/23",
                         "microk8s_metallb_range": "10.30.1.224-10.30.1.254"}


def test_existing_hosts_leave_network_variables_to_the_user(run_program: RunProgram) -> None:
    run = run_program({"hosts": [{"address": "192.0.2.10", "role": "gpu"}]})
    assert "vars" not in yaml.safe_load(run.exports["inventory"])["all"]
