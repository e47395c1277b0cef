"""Crash-safe state: atomic files and directories, leftovers, the one-writer lock of CDL_HOME."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from usecases import state as state_module
from usecases.errors import CDLError
from usecases.state import (
    LOCK_NAME,
    TEMP_PREFIX,
    State,
    atomic_write,
    leftovers,
    replace_dir,
    staged_dir,
)

REPO = Path(__file__).resolve().parents[2]
BIG = 4 * 1024 * 1024

HOLD = """
import sys
from usecases.state import State
with State.from_env(sys.argv[1]).writer(sys.argv[2]):
    print("holding", flush=True)
    sys.stdin.readline()
"""

TRY = """
import sys
from usecases.errors import CDLError
from usecases.state import State
try:
    with State.from_env(sys.argv[1]).writer("cdl train", wait=float(sys.argv[2])):
        print("acquired")
except CDLError as error:
    print(error)
"""


def python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def expect_line(child: subprocess.Popen[str], line: str) -> None:
    assert child.stdout is not None
    assert child.stdout.readline().strip() == line


def try_writer(home: Path, wait: float = 0.0) -> str:
    child = python(TRY, str(home), str(wait))
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    return out.strip()


def hold(home: Path, command: str) -> subprocess.Popen[str]:
    child = python(HOLD, str(home), command)
    expect_line(child, "holding")
    return child


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


# --- atomic_write ----------------------------------------------------------------------------


def test_atomic_write_killed_after_writing_the_temp_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "dataset.json"
    target.write_bytes(b"old")
    # The child stalls in the fsync of its fully written temp file, before the rename.
    child = python(
        """
import os, sys, time
from pathlib import Path
from usecases.state import atomic_write
def stall(fd):
    print("written", flush=True)
    time.sleep(600)
os.fsync = stall
atomic_write(Path(sys.argv[1]), b"n" * int(sys.argv[2]))
""",
        str(target),
        str(BIG),
    )
    expect_line(child, "written")
    [temp] = leftovers(tmp_path)
    assert temp.stat().st_size == BIG
    kill(child)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == [temp]
    assert temp.name.startswith(TEMP_PREFIX) and temp.parent == tmp_path


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3, 0.5])
def test_atomic_write_killed_at_any_moment_leaves_a_whole_file(
    tmp_path: Path, delay: float
) -> None:
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    # Without fsync (that is for power loss) the loop spends its time writing data, so most
    # kills land mid-write.
    child = python(
        """
import os, sys
from pathlib import Path
from usecases.state import atomic_write
os.fsync = lambda fd: None
target, size = Path(sys.argv[1]), int(sys.argv[2])
a, b = b"A" * size, b"B" * size
print("started", flush=True)
while True:
    atomic_write(target, a)
    atomic_write(target, b)
""",
        str(target),
        str(BIG),
    )
    expect_line(child, "started")
    time.sleep(delay)
    kill(child)
    assert target.read_bytes() in (b"old", b"A" * BIG, b"B" * BIG)
    assert len(leftovers(tmp_path)) <= 1


def test_atomic_write_keeps_permissions_and_encodes_text(tmp_path: Path) -> None:
    target = tmp_path / "token"
    target.write_text("x")
    target.chmod(0o600)
    atomic_write(target, "naïve")
    assert target.read_bytes() == "naïve".encode()
    assert target.stat().st_mode & 0o777 == 0o600
    assert leftovers(tmp_path) == []


# --- replace_dir -----------------------------------------------------------------------------

READER = """
import json, sys
from pathlib import Path
path, stop = Path(sys.argv[1]) / "model.bin", Path(sys.argv[2])
reads, missing, partial, seen = 0, 0, 0, set()
print("ready", flush=True)
while not stop.exists():
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        missing += 1
        continue
    reads += 1
    if len(data) < 8 or data != data[:8] * (len(data) // 8) or len(data) != int(sys.argv[3]):
        partial += 1
    seen.add(data[:8].decode(errors="replace"))
print(json.dumps({"reads": reads, "missing": missing, "partial": partial, "seen": len(seen)}))
"""

CHUNKS = 8192


def version(n: int) -> bytes:
    return f"{n:08d}".encode() * CHUNKS


def test_replace_dir_never_shows_a_reader_a_missing_or_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "models" / "bbc"
    target.parent.mkdir()
    with staged_dir(target) as staging:
        (staging / "model.bin").write_bytes(version(0))
    stop = tmp_path / "stop"
    reader = python(READER, str(target), str(stop), str(len(version(0))))
    expect_line(reader, "ready")
    for n in range(1, 201):
        with staged_dir(target) as staging:
            (staging / "model.bin").write_bytes(version(n))
            (staging / "settings.json").write_text(json.dumps({"version": n}))
    stop.touch()
    out, _ = reader.communicate(timeout=60)
    seen = json.loads(out)
    assert seen["missing"] == 0 and seen["partial"] == 0
    assert seen["seen"] >= 2, f"the reader never overlapped a swap: {seen}"
    assert (target / "model.bin").read_bytes() == version(200)
    assert json.loads((target / "settings.json").read_text()) == {"version": 200}
    assert leftovers(tmp_path) == []


def test_replace_dir_creates_a_missing_target_from_a_staging_dir_elsewhere(tmp_path: Path) -> None:
    staging = tmp_path / "build" / "out"
    (staging / "nested").mkdir(parents=True)
    (staging / "nested" / "weights").write_bytes(b"w")
    target = tmp_path / "models" / "fmnist"
    target.parent.mkdir()
    replace_dir(staging, target)
    assert (target / "nested" / "weights").read_bytes() == b"w"
    assert not staging.exists()
    assert leftovers(tmp_path) == []


def test_replace_dir_without_rename_exchange_still_replaces_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unsupported(a: Path, b: Path) -> None:
        raise OSError(errno.EINVAL, "RENAME_EXCHANGE not supported", str(a))

    monkeypatch.setattr(state_module, "_exchange", unsupported)
    target = tmp_path / "bbc"
    for n in range(3):
        with staged_dir(target) as staging:
            (staging / "model.bin").write_bytes(version(n))
    assert [p.name for p in tmp_path.iterdir()] == ["bbc"]
    assert (target / "model.bin").read_bytes() == version(2)


def test_a_failed_staged_dir_leaves_the_target_alone(tmp_path: Path) -> None:
    target = tmp_path / "bbc"
    with staged_dir(target) as staging:
        (staging / "model.bin").write_bytes(b"good")
    with pytest.raises(RuntimeError), staged_dir(target) as staging:
        (staging / "model.bin").write_bytes(b"half")
        raise RuntimeError("packaging failed")
    assert (target / "model.bin").read_bytes() == b"good"
    assert leftovers(tmp_path) == []


def test_replace_dir_refuses_a_file_as_target(tmp_path: Path) -> None:
    (tmp_path / "staging").mkdir()
    (tmp_path / "target").write_text("a file")
    with pytest.raises(NotADirectoryError):
        replace_dir(tmp_path / "staging", tmp_path / "target")
    assert (tmp_path / "target").read_text() == "a file"


def test_leftovers_reports_a_staging_tree_once_and_not_its_contents(tmp_path: Path) -> None:
    stale = tmp_path / "models" / f"{TEMP_PREFIX}bbc.0123"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / f"{TEMP_PREFIX}x").write_text("")
    (tmp_path / "models" / "bbc").mkdir()
    (tmp_path / "models" / "bbc" / "model.bin").write_text("")
    assert leftovers(tmp_path) == [stale]


# --- secrets ---------------------------------------------------------------------------------


def test_a_secret_is_private_stable_and_never_replaced(tmp_path: Path) -> None:
    state = State.from_env(tmp_path)
    first = state.secret("postgres-password")
    assert state.secret("postgres-password") == first and len(first) >= 24
    assert (state.secrets / "postgres-password").stat().st_mode & 0o777 == 0o600
    (state.secrets / "given").write_text("chosen\n")
    assert state.secret("given") == "chosen"
    assert leftovers(tmp_path) == []


# --- the writer lock -------------------------------------------------------------------------


def test_a_second_process_is_refused_with_the_holders_pid_and_command(tmp_path: Path) -> None:
    state = State.from_env(tmp_path)
    with state.writer("cdl demo"):
        message = try_writer(tmp_path)
    assert re.fullmatch(
        rf"CDL_HOME {re.escape(str(state.home))} is in use by `cdl demo` "
        rf"\(pid {os.getpid()}, since \d\d:\d\d:\d\d\)\. Fix: wait for it to finish, or stop it; "
        r"read-only commands such as `cdl scoring` still work",
        message,
    ), message
    assert try_writer(tmp_path) == "acquired"


def test_a_writer_waits_for_the_holder_to_finish(tmp_path: Path) -> None:
    state = State.from_env(tmp_path)
    holder = hold(tmp_path, "cdl demo")
    assert holder.stdin is not None
    with pytest.raises(CDLError, match=f"pid {holder.pid}"), state.writer("cdl train", wait=0.3):
        pass
    released: list[float] = []

    def release() -> None:
        released.append(time.monotonic())
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()

    timer = threading.Timer(0.5, release)
    timer.start()
    with state.writer("cdl train", wait=30):
        acquired = time.monotonic()
        info = state.holder()
        assert info is not None and info["pid"] == os.getpid() and info["command"] == "cdl train"
    timer.join()
    assert released and released[0] <= acquired
    assert holder.wait(timeout=30) == 0


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    state = State.from_env(tmp_path)
    holder = hold(tmp_path, "cdl demo")
    info = state.holder()
    assert info is not None and info["pid"] == holder.pid and info["command"] == "cdl demo"
    kill(holder)
    # The killed holder's name is still in the file; only the flock says whether it is held.
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    assert state.holder() is None
    with state.writer("cdl demo"):
        info = state.holder()
        assert info is not None and info["pid"] == os.getpid()


def test_nested_writers_in_one_process_share_the_lock(tmp_path: Path) -> None:
    state = State.from_env(tmp_path)
    assert state.holder() is None
    with state.writer("cdl demo"):
        with State.from_env(tmp_path).writer("cdl train"):
            info = state.holder()
            assert info is not None and info["pid"] == os.getpid()
            assert info["command"] == "cdl demo"
        assert "in use by `cdl demo`" in try_writer(tmp_path)
    assert state.holder() is None
    assert try_writer(tmp_path) == "acquired"
