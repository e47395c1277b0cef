"""The platform's stack configuration (`cdl:*` keys), validated in one place.

Errors name the configuration key, e.g. ``cdl:serving: Input should be 'seldon' or 'kserve'``.
"""

from __future__ import annotations

import re
from enum import StrEnum

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stacks.config import ConfigError
from stacks.platform import pins

NAMESPACE = "cdl"
HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class Serving(StrEnum):
    # Seldon Core 1.17.1, the paper's server and its last Apache-2.0 release.
    SELDON = "seldon"
    # KServe in RawDeployment mode, the maintained alternative.
    KSERVE = "kserve"


class ObjectStore(StrEnum):
    # MinIO deployed by the platform (community project archived: pinned last images).
    MINIO = "minio"
    # A maintained S3 store run elsewhere (Garage, SeaweedFS, Ceph RGW); its buckets must exist.
    EXTERNAL = "external"


class PlatformConfig(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    # Every UI is served at <tool>.<domain> through the ingress, with TLS.
    domain: str
    serving: Serving = Serving.SELDON
    object_store: ObjectStore = Field(ObjectStore.MINIO, alias="objectStore")
    # host:port of the external S3 store; required with objectStore=external.
    object_store_endpoint: str | None = Field(None, alias="objectStoreEndpoint")
    # MicroK8s' ingress addon registers the class "public".
    ingress_class: str = Field("public", alias="ingressClass")
    # Without it certificates come from the platform's own self-signed CA.
    acme_email: str | None = Field(None, alias="acmeEmail")
    # Without it no GitLab Runner is deployed.
    gitlab_url: str | None = Field(None, alias="gitlabUrl")
    # MicroK8s' hostpath-storage addon.
    storage_class: str = Field("microk8s-hostpath", alias="storageClass")
    # GPUs per node: one T4 per VM in the paper's prototype.
    gpus_per_node: int = Field(1, alias="gpusPerNode", ge=1, le=16)
    # Where the cluster pulls CDL's own image from (host[:port][/path]): by default MicroK8s'
    # registry addon on the nodes; GitLab's container registry when its CI job builds the image.
    image_registry: str = Field(pins.DEFAULT_IMAGE_REGISTRY, alias="imageRegistry",
                                pattern=r"^[a-z0-9.-]+(:[0-9]+)?(/[a-z0-9._-]+)*$")

    @model_validator(mode="after")
    def _consistent(self) -> PlatformConfig:
        if not HOSTNAME.match(self.domain):
            raise ValueError(f"domain {self.domain!r} is not a DNS name")
        if self.object_store is ObjectStore.EXTERNAL and not self.object_store_endpoint:
            raise ValueError("objectStoreEndpoint is required when objectStore is external")
        if self.acme_email is not None and "@" not in self.acme_email:
            raise ValueError(f"acmeEmail {self.acme_email!r} is not an e-mail address")
        if self.gitlab_url is not None and not self.gitlab_url.startswith("https://"):
            raise ValueError("gitlabUrl must be an https:// URL (the runner token travels over it)")
        return self

    def host(self, tool: str) -> str:
        return f"{tool}.{self.domain}"

    def images(self) -> dict[str, pins.Image]:
        """CDL's image per variant (cpu, gpu), from this stack's registry."""
        return {variant: pins.cdl_image(self.image_registry, variant)
                for variant in pins.IMAGE_VARIANTS}


class PlatformConfigError(ConfigError):
    """A wrong platform setting: printed by Pulumi as its message, without a traceback."""


KEYS = ("domain", "serving", "objectStore", "objectStoreEndpoint", "ingressClass", "acmeEmail",
        "gitlabUrl", "storageClass", "gpusPerNode", "imageRegistry")
# Set with `pulumi config set --secret`; read by PlatformArgs.from_config.
SECRET_KEYS = ("objectStoreAccessKey", "objectStoreSecretKey", "gitlabAdminToken")


def load(config: pulumi.Config | None = None) -> PlatformConfig:
    """Read the `cdl:*` platform keys; unset keys take the defaults above."""
    config = config or pulumi.Config(NAMESPACE)
    raw = {key: value for key in KEYS if (value := config.get(key)) is not None}
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            key = f"{NAMESPACE}:{where}" if where else NAMESPACE
            problems.append(f"{key}: {item['msg'].removeprefix('Value error, ')}")
        raise PlatformConfigError("; ".join(problems)) from None
