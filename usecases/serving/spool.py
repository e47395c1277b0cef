"""The Scoring Data spool: rows on disk, in the state directory, until PostgreSQL holds them.

``<root>/<server id>/`` belongs to one scoring log (one model in one server process). It holds
``lock``, which that process keeps flock'ed while it lives, and numbered segments
(``00000001.jsonl``), one row per line, appended in batches with an fsync after each. A
segment is removed once the database holds all its rows. A folder whose lock nobody holds is
left by a process that died (kill -9, a crash): the next scoring log to start claims it, writes
its rows and removes it. Lines are opaque bytes here; ``scoring`` encodes and decodes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

SEGMENT_BYTES = 8 * 1024 * 1024  # a segment this large is closed and the next one begun
LOCK = "lock"
SUFFIX = ".jsonl"


@dataclass(frozen=True)
class Segment:
    path: Path
    size: int  # bytes fsynced: a reader may take this much, all of it whole lines
    closed: bool  # nothing more will be appended


def read(segment: Segment, offset: int, max_bytes: int,
         max_lines: int) -> tuple[list[bytes], int]:
    """Whole lines of ``segment`` from ``offset``, about ``max_bytes`` or ``max_lines`` of
    them, and the offset after them. A line cut short (the last one a dying writer had not
    finished) is left out."""
    lines: list[bytes] = []
    end = offset
    with segment.path.open("rb") as file:
        file.seek(offset)
        while end < segment.size and end - offset < max_bytes and len(lines) < max_lines:
            line = file.readline(segment.size - end)
            if not line.endswith(b"\n"):
                break
            lines.append(line)
            end += len(line)
    return lines, end


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(folder: Path) -> int | None:
    """The descriptor holding ``folder``'s lock; None when a live process holds it."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _segments(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{SUFFIX}"))


class Orphan:
    """The folder of a scoring log whose process died, claimed (locked) by this process."""

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self.server_id = folder.name
        self._fd = fd

    def segments(self) -> list[Segment]:
        return [Segment(p, p.stat().st_size, True) for p in _segments(self.folder)]

    def release(self, segment: Segment) -> None:
        segment.path.unlink(missing_ok=True)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        os.close(self._fd)


def claim_orphans(root: Path) -> list[Orphan]:
    """The folders under ``root`` whose process died, each now locked by this one. Folders
    still being set up (dot names) are not looked at."""
    claimed = []
    with contextlib.suppress(FileNotFoundError):
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            with contextlib.suppress(FileNotFoundError):
                fd = _lock(folder)
                if fd is not None:
                    claimed.append(Orphan(folder, fd))
    return claimed


class Spool:
    """The folder of a live scoring log: one thread appends, another reads and releases."""

    def __init__(self, root: Path, server_id: str, limit: int) -> None:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)  # rows hold what clients sent
        # locked before it gets the name others look at, so no one claims it as an orphan
        staging = root / f".{server_id}"
        staging.mkdir(mode=0o700)
        self._fd = _lock(staging)
        self.folder = staging.rename(root / server_id)
        _fsync_dir(root)
        self.server_id = server_id
        self.limit = limit
        # a small bound gets small segments: the open one, which is only removed once closed,
        # must never fill the bound by itself
        self._segment_bytes = min(SEGMENT_BYTES, max(1, limit // 8))
        self.bytes = 0  # on disk, over all segments
        self._guard = threading.Lock()
        self._closed: list[Segment] = []
        self._number = 0
        self._file: BinaryIO | None = None
        self._size = 0

    def append(self, lines: list[bytes]) -> int:
        """Write the leading lines that fit under the limit and fsync them; how many."""
        fitting, total = 0, self.bytes
        for line in lines:
            if total + len(line) > self.limit:
                break
            total += len(line)
            fitting += 1
        if not fitting:
            return 0
        if self._file is None:
            self._number += 1
            self._file = (self.folder / f"{self._number:08d}{SUFFIX}").open("ab")
            _fsync_dir(self.folder)
        chunk = b"".join(lines[:fitting])
        try:
            self._file.write(chunk)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError:
            # a half-written line would run into the next batch's first one
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), self._size)
            raise
        with self._guard:
            self._size += len(chunk)
            self.bytes = total
            if self._size >= self._segment_bytes:
                self._closed.append(Segment(Path(self._file.name), self._size, True))
                self._file.close()
                self._file, self._size = None, 0
        return fitting

    def segments(self) -> list[Segment]:
        with self._guard:
            found = list(self._closed)
            if self._file is not None:
                found.append(Segment(Path(self._file.name), self._size, False))
            return found

    def release(self, segment: Segment) -> None:
        """Remove a closed segment the database holds all of."""
        segment.path.unlink(missing_ok=True)
        with self._guard:
            self._closed.remove(segment)
            self.bytes -= segment.size

    def discard(self) -> None:
        """Remove the folder: the database holds every row of it."""
        if self._file is not None:
            self._file.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self._fd is not None:
            os.close(self._fd)


def lines(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every whole line in the spool under ``root``, live folders' and dead ones', with the
    server id of its folder; a segment removed while being read is skipped."""
    with contextlib.suppress(FileNotFoundError):
        for folder in sorted(root.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            for path in _segments(folder):
                found: list[bytes] = []
                with contextlib.suppress(FileNotFoundError):
                    size = path.stat().st_size
                    found, _ = read(Segment(path, size, True), 0, size + 1, size + 1)
                for line in found:
                    yield folder.name, line
