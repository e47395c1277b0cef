"""The stack's configuration (namespace ``cdl``): one typed model, validated before any resource.

Every error names the key (``cdl:adminCidrs: ...``) and what is expected, so a user fixes the
stack file instead of reading a provider error halfway through ``pulumi up``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Collection, Mapping
from typing import Any, Literal, NamedTuple

import pulumi
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

NAMESPACE = "cdl"

# Public key types OpenSSH writes to *.pub; anything else (a private key, a path) is a mistake.
_PUBLIC_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|"
    r"sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/=]{16,}( .*)?$"
)
# Largest single volume the program will request; the policy pack enforces the same ceiling.
MAX_VOLUME_GB = 4096


class ConfigError(pulumi.RunError):
    """A wrong stack setting. Pulumi prints a RunError as its message, without a traceback."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


class HostConfig(_Model):
    """One machine of your own (existing-hosts mode)."""

    address: str = Field(min_length=1)
    role: Literal["gpu", "gitlab"]
    ssh_user: str = Field("debian", min_length=1)
    name: str | None = None


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR notation like 203.0.113.0/24 "
                         f"({exc})") from None


class StackConfig(_Model):
    """What ``cdl:*`` holds. OpenStack credentials stay in ``openstack:*`` or clouds.yaml."""

    ssh_public_key: str | None = None
    ssh_user: str = Field("debian", min_length=1)
    admin_cidrs: list[str] = Field(default_factory=list)
    allow_world_admin: bool = False
    ingress_cidrs: list[str] = Field(default_factory=lambda: ["0.0.0.0/0"])
    external_network: str | None = None
    image: str | None = None
    subnet_cidr: str = "10.20.0.0/24"
    dns_nameservers: list[str] = Field(default_factory=list)
    gpu_flavor: str | None = None
    gpu_node_count: int = Field(1, ge=1, le=64)
    boot_volume_gb: int = Field(100, ge=10, le=MAX_VOLUME_GB)
    data_volume_gb: int = Field(0, ge=0, le=MAX_VOLUME_GB)
    gitlab: bool = True
    gitlab_flavor: str | None = None
    gitlab_volume_gb: int = Field(50, ge=10, le=MAX_VOLUME_GB)
    hosts: list[HostConfig] = Field(default_factory=list)

    @field_validator("admin_cidrs", "ingress_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        for value in values:
            _network(value)
        return values

    @field_validator("subnet_cidr")
    @classmethod
    def _subnet(cls, value: str) -> str:
        network = _network(value)
        if network.version != 4 or network.prefixlen > 24:
            raise ValueError("expected an IPv4 network of /24 or larger: its last /27 is kept "
                             "out of DHCP for MetalLB")
        return value

    @field_validator("dns_nameservers")
    @classmethod
    def _nameservers(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address") from None
        return values

    @field_validator("ssh_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if "PRIVATE KEY" in value:
            raise ValueError("this is a private key; give the content of the .pub file and "
                             "keep the private key off the stack")
        if not _PUBLIC_KEY.match(value):
            raise ValueError("expected one OpenSSH public key line (the content of "
                             "~/.ssh/id_ed25519.pub: 'ssh-ed25519 AAAA... comment')")
        return value

    @model_validator(mode="after")
    def _whole(self) -> StackConfig:
        if self.hosts:
            self._check_hosts()
        else:
            self._check_cloud()
        return self

    def _check_hosts(self) -> None:
        roles = [host.role for host in self.hosts]
        if "gpu" not in roles:
            raise ValueError("cdl:hosts: list at least one host with role 'gpu'")
        if roles.count("gitlab") > 1:
            raise ValueError("cdl:hosts: at most one host may have role 'gitlab'")
        names = [name for name, _ in host_names(self.hosts)]
        if len(set(names)) != len(names):
            raise ValueError("cdl:hosts: host names must be unique")

    def _check_cloud(self) -> None:
        missing = [key for key, value in (
            ("sshPublicKey", self.ssh_public_key), ("externalNetwork", self.external_network),
            ("image", self.image), ("gpuFlavor", self.gpu_flavor),
            ("gitlabFlavor", self.gitlab_flavor if self.gitlab else "unused"),
        ) if not value]
        if missing:
            raise ValueError("; ".join(f"cdl:{key}: required to provision on OpenStack "
                                       "(see Pulumi.example.yaml)" for key in missing))
        if not self.admin_cidrs:
            raise ValueError("cdl:adminCidrs: list the networks SSH and the Kubernetes API "
                             "may be reached from, e.g. [203.0.113.0/24]")
        world = [c for c in self.admin_cidrs if ipaddress.ip_network(c).prefixlen == 0]
        if world and not self.allow_world_admin:
            raise ValueError(f"cdl:adminCidrs: {', '.join(world)} opens SSH and the Kubernetes "
                             "API to the whole internet; list your admin networks instead, or "
                             "set cdl:allowWorldAdmin to true if you really mean it")

    def cloud(self) -> CloudConfig:
        """OpenStack mode's settings, with the types the validator has guaranteed."""
        if (self.hosts or not self.ssh_public_key or not self.external_network
                or not self.image or not self.gpu_flavor):
            raise ConfigError("cdl:hosts: existing-hosts mode provisions nothing on OpenStack")
        return CloudConfig(ssh_public_key=self.ssh_public_key,
                           external_network=self.external_network, image=self.image,
                           gpu_flavor=self.gpu_flavor,
                           gitlab_flavor=self.gitlab_flavor if self.gitlab else None)


class CloudConfig(NamedTuple):
    ssh_public_key: str
    external_network: str
    image: str
    gpu_flavor: str
    gitlab_flavor: str | None


def host_names(hosts: list[HostConfig]) -> list[tuple[str, HostConfig]]:
    """Inventory names for existing hosts: the given name, else cdl-gpu-N / cdl-gitlab."""
    named: list[tuple[str, HostConfig]] = []
    gpu_index = 0
    for host in hosts:
        if host.name:
            named.append((host.name, host))
        elif host.role == "gpu":
            named.append((f"cdl-gpu-{gpu_index}", host))
        else:
            named.append(("cdl-gitlab", host))
        gpu_index += host.role == "gpu"
    return named


def _parse(raw: str) -> Any:
    # Pulumi hands lists and objects from the stack file to the program as JSON text.
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _key(loc: tuple[int | str, ...]) -> str:
    path = ".".join(str(part) for part in loc)
    return f"{NAMESPACE}:{path}"


KEYS = frozenset(field.alias for field in StackConfig.model_fields.values() if field.alias)


def validate(raw: Mapping[str, Any]) -> StackConfig:
    """Validate this model's ``cdl:*`` values, given by camelCase key without the namespace.

    Keys of other components in the namespace (the platform's) are left to them.
    """
    try:
        return StackConfig.model_validate({k: v for k, v in raw.items() if k in KEYS})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"{_key(error['loc'])}: {message}" if error["loc"] else message)
        raise ConfigError("\n".join(lines)) from None


def load_config(other_keys: Collection[str] = ()) -> StackConfig:
    """Read and validate the stack's ``cdl:*`` settings; raise ConfigError naming the key.

    ``other_keys`` are the keys other components of the program read from the namespace; any
    key that is neither theirs nor this model's is a typo and stops the program.
    """
    prefix = f"{NAMESPACE}:"
    present = {key.removeprefix(prefix) for key in pulumi.runtime.get_config_env()
               if key.startswith(prefix)}
    unknown = sorted(present - KEYS - set(other_keys))
    if unknown:
        known = ", ".join(sorted(KEYS | set(other_keys)))
        raise ConfigError("\n".join(f"{NAMESPACE}:{key}: unknown key (known: {known})"
                                    for key in unknown))
    config = pulumi.Config(NAMESPACE)
    raw = {key: _parse(value) for key in KEYS if (value := config.get(key)) is not None}
    return validate(raw)
