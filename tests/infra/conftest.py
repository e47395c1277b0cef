"""The live-host suite: what a deployment must look like after `pulumi up`.

Run it against the stack's inventory (see playbooks/README.md):

    pytest tests/infra --hosts='ansible://all' --ansible-inventory=playbooks/inventory/hosts.yml

Without --hosts or --ansible-inventory (the plain `pytest` run) every test here is skipped:
there is no deployment to check. tests/playbooks runs the host-level part of this suite against
the throwaway Debian 12 hosts it converges.
"""

from __future__ import annotations

from typing import Any

import pytest

LIVE_ONLY = {
    "gpu": "needs an NVIDIA GPU on the host",
    "microk8s": "needs MicroK8s installed from the snap store",
    "gitlab_app": "needs the GitLab omnibus package installed",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, reason in LIVE_ONLY.items():
        config.addinivalue_line("markers", f"{name}: {reason}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("hosts", None) or config.getoption("ansible_inventory", None):
        return
    skip = pytest.mark.skip(reason="live-host suite: pass --hosts or --ansible-inventory "
                                   "(playbooks/README.md)")
    for item in items:
        if item.path.is_relative_to(config.rootpath / "tests" / "infra"):
            item.add_marker(skip)


@pytest.fixture
def groups(host: Any) -> set[str]:
    """The host's inventory groups; tests for a group skip on hosts outside it."""
    if host.backend.NAME != "ansible":
        pytest.skip("group checks need --hosts='ansible://...' with --ansible-inventory")
    return set(host.ansible.get_variables().get("group_names", []))


def in_group(groups: set[str], name: str) -> None:
    if name not in groups:
        pytest.skip(f"host is not in {name}")


def in_container(host: Any) -> bool:
    """True on a container (the test hosts): it keeps its host's clock and kernel."""
    return bool(host.run("systemd-detect-virt --container").rc == 0)
