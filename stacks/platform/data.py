"""Versioned ML Data: Pachyderm, its metadata on the CNPG cluster, its objects on S3.

The chart's bundled PostgreSQL is off: Pachyderm (and its identity service) log in to CNPG
with the role Secret the Postgres component copies here.
"""

from __future__ import annotations

from typing import Any

import pulumi

from stacks.platform import pins
from stacks.platform.common import resources, tls_annotations
from stacks.platform.config import PlatformConfig
from stacks.platform.wiring import (
    PACHYDERM_DB,
    PACHYDERM_IDENTITY_DB,
    POSTGRES_HOST,
    POSTGRES_PORT,
    Bucket,
    role_secret,
)

UI_TLS_SECRET = "pachyderm-tls"


def pachyderm_values(config: PlatformConfig, issuer: str, s3_endpoint: str,
                     s3_access_key: pulumi.Input[str], s3_secret_key: pulumi.Input[str]
                     ) -> dict[str, Any]:
    host = config.host("pachyderm")
    return {
        # MINIO selects Pachyderm's generic S3 client, which any S3 store satisfies.
        "deployTarget": "MINIO",
        "global": {"postgresql": {
            "postgresqlHost": POSTGRES_HOST,
            "postgresqlPort": str(POSTGRES_PORT),
            "postgresqlUsername": PACHYDERM_DB.owner,
            "postgresqlDatabase": PACHYDERM_DB.name,
            "identityDatabaseFullNameOverride": PACHYDERM_IDENTITY_DB.name,
            "postgresqlExistingSecretName": role_secret(PACHYDERM_DB.owner),
            "postgresqlExistingSecretKey": "password",
            # Blank the chart's well-known defaults: the existing Secret is the only login.
            "postgresqlPassword": "",
            "postgresqlPostgresPassword": "",
            "postgresqlSSL": "require",
        }},
        "postgresql": {"enabled": False},
        "pachd": {
            "image": {"tag": pins.PACHD.tag},
            "resources": resources("250m", "1Gi", cpu_limit="2", memory_limit="4Gi"),
            # The chart has no existing-Secret option for storage credentials: they arrive as
            # Pulumi secrets and the chart writes them into its own Secret.
            "storage": {"minio": {"bucket": str(Bucket.PACHYDERM), "endpoint": s3_endpoint,
                                  "id": s3_access_key, "secret": s3_secret_key,
                                  "secure": "false"}},
            "lokiDeploy": False,
            "lokiLogging": False,
            # Usage reports to the vendor: off.
            "metrics": {"enabled": False},
        },
        "etcd": {"storageClass": config.storage_class, "storageSize": "10Gi",
                 "resources": resources("100m", "512Mi", memory_limit="1Gi")},
        "console": {"enabled": True, "resources": resources("50m", "256Mi"),
                    "config": {"disableTelemetry": True}},
        "proxy": {"enabled": True, "host": host, "service": {"type": "ClusterIP"},
                  "resources": resources("100m", "512Mi")},
        "ingress": {
            "enabled": True,
            "host": host,
            "annotations": {"kubernetes.io/ingress.class": config.ingress_class,
                            **tls_annotations(issuer)},
            "tls": {"enabled": True, "secretName": UI_TLS_SECRET},
        },
    }
