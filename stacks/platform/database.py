"""PostgreSQL through the CloudNativePG operator: one Cluster, a database and role per tool,
scheduled base backups and WAL archiving to object storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.platform import pins
from stacks.platform.common import release, resources
from stacks.platform.config import PlatformConfig
from stacks.platform.credentials import generated, secret
from stacks.platform.storage import ObjectStorage
from stacks.platform.wiring import (
    DATABASES,
    POSTGRES_CLUSTER,
    ROLES,
    S3_ACCESS_KEY,
    S3_SECRET,
    S3_SECRET_KEY,
    USECASES_DB,
    Bucket,
    Namespace,
    role_secret,
)

# CloudNativePG's schedule has a seconds field: daily at 03:00.
BACKUP_SCHEDULE = "0 0 3 * * *"
BACKUP_RETENTION = "30d"


def operator_values() -> dict[str, Any]:
    return {
        "crds": {"create": True},
        "resources": resources("100m", "256Mi", memory_limit="512Mi"),
    }


def cluster_spec(config: PlatformConfig, s3_endpoint_url: str) -> dict[str, Any]:
    s3_key = {"name": S3_SECRET}
    return {
        # One instance: the MicroK8s cluster may be a single GPU node. Raise with the node count.
        "instances": 1,
        "imageName": pins.POSTGRESQL.ref,
        "enableSuperuserAccess": False,
        "storage": {"size": "20Gi", "storageClass": config.storage_class},
        "resources": resources("250m", "1Gi", cpu_limit="2", memory_limit="2Gi"),
        # The use cases' database is the application database CloudNativePG bootstraps;
        # the tools' databases are Database resources next to it.
        "bootstrap": {"initdb": {"database": USECASES_DB.name, "owner": USECASES_DB.owner,
                                 "secret": {"name": role_secret(USECASES_DB.owner)}}},
        "managed": {"roles": [
            {"name": role, "ensure": "present", "login": True,
             "passwordSecret": {"name": role_secret(role)}}
            for role in ROLES if role != USECASES_DB.owner
        ]},
        "backup": {
            "retentionPolicy": BACKUP_RETENTION,
            "barmanObjectStore": {
                "destinationPath": f"s3://{Bucket.DATABASE_BACKUPS}/",
                "endpointURL": s3_endpoint_url,
                "s3Credentials": {
                    "accessKeyId": {**s3_key, "key": S3_ACCESS_KEY},
                    "secretAccessKey": {**s3_key, "key": S3_SECRET_KEY},
                },
                "wal": {"compression": "gzip"},
                "data": {"compression": "gzip"},
            },
        },
    }


def database_spec(name: str, owner: str) -> dict[str, Any]:
    return {"name": name, "owner": owner, "cluster": {"name": POSTGRES_CLUSTER},
            # Dropping the resource must never drop a tool's data.
            "databaseReclaimPolicy": "retain"}


def scheduled_backup_spec() -> dict[str, Any]:
    return {"schedule": BACKUP_SCHEDULE, "cluster": {"name": POSTGRES_CLUSTER},
            "method": "barmanObjectStore", "backupOwnerReference": "self", "immediate": True}


@dataclass(frozen=True)
class PostgresArgs:
    config: PlatformConfig
    storage: ObjectStorage


class Postgres(pulumi.ComponentResource):
    """The CloudNativePG operator and the platform's PostgreSQL cluster."""

    passwords: dict[str, pulumi.Output[str]]
    cluster: k8s.apiextensions.CustomResource

    def __init__(self, name: str, args: PostgresArgs, operator_namespace: pulumi.Resource,
                 namespace: pulumi.Resource, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:platform:Postgres", name, None, opts)
        operator = release("cloudnative-pg", pins.CLOUDNATIVE_PG, Namespace.DATABASE_OPERATOR,
                           operator_values(), self, [operator_namespace])
        self.passwords = {role: generated(f"pg-{role}-password", self) for role in ROLES}
        logins = [secret(role_secret(role), Namespace.DATABASE,
                         {"username": role, "password": self.passwords[role]}, self,
                         secret_type="kubernetes.io/basic-auth", depends_on=[namespace])
                  for role in ROLES]
        backup_credentials = args.storage.credentials(Namespace.DATABASE, [namespace])
        after = [operator, backup_credentials, *logins]
        if args.storage.release is not None:
            after.append(args.storage.release)
        self.cluster = k8s.apiextensions.CustomResource(
            POSTGRES_CLUSTER, api_version="postgresql.cnpg.io/v1", kind="Cluster",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=POSTGRES_CLUSTER,
                                                namespace=Namespace.DATABASE),
            spec=cluster_spec(args.config, args.storage.url),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))
        on_cluster = pulumi.ResourceOptions(parent=self, depends_on=[self.cluster])
        for database in DATABASES:
            if database is USECASES_DB:
                continue
            k8s.apiextensions.CustomResource(
                f"pg-database-{database.name}", api_version="postgresql.cnpg.io/v1",
                kind="Database",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{POSTGRES_CLUSTER}-{database.name}",
                                                    namespace=Namespace.DATABASE),
                spec=database_spec(database.name, database.owner), opts=on_cluster)
        k8s.apiextensions.CustomResource(
            "pg-daily-backup", api_version="postgresql.cnpg.io/v1", kind="ScheduledBackup",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=f"{POSTGRES_CLUSTER}-daily",
                                                namespace=Namespace.DATABASE),
            spec=scheduled_backup_spec(), opts=on_cluster)
        self.register_outputs({"cluster": POSTGRES_CLUSTER})

    def login(self, role: str, namespace: str, depends_on: list[pulumi.Resource]
              ) -> k8s.core.v1.Secret:
        """A copy of ``role``'s login in a tool's namespace (Secrets do not cross namespaces)."""
        return secret(role_secret(role), namespace,
                      {"username": role, "password": self.passwords[role]}, self,
                      secret_type="kubernetes.io/basic-auth", depends_on=depends_on)
