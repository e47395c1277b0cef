"""The last release of `pulumi up`: charts/cdl-smoke, whose hook Job runs `cdl smoke --plan` in
CDL's image from inside the cluster: the tools answer; a failed smoke fails the release, and so
the update."""

from __future__ import annotations

from typing import Any

from stacks.platform.pins import Image
from stacks.platform.wiring import DETERMINED_HOST, DETERMINED_PORT, MINIO_API_PORT, MINIO_HOST


def smoke_values(with_minio: bool, image: Image) -> dict[str, Any]:
    # Determined's /info and MinIO's liveness answer without credentials.
    checks = [{"name": "determined-master",
               "url": f"http://{DETERMINED_HOST}:{DETERMINED_PORT}/info", "status": 200}]
    if with_minio:
        checks.append({"name": "minio", "status": 200,
                       "url": f"http://{MINIO_HOST}:{MINIO_API_PORT}/minio/health/live"})
    return {"checks": checks, "image": {"repository": image.repository, "tag": image.tag}}
