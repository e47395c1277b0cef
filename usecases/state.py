"""The state directory (``CDL_HOME``): database, datasets, checkpoints, models, logs, secrets.

Everything written here survives a crash (kill -9, power loss) whole or not at all: files
through `atomic_write`, directories through `replace_dir` / `staged_dir`. What a crash can
leave behind carries the `TEMP_PREFIX` and is found by `leftovers`. One process at a time
writes (`State.writer`); readers never lock.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import json
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypedDict

from usecases.errors import CDLError

TEMP_PREFIX = ".cdl-tmp-"
LOCK_NAME = "writer.lock"

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# holder() probes the lock by taking it shared for a moment; a writer that found it taken
# retries this long before refusing, so a concurrent probe never turns into a refusal.
_PROBE_GRACE_S = 0.2
_POLL_S = 0.05


class Holder(TypedDict):
    """Who holds the writer lock, as it wrote itself into the lock file (None: unreadable)."""

    pid: int | None
    command: str | None
    since: str | None


def atomic_write(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` so that a crash leaves the old content or the new, whole.

    A rewritten file keeps its permission bits; a new one gets 0o666 less the umask.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        mode: int | None = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = None
    temp = _write_temp(path, payload, mode)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def replace_dir(staging: Path, target: Path) -> None:
    """Make the fully written directory `staging` become `target`, durably.

    `target` (if it exists, a real directory) is swapped with `staging` in one step by
    renameat2(RENAME_EXCHANGE): a reader opening a path under `target` finds the old tree or
    the new one, complete, never nothing. The old tree is then deleted; a reader that already
    holds it open (a file descriptor, its working directory) sees its entries vanish, though
    files it has open stay readable. A missing `target` is created by a plain rename.

    `staging` must be on the filesystem of `target`; it is moved beside `target` under a
    `TEMP_PREFIX` name first, so a crash at any point leaves a tree `leftovers` finds.

    Where the kernel or filesystem lacks RENAME_EXCHANGE (EINVAL, ENOSYS), the swap is two
    renames (old tree aside, new tree in): still never half-written, but `target` is absent
    between them, a reader looking then fails, and a crash then leaves no `target` and the
    old tree under its `TEMP_PREFIX` name.
    """
    if not staging.is_dir() or staging.is_symlink():
        raise NotADirectoryError(errno.ENOTDIR, "staging is not a directory", str(staging))
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise NotADirectoryError(errno.ENOTDIR, "target is not a directory", str(target))
    _fsync_tree(staging)
    if staging.parent != target.parent or not staging.name.startswith(TEMP_PREFIX):
        beside = _temp_path(target)
        os.rename(staging, beside)
        _fsync_dir(staging.parent)
        staging = beside
    try:
        _exchange(staging, target)
    except FileNotFoundError:
        os.rename(staging, target)
        _fsync_dir(target.parent)
        return
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS):
            raise
        _swap_by_renames(staging, target)
        return
    _fsync_dir(target.parent)
    shutil.rmtree(staging)


@contextmanager
def staged_dir(target: Path) -> Iterator[Path]:
    """An empty directory beside `target` to write into; on success it replaces `target`.

    On an error inside the block (or in the swap) the staging tree is removed and `target`
    is left as it was.
    """
    staging = _temp_path(target)
    staging.mkdir()
    try:
        yield staging
        replace_dir(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def leftovers(root: Path) -> list[Path]:
    """Temp files and staging trees under `root` that an interrupted write left behind.

    Those of a writer still running are listed too: remove them only while holding
    `State.writer`.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            if name.startswith(TEMP_PREFIX):
                found.append(Path(dirpath, name))
        for name in list(dirnames):
            if name.startswith(TEMP_PREFIX):
                found.append(Path(dirpath, name))
                dirnames.remove(name)
    return sorted(found)


@dataclass
class _Hold:
    fd: int
    depth: int


# The writer lock is per process: nested or concurrent `writer` blocks in one process share it.
_holds: dict[Path, _Hold] = {}
_holds_guard = threading.Lock()


@dataclass(frozen=True)
class State:
    home: Path

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> State:
        root = Path(home or os.environ.get("CDL_HOME") or ".cdl").expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root)

    def dir(self, *parts: str, private: bool = False) -> Path:
        path = self.home.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        if private:
            path.chmod(0o700)
        return path

    @property
    def mldata(self) -> Path:
        return self.dir("mldata")

    @property
    def transforms(self) -> Path:
        return self.dir("transforms")

    @property
    def checkpoints(self) -> Path:
        return self.dir("checkpoints")

    @property
    def models(self) -> Path:
        return self.dir("models")

    @property
    def logs(self) -> Path:
        return self.dir("logs")

    @property
    def secrets(self) -> Path:
        return self.dir("secrets", private=True)

    def secret(self, name: str, nbytes: int = 24) -> str:
        """The named secret, generated on first use (owner-only file, never a default)."""
        path = self.secrets / name
        if not path.exists():
            temp = _write_temp(path, secrets.token_urlsafe(nbytes).encode(), 0o600)
            try:
                # link, unlike rename, never replaces: a secret another process made first wins
                os.link(temp, path)
            except FileExistsError:
                pass
            finally:
                temp.unlink()
            _fsync_dir(path.parent)
        return path.read_text().strip()

    @contextmanager
    def writer(self, command: str, wait: float = 0.0) -> Iterator[None]:
        """Hold the one writer lock of this CDL_HOME while the block runs.

        Another process holding it past `wait` seconds is a `CDLError` naming it. The kernel
        drops the lock when its holder dies, however it dies. Nested use in one process
        only counts depth; a child forked without exec shares the lock until it exits.
        """
        lock = self.home.resolve() / LOCK_NAME
        with _holds_guard:
            hold = _holds.get(lock)
            if hold is None:
                hold = _Hold(self._acquire(lock, command, wait), 0)
                _holds[lock] = hold
            hold.depth += 1
        try:
            yield
        finally:
            with _holds_guard:
                hold.depth -= 1
                if hold.depth == 0:
                    del _holds[lock]
                    try:
                        # a free lock carries no holder, so a stale name only follows a kill
                        os.ftruncate(hold.fd, 0)
                    finally:
                        os.close(hold.fd)

    def holder(self) -> Holder | None:
        """Who holds the writer lock now; None when it is free."""
        try:
            fd = os.open(self.home / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            # A new holder writes its name just after locking, over a killed one's: read
            # until the name is of a live process, or take what is there after a moment.
            deadline = time.monotonic() + 0.5
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    pass
                else:
                    return None
                info = _parse_holder(os.pread(fd, 4096, 0))
                late = time.monotonic() >= deadline
                if info is not None and (late or alive(info["pid"])):
                    return info
                if late:
                    return Holder(pid=None, command=None, since=None)
                time.sleep(0.01)
        finally:
            os.close(fd)

    def _acquire(self, lock: Path, command: str, wait: float) -> int:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            deadline = time.monotonic() + max(wait, _PROBE_GRACE_S)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    pass
                if time.monotonic() >= deadline:
                    holder = self.holder()
                    # None: it was released since our last try, so the next one takes it
                    if holder is not None:
                        raise CDLError(
                            _in_use(self.home, holder),
                            "wait for it to finish, or stop it; read-only commands such as "
                            "`cdl scoring` still work",
                        )
                time.sleep(_POLL_S)
            since = datetime.now().astimezone().isoformat(timespec="seconds")
            info = {"pid": os.getpid(), "command": command, "since": since}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode() + b"\n", 0)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _in_use(home: Path, holder: Holder) -> str:
    if holder["pid"] is None:
        return f"CDL_HOME {home} is in use by another process (it holds {home / LOCK_NAME})"
    when = holder["since"] or "?"
    try:
        started = datetime.fromisoformat(when)
        today = started.date() == datetime.now(started.tzinfo).date()
        when = started.strftime("%H:%M:%S" if today else "%Y-%m-%d %H:%M:%S")
    except ValueError:
        pass
    return f"CDL_HOME {home} is in use by `{holder['command']}` (pid {holder['pid']}, since {when})"


def _parse_holder(raw: bytes) -> Holder | None:
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    pid, command, since = info.get("pid"), info.get("command"), info.get("since")
    if not (isinstance(pid, int) and pid > 0 and isinstance(command, str)):
        return None
    return Holder(pid=pid, command=command, since=since if isinstance(since, str) else None)


def alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs; an exited child of ours is reaped (it would read as
    alive until then)."""
    if pid is None or pid <= 0:
        return False
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temp_path(path: Path) -> Path:
    # the name is cut so prefix + token stay within NAME_MAX
    return path.with_name(f"{TEMP_PREFIX}{path.name[:100]}.{secrets.token_hex(6)}")


def _write_temp(path: Path, data: bytes, mode: int | None) -> Path:
    """`data` in a new, synced file beside `path`; `mode` exact, or None for 0o666 less umask."""
    temp = _temp_path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    fd = os.open(temp, flags, 0o666 if mode is None else mode)
    try:
        with open(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under root: a renamed tree is only as durable as them."""
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                _fsync_tree(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                fd = os.open(entry.path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
    _fsync_dir(root)


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return None
    path_at = [ctypes.c_int, ctypes.c_char_p]
    function.argtypes = [*path_at, *path_at, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step; OSError(ENOSYS) where libc has no renameat2."""
    renameat2 = _renameat2()
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(a))
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def _swap_by_renames(staging: Path, target: Path) -> None:
    old = _temp_path(target)
    try:
        os.rename(target, old)
    except FileNotFoundError:
        # an unsupported flag can fail before the lookup that would have said ENOENT
        os.rename(staging, target)
        _fsync_dir(target.parent)
        return
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    _fsync_dir(target.parent)
    shutil.rmtree(old)
