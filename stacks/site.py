"""The two ways to get machines: provision them on OpenStack, or list your own."""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from stacks.compute import GitLabHost, GpuNodePool, GpuNodePoolArgs, Placement, ServerArgs
from stacks.config import StackConfig, host_names
from stacks.inventory import Host, Machines
from stacks.network import Network, NetworkArgs, SecurityGroups, SecurityGroupsArgs


def openstack_site(name: str, config: StackConfig) -> Machines:
    """Network, security groups, keypair, the GPU node pool and (optionally) GitLab."""
    cloud = config.cloud()
    network = Network(name, NetworkArgs(external_network=cloud.external_network,
                                        subnet_cidr=config.subnet_cidr,
                                        dns_nameservers=config.dns_nameservers))
    groups = SecurityGroups(name, SecurityGroupsArgs(admin_cidrs=config.admin_cidrs,
                                                     ingress_cidrs=config.ingress_cidrs,
                                                     gitlab=cloud.gitlab_flavor is not None))
    # Keypair names are unique per OpenStack user, not per project: the stack name keeps two
    # stacks of the same user apart.
    keypair = openstack.compute.Keypair(name, name=f"{name}-{pulumi.get_stack()}",
                                        public_key=cloud.ssh_public_key)
    image = openstack.images.get_image_output(name=cloud.image, most_recent=True)
    placement = Placement(network_id=network.network.id, subnet_id=network.subnet.id,
                          external_network=cloud.external_network, key_pair=keypair.name,
                          image_id=image.id, ssh_user=config.ssh_user,
                          router_interface=network.router_interface)
    pool = GpuNodePool(f"{name}-gpu", GpuNodePoolArgs(
        placement=placement, security_group_id=groups.cluster.id, flavor=cloud.gpu_flavor,
        count=config.gpu_node_count, boot_volume_gb=config.boot_volume_gb,
        data_volume_gb=config.data_volume_gb, service_cidr=network.plan.service_cidr))
    hosts = list(pool.hosts)
    if cloud.gitlab_flavor is not None and groups.gitlab is not None:
        gitlab = GitLabHost(f"{name}-gitlab", ServerArgs(
            placement=placement, security_group_id=groups.gitlab.id,
            flavor=cloud.gitlab_flavor, boot_volume_gb=config.gitlab_volume_gb))
        hosts.append(gitlab.host)
    # Variables of the playbooks' roles (base, microk8s) that follow from the network built here.
    return Machines(hosts, {"base_firewall_internal_cidr": config.subnet_cidr,
                            "microk8s_metallb_range": network.plan.service_range})


def existing_hosts(config: StackConfig) -> Machines:
    """Machines you already run (``cdl:hosts``): no OpenStack resource is declared. Their
    network is yours, so the subnet and MetalLB variables stay with your group_vars."""
    return Machines([Host(name=name, group="gpu_nodes" if host.role == "gpu" else "gitlab",
                          user=host.ssh_user, internal=host.address)
                     for name, host in host_names(config.hosts)])
