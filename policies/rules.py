"""The policy pack's rules as plain functions: ``(resource_type, props) -> violations``.

``props`` are a resource's inputs as the engine hands them to a policy (camelCase names,
nested mappings and sequences). Each function returns one message per violation and an empty
list when the resource complies or is of a type the rule does not cover. Only the standard
library is used, so the pack's own virtualenv needs nothing but pulumi-policy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEC_GROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
INSTANCE = "openstack:compute/instance:Instance"
PORT = "openstack:networking/port:Port"
VOLUME = "openstack:blockstorage/volume:Volume"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
HELM_CHARTS = ("kubernetes:helm.sh/v3:Chart", "kubernetes:helm.sh/v4:Chart")

# SSH, PostgreSQL, the Kubernetes API (upstream and MicroK8s), dashboards, MinIO: the ports the
# paper's prototype opened to everyone.
ADMIN_PORTS = (22, 5432, 6443, 16443, 8080, 9000)
# The same ceiling as stacks/config.py MAX_VOLUME_GB (a test keeps them equal).
MAX_VOLUME_GB = 4096
# Instance metadata the program sets on GPU nodes (stacks/compute.py ROLE_KEY).
ROLE_KEY, GPU_ROLE = "cdl_role", "gpu_node"

_SECRET_KEY = re.compile(r"pass(word|wd)?$|secret|token|api_?key|access_?key|private_?key|"
                         r"credential", re.IGNORECASE)
# Keys that name or point at a Kubernetes Secret instead of holding the value.
_REFERENCE_KEY = re.compile(r"existing|(name|ref|path|file|enabled)$", re.IGNORECASE)
_PEM_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
# A pinned chart version is one exact SemVer version, not a range or a wildcard.
_EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def _world(prefix: Any) -> bool:
    try:
        return ipaddress.ip_network(str(prefix), strict=False).prefixlen == 0
    except ValueError:
        return False


def world_open_admin_ports(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """An ingress rule must not open an admin port to 0.0.0.0/0 or ::/0.

    A rule with neither a remote prefix nor a remote group admits every source, like 0.0.0.0/0;
    a rule without a port range covers every port.
    """
    if resource_type != SEC_GROUP_RULE or props.get("direction") != "ingress":
        return []
    prefix, group = props.get("remoteIpPrefix"), props.get("remoteGroupId")
    if group and not prefix:
        return []
    if prefix and not _world(prefix):
        return []
    if str(props.get("protocol") or "any").lower() in ("icmp", "ipv6-icmp", "1", "58"):
        return []
    low, high = props.get("portRangeMin"), props.get("portRangeMax")
    first = int(low) if low is not None else 1
    last = int(high) if high is not None else (first if low is not None else 65535)
    exposed = [port for port in ADMIN_PORTS if first <= port <= last]
    source = prefix or "any source"
    return [f"ingress from {source} to port {port}: allow only your admin networks "
            "(cdl:adminCidrs)" for port in exposed]


def gpu_node_off_flavor(resource_type: str, props: Mapping[str, Any],
                        allowed_flavors: Collection[str]) -> list[str]:
    """A GPU node instance must run on one of the GPU flavors named in config."""
    if resource_type != INSTANCE:
        return []
    metadata = props.get("metadata") or {}
    if metadata.get(ROLE_KEY) != GPU_ROLE:
        return []
    if not allowed_flavors:
        return ["no GPU flavor is configured for the policy: set cdl:gpuFlavor on the stack or "
                "the pack's gpuFlavors config"]
    flavor = props.get("flavorName")
    if flavor not in allowed_flavors:
        return [f"GPU node on flavor {flavor or props.get('flavorId')!r}; expected one of "
                f"{', '.join(sorted(allowed_flavors))} (flavorName)"]
    return []


def outside_security_group(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Every instance sits in a security group: its own list, or one on each port it uses."""
    if resource_type == INSTANCE:
        networks: Sequence[Mapping[str, Any]] = props.get("networks") or []
        through_ports = bool(networks) and all(n.get("port") for n in networks)
        if props.get("securityGroups") or through_ports:
            return []
        return ["instance without a security group: list securityGroups, or attach it through "
                "ports that carry securityGroupIds"]
    if resource_type == PORT:
        if props.get("portSecurityEnabled") is False or props.get("noSecurityGroups"):
            return ["port with port security or security groups switched off"]
        if not props.get("securityGroupIds"):
            return ["port without securityGroupIds: OpenStack would put it in the project's "
                    "default group"]
    return []


def volume_too_large(resource_type: str, props: Mapping[str, Any],
                     max_gb: int = MAX_VOLUME_GB) -> list[str]:
    """Volumes, standalone or created at boot, are between 1 and ``max_gb`` GB."""
    sizes: list[tuple[str, Any]] = []
    if resource_type == VOLUME:
        sizes.append(("size", props.get("size")))
    elif resource_type == INSTANCE:
        sizes += [(f"blockDevices[{i}].volumeSize", device.get("volumeSize"))
                  for i, device in enumerate(props.get("blockDevices") or [])
                  if device.get("destinationType") == "volume"]
    return [f"{where} = {size} GB; keep volumes between 1 and {max_gb} GB"
            for where, size in sizes if size is not None and not 1 <= int(size) <= max_gb]


def helm_chart_unpinned(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """A Helm release names one exact chart version (charts from a local path carry theirs)."""
    if resource_type != HELM_RELEASE and resource_type not in HELM_CHARTS:
        return []
    chart = str(props.get("chart") or "")
    if chart.startswith(("./", "../", "/")):
        return []
    version = props.get("version")
    if not version:
        return [f"chart {chart!r} without a version: set version to an exact release"]
    if not _EXACT_VERSION.match(str(version)):
        return [f"chart {chart!r} version {version!r} is a range, not one release: pin it"]
    return []


def _is_container(value: Any) -> bool:
    return isinstance(value, Mapping) or (isinstance(value, Sequence)
                                          and not isinstance(value, str | bytes))


def _scalars(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(parent path, key, value) for every scalar held under a mapping key, at any depth."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_container(item):
                yield from _scalars(item, f"{path}.{key}")
            else:
                yield path, str(key), item
    elif _is_container(value):
        for index, item in enumerate(value):
            yield from _scalars(item, f"{path}[{index}]")


def helm_plaintext_secrets(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Helm values hold no password, token or key; they reference a Kubernetes Secret.

    Policies receive secret inputs already decrypted, so a Pulumi secret in values is flagged
    as well: values are stored in the Helm release and shown by ``helm get values``.
    """
    if resource_type != HELM_RELEASE and resource_type not in HELM_CHARTS:
        return []
    found = []
    for path, key, value in _scalars(props.get("values") or {}, "values"):
        if not isinstance(value, str) or not value:
            continue
        if _PEM_PRIVATE_KEY.search(value) or (
                _SECRET_KEY.search(key) and not _REFERENCE_KEY.search(key)):
            found.append(f"{path}.{key} holds a secret in plain text: put it in a Kubernetes "
                         "Secret and reference it (existingSecret or the chart's equivalent)")
    return found


Check = Callable[[str, Mapping[str, Any], Mapping[str, Any]], list[str]]


@dataclass(frozen=True)
class Rule:
    """One mandatory resource policy: its name, what to do about it, and its check."""

    name: str
    description: str
    check: Check
    config_schema: dict[str, dict[str, Any]] = field(default_factory=dict)


RULES: tuple[Rule, ...] = (
    Rule("no-world-open-admin-ports",
         "Ports 22, 5432, 6443, 16443, 8080 and 9000 must not be open to 0.0.0.0/0 or ::/0; "
         "allow only the admin networks in cdl:adminCidrs.",
         lambda t, p, _: world_open_admin_ports(t, p)),
    Rule("gpu-nodes-on-configured-flavor",
         "GPU node instances run on the GPU flavor named in config (cdl:gpuFlavor, or the "
         "pack's gpuFlavors).",
         lambda t, p, c: gpu_node_off_flavor(t, p, c.get("gpuFlavors") or []),
         {"gpuFlavors": {"type": "array", "items": {"type": "string"}}}),
    Rule("instances-in-security-groups",
         "Every instance is in a security group, on itself or on every port it uses.",
         lambda t, p, _: outside_security_group(t, p)),
    Rule("volume-sizes-bounded",
         f"Volumes are between 1 GB and maxVolumeGb (default {MAX_VOLUME_GB} GB).",
         lambda t, p, c: volume_too_large(t, p, int(c.get("maxVolumeGb") or MAX_VOLUME_GB)),
         {"maxVolumeGb": {"type": "integer", "minimum": 1, "default": MAX_VOLUME_GB}}),
    Rule("helm-chart-version-pinned",
         "Every Helm release pins one exact chart version.",
         lambda t, p, _: helm_chart_unpinned(t, p)),
    Rule("helm-values-without-plaintext-secrets",
         "Helm release values carry no passwords, tokens or keys; reference a Kubernetes "
         "Secret instead.",
         lambda t, p, _: helm_plaintext_secrets(t, p)),
)
