"""The cluster side of the CLI: checks against an OpenStack project before `pulumi up`."""
