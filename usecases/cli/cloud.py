"""The cloud side's commands: ``cdl preflight`` and ``cdl ops``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from usecases.cli.common import (
    app,
    console,
    guarded,
)
from usecases.errors import CDLError


@app.command(rich_help_panel="Cloud")
def preflight(
    stack: Annotated[str, typer.Option("--stack", help="Pulumi stack to check: reads "
                                       "Pulumi.STACK.yaml in this directory.")],
    cloud: Annotated[str | None, typer.Option("--cloud", help="Cloud in clouds.yaml "
                                              "(default: OS_CLOUD, else the OS_* variables).")
                     ] = None,
) -> None:
    """Before `pulumi up`: check auth, external network, image, flavors (GPU) and quotas."""
    from usecases.cloud.preflight import run, table

    checks = guarded(lambda: run(Path(f"Pulumi.{stack}.yaml"), cloud))
    Console().print(table(checks))
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command(rich_help_panel="Cloud")
def ops(
    playbook: Annotated[str, typer.Argument(help="site, a day-two playbook (rolling-reboot, "
                                            "postgres-backup, ...) or a path.")],
    limit: Annotated[str | None, typer.Option("--limit", help="Hosts or groups to run on.")] = None,
    inventory: Annotated[Path | None, typer.Option(
        "--inventory", help="Inventory (default: playbooks/inventory/hosts.yml).")] = None,
    extra: Annotated[list[str] | None, typer.Option(
        "-e", "--extra-vars", help="KEY=VALUE, a JSON object or @FILE (YAML, for secrets); "
        "repeatable.")] = None,
    check: Annotated[bool, typer.Option("--check", help="Dry run (Ansible check mode).")] = False,
) -> None:
    """Run a playbook on the hosts, streaming progress; fails naming the host and task."""
    from usecases import ops as playbooks

    def show(step: playbooks.Progress) -> None:
        if step.status == "start":
            console.print(f"[bold]{step.task}", highlight=False)
        elif step.status in ("changed", "failed", "unreachable"):
            colour = "yellow" if step.status == "changed" else "red"
            console.print(f"  [{colour}]{step.status}[/{colour}] {step.host} {step.message}",
                          highlight=False)

    def action() -> None:
        extravars: dict[str, Any] = {}
        for item in extra or []:
            if item.startswith("@"):
                import yaml

                extravars.update(yaml.safe_load(Path(item[1:]).read_text()) or {})
            elif item.lstrip().startswith("{"):
                extravars.update(json.loads(item))
            elif "=" in item:
                key, value = item.split("=", 1)
                extravars[key] = value
            else:
                raise CDLError(f"cannot read extra variable {item!r}",
                               "write KEY=VALUE, a JSON object or @FILE")
        result = playbooks.run_playbook(playbook, inventory=inventory, limit=limit,
                                        extravars=extravars, check=check, on_progress=show)
        for host, counts in result.stats.items():
            print(f"{host}: " + " ".join(f"{name}={n}" for name, n in counts.items()))
        console.print(f"{result.playbook.name} finished in {result.seconds:.0f} s")

    guarded(action)
