"""Every upstream chart version and container image tag the platform deploys, in one place.

An upgrade is a change to this module alone (then the tests in tests/stacks/platform check our
values against the new chart's defaults and schema). ``upstream`` names the folder under
``shared/upstream`` that holds that chart version's values.yaml (and values.schema.json where the
chart ships one); None where no upstream copy exists here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class ChartPin:
    chart: str
    version: str
    repo: str
    upstream: str | None


@dataclass(frozen=True)
class Image:
    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


CERT_MANAGER = ChartPin("cert-manager", "v1.21.1", "https://charts.jetstack.io",
                        "cert-manager-1.21.1")
CLOUDNATIVE_PG = ChartPin("cloudnative-pg", "0.29.0", "https://cloudnative-pg.github.io/charts",
                          "cloudnative-pg-0.29.0")
# Last chart of the archived community project; its values.yaml is the release commit's.
MINIO = ChartPin("minio", "5.4.0", "https://charts.min.io/", "minio-5.4.0")
PACHYDERM = ChartPin("pachyderm", "2.11.6", "https://helm.pachyderm.com", "pachyderm-2.11.6")
LABEL_STUDIO = ChartPin("label-studio", "2.0.5", "https://charts.heartex.com/",
                        "label-studio-2.0.5")
DETERMINED = ChartPin("determined", "0.38.1", "https://helm.determined.ai/", "determined-0.38.1")
# 1.17.1 is the last Apache-2.0 release of Seldon Core v1 (1.18 moved to the BSL).
SELDON_CORE = ChartPin("seldon-core-operator", "1.17.1",
                       "https://storage.googleapis.com/seldon-charts",
                       "seldon-core-operator-1.17.1")
# KServe 0.14.1 is contemporaneous with the other pins; at that tag the chart is named `kserve`
# and its CRDs ship as the separate `kserve-crd` chart.
KSERVE_CRD = ChartPin("kserve-crd", "v0.14.1", "oci://ghcr.io/kserve/charts", None)
KSERVE = ChartPin("kserve", "v0.14.1", "oci://ghcr.io/kserve/charts", "kserve-0.14.1")
# No upstream copy of this chart is available offline: its values are not schema-checked.
GITLAB_RUNNER = ChartPin("gitlab-runner", "0.71.0", "https://charts.gitlab.io", None)

# Our own charts (charts/), versioned by their Chart.yaml, installed from the checkout.
OWN_CHARTS = Path(__file__).resolve().parents[2] / "charts"


def own_chart(name: str) -> ChartPin:
    path = OWN_CHARTS / name
    version = yaml.safe_load((path / "Chart.yaml").read_text())["version"]
    return ChartPin(str(path), str(version), "", None)


CHARTS: tuple[ChartPin, ...] = (CERT_MANAGER, CLOUDNATIVE_PG, MINIO, PACHYDERM, LABEL_STUDIO,
                                DETERMINED, SELDON_CORE, KSERVE_CRD, KSERVE, GITLAB_RUNNER)

POSTGRESQL = Image("ghcr.io/cloudnative-pg/postgresql", "17.6")
# The community MinIO images stopped with the archived project; these are the chart's own pins.
MINIO_SERVER = Image("quay.io/minio/minio", "RELEASE.2024-12-18T13-15-44Z")
MINIO_CLIENT = Image("quay.io/minio/mc", "RELEASE.2024-11-21T17-21-54Z")
PACHD = Image("pachyderm/pachd", "2.11.6")
LABEL_STUDIO_APP = Image("heartexlabs/label-studio", "1.23.0")
DETERMINED_TASK = Image("determinedai/pytorch-ngc", "0.38.1")
GITLAB_RUNNER_APP = Image("registry.gitlab.com/gitlab-org/gitlab-runner", "alpine-v17.6.0")
# A slim Python for what needs the standard library only (cdl-model's `helm test` pod, the
# GitLab runner's default job image).
SMOKE_PYTHON = Image("python", "3.11.14-slim-bookworm")

# Our own image (scripts/images/Containerfile, built by scripts/images.sh here and by the CI job
# in ci/image.yml on GitLab): the Pachyderm validation worker, Determined's trial environment,
# MLServer for cdl-model and the cdl-smoke Job all run it. Tagged with the project's version and
# its variant; the registry is the stack's cdl:imageRegistry (MicroK8s' own registry addon by
# default), "localhost" for the copy Podman builds here.
CDL_IMAGE_NAME = "cdl"
CDL_VERSION: str = tomllib.loads(
    (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]["version"]
DEFAULT_IMAGE_REGISTRY = "localhost:32000"
IMAGE_VARIANTS = ("cpu", "gpu")


def cdl_image(registry: str = DEFAULT_IMAGE_REGISTRY, variant: str = "cpu") -> Image:
    if variant not in IMAGE_VARIANTS:
        raise ValueError(f"image variant {variant!r} is not one of {IMAGE_VARIANTS}")
    return Image(f"{registry.rstrip('/')}/{CDL_IMAGE_NAME}", f"{CDL_VERSION}-{variant}")
