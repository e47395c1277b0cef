"""The Ansible inventory the configure step and the day-two playbooks read.

Groups: ``gpu_nodes`` (every GPU node), ``k8s_control`` (the first GPU node, which holds the
MicroK8s control plane and the floating IP), ``gitlab`` (the GitLab host, when there is one).
Nodes without a public address are reached through the first node (SSH ProxyJump).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import yaml

Group = Literal["gpu_nodes", "gitlab"]


@dataclass(frozen=True)
class Host:
    """One machine as Ansible sees it; addresses may still be unknown (Outputs)."""

    name: str
    group: Group
    user: str
    internal: pulumi.Input[str]
    public: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class Machines:
    """The hosts, and inventory variables for all of them (from the network the stack built)."""

    hosts: list[Host]
    variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedHost:
    name: str
    group: Group
    user: str
    internal: str
    public: str | None


def render(hosts: list[ResolvedHost], variables: dict[str, str] | None = None) -> str:
    """The inventory as YAML text (Ansible's YAML inventory format)."""
    gpu = [h for h in hosts if h.group == "gpu_nodes"]
    gitlab = [h for h in hosts if h.group == "gitlab"]
    jump = gpu[0] if gpu and gpu[0].public else None

    def entry(host: ResolvedHost) -> dict[str, Any]:
        values: dict[str, Any] = {"ansible_host": host.public or host.internal,
                                  "ansible_user": host.user, "cdl_internal_address": host.internal}
        if host.public is None and jump is not None and host is not jump:
            values["ansible_ssh_common_args"] = f"-o ProxyJump={jump.user}@{jump.public}"
        return values

    children: dict[str, Any] = {
        "gpu_nodes": {"hosts": {h.name: entry(h) for h in gpu}},
        "k8s_control": {"hosts": {h.name: entry(h) for h in gpu[:1]}},
        "gitlab": {"hosts": {h.name: entry(h) for h in gitlab}},
    }
    everything: dict[str, Any] = {"vars": dict(variables)} if variables else {}
    return yaml.safe_dump({"all": {**everything, "children": children}}, sort_keys=False)


def _resolve(hosts: list[Host]) -> pulumi.Output[list[ResolvedHost]]:
    addresses = [pulumi.Output.all(h.internal, h.public) for h in hosts]
    return pulumi.Output.all(*addresses).apply(lambda pairs: [
        ResolvedHost(h.name, h.group, h.user, internal, public)
        for h, (internal, public) in zip(hosts, pairs, strict=True)])


def inventory(machines: Machines) -> pulumi.Output[str]:
    return _resolve(machines.hosts).apply(lambda hosts: render(hosts, machines.variables))


def node_addresses(machines: Machines) -> pulumi.Output[dict[str, dict[str, str | None]]]:
    """Each host's internal address and public address (None when it has none)."""
    return _resolve(machines.hosts).apply(lambda resolved: {
        h.name: {"internal": h.internal, "public": h.public} for h in resolved})
