"""The program runner of tests/stacks, so rules can be checked against what the program declares."""

from tests.stacks.conftest import run_program

__all__ = ["run_program"]
