"""Experiments and the model registry: Determined on the CNPG cluster, checkpoints on S3,
a GPU resource pool for trials and a CPU pool for everything else."""

from __future__ import annotations

from typing import Any

import pulumi

from stacks.platform import pins
from stacks.platform.config import PlatformConfig
from stacks.platform.wiring import DETERMINED_DB, POSTGRES_HOST, POSTGRES_PORT, Bucket, Namespace

GPU_POOL = "gpu"
CPU_POOL = "cpu"
UI_TLS_SECRET = "determined-tls"
# MicroK8s' GPU operator labels the nodes that carry a GPU.
GPU_NODE_LABEL = "nvidia.com/gpu.present"


def _pool(name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    key = "gpu_pod_spec" if name == GPU_POOL else "cpu_pod_spec"
    return {"pool_name": name, "kubernetes_namespace": str(Namespace.TRAINING),
            "task_container_defaults": {key: pod_spec}}


def determined_values(config: PlatformConfig, s3_url: str, db_password: pulumi.Input[str],
                      s3_access_key: pulumi.Input[str], s3_secret_key: pulumi.Input[str],
                      admin_password: pulumi.Input[str]) -> dict[str, Any]:
    gpu_spec = {"apiVersion": "v1", "kind": "Pod", "spec": {
        "nodeSelector": {GPU_NODE_LABEL: "true"}}}
    # CPU tasks (TensorBoards, checkpoint GC, notebooks without slots) stay off the GPU nodes'
    # scarce memory only by preference, so a one-node cluster still runs them.
    cpu_spec = {"apiVersion": "v1", "kind": "Pod", "spec": {"affinity": {"nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "preference": {
            "matchExpressions": [{"key": GPU_NODE_LABEL, "operator": "DoesNotExist"}]}}]}}}}
    return {
        "db": {
            "hostAddress": POSTGRES_HOST,
            "port": POSTGRES_PORT,
            "name": DETERMINED_DB.name,
            "user": DETERMINED_DB.owner,
            # Determined 0.38.1's chart takes no existing Secret for these: they arrive as
            # Pulumi secrets and the chart renders them into the master's config Secret.
            "password": db_password,
            # No sslMode: the chart then demands the CA file as a Secret in this namespace, and
            # CloudNativePG's CA lives in cdl-db (see the README's upgrade path).
        },
        "checkpointStorage": {
            "type": "s3",
            "bucket": str(Bucket.CHECKPOINTS),
            "endpointUrl": s3_url,
            "accessKey": s3_access_key,
            "secretKey": s3_secret_key,
            "saveExperimentBest": 0,
            "saveTrialBest": 1,
            "saveTrialLatest": 1,
        },
        "initialUserPassword": admin_password,
        # The chart offers LoadBalancer or NodePort only; NodePort is its advice behind an
        # ingress, and the security groups keep node ports closed to the world.
        "useNodePortForMaster": True,
        "masterCpuRequest": "500m",
        "masterMemRequest": "2Gi",
        "masterCpuLimit": "2",
        "masterMemLimit": "4Gi",
        "maxSlotsPerPod": config.gpus_per_node,
        "taskContainerDefaults": {"cpuImage": pins.DETERMINED_TASK.ref,
                                  "gpuImage": pins.DETERMINED_TASK.ref},
        "resourcePools": [_pool(GPU_POOL, gpu_spec), _pool(CPU_POOL, cpu_spec)],
        "defaultComputeResourcePool": GPU_POOL,
        "defaultAuxResourcePool": CPU_POOL,
        "telemetry": {"enabled": False},
        "clusterName": "cdl",
    }
