"""The microk8s role's logic, tested as units: MicroK8s needs the snap store, which these
machines cannot reach, so the role itself only runs in check mode (test_converge.py)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
import yaml

from tests.playbooks.conftest import PLAYBOOKS


def _filters() -> ModuleType:
    path = PLAYBOOKS / "roles" / "microk8s" / "filter_plugins" / "microk8s.py"
    spec = importlib.util.spec_from_file_location("microk8s_filters", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FILTERS = _filters()

# `microk8s add-node` on a node with a private and a Calico/VXLAN address (format of MicroK8s
# 1.2x-1.3x: one plain line, then per-address lines, each also as --worker).
ADD_NODE = """\
From the node you wish to join to this cluster, run the following:
microk8s join 10.20.0.11:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05

Use the '--worker' flag to join a node as a worker not running the control plane, eg:
microk8s join 10.20.0.11:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05 --worker

If the node you are adding is not reachable through the default interface \
you can use one of the following:
microk8s join 10.20.0.11:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05
microk8s join 10.1.171.0:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05
"""

STATUS = """\
microk8s:
  running: true
high-availability:
  enabled: false
  nodes:
  - address: 10.20.0.11:19001
    role: voter
addons:
- name: dns
  repository: core
  description: CoreDNS
  version: 1.10.1
  status: enabled
- name: ingress
  repository: core
  description: Ingress controller for external access
  version: 1.8.0
  status: disabled
- name: nvidia
  repository: core
  description: NVIDIA hardware (GPU and network) support
  version: 23.6.1
  status: enabled
"""

KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://10.20.0.11:16443
  name: microk8s-cluster
contexts:
- context:
    cluster: microk8s-cluster
    user: admin
  name: microk8s
current-context: microk8s
kind: Config
preferences: {}
users:
- name: admin
  user:
    client-certificate-data: LS0tLS1CRUdJTg==
    client-key-data: LS0tLS1CRUdJTg==
"""


def test_join_url_for_the_private_address() -> None:
    url = FILTERS.microk8s_join_url(ADD_NODE, "10.20.0.11")
    assert url == "10.20.0.11:25000/92b2db237428470dc4fcfc4ebbd9dc81/2c0cb3284b05"


def test_join_url_for_another_offered_address() -> None:
    assert FILTERS.microk8s_join_url(ADD_NODE, "10.1.171.0").startswith("10.1.171.0:25000/")


def test_join_url_refuses_an_address_not_offered() -> None:
    with pytest.raises(ValueError, match=r"203\.0\.113\.5.*offered: 10\.20\.0\.11, 10\.20"):
        FILTERS.microk8s_join_url(ADD_NODE, "203.0.113.5")


def test_enabled_addons() -> None:
    assert FILTERS.microk8s_enabled_addons(STATUS) == ["dns", "nvidia"]


def test_enabled_addons_of_a_status_without_addons() -> None:
    assert FILTERS.microk8s_enabled_addons("microk8s:\n  running: false\n") == []


def test_kubeconfig_points_at_the_reachable_address() -> None:
    config = yaml.safe_load(FILTERS.microk8s_kubeconfig(KUBECONFIG, "https://203.0.113.10:16443"))
    assert config["clusters"][0]["cluster"]["server"] == "https://203.0.113.10:16443"
    # Credentials are untouched.
    assert config["users"][0]["user"]["client-key-data"] == "LS0tLS1CRUdJTg=="
    assert config["current-context"] == "microk8s"


def test_kubeconfig_renamed_to_sit_beside_others() -> None:
    config = yaml.safe_load(FILTERS.microk8s_kubeconfig(KUBECONFIG, "https://h:16443", "cdl"))
    assert config["clusters"][0]["name"] == config["users"][0]["name"] == "cdl"
    assert config["contexts"][0] == {"context": {"cluster": "cdl", "user": "cdl"}, "name": "cdl"}
    assert config["current-context"] == "cdl"
