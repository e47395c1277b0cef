"""Virtual machines: the GPU node pool and the GitLab host, both booting from volumes."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from stacks.inventory import Host

# Instance metadata: the policy pack tells GPU nodes apart by cdl_role, and the day-two dynamic
# inventory (playbooks/inventory/openstack.yml) builds its groups and SSH user from all three.
ROLE_KEY, USER_KEY, CONTROL_KEY = "cdl_role", "cdl_ssh_user", "cdl_k8s_control"


@dataclass(frozen=True)
class Placement:
    """Where and how a server is attached; shared by every server of the stack."""

    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    external_network: str
    key_pair: pulumi.Input[str]
    image_id: pulumi.Input[str]
    ssh_user: str
    # The floating IP needs the router's interface on the subnet before it can be associated.
    router_interface: pulumi.Resource


@dataclass(frozen=True)
class Server:
    port: openstack.networking.Port
    instance: openstack.compute.Instance
    floating_ip: openstack.networking.FloatingIp | None

    @property
    def internal(self) -> pulumi.Output[str]:
        return self.port.all_fixed_ips[0]

    @property
    def public(self) -> pulumi.Output[str] | None:
        return self.floating_ip.address if self.floating_ip else None


@dataclass(frozen=True)
class ServerArgs:
    """What every server of a component shares: placement, security group, flavor, boot disk."""

    placement: Placement
    security_group_id: pulumi.Input[str]
    flavor: str
    boot_volume_gb: int


def _server(name: str, role: str, args: ServerArgs, public: bool, parent: pulumi.Resource,
            control: bool = False, service_cidr: str | None = None,
            scheduler_hints: list[openstack.compute.InstanceSchedulerHintArgs] | None = None,
            ) -> Server:
    placement = args.placement
    child = pulumi.ResourceOptions(parent=parent)
    # Security groups sit on the port: an instance attached through a port ignores its own
    # security_groups argument.
    port = openstack.networking.Port(
        name, name=name, network_id=placement.network_id, admin_state_up=True,
        security_group_ids=[args.security_group_id],
        fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=placement.subnet_id)],
        allowed_address_pairs=[openstack.networking.PortAllowedAddressPairArgs(
            ip_address=service_cidr)] if service_cidr else None,
        opts=child)
    instance = openstack.compute.Instance(
        name, name=name, flavor_name=args.flavor, key_pair=placement.key_pair,
        metadata={ROLE_KEY: role, USER_KEY: placement.ssh_user,
                  **({CONTROL_KEY: "true"} if control else {})},
        networks=[openstack.compute.InstanceNetworkArgs(port=port.id)],
        block_devices=[openstack.compute.InstanceBlockDeviceArgs(
            source_type="image", uuid=placement.image_id, destination_type="volume",
            volume_size=args.boot_volume_gb, boot_index=0, delete_on_termination=True)],
        scheduler_hints=scheduler_hints, opts=child)
    floating_ip = None
    if public:
        floating_ip = openstack.networking.FloatingIp(
            name, pool=placement.external_network, port_id=port.id,
            description=f"CDL {role} {name}",
            opts=pulumi.ResourceOptions(parent=parent,
                                        depends_on=[placement.router_interface]))
    return Server(port, instance, floating_ip)


@dataclass(frozen=True)
class GpuNodePoolArgs(ServerArgs):
    count: int
    data_volume_gb: int
    # MetalLB's addresses (AddressPlan.service_cidr), which any node may answer for.
    service_cidr: str


class GpuNodePool(pulumi.ComponentResource):
    """``count`` GPU nodes spread over hypervisors where possible (soft anti-affinity).

    The first node gets the floating IP: it carries the Kubernetes API and the ingress.
    A data volume (``dataVolumeGb`` > 0) outlives the node, so rebuilding a node keeps its data.
    """

    servers: list[Server]
    hosts: list[Host]
    server_group: openstack.compute.ServerGroup
    data_volumes: list[openstack.blockstorage.Volume]

    def __init__(self, name: str, args: GpuNodePoolArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:compute:GpuNodePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.server_group = openstack.compute.ServerGroup(
            name, name=name, policies="soft-anti-affinity", opts=child)
        hints = [openstack.compute.InstanceSchedulerHintArgs(group=self.server_group.id)]
        self.servers = []
        self.data_volumes = []
        for index in range(args.count):
            node = f"{name}-{index}"
            first = index == 0
            server = _server(node, "gpu_node", args, public=first, control=first, parent=self,
                             service_cidr=args.service_cidr, scheduler_hints=hints)
            self.servers.append(server)
            if args.data_volume_gb:
                volume = openstack.blockstorage.Volume(
                    f"{node}-data", name=f"{node}-data", size=args.data_volume_gb, opts=child)
                openstack.compute.VolumeAttach(f"{node}-data", instance_id=server.instance.id,
                                               volume_id=volume.id, opts=child)
                self.data_volumes.append(volume)
        self.hosts = [Host(name=f"{name}-{i}", group="gpu_nodes", user=args.placement.ssh_user,
                           internal=s.internal, public=s.public)
                      for i, s in enumerate(self.servers)]
        self.register_outputs({"instance_ids": [s.instance.id for s in self.servers]})


class GitLabHost(pulumi.ComponentResource):
    """The GitLab VM (the paper's Code Repository) on its own small flavor, with a floating IP."""

    server: Server
    host: Host

    def __init__(self, name: str, args: ServerArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:compute:GitLabHost", name, None, opts)
        self.server = _server(name, "gitlab", args, public=True, parent=self)
        self.host = Host(name=name, group="gitlab", user=args.placement.ssh_user,
                         internal=self.server.internal, public=self.server.public)
        self.register_outputs({"instance_id": self.server.instance.id})
