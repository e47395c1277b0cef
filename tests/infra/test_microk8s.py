"""The cluster, seen from the control node: MicroK8s running, every GPU node Ready, GPUs
allocatable to pods."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import in_group

pytestmark = pytest.mark.microk8s
MICROK8S = "/snap/bin/microk8s"


def _nodes(host: Any) -> list[dict[str, Any]]:
    with host.sudo():
        return list(json.loads(host.check_output(f"{MICROK8S} kubectl get nodes -o json"))["items"])


def test_microk8s_running(host: Any, groups: set[str]) -> None:
    in_group(groups, "k8s_control")
    with host.sudo():
        status = host.check_output(f"{MICROK8S} status --wait-ready --timeout 60")
    assert "microk8s is running" in status


def test_every_gpu_node_ready(host: Any, groups: set[str]) -> None:
    in_group(groups, "k8s_control")
    expected = len(host.ansible.get_variables()["groups"]["gpu_nodes"])
    nodes = _nodes(host)
    ready = [n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"]["conditions"])]
    assert len(ready) == expected == len(nodes), ready


def test_gpus_allocatable(host: Any, groups: set[str]) -> None:
    in_group(groups, "k8s_control")
    for node in _nodes(host):
        allocatable = int(node["status"]["allocatable"].get("nvidia.com/gpu", "0"))
        assert allocatable >= 1, f"{node['metadata']['name']} offers no GPU to pods"
