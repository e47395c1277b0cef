"""Work a run does beside its critical path: starting Label Studio while data is prepared,
importing tens of thousands of tasks while models train.

One worker thread takes the jobs in order. The run waits for what is left before its services
(Label Studio, PostgreSQL) stop, and a failed run tells the worker to stop between steps. A job
that fails does not fail the run: its work resumes on the next run (each job is written to
pick up where an interrupted one stopped), and the run says so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

from usecases.errors import CDLError

log = logging.getLogger("cdl.run")
Job = Callable[[threading.Event], object]  # gets the event that asks it to stop early


@dataclass
class Finished:
    title: str
    seconds: float  # from submission to its end
    waited: float  # of which the run waited at its end
    error: str | None = None


@dataclass
class Background:
    stop: threading.Event = field(default_factory=threading.Event)
    # cleared while the run's critical path needs the services a job would load
    go: threading.Event = field(default_factory=threading.Event)
    _pool: ThreadPoolExecutor | None = None
    _jobs: list[tuple[str, float, Future[float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.go.set()

    def submit(self, title: str, job: Job, yields: bool = True) -> None:
        """Queue ``job``; one that ``yields`` starts only while nothing holds the worker."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdl-background")
        log.info("background queued %s", title)

        def timed(stop: threading.Event) -> float:
            while yields and not self.go.wait(0.2):
                if stop.is_set():
                    return time.perf_counter()
            job(stop)
            return time.perf_counter()  # when it ended

        self._jobs.append((title, time.perf_counter(), self._pool.submit(timed, self.stop)))

    def hold(self) -> None:
        """Jobs that yield wait (the critical path is about to use what they would load)."""
        self.go.clear()

    def release(self) -> None:
        self.go.set()

    def pending(self) -> list[str]:
        return [title for title, _, future in self._jobs if not future.done()]

    def finish(self) -> list[Finished]:
        """Wait for every job; what each took and, for one that failed, why."""
        self.release()
        results = []
        for title, submitted, future in self._jobs:
            waiting = time.perf_counter()
            error = None
            try:
                end = future.result()
            except CDLError as exc:
                error = str(exc)
            except Exception as exc:  # a job's bug must not lose the run's results
                log.exception("background job %s failed", title)
                error = f"{type(exc).__name__}: {exc}"
            waited = time.perf_counter()
            if error is not None:
                end = waited
            results.append(Finished(title, round(end - submitted, 2),
                                    round(max(waited - waiting, 0.0), 2), error))
            log.info("background end %s %.2fs%s", title, end - submitted,
                     f" failed: {error}" if error else "")
        self._jobs.clear()
        return results

    def close(self) -> None:
        """Ask the jobs left to stop, and wait until they have."""
        self.stop.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Background:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
