"""Object storage: MinIO in the cluster, or an external S3 store selected by `cdl:objectStore`.

Buckets: Determined checkpoints, Pachyderm's object store, Label Studio uploads, model folders
and PostgreSQL backups. Inside the cluster the S3 API is plain HTTP on a ClusterIP service; only
the console is exposed, through the ingress with TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.platform import pins
from stacks.platform.common import release, resources, tls_annotations
from stacks.platform.config import ObjectStore, PlatformConfig
from stacks.platform.credentials import generated, secret
from stacks.platform.wiring import (
    MINIO_API_PORT,
    MINIO_HOST,
    MINIO_RELEASE,
    S3_ACCESS_KEY,
    S3_SECRET,
    S3_SECRET_KEY,
    Bucket,
    Namespace,
)

ROOT_SECRET = "minio-root"
ROOT_USER = "cdl-root"
# The one S3 identity the tools share, limited to MinIO's built-in readwrite policy.
SERVICE_USER = "cdl-platform"
CONSOLE_TLS_SECRET = "minio-console-tls"
# Model folders are versioned objects: an overwritten folder stays recoverable.
VERSIONED = frozenset({Bucket.MODELS})


def minio_values(config: PlatformConfig, issuer: str) -> dict[str, Any]:
    console = config.host("minio")
    job_resources = {"resources": resources("50m", "128Mi")}
    return {
        "mode": "standalone",
        "image": {"repository": pins.MINIO_SERVER.repository, "tag": pins.MINIO_SERVER.tag},
        "mcImage": {"repository": pins.MINIO_CLIENT.repository, "tag": pins.MINIO_CLIENT.tag},
        "existingSecret": ROOT_SECRET,
        "persistence": {"enabled": True, "storageClass": config.storage_class, "size": "200Gi"},
        "resources": resources("250m", "2Gi", cpu_limit="2", memory_limit="4Gi"),
        # Replaces the chart's default user list, which carries a well-known console password.
        "users": [{"accessKey": SERVICE_USER, "existingSecret": S3_SECRET,
                   "existingSecretKey": S3_SECRET_KEY, "policy": "readwrite"}],
        "buckets": [{"name": str(bucket), "policy": "none", "purge": False,
                     "versioning": bucket in VERSIONED, "objectlocking": False}
                    for bucket in Bucket],
        "makeUserJob": job_resources,
        "makeBucketJob": job_resources,
        "makePolicyJob": job_resources,
        # The console's links and logins must use its public address behind the ingress.
        "environment": {"MINIO_BROWSER_REDIRECT_URL": f"https://{console}"},
        "consoleIngress": {
            "enabled": True,
            "ingressClassName": config.ingress_class,
            "annotations": tls_annotations(issuer),
            "path": "/",
            "hosts": [console],
            "tls": [{"secretName": CONSOLE_TLS_SECRET, "hosts": [console]}],
        },
    }


@dataclass(frozen=True)
class ObjectStorageArgs:
    config: PlatformConfig
    issuer: str
    # Credentials of the external store (cdl:objectStore=external), from secret config.
    external_access_key: pulumi.Input[str] | None = None
    external_secret_key: pulumi.Input[str] | None = None


class ObjectStorage(pulumi.ComponentResource):
    """The S3 endpoint and the one identity every tool uses to reach it."""

    endpoint: str
    url: str
    access_key: pulumi.Output[str]
    secret_key: pulumi.Output[str]
    # MinIO's root password; None for an external store (its admin is not ours).
    root_password: pulumi.Output[str] | None
    release: k8s.helm.v3.Release | None

    def __init__(self, name: str, args: ObjectStorageArgs, namespace: pulumi.Resource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:platform:ObjectStorage", name, None, opts)
        config = args.config
        self.release = None
        self.root_password = None
        if config.object_store is ObjectStore.EXTERNAL:
            if args.external_access_key is None or args.external_secret_key is None:
                raise ValueError("an external object store needs its access and secret key")
            assert config.object_store_endpoint is not None
            self.endpoint = config.object_store_endpoint
            self.access_key = pulumi.Output.secret(args.external_access_key)
            self.secret_key = pulumi.Output.secret(args.external_secret_key)
        else:
            self.endpoint = f"{MINIO_HOST}:{MINIO_API_PORT}"
            self.access_key = pulumi.Output.from_input(SERVICE_USER)
            self.secret_key = generated("minio-service-key", self)
            self.root_password = generated("minio-root-password", self)
            root = secret(ROOT_SECRET, Namespace.STORAGE,
                          {"rootUser": ROOT_USER, "rootPassword": self.root_password},
                          self, depends_on=[namespace])
            service = self.credentials(Namespace.STORAGE, [namespace])
            self.release = release(MINIO_RELEASE, pins.MINIO, Namespace.STORAGE,
                                   minio_values(config, args.issuer), self, [root, service])
        self.url = f"http://{self.endpoint}"
        self.register_outputs({"endpoint": self.endpoint})

    def credentials(self, namespace: str, depends_on: list[pulumi.Resource],
                    name: str = S3_SECRET, extra: dict[str, str] | None = None
                    ) -> k8s.core.v1.Secret:
        """The S3 identity as a Secret in ``namespace``, for releases that reference it;
        ``extra`` adds plain keys (the endpoint) for consumers that read everything from it."""
        data: dict[str, pulumi.Input[str]] = {S3_ACCESS_KEY: self.access_key,
                                               S3_SECRET_KEY: self.secret_key, **(extra or {})}
        return secret(name, namespace, data, self, depends_on=depends_on)
