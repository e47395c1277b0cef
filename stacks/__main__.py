"""Read the validated config, compose the components, export the inventory."""

import sys
from pathlib import Path

import pulumi

# Pulumi runs this file with stacks/ as its directory; the modules import as the `stacks` package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks.config import load_config  # noqa: E402
from stacks.inventory import inventory, node_addresses  # noqa: E402
from stacks.site import existing_hosts, openstack_site  # noqa: E402

config = load_config()
machines = existing_hosts(config) if config.hosts else openstack_site("cdl", config)

pulumi.export("inventory", inventory(machines))
pulumi.export("nodeAddresses", node_addresses(machines))
