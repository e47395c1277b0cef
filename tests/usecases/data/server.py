"""A file server on 127.0.0.1 for the fetch tests: byte ranges, ETags, and the misbehaviours
a download meets (a dropped connection, ranges ignored or answered at the wrong offset)."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from ...loopback import http_server

_RANGE = re.compile(r"bytes=(\d+)-")


@dataclass
class Served:
    body: bytes
    etag: str | None = '"v1"'
    drop_after: int | None = None  # send this many body bytes of the next response, then cut
    ranges: bool = True  # False: answer every request with the whole body (200)
    offset_error: int = 0  # added to the start of the range the server sends


@dataclass
class Request:
    path: str
    range: str | None
    if_range: str | None
    status: int
    sent: int  # body bytes written


@dataclass
class FileServer:
    files: dict[str, Served] = field(default_factory=dict)
    log: list[Request] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            served = server.files.get(self.path)
            asked, if_range = self.headers.get("Range"), self.headers.get("If-Range")
            # logged before answering: the client may be done before the handler returns
            if served is None:
                self._log(asked, if_range, 404, 9)
                self._answer(404, b"not found", {})
                return
            body, total = served.body, len(served.body)
            match = _RANGE.fullmatch(asked or "")
            honoured = (served.ranges and match is not None
                        and (if_range is None or if_range == served.etag))
            status, headers = 200, {"Content-Length": str(total)}
            if honoured and match is not None:
                start = int(match[1])
                if start >= total:
                    self._log(asked, if_range, 416, 0)
                    self._answer(416, b"", {"Content-Range": f"bytes */{total}"}, served)
                    return
                start = min(start + served.offset_error, total - 1)
                status, body = 206, body[start:]
                headers = {"Content-Length": str(len(body)),
                           "Content-Range": f"bytes {start}-{total - 1}/{total}"}
            sent = len(body) if served.drop_after is None else min(served.drop_after, len(body))
            served.drop_after = None
            self._log(asked, if_range, status, sent)
            self._answer(status, body[:sent], headers, served, declared=True)
            if sent < len(body):
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def _answer(self, status: int, body: bytes, headers: dict[str, str],
                    served: Served | None = None, declared: bool = False) -> None:
            self.send_response(status)
            if served is not None and served.etag and served.ranges:
                self.send_header("ETag", served.etag)
            if served is not None and served.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if not declared:
                headers = {**headers, "Content-Length": str(len(body))}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _log(self, asked: str | None, if_range: str | None, status: int, sent: int) -> None:
            server.log.append(Request(self.path, asked, if_range, status, sent))

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # the test reads `server.log`, not stderr

    return Handler


@contextmanager
def file_server() -> Iterator[FileServer]:
    """A `FileServer` listening on 127.0.0.1 (a free port) until the block ends."""
    state = FileServer()
    with http_server(_handler(state)) as url:
        state.port = int(url.rsplit(":", 1)[1])
        yield state
