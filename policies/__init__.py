"""The Pulumi policy pack guarding the program in ``stacks/`` (rules in ``policies.rules``)."""
