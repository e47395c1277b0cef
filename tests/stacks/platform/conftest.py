"""The Platform component under ``pulumi.runtime.set_mocks``: what it declares, with its inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest

from stacks.platform import Platform, PlatformArgs, PlatformConfig
from tests.stacks.conftest import CloudMocks

# How the Python SDK marks a secret value on the wire (and so in what mocks receive).
SECRET_SIG = "4dabf18193072939515e22adb298388d"
RELEASE = "kubernetes:helm.sh/v3:Release"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
PASSWORD = "random:index/randomPassword:RandomPassword"
RUNNER_TOKEN = "glrt-from-the-gitlab-api"


def generated_value(name: str) -> str:
    return f"generated-{name}"


class PlatformMocks(CloudMocks):
    """The program's mocks, plus what the platform's resources compute at `pulumi up`: a
    random password's value, the runner token GitLab's API returns."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        resource_id, outputs = super().new_resource(args)
        if args.typ == PASSWORD:
            outputs["result"] = generated_value(args.name)
        if args.typ == "pulumi-python:dynamic:Resource":
            outputs["token"] = RUNNER_TOKEN
        return resource_id, outputs


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) is not None


def plain(value: Any) -> Any:
    """The value with every secret wrapper removed."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@dataclass
class Deployment:
    resources: list[pulumi.runtime.MockResourceArgs]
    outputs: dict[str, Any]

    def of(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def releases(self) -> dict[str, pulumi.runtime.MockResourceArgs]:
        return {r.inputs["name"]: r for r in self.of(RELEASE)}

    def values(self, release: str) -> dict[str, Any]:
        return plain(self.releases()[release].inputs["values"])

    def secret(self, namespace: str, name: str) -> dict[str, Any]:
        found = [r for r in self.of(SECRET) if r.inputs["metadata"]["name"] == name
                 and r.inputs["metadata"]["namespace"] == namespace]
        assert found, f"no Secret {namespace}/{name}"
        return found[0].inputs

    def custom(self, kind: str) -> list[dict[str, Any]]:
        """Custom resources of ``kind`` as the manifests the provider would apply."""
        return [{"apiVersion": r.inputs["apiVersion"], "kind": r.inputs["kind"],
                 "metadata": plain(r.inputs["metadata"]), "spec": plain(r.inputs["spec"])}
                for r in self.resources if r.typ.endswith(f":{kind}")
                and "apiVersion" in r.inputs and r.typ.startswith("kubernetes:")]

    def generated(self) -> set[str]:
        return {generated_value(r.name) for r in self.of(PASSWORD)}


BASE: dict[str, Any] = {"domain": "cdl.example.org"}
Deploy = Callable[..., Deployment]


@pytest.fixture
def deploy() -> Deploy:
    """Declare a Platform with ``cdl:*`` settings (camelCase keys) and optional secret args."""

    def run(settings: dict[str, Any] | None = None, **secrets: str) -> Deployment:
        mocks = PlatformMocks()
        pulumi.runtime.set_mocks(mocks, project="cdl", stack="test", preview=False)
        config = PlatformConfig.model_validate({**BASE, **(settings or {})})
        result = Deployment(mocks.resources, {})

        @pulumi.runtime.test
        def declare() -> pulumi.Output[None]:
            platform = Platform("platform", PlatformArgs(config, **secrets))
            return pulumi.Output.all(
                urls=platform.urls, credentials=platform.credentials,
                determined_master=platform.determined_master, s3_endpoint=platform.s3_endpoint,
                images=platform.images, pachd=platform.pachd, database=platform.database,
                serving=platform.serving, models_namespace=platform.models_namespace,
                credentials_secret=pulumi.Output.from_input(platform.credentials.is_secret()),
            ).apply(result.outputs.update)

        declare()
        return result

    return run
