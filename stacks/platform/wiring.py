"""The names every release agrees on: namespaces, buckets, databases, in-cluster service hosts.

Each tool finds the others through these names, so they are computed here once and never
re-typed in a release's values (the mock tests check that the releases agree with them).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Namespace(StrEnum):
    """One namespace per concern: operators apart from the workloads they manage."""

    TLS = "cert-manager"
    DATABASE_OPERATOR = "cnpg-system"
    DATABASE = "cdl-db"
    STORAGE = "cdl-storage"
    DATA = "cdl-data"
    LABELS = "cdl-labels"
    TRAINING = "cdl-training"
    SERVING_SYSTEM = "cdl-serving-system"
    MODELS = "cdl-models"
    CI = "cdl-ci"
    SMOKE = "cdl-smoke"


class Bucket(StrEnum):
    CHECKPOINTS = "cdl-checkpoints"
    PACHYDERM = "cdl-pachyderm"
    LABEL_STUDIO = "cdl-labels"
    MODELS = "cdl-models"
    DATABASE_BACKUPS = "cdl-db-backups"


@dataclass(frozen=True)
class Database:
    """A PostgreSQL database and the role that owns it (the tool logs in as that role)."""

    name: str
    owner: str


DETERMINED_DB = Database("determined", "determined")
PACHYDERM_DB = Database("pachyderm", "pachyderm")
# Pachyderm's embedded identity service (dex) keeps its state in a second database.
PACHYDERM_IDENTITY_DB = Database("dex", "pachyderm")
LABEL_STUDIO_DB = Database("labelstudio", "labelstudio")
# The use cases' own tables (labels, model registry, scoring data), as in the local database.
USECASES_DB = Database("cdl", "cdl")
DATABASES = (DETERMINED_DB, PACHYDERM_DB, PACHYDERM_IDENTITY_DB, LABEL_STUDIO_DB, USECASES_DB)
ROLES = tuple(dict.fromkeys(db.owner for db in DATABASES))

POSTGRES_CLUSTER = "cdl-pg"
POSTGRES_PORT = 5432
# CloudNativePG names the read-write service of cluster X "X-rw".
POSTGRES_HOST = f"{POSTGRES_CLUSTER}-rw.{Namespace.DATABASE}.svc.cluster.local"

MINIO_RELEASE = "minio"
MINIO_API_PORT = 9000
# The MinIO chart names its API service after the release when the release name is the chart's.
MINIO_HOST = f"{MINIO_RELEASE}.{Namespace.STORAGE}.svc.cluster.local"

DETERMINED_RELEASE = "determined"
DETERMINED_PORT = 8080
# The Determined chart's service name, fixed by its templates.
DETERMINED_SERVICE = f"determined-master-service-{DETERMINED_RELEASE}"
DETERMINED_HOST = f"{DETERMINED_SERVICE}.{Namespace.TRAINING}.svc.cluster.local"

LABEL_STUDIO_RELEASE = "label-studio"
PACHYDERM_RELEASE = "pachyderm"

# Secret names and keys the releases reference instead of carrying the values.
S3_SECRET = "cdl-s3"
S3_ACCESS_KEY = "accessKey"
S3_SECRET_KEY = "secretKey"


def role_secret(role: str) -> str:
    """The kubernetes.io/basic-auth Secret holding a database role's login."""
    return f"cdl-pg-{role}"
