"""The cluster's private network and its security groups (least privilege)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import pulumi
import pulumi_openstack as openstack

# MicroK8s serves the Kubernetes API on 16443 (upstream Kubernetes uses 6443).
KUBE_API_PORT = 16443
SSH_PORT = 22
WEB_PORTS = (80, 443)


@dataclass(frozen=True)
class AddressPlan:
    """How the subnet is shared: DHCP for the VMs, the last /27 for MetalLB's service IPs."""

    dhcp_start: str
    dhcp_end: str
    # The GPU nodes' ports allow traffic for these addresses (allowed address pairs): port
    # security would otherwise drop packets for a MetalLB IP a node answers for.
    service_cidr: str
    service_range: str


def address_plan(subnet_cidr: str) -> AddressPlan:
    subnet = ipaddress.IPv4Network(subnet_cidr)
    # The last /27: its last address is the subnet's broadcast, so MetalLB gets the 31 before it.
    services = ipaddress.IPv4Network(f"{subnet.broadcast_address - 31}/27")
    # The first ten addresses stay free for the router and anything the operator adds by hand.
    return AddressPlan(dhcp_start=str(subnet.network_address + 10),
                       dhcp_end=str(services.network_address - 1),
                       service_cidr=str(services),
                       service_range=f"{services.network_address}-"
                                     f"{services.broadcast_address - 1}")


@dataclass(frozen=True)
class NetworkArgs:
    external_network: str
    subnet_cidr: str
    dns_nameservers: list[str] = field(default_factory=list)


class Network(pulumi.ComponentResource):
    """A private network and subnet, routed to the external network (SNAT and floating IPs)."""

    plan: AddressPlan
    network: openstack.networking.Network
    subnet: openstack.networking.Subnet
    router: openstack.networking.Router
    router_interface: openstack.networking.RouterInterface

    def __init__(self, name: str, args: NetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.plan = address_plan(args.subnet_cidr)
        external = openstack.networking.get_network_output(name=args.external_network,
                                                           external=True)
        self.network = openstack.networking.Network(name, name=name, admin_state_up=True,
                                                    opts=child)
        self.subnet = openstack.networking.Subnet(
            name, name=name, network_id=self.network.id, cidr=args.subnet_cidr, ip_version=4,
            allocation_pools=[openstack.networking.SubnetAllocationPoolArgs(
                start=self.plan.dhcp_start, end=self.plan.dhcp_end)],
            dns_nameservers=args.dns_nameservers or None, opts=child)
        self.router = openstack.networking.Router(name, name=name,
                                                  external_network_id=external.id, opts=child)
        self.router_interface = openstack.networking.RouterInterface(
            name, router_id=self.router.id, subnet_id=self.subnet.id, opts=child)
        self.register_outputs({"network_id": self.network.id, "subnet_id": self.subnet.id})


@dataclass(frozen=True)
class SecurityGroupsArgs:
    admin_cidrs: list[str]
    ingress_cidrs: list[str]
    gitlab: bool


def _ethertype(cidr: str) -> str:
    return "IPv6" if ":" in cidr else "IPv4"


class SecurityGroups(pulumi.ComponentResource):
    """Who may reach the nodes.

    Cluster nodes: SSH and the Kubernetes API from ``adminCidrs`` only; HTTP/HTTPS (the ingress)
    from ``ingressCidrs``; everything between nodes, but only from members of the same group
    (``remote_group_id``), so database, object store and dashboard ports stay inside.
    GitLab: SSH from ``adminCidrs``, HTTP/HTTPS from ``ingressCidrs`` and from the cluster
    (runners). Egress keeps OpenStack's default (allow), which package installs need.
    """

    cluster: openstack.networking.SecGroup
    gitlab: openstack.networking.SecGroup | None
    rules: list[openstack.networking.SecGroupRule]

    def __init__(self, name: str, args: SecurityGroupsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:network:SecurityGroups", name, None, opts)
        self._child = pulumi.ResourceOptions(parent=self)
        self.rules = []
        cluster, gitlab = f"{name}-cluster", f"{name}-gitlab"
        self.cluster = openstack.networking.SecGroup(
            cluster, name=cluster, opts=self._child,
            description="CDL cluster nodes: admin ports from adminCidrs, web from ingressCidrs")
        self._from_cidrs(self.cluster, f"{cluster}-ssh", SSH_PORT, args.admin_cidrs)
        self._from_cidrs(self.cluster, f"{cluster}-kube-api", KUBE_API_PORT, args.admin_cidrs)
        for port in WEB_PORTS:
            self._from_cidrs(self.cluster, f"{cluster}-web{port}", port, args.ingress_cidrs)
        # No protocol and no port range: any traffic, but only from the group's own members.
        self._rule(f"{cluster}-intra", self.cluster, remote_group=self.cluster)

        self.gitlab = None
        if args.gitlab:
            self.gitlab = openstack.networking.SecGroup(
                gitlab, name=gitlab, opts=self._child,
                description="CDL GitLab: SSH from adminCidrs, web from ingressCidrs and cluster")
            self._from_cidrs(self.gitlab, f"{gitlab}-ssh", SSH_PORT, args.admin_cidrs)
            for port in WEB_PORTS:
                self._from_cidrs(self.gitlab, f"{gitlab}-web{port}", port, args.ingress_cidrs)
                self._rule(f"{gitlab}-web{port}-cluster", self.gitlab, port=port,
                           remote_group=self.cluster)
        self.register_outputs({"cluster_id": self.cluster.id,
                               "gitlab_id": self.gitlab.id if self.gitlab else None})

    def _from_cidrs(self, group: openstack.networking.SecGroup, prefix: str, port: int,
                    cidrs: list[str]) -> None:
        for index, cidr in enumerate(cidrs):
            self._rule(f"{prefix}-{index}", group, port=port, cidr=cidr)

    def _rule(self, name: str, group: openstack.networking.SecGroup, port: int | None = None,
              cidr: str | None = None,
              remote_group: openstack.networking.SecGroup | None = None) -> None:
        self.rules.append(openstack.networking.SecGroupRule(
            name, security_group_id=group.id, direction="ingress",
            ethertype=_ethertype(cidr) if cidr else "IPv4",
            protocol="tcp" if port is not None else None,
            port_range_min=port, port_range_max=port, remote_ip_prefix=cidr,
            remote_group_id=remote_group.id if remote_group else None, opts=self._child))
