"""The Pulumi program (``Pulumi.yaml`` at the repository root runs ``stacks/__main__.py``)."""
