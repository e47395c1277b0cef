"""Filters for the microk8s role: reading `microk8s add-node` and `microk8s status`, and
rewriting the kubeconfig `microk8s config` prints. Plain functions, unit-tested in
tests/playbooks/test_microk8s_filters.py because MicroK8s itself cannot run in the tests."""

from __future__ import annotations

import re
from typing import Any

import yaml

# `microk8s add-node` prints one `microk8s join ADDRESS:PORT/TOKEN/CERT-HASH` line per address
# of the node, each also offered with `--worker`.
_JOIN = re.compile(r"^\s*microk8s join (?P<address>[^\s:]+):(?P<port>\d+)/(?P<token>[0-9a-f]+)"
                   r"/(?P<cert>[0-9a-f]+)(?P<worker>\s+--worker)?\s*$")


def microk8s_join_url(add_node_output: str, address: str) -> str:
    """The `ADDRESS:PORT/TOKEN/HASH` argument of `microk8s join` for the control node's
    ADDRESS (the one the joining node can reach); fails if add-node did not offer it."""
    offered = []
    for line in add_node_output.splitlines():
        match = _JOIN.match(line)
        if match is None or match["worker"]:
            continue
        offered.append(match["address"])
        if match["address"] == address:
            return f"{match['address']}:{match['port']}/{match['token']}/{match['cert']}"
    raise ValueError(f"microk8s add-node offered no join address {address!r} "
                     f"(offered: {', '.join(offered) or 'none'})")


def microk8s_enabled_addons(status_yaml: str) -> list[str]:
    """Names of the enabled addons in `microk8s status --format yaml`."""
    status = yaml.safe_load(status_yaml) or {}
    return [addon["name"] for addon in status.get("addons", [])
            if addon.get("status") == "enabled"]


def microk8s_kubeconfig(config_text: str, server: str, name: str = "") -> str:
    """`microk8s config` with every cluster's server set to SERVER (the address the controller
    reaches, not the node's internal one) and, if NAME is given, the cluster, user and context
    renamed so it can sit beside other kubeconfigs."""
    config: dict[str, Any] = yaml.safe_load(config_text)
    for cluster in config.get("clusters", []):
        cluster["cluster"]["server"] = server
        if name:
            cluster["name"] = name
    if name:
        for user in config.get("users", []):
            user["name"] = name
        for context in config.get("contexts", []):
            context["name"] = name
            context["context"]["cluster"] = name
            context["context"]["user"] = name
        config["current-context"] = name
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "microk8s_join_url": microk8s_join_url,
            "microk8s_enabled_addons": microk8s_enabled_addons,
            "microk8s_kubeconfig": microk8s_kubeconfig,
        }
