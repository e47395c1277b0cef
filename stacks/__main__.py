"""Read the validated config, compose the components, export the inventory."""

import sys
from pathlib import Path

import pulumi

# Pulumi runs this file with stacks/ as its directory; the modules import as the `stacks` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi_kubernetes as k8s  # noqa: E402

from stacks.config import load_config  # noqa: E402
from stacks.configure import Configure, ConfigureArgs  # noqa: E402
from stacks.inventory import inventory, node_addresses  # noqa: E402
from stacks.platform import Platform, PlatformArgs  # noqa: E402
from stacks.platform.config import KEYS as PLATFORM_KEYS  # noqa: E402
from stacks.platform.config import SECRET_KEYS as PLATFORM_SECRET_KEYS  # noqa: E402
from stacks.site import existing_hosts, openstack_site  # noqa: E402

config = load_config(other_keys=(*PLATFORM_KEYS, *PLATFORM_SECRET_KEYS))
machines = existing_hosts(config) if config.hosts else openstack_site("cdl", config)
hosts = inventory(machines)

pulumi.export("inventory", hosts)
pulumi.export("nodeAddresses", node_addresses(machines))

# Configure the hosts (Ansible), then deploy the tool stack on the cluster they form.
configured = Configure("configure", ConfigureArgs(inventory=hosts))
pulumi.export("kubeconfig", configured.kubeconfig)
if pulumi.Config("cdl").get("domain") is None:
    pulumi.log.info("cdl:domain is not set: hosts only, the tool stack is not deployed")
else:
    cluster = k8s.Provider("cluster", kubeconfig=configured.kubeconfig)
    # A GitLab host of this stack: its runner's token, created there by the gitlab role.
    has_gitlab = any(host.group == "gitlab" for host in machines.hosts)
    platform = Platform("platform", PlatformArgs.from_config(
        runner_token=configured.runner_token if has_gitlab else None),
        pulumi.ResourceOptions(providers=[cluster]))
    pulumi.export("urls", platform.urls)
    pulumi.export("credentials", platform.credentials)
    pulumi.export("determinedMaster", platform.determined_master)
    pulumi.export("s3Endpoint", platform.s3_endpoint)
    pulumi.export("images", platform.images)
    # Where the cluster steps find pachd, the use cases' database and the served models, as
    # the cdl-smoke Job's platform.json has them (in-cluster addresses, no credential).
    pulumi.export("pachd", platform.pachd)
    pulumi.export("database", platform.database)
    pulumi.export("serving", platform.serving)
    pulumi.export("modelsNamespace", platform.models_namespace)
