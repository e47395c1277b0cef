"""The configure step under mocks: when it re-runs, what it runs, and that its output (the
kubeconfig) stays secret. The script itself is run for real with a stand-in `cdl` that
records its arguments, because Ansible needs hosts this test does not have."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi

from stacks.configure import (
    PLAYBOOKS,
    Configure,
    ConfigureArgs,
    cdl_command,
    playbook_digest,
    runner_token_script,
    site_script,
)

INVENTORY = "all:\n  children:\n    gpu_nodes:\n      hosts:\n        cdl-gpu-0: {}\n"
KUBECONFIG = "apiVersion: v1\nkind: Config\n"


class CommandMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.commands: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        if args.typ == "command:local:Command":
            self.commands.append(args)
            outputs["stdout"] = KUBECONFIG
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs
             ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(args.token)


def test_the_site_playbook_runs_on_the_inventory_and_yields_a_secret_kubeconfig() -> None:
    mocks = CommandMocks()
    pulumi.runtime.set_mocks(mocks, project="cdl", stack="test", preview=False)
    seen: dict[str, Any] = {}

    @pulumi.runtime.test
    def declare() -> pulumi.Output[None]:
        step = Configure("configure", ConfigureArgs(inventory=INVENTORY))
        return pulumi.Output.all(step.kubeconfig, step.kubeconfig.is_secret()).apply(
            lambda pair: seen.update(kubeconfig=pair[0], secret=pair[1]))

    declare()
    site, token = mocks.commands
    assert token.inputs["create"] == runner_token_script(".cdl/pulumi/test")
    assert token.inputs["triggers"] == site.inputs["triggers"]
    assert site.inputs["stdin"] == INVENTORY
    assert site.inputs["triggers"] == [INVENTORY, playbook_digest()]
    assert site.inputs["logging"] == "stderr"
    assert "ops site --inventory .cdl/pulumi/test/hosts.yml" in site.inputs["create"]
    assert seen == {"kubeconfig": KUBECONFIG, "secret": True}


def test_a_change_under_playbooks_changes_the_trigger(tmp_path: Path) -> None:
    root = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, root, ignore=shutil.ignore_patterns("hosts.yml", "kubeconfig"))
    before = playbook_digest(root)
    assert before == playbook_digest(PLAYBOOKS)
    (root / "inventory").mkdir(exist_ok=True)
    (root / "inventory" / "hosts.yml").write_text(INVENTORY)
    (root / "kubeconfig").write_text(KUBECONFIG)
    assert playbook_digest(root) == before, "files the step writes must not re-trigger it"
    (root / "site.yml").write_text((root / "site.yml").read_text() + "\n# changed\n")
    assert playbook_digest(root) != before


def test_the_script_writes_the_inventory_and_prints_only_the_kubeconfig(tmp_path: Path) -> None:
    cdl = tmp_path / "cdl"
    # Stands in for `cdl ops ...`: records its arguments, chatters on stdout like Ansible
    # does, and writes the kubeconfig where the microk8s role would.
    cdl.write_text("#!/bin/sh\necho \"$@\" > args\necho 'PLAY RECAP ok=12'\n"
                      "printf 'apiVersion: v1\\nkind: Config\\n' > work/kubeconfig\n")
    cdl.chmod(0o755)
    done = subprocess.run(["/bin/sh", "-c", site_script("work", "site", str(cdl))],
                          input=INVENTORY, capture_output=True, text=True, cwd=tmp_path,
                          check=True, env={"PATH": os.environ["PATH"]})
    assert done.stdout == KUBECONFIG
    assert "PLAY RECAP" in done.stderr
    assert (tmp_path / "work" / "hosts.yml").read_text() == INVENTORY
    assert (tmp_path / "work" / "hosts.yml").stat().st_mode & 0o077 == 0
    assert (tmp_path / "args").read_text().split() == [
        "ops", "site", "--inventory", "work/hosts.yml"]


def test_the_runner_token_is_read_where_the_gitlab_role_fetched_it(tmp_path: Path) -> None:
    script = ["/bin/sh", "-c", runner_token_script("work")]
    (tmp_path / "work").mkdir()
    none = subprocess.run(script, capture_output=True, text=True, cwd=tmp_path, check=True)
    assert none.stdout == ""  # a site without GitLab
    (tmp_path / "work" / "gitlab-runner-token").write_text("glrt-abc")
    done = subprocess.run(script, capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout == "glrt-abc"


def test_the_program_runs_the_installed_cdl() -> None:
    assert Path(cdl_command()) == Path(sys.executable).with_name("cdl")
    assert Path(cdl_command()).exists()  # the venv's console script
