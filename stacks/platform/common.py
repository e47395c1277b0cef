"""Small helpers every concern uses: namespaces, pinned releases, resource blocks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.platform.pins import ChartPin

PART_OF = {"app.kubernetes.io/part-of": "cdl"}


def namespace(name: str, parent: pulumi.Resource) -> k8s.core.v1.Namespace:
    return k8s.core.v1.Namespace(
        name, metadata=k8s.meta.v1.ObjectMetaArgs(name=name, labels=PART_OF),
        opts=pulumi.ResourceOptions(parent=parent))


def release(name: str, pin: ChartPin, namespace: str, values: Mapping[str, Any],
            parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = (),
            timeout: int = 900) -> k8s.helm.v3.Release:
    """A Helm release of a pinned chart, under a fixed release name (service names derive
    from it), waiting for its workloads so that dependants start against a ready service.
    ``timeout`` (seconds) bounds that wait, hook Jobs included."""
    # An OCI registry is addressed through the chart reference, a classic repo by its index,
    # our own charts by their path.
    oci = pin.repo.startswith("oci://")
    indexed = pin.repo and not oci
    return k8s.helm.v3.Release(
        name,
        k8s.helm.v3.ReleaseArgs(
            name=name,
            chart=f"{pin.repo}/{pin.chart}" if oci else pin.chart,
            version=pin.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=pin.repo) if indexed else None,
            namespace=namespace,
            values=dict(values),
            atomic=True,
            cleanup_on_fail=True,
            timeout=timeout,
        ),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def resources(cpu: str, memory: str, cpu_limit: str | None = None,
              memory_limit: str | None = None) -> dict[str, dict[str, str]]:
    """Requests and limits; memory is limited at the request unless told (no overcommit)."""
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit or cpu, "memory": memory_limit or memory},
    }


def tls_annotations(issuer: str) -> dict[str, str]:
    """What makes cert-manager issue the certificate an Ingress names in its tls section."""
    return {"cert-manager.io/cluster-issuer": issuer}
