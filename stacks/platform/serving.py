"""Serving: Seldon Core 1.17.1 (default) or KServe (`cdl:serving: kserve`), both serving our
MLServer model folders with the V2 protocol; charts/cdl-model deploys the models themselves.

Models stay inside the cluster (no ingress is created for them): the smoke job and the
workflow reach them by service name.
"""

from __future__ import annotations

from typing import Any

from stacks.platform.common import resources

# What charts/cdl-model refers to: the S3 endpoint and identity in the models' namespace. The
# chart copies the model folder with its own init container under either operator, so one
# Secret serves both.
MODEL_STORAGE_SECRET = "cdl-model-storage"
# What a served model writes each request to (Scoring Data): key "dsn", a libpq conninfo of
# the use cases' database; charts/cdl-model reads it when it exists.
SCORING_SECRET = "cdl-scoring"


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
