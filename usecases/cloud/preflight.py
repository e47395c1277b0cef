"""``cdl preflight``: ask OpenStack, before ``pulumi up``, whether the stack can be built.

Checks authentication, the external network, the image, the GPU flavor (and that it carries a
GPU), the GitLab flavor, and the project's quotas against what the stack file asks for. Auth is
openstacksdk's usual: ``clouds.yaml`` (``--cloud`` or ``OS_CLOUD``) or ``OS_*`` variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keystoneauth1.exceptions
import openstack
import yaml
from openstack.connection import Connection
from rich.table import Table

from stacks.config import ConfigError, StackConfig, validate
from usecases.errors import CDLError

# Extra specs by which Nova hands a guest a GPU: PCI passthrough, or a placement resource
# request for a physical or virtual GPU.
GPU_SPECS = ("pci_passthrough:alias", "resources:PGPU", "resources:VGPU")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def read_stack(path: Path) -> StackConfig:
    """The ``cdl:*`` settings of a Pulumi stack file, validated like the program does."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise CDLError(f"no stack file {path}", "run `pulumi stack init NAME` and set the "
                       "cdl:* keys (see Pulumi.example.yaml), or pass --stack") from None
    except yaml.YAMLError as exc:
        raise CDLError(f"{path} is not valid YAML ({exc})", "fix the stack file") from None
    settings = document.get("config") or {}
    raw = {key.removeprefix("cdl:"): value for key, value in settings.items()
           if key.startswith("cdl:")}
    try:
        config = validate(raw)
    except ConfigError as exc:
        raise CDLError(f"{path}: {exc}", "correct the key named above") from None
    if config.hosts:
        raise CDLError(f"{path} lists cdl:hosts (existing-hosts mode)",
                       "preflight checks an OpenStack project; there is nothing to check")
    return config


def connect(cloud: str | None) -> Connection:
    """A connection from clouds.yaml (``cloud``, else OS_CLOUD) or the OS_* variables."""
    try:
        return openstack.connect(cloud=cloud)
    except (openstack.exceptions.ConfigException,
            keystoneauth1.exceptions.ClientException) as exc:
        raise CDLError(f"no OpenStack credentials ({exc})",
                       "pass --cloud NAME from clouds.yaml, or source your openrc") from None


def _has_gpu(extra_specs: Mapping[str, Any]) -> str | None:
    for key in GPU_SPECS:
        value = extra_specs.get(key)
        if value and str(value).strip() not in ("0", ""):
            return f"{key}={value}"
    return None


def _find(finder: Callable[..., Any], name: str, **kwargs: Any) -> Any:
    try:
        return finder(name, ignore_missing=False, **kwargs)
    except openstack.exceptions.NotFoundException:
        return None


def _quota(name: str, limit: int, used: int, wanted: int, unit: str = "") -> Check:
    if limit < 0:
        return Check(f"quota {name}", True, f"need {wanted}{unit}, unlimited")
    free = limit - used
    return Check(f"quota {name}", wanted <= free,
                 f"need {wanted}{unit}, {free}{unit} free ({used} of {limit} used)")


class _Preflight:
    def __init__(self, conn: Connection, config: StackConfig) -> None:
        self.conn = conn
        self.config = config
        self.cloud = config.cloud()
        self.checks: list[Check] = []
        self.flavors: dict[str, Any] = {}
        self.project_id = ""

    def record(self, name: str, probe: Callable[[], Check | list[Check]]) -> None:
        try:
            found = probe()
        except openstack.exceptions.SDKException as exc:
            found = Check(name, False, f"OpenStack answered: {exc}")
        self.checks.extend(found if isinstance(found, list) else [found])

    def authentication(self) -> bool:
        try:
            self.conn.authorize()
        except (openstack.exceptions.SDKException,
                keystoneauth1.exceptions.ClientException) as exc:
            self.checks.append(Check("authentication", False, str(exc)))
            return False
        project = self.conn.current_project_id
        if project is None:
            self.checks.append(Check("authentication", False, "the token is not scoped to a "
                                     "project: set project_name (or OS_PROJECT_NAME)"))
            return False
        self.project_id = project
        self.checks.append(Check("authentication", True, f"project {project}"))
        return True

    def external_network(self) -> Check:
        name = self.cloud.external_network
        network = _find(self.conn.network.find_network, name)
        if network is None:
            return Check("external network", False, f"{name!r} not found (cdl:externalNetwork)")
        if not network.is_router_external:
            return Check("external network", False,
                         f"{name!r} is not external (router:external is false)")
        return Check("external network", True, f"{name} ({network.id})")

    def image(self) -> Check:
        name = self.cloud.image
        images = list(self.conn.image.images(name=name))
        if not images:
            return Check("image", False, f"{name!r} not found (cdl:image)")
        # Several images may share a name; the program boots the most recent, as here.
        image = max(images, key=lambda found: found.created_at or "")
        if image.status != "active":
            return Check("image", False, f"{name!r} is {image.status}, not active")
        return Check("image", True, f"{name} ({image.id})")

    def flavor(self, label: str, key: str, name: str, need_gpu: bool) -> Check:
        flavor = _find(self.conn.compute.find_flavor, name, get_extra_specs=True)
        if flavor is None:
            return Check(label, False, f"{name!r} not found ({key})")
        self.flavors[name] = flavor
        size = f"{flavor.vcpus} vCPU, {flavor.ram} MB RAM"
        if not need_gpu:
            return Check(label, True, f"{name}: {size}")
        gpu = _has_gpu(flavor.extra_specs or {})
        if gpu is None:
            return Check(label, False, f"{name!r} has no GPU (no {', '.join(GPU_SPECS)} extra "
                                       "spec); ask your cloud admin for a GPU flavor")
        return Check(label, True, f"{name}: {size}, {gpu}")

    def quotas(self) -> list[Check]:
        config, nodes = self.config, self.config.gpu_node_count
        gitlab = int(self.cloud.gitlab_flavor is not None)
        servers = [(self.cloud.gpu_flavor, nodes)]
        if self.cloud.gitlab_flavor is not None:
            servers.append((self.cloud.gitlab_flavor, 1))
        if any(name not in self.flavors for name, _ in servers):
            return [Check("quotas", False, "skipped: a flavor is missing")]
        cores = sum(self.flavors[name].vcpus * count for name, count in servers)
        ram = sum(self.flavors[name].ram * count for name, count in servers)
        volumes = nodes * (1 + int(config.data_volume_gb > 0)) + gitlab
        gigabytes = (nodes * (config.boot_volume_gb + config.data_volume_gb)
                     + gitlab * config.gitlab_volume_gb)

        compute = self.conn.compute.get_limits().absolute
        storage = self.conn.block_storage.get_limits().absolute
        network = self.conn.network.get_quota(self.project_id, details=True)
        floating = network.floating_ips
        return [
            _quota("instances", compute.instances, compute.instances_used, nodes + gitlab),
            _quota("cores", compute.total_cores, compute.total_cores_used, cores),
            _quota("RAM", compute.total_ram, compute.total_ram_used, ram, " MB"),
            _quota("volumes", storage.max_total_volumes, storage.total_volumes_used, volumes),
            _quota("gigabytes", storage.max_total_volume_gigabytes,
                   storage.total_gigabytes_used, gigabytes, " GB"),
            _quota("floating IPs", floating["limit"],
                   floating["used"] + floating.get("reserved", 0), 1 + gitlab),
        ]


def preflight(conn: Connection, config: StackConfig) -> list[Check]:
    """Every check, in order; after a failed authentication nothing else can be asked."""
    run = _Preflight(conn, config)
    if not run.authentication():
        return run.checks
    run.record("external network", run.external_network)
    run.record("image", run.image)
    run.record("GPU flavor", lambda: run.flavor("GPU flavor", "cdl:gpuFlavor",
                                                run.cloud.gpu_flavor, need_gpu=True))
    if run.cloud.gitlab_flavor is not None:
        gitlab = run.cloud.gitlab_flavor
        run.record("GitLab flavor", lambda: run.flavor("GitLab flavor", "cdl:gitlabFlavor",
                                                       gitlab, need_gpu=False))
    run.record("quotas", run.quotas)
    return run.checks


def run(stack_file: Path, cloud: str | None) -> list[Check]:
    """Read the stack file first (a local mistake needs no cloud), then ask the cloud."""
    config = read_stack(stack_file)
    return preflight(connect(cloud), config)


def table(checks: list[Check]) -> Table:
    """The checks as a table: one row each, failures in red."""
    rows = Table(title="cdl preflight", show_lines=False)
    for column in ("check", "result", "detail"):
        rows.add_column(column)
    for check in checks:
        rows.add_row(check.name, "[green]ok[/green]" if check.ok else "[red]FAIL[/red]",
                     check.detail)
    return rows
