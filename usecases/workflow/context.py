"""What every step of a run shares, built once per command: the state directory, the stores,
how progress is shown, Label Studio (opened on first use), the work done in the background, and
per use case its options and its stage timings."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from usecases import defaults
from usecases.state import State
from usecases.stores.local import Stores
from usecases.workflow.background import Background
from usecases.workflow.display import Display
from usecases.workflow.usecase import DataOptions, UseCase

if TYPE_CHECKING:
    from usecases.stores.labelstudio import LabelStudioClient

log = logging.getLogger("cdl.run")


@dataclass
class RunOptions:
    """A use case's knobs for one run (CLI flags); the defaults live in ``usecases.defaults``."""

    data: DataOptions
    trials: int = defaults.TRIALS
    gate: float = defaults.GATE
    seed: int = defaults.SEED
    smoke: int = defaults.SMOKE
    max_request_bytes: int = defaults.MAX_REQUEST_BYTES
    retrain: bool = False  # train even when a version from the same inputs is registered
    # the experiment YAML in the use case's folder (None: adaptive.yaml to search, const.yaml
    # for one training); cdl smoke trains with smoke.yaml
    experiment: str | None = None


@dataclass
class Case:
    """One use case within a run: what it is, its options, and how long its stages took."""

    usecase: UseCase
    options: RunOptions
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.usecase.name


StudioOpener = Callable[[], "LabelStudioClient"]


@dataclass
class Context:
    state: State
    stores: Stores
    display: Display
    studio: StudioOpener | None = None  # None: labels go the direct path
    timings: dict[str, float] = field(default_factory=dict)  # stages of no one use case
    background: Background = field(default_factory=Background)
    # (use case or None, stage) of the stage that raised, for a command that names it
    failed: tuple[str | None, str] | None = None

    @contextlib.contextmanager
    def stage(self, case: Case | None, name: str, title: str) -> Iterator[None]:
        """A timed stage: shown on the display, its seconds kept in the case's timings, and
        its start and end written to the run log (``CDL_HOME/logs/cdl.log``)."""
        who = case.name if case else "-"
        log.info("start %s %s", who, name)
        start = time.perf_counter()
        try:
            with self.display.stage(title):
                yield
        except BaseException:
            self.failed = self.failed or (case.name if case else None, name)
            log.info("failed %s %s", who, name)
            raise
        seconds = round(time.perf_counter() - start, 2)
        (case.timings if case is not None else self.timings)[name] = seconds
        log.info("end %s %s %.2fs", who, name, seconds)
