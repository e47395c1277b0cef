"""What runs on the platform rather than on this machine: the Pachyderm validation worker and
its pipeline spec, the stack's outputs, and `cdl smoke`'s cluster side."""
