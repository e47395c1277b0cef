"""Run the Pulumi program under ``pulumi.runtime.set_mocks``: no CLI, no cloud, no plugins.

The mocks answer the two lookups the program makes (external network, image) and give ports
and floating IPs addresses, so the inventory output resolves to what a real cloud would return.
"""

from __future__ import annotations

import json
import runpy
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest

# pulumi_openstack warns about its own deprecated aliases when imported; import it once here,
# quietly, so the program's import does not bury test output in provider warnings.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import pulumi_openstack  # noqa: F401

PROGRAM = Path(__file__).resolve().parents[2] / "stacks"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1mbWdlc3RrZXlmb3J0ZXN0c29ubHk0 test@cdl"
VALID = {
    "sshPublicKey": PUBLIC_KEY,
    "adminCidrs": ["203.0.113.0/24", "2001:db8::/48"],
    "externalNetwork": "public",
    "image": "Ubuntu 22.04",
    "gpuFlavor": "g1.t4",
    "gitlabFlavor": "m1.small",
}


class CloudMocks(pulumi.runtime.Mocks):
    """Records every resource the program declares."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        count = sum(r.typ == args.typ for r in self.resources)
        if args.typ == "openstack:networking/port:Port":
            outputs["allFixedIps"] = [f"10.20.0.{10 + count}"]
        if args.typ == "openstack:networking/floatingIp:FloatingIp":
            outputs["address"] = f"198.51.100.{10 + count}"
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs
             ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "openstack:networking/getNetwork:getNetwork":
            return {"id": "external-net-id", "name": args.args["name"], "external": True}, []
        if args.token == "openstack:images/getImage:getImage":
            return {"id": "image-id", "name": args.args["name"]}, []
        raise AssertionError(f"the program made an unexpected call: {args.token}")


@dataclass
class Run:
    resources: list[pulumi.runtime.MockResourceArgs]
    exports: dict[str, Any] = field(default_factory=dict)

    def of(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def types(self) -> set[str]:
        return {r.typ for r in self.resources}


def pulumi_config(values: dict[str, Any]) -> str:
    """PULUMI_CONFIG as the CLI sets it: ``cdl:key`` → string (lists and objects as JSON)."""
    return json.dumps({f"cdl:{key}": value if isinstance(value, str) else json.dumps(value)
                       for key, value in values.items()})


@pytest.fixture
def run_program(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], Run]:
    """Run stacks/__main__.py the way Pulumi does, with the given ``cdl:*`` config."""

    def run(values: dict[str, Any]) -> Run:
        mocks = CloudMocks()
        pulumi.runtime.set_mocks(mocks, project="cdl", stack="test", preview=False)
        monkeypatch.setenv("PULUMI_CONFIG", pulumi_config(values))
        outputs: dict[str, Any] = {}
        monkeypatch.setattr(pulumi, "export", outputs.__setitem__)
        result = Run(mocks.resources)

        @pulumi.runtime.test
        def program() -> pulumi.Output[None]:
            runpy.run_path(str(PROGRAM), run_name="__main__")
            return pulumi.Output.all(**outputs).apply(result.exports.update)

        program()
        return result

    return run
