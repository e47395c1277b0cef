"""Serving: Seldon Core 1.17.1 (default) or KServe (`cdl:serving: kserve`), both serving our
MLServer model folders with the V2 protocol; charts/cdl-model deploys the models themselves.

Models stay inside the cluster (no ingress is created for them): the smoke job and the
workflow reach them by service name.
"""

from __future__ import annotations

from typing import Any

from stacks.platform.common import resources
from stacks.platform.config import Serving

# What charts/cdl-model refers to: the storage credentials of the models' namespace and, for
# KServe, the service account that carries them to the storage initializer.
MODEL_STORAGE_SECRET = "cdl-model-storage"
MODEL_SERVICE_ACCOUNT = "cdl-model"


def seldon_values() -> dict[str, Any]:
    return {
        # Usage reports to the vendor: off.
        "usageMetrics": {"enabled": False},
        # The operator's admission webhook gets its certificate from cert-manager.
        "certManager": {"enabled": True},
        "istio": {"enabled": False},
        "ambassador": {"enabled": False},
        "manager": {"cpuRequest": "100m", "cpuLimit": "500m",
                    "memoryRequest": "256Mi", "memoryLimit": "512Mi"},
        # Deployments that name no storage secret still find the models' bucket.
        "predictiveUnit": {"defaultEnvSecretRefName": MODEL_STORAGE_SECRET},
    }


def kserve_values(ingress_class: str) -> dict[str, Any]:
    return {"kserve": {
        # Plain Deployments, Services and HPAs: no Knative or Istio on MicroK8s.
        "controller": {
            "deploymentMode": "RawDeployment",
            "gateway": {"disableIngressCreation": True,
                        "ingressGateway": {"className": ingress_class}},
            "resources": resources("100m", "300Mi"),
        },
        # ModelMesh needs its own etcd and serves a different model layout: not used.
        "modelmesh": {"enabled": False},
    }}


def rclone_storage(endpoint_url: str, access_key: Any, secret_key: Any) -> dict[str, Any]:
    """Seldon's rclone storage initializer reads its remote `s3` from these variables."""
    return {
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Minio",
        "RCLONE_CONFIG_S3_ENV_AUTH": "false",
        "RCLONE_CONFIG_S3_ENDPOINT": endpoint_url,
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": access_key,
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": secret_key,
    }


def kserve_storage_annotations(endpoint: str) -> dict[str, str]:
    """KServe finds S3 credentials through a service account's Secrets with these annotations."""
    return {"serving.kserve.io/s3-endpoint": endpoint, "serving.kserve.io/s3-usehttps": "0",
            "serving.kserve.io/s3-region": "us-east-1"}


def serving_charts(serving: Serving) -> tuple[str, ...]:
    """The releases a serving choice deploys (the mock tests compare the two)."""
    return ("seldon-core",) if serving is Serving.SELDON else ("kserve-crd", "kserve")
