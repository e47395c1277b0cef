"""site.yml converged for real on two throwaway Debian 12 hosts: a GPU node (no GPU: the
driver is built by DKMS but cannot load) and the GitLab host. MicroK8s (snap store unreachable)
and the GitLab omnibus package (GitLab's repository unreachable) run in check mode only."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.playbooks.conftest import REPO, changed
from tests.playbooks.testhosts import Fleet, fleet
from usecases.errors import CDLError
from usecases.ops import Progress, Result

pytestmark = pytest.mark.slow

LAYOUT = {"cdl-gpu-1": ["gpu_nodes", "k8s_control"], "cdl-gitlab": ["gitlab"]}
REAL = {"skip_tags": ["microk8s", "gitlab_omnibus", "gitlab_runner"]}


def _extravars(fleet: Fleet) -> dict[str, Any]:
    gitlab = fleet.hosts["cdl-gitlab"]
    return {
        "gitlab_root_password": os.urandom(12).hex(),
        # Stand-ins for GitLab's apt repository, which cannot be reached from here: only the
        # check-mode run reads them, and it neither fetches nor writes them.
        "gitlab_package_repository": f"http://{gitlab.gateway}:9/gitlab-ce-stand-in",
        "gitlab_package_key": "stand-in key: GitLab's repository is not reachable in tests",
        "microk8s_metallb_range": "10.231.1.200-10.231.1.220",
        "base_firewall_internal_cidr": "10.231.0.0/16",
    }


class Converged:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.extravars = _extravars(fleet)
        self.progress: list[Progress] = []
        self.first = self.run()

    def run(self, **options: Any) -> Result:
        self.progress = []
        settings = {**REAL, **options}
        return self.fleet.run("site", extravars=self.extravars,
                              on_progress=self.progress.append, **settings)


@pytest.fixture(scope="module")
def converged(rootfs: Path, ssh_key: Path, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Converged]:
    with fleet(rootfs, ssh_key, tmp_path_factory.mktemp("converge"), LAYOUT, 1) as hosts:
        yield Converged(hosts)


def test_first_converge_changes_every_host(converged: Converged) -> None:
    assert converged.first.rc == 0
    assert all(n > 0 for n in changed(converged.first).values()), converged.first.stats
    assert set(converged.first.stats) == set(LAYOUT)


def test_no_gpu_is_reported_not_failed(converged: Converged) -> None:
    report = [p for p in converged.progress
              if p.task == "Report a host without a GPU" and p.status == "ok"]
    assert [p.host for p in report] == ["cdl-gpu-1"]


def test_second_converge_changes_nothing(converged: Converged) -> None:
    second = converged.run()
    assert changed(second) == {"cdl-gpu-1": 0, "cdl-gitlab": 0}, second.stats


def test_live_suite_passes_on_the_converged_hosts(converged: Converged) -> None:
    """The host-level checks of tests/infra (what runs after `pulumi up`) against these hosts."""
    bin_dir = Path(sys.executable).parent
    suite = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/infra", "-q", "-p", "no:cacheprovider",
         "--hosts=ansible://all", f"--ansible-inventory={converged.fleet.inventory}",
         "-m", "not gpu and not microk8s and not gitlab_app"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]
    assert " passed" in suite.stdout


def test_password_logins_refused(converged: Converged) -> None:
    attempt = converged.fleet.ssh("cdl-gitlab", "true", "-o", "PubkeyAuthentication=no",
                                  "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert attempt.returncode == 255
    assert "Permission denied (publickey)" in attempt.stderr


def test_debian_non_free_enabled_for_the_driver(converged: Converged) -> None:
    sources = converged.fleet.ssh("cdl-gpu-1", "cat /etc/apt/sources.list.d/debian.sources")
    assert "Components: main contrib non-free non-free-firmware" in sources.stdout
    dkms = converged.fleet.ssh("cdl-gpu-1", "sudo dkms status")
    assert "nvidia-current" in dkms.stdout and "installed" in dkms.stdout, dkms.stdout


def test_site_in_check_mode_with_microk8s_and_gitlab_omnibus(converged: Converged) -> None:
    result = converged.run(check=True, skip_tags=[])
    assert result.rc == 0
    simulated = {(p.host, p.task) for p in converged.progress if p.status == "ok"}
    assert ("cdl-gpu-1", "Report what check mode could not simulate") in simulated
    assert ("cdl-gitlab", "Report what check mode could not simulate") in simulated
    would_change = {(p.host, p.task) for p in converged.progress if p.status == "changed"}
    assert ("cdl-gpu-1", "Install snapd from Debian") in would_change
    assert ("cdl-gitlab", "Add GitLab's apt repository") in would_change


def test_gitlab_refuses_to_run_without_a_root_password(converged: Converged) -> None:
    extravars = {k: v for k, v in converged.extravars.items() if k != "gitlab_root_password"}
    with pytest.raises(CDLError) as error:
        converged.fleet.run("site", limit="cdl-gitlab", extravars=extravars,
                            skip_tags=["microk8s", "gitlab_omnibus", "gitlab_runner"])
    assert "cdl-gitlab" in error.value.problem
    assert "gitlab_root_password" in error.value.problem
