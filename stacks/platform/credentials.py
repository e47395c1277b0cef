"""Generated credentials and the Kubernetes Secrets that carry them to the releases.

Every password and key is a pulumi_random resource (a Pulumi secret in the state), written only
into Kubernetes Secrets; releases name those Secrets instead of carrying the values.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random


def generated(name: str, parent: pulumi.Resource, length: int = 32) -> pulumi.Output[str]:
    """A random password. Letters and digits only: it lands in DSNs, URLs and TOML unescaped."""
    password = random.RandomPassword(name, length=length, special=False,
                                     opts=pulumi.ResourceOptions(parent=parent))
    return pulumi.Output.secret(password.result)


def secret(name: str, namespace: str, data: Mapping[str, pulumi.Input[str]],
           parent: pulumi.Resource, secret_type: str = "Opaque",
           annotations: Mapping[str, str] | None = None,
           depends_on: list[pulumi.Resource] | None = None) -> k8s.core.v1.Secret:
    """A Secret with a fixed name (releases refer to it by that name)."""
    return k8s.core.v1.Secret(
        f"{namespace}-{name}",
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace,
                                            annotations=dict(annotations or {})),
        type=secret_type,
        string_data=dict(data),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on or [],
                                    additional_secret_outputs=["data", "stringData"]),
    )
