"""Time site.yml on a throwaway Debian 12 host: the first converge and the idempotent re-run.

Each host kind (a GPU node without a GPU: base + nvidia_driver with its DKMS build; the GitLab
host: base + GitLab prerequisites) boots fresh from the cached rootfs. Debian packages come
from the mirror through the test proxy's .deb cache, so after the first ever run the timings
measure installing, not downloading. MicroK8s and the GitLab omnibus package are not part of
it: they cannot be installed here (see playbooks/README.md).

Needs root and scripts/testhosts.sh. Run: .venv/bin/python benchmarks/ansible_converge.py
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from common import machine, print_table  # noqa: E402

from tests.playbooks.testhosts import build_rootfs, fleet  # noqa: E402

KINDS = {"GPU node (base + nvidia_driver)": ["gpu_nodes", "k8s_control"],
         "GitLab host (base + gitlab prerequisites)": ["gitlab"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="Fresh hosts per kind.")
    args = parser.parse_args()
    rootfs = build_rootfs()
    rows = []
    with tempfile.TemporaryDirectory(prefix="cdl-bench-") as work:
        key = Path(work) / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        for kind, groups in KINDS.items():
            for attempt in range(args.repeat):
                name = "cdl-bench-" + groups[0].replace("_", "-")
                started = time.monotonic()
                with fleet(rootfs, key, Path(work) / f"{name}-{attempt}", {name: groups},
                           20) as hosts:
                    boot = time.monotonic() - started
                    extravars = {"gitlab_root_password": os.urandom(12).hex(),
                                 "gitlab_package_repository": "unused",
                                 "gitlab_package_key": "unused",
                                 "microk8s_metallb_range": "10.231.20.200-10.231.20.220"}
                    skip = ["microk8s", "gitlab_omnibus"]
                    first = hosts.run("site", extravars=extravars, skip_tags=skip)
                    second = hosts.run("site", extravars=extravars, skip_tags=skip)
                rows.append([kind, f"{boot:.1f}", f"{first.seconds:.0f}",
                             first.total("changed"), f"{second.seconds:.0f}",
                             second.total("changed")])
    print(f"Machine: {machine()}\n")
    print_table(["host", "boot s", "first converge s", "changed", "re-run s", "changed"], rows)


if __name__ == "__main__":
    main()
