"""Every host: SSH hardened, firewall on with its security group's ports, time kept,
security upgrades scheduled (the base role)."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import in_container, in_group


def test_ssh_refuses_passwords_and_root(host: Any) -> None:
    with host.sudo():
        effective = host.check_output("sshd -T").splitlines()
    assert "passwordauthentication no" in effective
    assert "kbdinteractiveauthentication no" in effective
    assert "permitrootlogin no" in effective


def test_sshd_running(host: Any) -> None:
    assert host.service("ssh").is_running
    assert host.service("ssh").is_enabled


def test_firewall_denies_by_default_and_allows_ssh(host: Any) -> None:
    with host.sudo():
        status = host.check_output("ufw status verbose")
    assert "Status: active" in status
    assert "deny (incoming)" in status
    assert "22/tcp" in status


def test_firewall_opens_the_gpu_node_ports(host: Any, groups: set[str]) -> None:
    in_group(groups, "gpu_nodes")
    with host.sudo():
        status = host.check_output("ufw status")
    for port in ("16443/tcp", "10250/tcp", "25000/tcp", "4789/udp"):
        assert port in status


def test_firewall_opens_gitlab_http(host: Any, groups: set[str]) -> None:
    in_group(groups, "gitlab")
    with host.sudo():
        status = host.check_output("ufw status")
    assert "80/tcp" in status and "443/tcp" in status


def test_time_synchronised(host: Any) -> None:
    assert host.package("chrony").is_installed
    assert host.service("chrony").is_enabled
    if not in_container(host):
        assert host.service("chrony").is_running
        assert host.run("chronyc tracking").rc == 0


def test_security_upgrades_scheduled(host: Any) -> None:
    assert host.package("unattended-upgrades").is_installed
    periodic = host.file("/etc/apt/apt.conf.d/20auto-upgrades").content_string
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    assert 'APT::Periodic::Update-Package-Lists "1";' in periodic
