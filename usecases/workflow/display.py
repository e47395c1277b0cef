"""How a run shows progress. The CLI draws it with rich; tests and library callers stay quiet.
Kept free of the workflow's imports so that the CLI loads it cheaply."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Progress = Callable[[int, int, dict[str, float]], None]  # (trial, epoch, validation metrics)


class Display:
    @contextlib.contextmanager
    def stage(self, title: str) -> Iterator[None]:
        yield

    def trials(self, total: int, epochs: int) -> Progress:
        return lambda trial, epoch, metrics: None

    def note(self, text: str) -> None:
        pass
