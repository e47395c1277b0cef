"""charts/cdl-smoke/files/smoke.py, the script the smoke Job runs, against a local HTTP server
that answers like an MLServer V2 endpoint and a tool's health URL.

A contract test: the server is a stand-in for the cluster services, written from the V2
inference protocol's paths and response shapes; the script is the real one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.charts.conftest import CHARTS

SCRIPT = CHARTS / "cdl-smoke" / "files" / "smoke.py"


class V2Handler(BaseHTTPRequestHandler):
    def _send(self, status: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (the handler's API)
        routes = {"/health": (200, {}), "/v2/models/bbc/ready": (200, {}),
                  "/v2/models/bbc": (200, {"name": "bbc", "versions": ["3"]}),
                  "/v2/models/cold/ready": (503, {})}
        self._send(*routes.get(self.path, (404, {"error": "not found"})))

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v2/models/bbc/infer" and request.get("inputs"):
            self._send(200, {"model_name": "bbc", "outputs": [
                {"name": "label", "shape": [1], "datatype": "BYTES", "data": ["business"]}]})
        else:
            self._send(400, {"error": "bad request"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), V2Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def smoke(plan: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run([sys.executable, str(SCRIPT)], env={"PLAN": json.dumps(plan)},
                          capture_output=True, text=True, timeout=60, check=False)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


REQUEST = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}


def test_a_healthy_platform_passes(server: str) -> None:
    code, report = smoke({"timeoutSeconds": 5,
                          "checks": [{"name": "tool", "url": f"{server}/health"}],
                          "models": [{"name": "bbc", "url": f"{server}/v2/models/bbc",
                                      "request": REQUEST}]})
    assert code == 0
    assert [(r["kind"], r["name"], r["ok"]) for r in report] == [
        ("endpoint", "tool", True), ("model", "bbc", True)]


def test_every_failure_is_reported_and_fails_the_job(server: str) -> None:
    code, report = smoke({"timeoutSeconds": 5,
                          "checks": [{"name": "gone", "url": f"{server}/nothing"},
                                     {"name": "closed", "url": "http://127.0.0.1:9/"}],
                          "models": [{"name": "cold", "url": f"{server}/v2/models/cold",
                                      "request": REQUEST},
                                     {"name": "bbc", "url": f"{server}/v2/models/bbc",
                                      "request": REQUEST, "minOutputs": 2}]})
    assert code == 1
    problems = {r["name"]: r["problem"] for r in report}
    assert problems["gone"] == "HTTP 404, expected 200"
    assert problems["closed"].startswith("URLError")
    assert problems["cold"] == "not ready (HTTP 503)"
    assert problems["bbc"] == "1 outputs, expected at least 2"
