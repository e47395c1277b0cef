"""A download resumes what an earlier one left, and starts over whenever resuming would mix
bytes of two files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from usecases.data.download import discard, download, sidecar
from usecases.errors import CDLError

from .server import FileServer, Served, file_server

BODY = bytes(range(256)) * 400  # 100 KiB: several chunks
LIMIT = 1 << 20


@pytest.fixture
def server() -> Iterator[FileServer]:
    with file_server() as running:
        running.files["/f"] = Served(BODY)
        yield running


def test_a_whole_download_lands_in_the_part(server: FileServer, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    seen: list[tuple[int, int | None]] = []
    download(server.url("/f"), part, LIMIT, lambda have, total: seen.append((have, total)))
    assert part.read_bytes() == BODY
    assert seen[-1] == (len(BODY), len(BODY))
    assert json.loads(sidecar(part).read_text())["etag"] == '"v1"'


def test_a_dropped_connection_keeps_its_bytes_and_the_next_call_asks_only_for_the_rest(
        server: FileServer, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    server.files["/f"].drop_after = 30_000
    with pytest.raises(CDLError, match="stopped after 30000 of 102400 bytes"):
        download(server.url("/f"), part, LIMIT)
    assert part.stat().st_size == 30_000
    download(server.url("/f"), part, LIMIT)
    assert part.read_bytes() == BODY
    last = server.log[-1]
    assert (last.range, last.if_range, last.status, last.sent) == (
        "bytes=30000-", '"v1"', 206, len(BODY) - 30_000)


@pytest.mark.parametrize("misbehaviour", ["ranges ignored", "wrong offset", "file replaced"])
def test_a_resume_the_server_does_not_honour_starts_over(
        server: FileServer, tmp_path: Path, misbehaviour: str) -> None:
    part = tmp_path / "f.part"
    server.files["/f"].drop_after = 30_000
    with pytest.raises(CDLError):
        download(server.url("/f"), part, LIMIT)
    served = server.files["/f"]
    if misbehaviour == "ranges ignored":
        served.ranges = False
    elif misbehaviour == "wrong offset":
        served.offset_error = 7
    else:
        served.body, served.etag = BODY[::-1], '"v2"'
    download(server.url("/f"), part, LIMIT)
    assert part.read_bytes() == served.body
    last = server.log[-1]
    assert (last.status, last.sent) == (200, len(BODY))
    if misbehaviour == "wrong offset":  # the 206 from byte 30007 was dropped, then asked anew
        assert server.log[-2].status == 206 and last.range is None


def test_a_part_from_another_url_is_not_resumed(server: FileServer, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    server.files["/g"] = Served(BODY[::-1])
    server.files["/f"].drop_after = 30_000
    with pytest.raises(CDLError):
        download(server.url("/f"), part, LIMIT)
    download(server.url("/g"), part, LIMIT)
    assert part.read_bytes() == BODY[::-1]
    assert server.log[-1].range is None


def test_a_complete_part_is_confirmed_without_a_body(server: FileServer, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    download(server.url("/f"), part, LIMIT)
    download(server.url("/f"), part, LIMIT)
    assert part.read_bytes() == BODY
    assert (server.log[-1].status, server.log[-1].sent) == (416, 0)


def test_http_errors_and_oversized_files_are_one_line_errors(
        server: FileServer, tmp_path: Path) -> None:
    part = tmp_path / "f.part"
    with pytest.raises(CDLError, match="answered HTTP 404"):
        download(server.url("/missing"), part, LIMIT)
    with pytest.raises(CDLError, match="more than the 1000 expected"):
        download(server.url("/f"), part, 1000)
    assert not part.exists() and not sidecar(part).exists()


def test_an_unreachable_server_is_a_one_line_error(tmp_path: Path) -> None:
    with file_server() as gone:
        url = gone.url("/f")
    with pytest.raises(CDLError, match="could not reach") as raised:
        download(url, tmp_path / "f.part", LIMIT)
    assert "\n" not in str(raised.value)
    discard(tmp_path / "f.part")
