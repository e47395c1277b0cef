"""An HTTP server on 127.0.0.1 that answers GitLab's pipeline trigger API the way GitLab's API
reference documents it (Pipeline trigger tokens API: "Trigger a pipeline with a token"); none
was recorded from a GitLab.

``POST /api/v4/projects/:id/trigger/pipeline`` with a project's trigger token and an existing
ref answers 201 with the pipeline it created (status ``created``, source ``trigger``); another
token, or an unknown project, 404 ``{"message": "404 Not Found"}`` (GitLab does not say which);
an unknown ref, 400 ``{"message": {"base": ["Reference not found"]}}``. Every request is kept.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from ...loopback import http_server

PROJECT_ID, PROJECT_PATH = 21, "cdl/cdl"
SHA = "91e2711a93e5d9e8dddfeb6d003b636b25bf6fc9"


@dataclass
class ReferenceGitLab:
    token: str
    refs: tuple[str, ...] = ("main",)
    base: str = ""
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def pipeline(self, number: int, ref: str) -> dict[str, Any]:
        at = "2026-12-03T01:12:49.068Z"
        return {"id": number, "iid": number - 139, "project_id": PROJECT_ID, "sha": SHA,
                "ref": ref, "status": "created", "source": "trigger", "created_at": at,
                "updated_at": at, "web_url": f"{self.base}/{PROJECT_PATH}/-/pipelines/{number}",
                "before_sha": "0" * 40, "tag": False, "yaml_errors": None, "user": None,
                "started_at": None, "finished_at": None, "committed_at": None,
                "duration": None, "queued_duration": None, "coverage": None}

    def respond(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        path = urlsplit(target).path
        sent = json.loads(body or b"{}")
        self.requests.append((method, path, sent))
        project = unquote(path.removeprefix("/api/v4/projects/").removesuffix(
            "/trigger/pipeline"))
        if method != "POST" or not path.endswith("/trigger/pipeline") or project not in (
                str(PROJECT_ID), PROJECT_PATH) or sent.get("token") != self.token:
            return 404, {"message": "404 Not Found"}
        if sent.get("ref") not in self.refs:
            return 400, {"message": {"base": ["Reference not found"]}}
        return 201, self.pipeline(257 + len(self.requests), sent["ref"])


class _Handler(BaseHTTPRequestHandler):
    gitlab: ReferenceGitLab

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        status, body = self.gitlab.respond(self.command, self.path, self.rfile.read(length))
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are kept in ReferenceGitLab.requests."""


@contextlib.contextmanager
def reference_gitlab(token: str) -> Iterator[ReferenceGitLab]:
    state = ReferenceGitLab(token)
    with http_server(type("Handler", (_Handler,), {"gitlab": state})) as state.base:
        yield state
