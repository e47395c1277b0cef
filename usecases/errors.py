"""Errors a user can act on: each names the problem and the fix; the CLI prints one line."""


class CDLError(Exception):
    """A failure caused by input or environment, with the fix the user should apply."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.problem}. Fix: {self.fix}"


class GateFailed(CDLError):
    """The evaluated model is below the acceptance threshold; the report is still written."""
