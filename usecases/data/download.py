"""One HTTP download into a ``.part`` file that survives interruption and resumes.

The part file is only ever appended to at the offset the server confirms (``Content-Range``);
whatever the server says otherwise (no range support, another offset, a changed file) starts
it over. Next to it, ``<part>.json`` records where the bytes came from, so a part is never
resumed from another URL or from a file the server has since replaced (``If-Range``). What
the bytes are is for the caller to verify: this only promises they are what the server sent.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import urllib3
from urllib3.exceptions import HTTPError

from usecases.errors import CDLError
from usecases.state import atomic_write

CHUNK_BYTES = 1 << 16
# a stalled read fails and leaves the part to resume
TIMEOUT = urllib3.Timeout(connect=15, read=60)
# redirects followed (a publisher may move to https); a failure is the user's to retry, with
# the part kept, rather than a retry of ours that would start the body over
RETRIES = urllib3.Retry(total=5, connect=2, read=0, status=0, other=0, redirect=5,
                        raise_on_status=False)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")

Progress = Callable[[int, int | None], None]  # (bytes in the part, total or None if unknown)


@dataclass(frozen=True)
class Origin:
    """Where a part's bytes came from, as the first response described it."""

    url: str
    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def of(cls, url: str, response: urllib3.BaseHTTPResponse) -> Origin:
        etag = response.headers.get("ETag")
        # a weak ETag may not validate a byte range (RFC 9110 §13.1.5)
        return cls(url, etag if etag and not etag.startswith("W/") else None,
                   response.headers.get("Last-Modified"))

    @property
    def validator(self) -> str | None:
        return self.etag or self.last_modified


def sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def discard(part: Path) -> None:
    """Forget a part and its origin, so the next download starts over."""
    part.unlink(missing_ok=True)
    sidecar(part).unlink(missing_ok=True)


def download(url: str, part: Path, max_bytes: int, progress: Progress | None = None,
             fix: str = "run the same command again: it resumes where it stopped") -> None:
    """Complete `part` with the body of `url`, resuming what an earlier call left there.

    Returns once the part holds the whole body. A broken connection, a timeout or an HTTP
    error is a `CDLError` (with `fix` for the retry advice) and keeps the bytes received.
    """
    origin = _recorded(part, url)
    pool = urllib3.PoolManager(retries=RETRIES, timeout=TIMEOUT)
    # Two passes at most: a resume the server does not honour, then a clean start.
    for resume in (part.exists() and part.stat().st_size > 0 and origin is not None, False):
        if not resume:
            discard(part)
        have = part.stat().st_size if resume else 0
        headers = {"Accept-Encoding": "identity"}  # ranges count the bytes as stored
        if resume:
            headers["Range"] = f"bytes={have}-"
            if origin is not None and origin.validator:
                headers["If-Range"] = origin.validator
        try:
            response = pool.request("GET", url, headers=headers, preload_content=False)
        except HTTPError as exc:
            raise CDLError(f"could not reach {url} ({_reason(exc)})", fix) from None
        try:
            continues, total = _accepted(url, response, have)
            if not continues:
                # the refused answer's body must leave the connection before the pool reuses it
                # for the clean start (else that request reads these bytes as its answer)
                response.drain_conn()
                continue
            if response.status == 200:
                have = 0  # a server that ignores ranges sends it all again
                part.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(sidecar(part), json.dumps(asdict(Origin.of(url, response))))
            _receive(url, response, part, have, total, max_bytes, progress, fix)
            return
        finally:
            response.release_conn()
    raise CDLError(f"{url} does not serve a consistent file (its ranges do not add up)",
                   "try again later, or pass --url with another copy")


def _recorded(part: Path, url: str) -> Origin | None:
    try:
        origin = Origin(**json.loads(sidecar(part).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return origin if origin.url == url else None


def _accepted(url: str, response: urllib3.BaseHTTPResponse, have: int) -> tuple[bool, int | None]:
    """Whether the response continues the part from `have` (a 200 replaces it: also yes),
    and the body's total size (None: unknown)."""
    status = response.status
    if status == 200:
        length = response.headers.get("Content-Length", "")
        return True, int(length) if length.isdigit() else None
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        if match is None or int(match[1]) != have:
            return False, None
        return True, None if match[3] == "*" else int(match[3])
    if status == 416 and have:
        # asked past the end: the part is complete if the server's size is exactly its own
        match = _UNSATISFIED_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
        return match is not None and int(match[1]) == have, have
    raise CDLError(f"{url} answered HTTP {status} {response.reason or ''}".rstrip(),
                   "check the URL (--url) or try again later")


def _receive(url: str, response: urllib3.BaseHTTPResponse, part: Path, have: int, total: int | None,
             max_bytes: int, progress: Progress | None, fix: str) -> None:
    if total is not None and total > max_bytes:
        discard(part)
        raise CDLError(f"{url} is {total} bytes, more than the {max_bytes} expected",
                       "check the URL (--url): it does not serve this dataset")
    mode = "ab" if have else "wb"
    with open(part, mode) as out:
        if progress is not None:
            progress(have, total)
        try:
            # read1, not read: a read cut short by the connection keeps what did arrive
            while response.status != 416 and (chunk := response.read1(CHUNK_BYTES)):
                out.write(chunk)
                have += len(chunk)
                if have > max_bytes:
                    break
                if progress is not None:
                    progress(have, total)
        except (HTTPError, OSError) as exc:
            raise CDLError(f"the download of {url} stopped after {have} of "
                           f"{total if total is not None else '?'} bytes ({_reason(exc)})",
                           fix) from None
        finally:
            out.flush()
            os.fsync(out.fileno())
    if have > max_bytes:
        discard(part)
        raise CDLError(f"{url} sent more than the {max_bytes} bytes expected",
                       "check the URL (--url): it does not serve this dataset")
    if total is not None and have != total:
        raise CDLError(f"the download of {url} stopped after {have} of {total} "
                       "bytes (the connection closed early)", fix)


def _reason(exc: BaseException) -> str:
    """The innermost cause in a few words: urllib3 nests its reasons several levels deep."""
    cause = exc
    while True:
        reason = getattr(cause, "reason", None)
        inner = reason if isinstance(reason, BaseException) else next(
            (a for a in cause.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        cause = inner
    text = str(cause).splitlines()[0] if str(cause) else ""
    return f"{type(cause).__name__}: {text}"[:160] if text else type(cause).__name__
