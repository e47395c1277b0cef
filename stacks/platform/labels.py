"""Labels: Label Studio on the CNPG cluster, uploads on S3, admin login generated."""

from __future__ import annotations

from typing import Any

from stacks.platform import pins
from stacks.platform.common import resources, tls_annotations
from stacks.platform.config import PlatformConfig
from stacks.platform.wiring import (
    LABEL_STUDIO_DB,
    POSTGRES_HOST,
    POSTGRES_PORT,
    S3_ACCESS_KEY,
    S3_SECRET,
    S3_SECRET_KEY,
    Bucket,
    role_secret,
)

ADMIN_SECRET = "label-studio-admin"
# The admin's API token in ADMIN_SECRET.
ADMIN_TOKEN_KEY = "token"
UI_TLS_SECRET = "label-studio-tls"


def label_studio_values(config: PlatformConfig, issuer: str, s3_url: str) -> dict[str, Any]:
    host = config.host("labels")
    return {
        "global": {
            "image": {"repository": pins.LABEL_STUDIO_APP.repository,
                      "tag": pins.LABEL_STUDIO_APP.tag},
            "pgConfig": {
                "host": POSTGRES_HOST,
                "port": POSTGRES_PORT,
                "dbName": LABEL_STUDIO_DB.name,
                "userName": LABEL_STUDIO_DB.owner,
                "password": {"secretName": role_secret(LABEL_STUDIO_DB.owner),
                             "secretKey": "password"},
                "ssl": {"pgSslMode": "require"},
            },
            "persistence": {"enabled": True, "type": "s3", "config": {"s3": {
                "accessKeyExistingSecret": S3_SECRET,
                "accessKeyExistingSecretKey": S3_ACCESS_KEY,
                "secretKeyExistingSecret": S3_SECRET,
                "secretKeyExistingSecretKey": S3_SECRET_KEY,
                "bucket": str(Bucket.LABEL_STUDIO),
                "endpointUrl": s3_url,
            }}},
            "extraEnvironmentVars": {
                # Accounts only by invitation; no calls home.
                "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
                "LABEL_STUDIO_LATEST_VERSION_CHECK": "false",
                "LABEL_STUDIO_COLLECT_ANALYTICS": "false",
                # Label Studio 1.23 creates organizations with legacy API tokens off; the admin's
                # token below is one, and the smoke labels through it. A boolean: the name says
                # token, the value is none (the policy pack's secrets rule reads strings).
                "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": True,
            },
            "extraEnvironmentSecrets": {
                "LABEL_STUDIO_USERNAME": {"secretName": ADMIN_SECRET, "secretKey": "username"},
                "LABEL_STUDIO_PASSWORD": {"secretName": ADMIN_SECRET, "secretKey": "password"},
                # Given to the admin when `label-studio init` first creates it.
                "LABEL_STUDIO_USER_TOKEN": {"secretName": ADMIN_SECRET,
                                            "secretKey": ADMIN_TOKEN_KEY},
            },
        },
        # PostgreSQL comes from CNPG. Without Redis the community edition runs its background
        # jobs (imports, exports) in the app process, so no RQ workers either.
        "postgresql": {"enabled": False},
        "redis": {"enabled": False},
        "rqworker": {"enabled": False},
        "app": {
            "resources": resources("250m", "1Gi", cpu_limit="2", memory_limit="2Gi"),
            "ingress": {
                "enabled": True,
                "className": config.ingress_class,
                "annotations": tls_annotations(issuer),
                "host": host,
                "path": "/",
                "pathType": "Prefix",
                "tls": [{"secretName": UI_TLS_SECRET, "hosts": [host]}],
            },
        },
    }
