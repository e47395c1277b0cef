"""The configure step of `pulumi up`: Ansible's site playbook on the provisioned hosts, run
through the project's ansible-runner wrapper as a local command: the installed `cdl ops`.

The Pulumi program never imports the toolkit (`usecases`): the dependency runs one way, from
the toolkit to the program (`cdl preflight` reads the stack's config model). The program calls
`cdl` as it would call `ansible-playbook`, by its command line.

It runs again when the inventory (hosts, addresses) or anything under playbooks/ changes, and
its output is the kubeconfig the microk8s role fetched: a secret, and the input of the
Kubernetes provider the platform's releases use. Destroying the stack removes the releases
first (they depend on the provider), then this step (it has nothing to undo: the hosts go).
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks"
# Written by runs, not inputs: the inventory and kubeconfig this step writes, Ansible's caches.
NOT_INPUTS = ("inventory/hosts.yml", "kubeconfig", ".retry", "__pycache__", ".pyc")
# Where the gitlab role fetches the runner's token (its gitlab_runner_token_dest default).
RUNNER_TOKEN_FILE = "gitlab-runner-token"


def playbook_digest(root: Path = PLAYBOOKS) -> str:
    """One hash over every file the playbooks read (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if any(part in relative for part in NOT_INPUTS):
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cdl_command() -> str:
    """The `cdl` command installed beside the Python that runs the program (its venv)."""
    beside = Path(sys.executable).with_name("cdl")
    return str(beside) if beside.exists() else "cdl"


def site_script(workdir: str, playbook: str, cdl: str | None = None) -> str:
    """Shell for the command: the inventory arrives on stdin; Ansible's progress goes to stderr
    (shown by Pulumi); stdout is only the kubeconfig the microk8s role wrote beside the
    inventory (its microk8s_kubeconfig_path default)."""
    folder = shlex.quote(workdir)
    return "\n".join([
        "set -eu",
        "umask 077",
        f"mkdir -p {folder}",
        f"cat > {folder}/hosts.yml",
        f"{shlex.quote(cdl or cdl_command())} ops {shlex.quote(playbook)} "
        f"--inventory {folder}/hosts.yml >&2",
        f"cat {folder}/kubeconfig",
    ])


@dataclass(frozen=True)
class ConfigureArgs:
    # The Ansible inventory (YAML text) of the provisioned hosts.
    inventory: pulumi.Input[str]
    playbook: str = "site"


def runner_token_script(workdir: str) -> str:
    """Shell printing the authentication token of the platform's GitLab runner, which the
    gitlab role created on the GitLab host and fetched beside the inventory; nothing where the
    site has no GitLab host."""
    token = shlex.quote(f"{workdir}/{RUNNER_TOKEN_FILE}")
    return f"if [ -f {token} ]; then cat {token}; fi"


class Configure(pulumi.ComponentResource):
    """``kubeconfig`` (secret): the cluster the site playbook built; ``runner_token`` (secret):
    the GitLab runner's authentication token the gitlab role created, empty without GitLab."""

    kubeconfig: pulumi.Output[str]
    runner_token: pulumi.Output[str]

    def __init__(self, name: str, args: ConfigureArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:configure:Configure", name, None, opts)
        # Under the git-ignored state directory, one folder per stack.
        workdir = f".cdl/pulumi/{pulumi.get_stack()}"
        site = command.local.Command(
            f"{name}-{args.playbook}",
            create=site_script(workdir, args.playbook),
            stdin=args.inventory,
            dir=str(REPO),
            triggers=[args.inventory, playbook_digest()],
            # Progress only: stdout carries the cluster's admin credentials.
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )
        self.kubeconfig = pulumi.Output.secret(site.stdout)
        token = command.local.Command(
            f"{name}-runner-token",
            create=runner_token_script(workdir),
            dir=str(REPO),
            # read again whenever the site playbook runs again
            triggers=[args.inventory, playbook_digest()],
            logging=command.local.Logging.NONE,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[site],
                                        additional_secret_outputs=["stdout"]),
        )
        self.runner_token = pulumi.Output.secret(token.stdout)
        self.register_outputs({"kubeconfig": self.kubeconfig, "runner_token": self.runner_token})
