"""The last release of `pulumi up`: charts/cdl-smoke. Its hook Job checks that the tools answer
(`cdl smoke --plan`), then trains, registers, gates, serves and queries both use cases from
inside the cluster (`cdl smoke --outputs`) in CDL's image; a failed smoke fails the release, and
so the update.

The Job reads the platform from ``in_cluster(...)``, the stack outputs' shape with the addresses
a Pod uses; the stack exports the same values. Credentials reach it only as environment
variables from Secrets in the smoke's namespace (``SMOKE_ENV``)."""

from __future__ import annotations

from typing import Any

from stacks.platform.config import PlatformConfig
from stacks.platform.labels import ADMIN_TOKEN_KEY
from stacks.platform.pins import Image
from stacks.platform.wiring import (
    DETERMINED_HOST,
    DETERMINED_PORT,
    LABEL_STUDIO_RELEASE,
    MINIO_API_PORT,
    MINIO_HOST,
    POSTGRES_HOST,
    POSTGRES_PORT,
    S3_ACCESS_KEY,
    S3_SECRET,
    S3_SECRET_KEY,
    USECASES_DB,
    Namespace,
    role_secret,
)

# Service names the pinned charts fix; only the smoke reaches them by name.
# Label Studio 2.0.5 names its app Service <release>-ls-app, on port 80.
LABEL_STUDIO_HOST = f"{LABEL_STUDIO_RELEASE}-ls-app.{Namespace.LABELS}.svc.cluster.local"
# Pachyderm 2.11 names pachd's Service `pachd` whatever the release; its gRPC API listens on
# pachd.service.apiGRPCPort (the chart's default, which the platform keeps).
PACHD_HOST = f"pachd.{Namespace.DATA}.svc.cluster.local"
PACHD_PORT = 30650
# The chart's proxy (console and HTTP API) is the Service `pachyderm-proxy`, on port 80.
PACHYDERM_PROXY_HOST = f"pachyderm-proxy.{Namespace.DATA}.svc.cluster.local"

# Secrets the platform writes into the smoke's namespace for the Job (beside the S3 identity
# and the use cases' database login, under their usual names).
DETERMINED_ADMIN_SECRET = "determined-admin"
LABEL_STUDIO_TOKEN_SECRET = "label-studio-token"

# The variables `cdl smoke --outputs` reads its credentials from: (name, Secret, key).
SMOKE_ENV = (
    ("CDL_DETERMINED_USER", DETERMINED_ADMIN_SECRET, "username"),
    ("CDL_DETERMINED_PASSWORD", DETERMINED_ADMIN_SECRET, "password"),
    ("CDL_S3_ACCESS_KEY", S3_SECRET, S3_ACCESS_KEY),
    ("CDL_S3_SECRET_KEY", S3_SECRET, S3_SECRET_KEY),
    ("CDL_DATABASE_PASSWORD", role_secret(USECASES_DB.owner), "password"),
    ("CDL_LABEL_STUDIO_TOKEN", LABEL_STUDIO_TOKEN_SECRET, ADMIN_TOKEN_KEY),
)


def in_cluster(config: PlatformConfig, s3_url: str, with_minio: bool) -> dict[str, Any]:
    """The platform as usecases/cluster/outputs.py parses stack outputs, with in-cluster
    addresses and no credential (the chart writes it into a ConfigMap)."""
    determined = f"http://{DETERMINED_HOST}:{DETERMINED_PORT}"
    urls = {"determined": determined, "labels": f"http://{LABEL_STUDIO_HOST}",
            "pachyderm": f"http://{PACHYDERM_PROXY_HOST}"}
    if with_minio:
        urls["minio"] = f"http://{MINIO_HOST}:{MINIO_API_PORT}"
    return {
        "urls": urls,
        "determinedMaster": determined,
        "s3Endpoint": s3_url,
        "images": {variant: image.ref for variant, image in config.images().items()},
        "pachd": f"grpc://{PACHD_HOST}:{PACHD_PORT}",
        "database": {"host": POSTGRES_HOST, "port": POSTGRES_PORT, "dbname": USECASES_DB.name,
                     "user": USECASES_DB.owner},
        "serving": str(config.serving),
        "modelsNamespace": str(Namespace.MODELS),
    }


# How long the training smoke's Job may run (both use cases' data, experiments and releases,
# image pulls on a fresh node included); the release waits that long and a margin for its
# reach checks, so Helm does not give up on a hook that is still within its deadline.
TRAIN_DEADLINE = 5400
RELEASE_TIMEOUT = TRAIN_DEADLINE + 600


def smoke_values(platform: dict[str, Any], image: Image) -> dict[str, Any]:
    # Determined's /info and MinIO's liveness answer without credentials.
    checks = [{"name": "determined-master", "url": f"{platform['determinedMaster']}/info",
               "status": 200}]
    if "minio" in platform["urls"]:
        checks.append({"name": "minio", "status": 200,
                       "url": f"{platform['urls']['minio']}/minio/health/live"})
    return {
        "checks": checks,
        "image": {"repository": image.repository, "tag": image.tag},
        "train": {"enabled": True, "modelsNamespace": platform["modelsNamespace"],
                  "activeDeadlineSeconds": TRAIN_DEADLINE},
        "platform": platform,
        "env": [{"name": name, "secretName": secret, "key": key}
                for name, secret, key in SMOKE_ENV],
    }
