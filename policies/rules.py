"""The policy pack's rules as plain functions: ``(resource_type, props) -> violations``.

``props`` are a resource's inputs as the engine hands them to a policy (camelCase names,
nested mappings and sequences). Each function returns one message per violation and an empty
list when the resource complies or is of a type the rule does not cover. Only the standard
library is used, so the pack's own virtualenv needs nothing but pulumi-policy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
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
# A list index in a value path; ChartValue paths write any index as `[]`.
_LIST_INDEX = re.compile(r"\[\d+\]")
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


@dataclass(frozen=True)
class ChartValue:
    """A value path of one chart, with the reason the secrets rule treats it specially.

    ``path`` is relative to the release's values, dotted, with ``[]`` for any list index
    (``users[].accessKey``); ``version``, when set, limits the entry to that chart version.
    """

    chart: str
    path: str
    reason: str
    version: str | None = None

    def covers(self, chart: str, version: str, path: str) -> bool:
        return (self.chart == chart and self.path == path
                and self.version in (None, version))


# Keys whose name looks like a secret but whose value, in that chart, is not one: the key name
# alone cannot tell, so each entry names the chart and the documented meaning of the key.
NOT_CREDENTIALS: tuple[ChartValue, ...] = (
    ChartValue("gitlab-runner", "runners.secret",
               "the name of the Kubernetes Secret that holds runner-token (the chart reads the "
               "token from that Secret)"),
    ChartValue("minio", "users[].accessKey",
               "the S3 user's name (an identity); its password is the entry's secretKey or "
               "existingSecret/existingSecretKey (minio chart values.yaml, `users:`)"),
)

# Credentials the pinned charts accept only as values: no existing-Secret option. The values
# are Pulumi secrets in the state, but Helm keeps them in the release (``helm get values``,
# the release's own Secret), so the list is explicit, versioned and configurable.
CHART_HELD_CREDENTIALS: tuple[ChartValue, ...] = (
    ChartValue("determined", "db.password",
               "Determined 0.38.1 reads the master's database password only from values",
               "0.38.1"),
    ChartValue("determined", "checkpointStorage.accessKey",
               "Determined 0.38.1 reads S3 checkpoint credentials only from values", "0.38.1"),
    ChartValue("determined", "checkpointStorage.secretKey",
               "Determined 0.38.1 reads S3 checkpoint credentials only from values", "0.38.1"),
    ChartValue("determined", "initialUserPassword",
               "Determined 0.38.1 sets the admin password only from values", "0.38.1"),
    ChartValue("pachyderm", "pachd.storage.minio.secret",
               "Pachyderm 2.11.6 reads the MinIO secret key only from values", "2.11.6"),
)
CHART_HELD_KEY = "chartHeldCredentials"
_CHART_VALUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"chart": {"type": "string", "minLength": 1},
                   "path": {"type": "string", "minLength": 1},
                   "reason": {"type": "string", "minLength": 1},
                   "version": {"type": "string", "minLength": 1}},
    "required": ["chart", "path", "reason"],
    "additionalProperties": False,
}


def chart_values(entries: Iterable[Mapping[str, str]]) -> tuple[ChartValue, ...]:
    """Allowlist entries as the pack's config gives them (JSON objects) to ``ChartValue``."""
    return tuple(ChartValue(e["chart"], e["path"], e["reason"], e.get("version"))
                 for e in entries)


def _as_config(entries: Iterable[ChartValue]) -> list[dict[str, str]]:
    return [{k: v for k, v in vars(e).items() if v is not None} for e in entries]


def _is_container(value: Any) -> bool:
    return isinstance(value, Mapping) or (isinstance(value, Sequence)
                                          and not isinstance(value, str | bytes))


def _scalars(value: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any], str, Any]]:
    """(parent path, parent mapping, key, value) for every scalar under a mapping key."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if _is_container(item):
                yield from _scalars(item, f"{path}.{key}" if path else str(key))
            else:
                yield path, value, str(key), item
    elif _is_container(value):
        for index, item in enumerate(value):
            yield from _scalars(item, f"{path}[{index}]")


def _names_a_secret(parent: Mapping[str, Any], key: str) -> bool:
    """The key points at a Kubernetes Secret instead of holding a credential."""
    if _REFERENCE_KEY.search(key):
        return True
    # `{secretName: s, secretKey: k}` (Label Studio's pgConfig.password and every
    # extraEnvironmentSecrets entry): secretKey is the key inside the Secret named beside it.
    return key == "secretKey" and bool(parent.get("secretName"))


def _chart_name(chart: str) -> str:
    """The chart's own name from `name`, `repo/name`, `oci://host/path/name` or a local path."""
    return chart.rstrip("/").rsplit("/", 1)[-1]


def helm_plaintext_secrets(
        resource_type: str, props: Mapping[str, Any],
        allowed: Iterable[ChartValue] = CHART_HELD_CREDENTIALS) -> list[str]:
    """Helm values hold no password, token or key; they reference a Kubernetes Secret.

    Policies receive secret inputs already decrypted, so a Pulumi secret in values is flagged
    as well: values are stored in the Helm release and shown by ``helm get values``. Only the
    (chart, version, path) entries in ``allowed`` may carry a credential.
    """
    if resource_type != HELM_RELEASE and resource_type not in HELM_CHARTS:
        return []
    chart, version = _chart_name(str(props.get("chart") or "")), str(props.get("version") or "")
    exempt = (*NOT_CREDENTIALS, *allowed)
    found = []
    for parent_path, parent, key, value in _scalars(props.get("values") or {}, ""):
        if not isinstance(value, str) or not value:
            continue
        if not _PEM_PRIVATE_KEY.search(value) and (
                not _SECRET_KEY.search(key) or _names_a_secret(parent, key)):
            continue
        path = f"{parent_path}.{key}" if parent_path else key
        if any(entry.covers(chart, version, _LIST_INDEX.sub("[]", path)) for entry in exempt):
            continue
        found.append(f"values.{path} holds a secret in plain text: put it in a Kubernetes "
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
         f"Secret instead. Only the (chart, path) entries of {CHART_HELD_KEY} may carry one.",
         lambda t, p, c: helm_plaintext_secrets(
             t, p, chart_values(c[CHART_HELD_KEY]) if CHART_HELD_KEY in c
             else CHART_HELD_CREDENTIALS),
         {CHART_HELD_KEY: {"type": "array", "items": _CHART_VALUE_SCHEMA,
                           "default": _as_config(CHART_HELD_CREDENTIALS)}}),
)
