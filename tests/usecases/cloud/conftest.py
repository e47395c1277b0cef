"""An HTTP server on 127.0.0.1 that answers openstacksdk with OpenStack responses shaped after
the OpenStack API reference (api_reference.py); none was recorded from a cloud.

It routes the handful of requests the preflight makes (token, version documents, networks,
images, flavors and extra specs, limits, quota details) and filters by name the way the real
services do; everything else gets a 404 and is listed in ``unmatched``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import openstack
import pytest
from openstack.connection import Connection

from tests.loopback import http_server
from tests.usecases.cloud import api_reference

PASSWORD = "contract-test-password"
Response = tuple[int, dict[str, Any] | None, dict[str, str]]


@dataclass
class ReferenceCloud:
    """What the project holds; tests change it to stage a failure."""

    base: str = ""
    networks: list[dict[str, Any]] = field(default_factory=lambda: [
        api_reference.network("public", api_reference.EXTERNAL_NET_ID, external=True),
        api_reference.network("internal", "0f6c4b1e-2a3d-4c5e-8f9a-b0c1d2e3f4a5",
                              external=False)])
    images: list[dict[str, Any]] = field(default_factory=lambda: [
        api_reference.image("Ubuntu 22.04", api_reference.IMAGE_ID)])
    flavors: list[dict[str, Any]] = field(default_factory=lambda: [
        api_reference.flavor("g1.t4", api_reference.GPU_FLAVOR_ID, 32, 131072, 40),
        api_reference.flavor("m1.small", api_reference.SMALL_FLAVOR_ID, 2, 4096, 20),
        api_reference.flavor("m1.xlarge", api_reference.PLAIN_LARGE_FLAVOR_ID, 16, 32768,
                             160)])
    extra_specs: dict[str, dict[str, str]] = field(default_factory=lambda: {
        api_reference.GPU_FLAVOR_ID: {"pci_passthrough:alias": "t4:1",
                                      "hw:cpu_policy": "dedicated"},
        api_reference.SMALL_FLAVOR_ID: {},
        api_reference.PLAIN_LARGE_FLAVOR_ID: {"hw:mem_page_size": "1GB"}})
    compute_limits: dict[str, Any] = field(default_factory=lambda: api_reference.compute_limits(
        instances=(10, 1), cores=(100, 2), ram=(262144, 4096)))
    volume_limits: dict[str, Any] = field(default_factory=lambda: api_reference.volume_limits(
        volumes=(10, 1), gigabytes=(1000, 50)))
    network_quota: dict[str, Any] = field(default_factory=lambda:
                                          api_reference.network_quota_details((10, 1, 0)))
    requests: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    def connect(self, password: str = PASSWORD) -> Connection:
        return openstack.connect(
            auth_url=f"{self.base}/identity/v3", username="cdl", password=password,
            project_name="cdl", user_domain_name="Default", project_domain_name="Default",
            region_name="RegionOne", load_yaml_config=False, load_envvars=False)

    def env(self) -> dict[str, str]:
        """The OS_* variables an openrc file would set for this project."""
        return {"OS_AUTH_URL": f"{self.base}/identity/v3", "OS_USERNAME": "cdl",
                "OS_PASSWORD": PASSWORD, "OS_PROJECT_NAME": "cdl",
                "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
                "OS_REGION_NAME": "RegionOne", "OS_IDENTITY_API_VERSION": "3"}

    def respond(self, method: str, target: str, body: bytes) -> Response:
        url = urlsplit(target)
        path, query = url.path.rstrip("/"), parse_qs(url.query)
        self.requests.append(f"{method} {target}")
        parts = path.strip("/").split("/")
        found = self._route(method, path, parts, query, body)
        if found is None:
            self.unmatched.append(f"{method} {target}")
            return 404, {"error": {"code": 404, "message": "not found"}}, {}
        return found

    def _route(self, method: str, path: str, parts: list[str], query: dict[str, list[str]],
               body: bytes) -> Response | None:
        base = self.base
        if method == "POST" and path == "/identity/v3/auth/tokens":
            sent = json.loads(body)["auth"]["identity"]["password"]["user"]["password"]
            if sent != PASSWORD:
                return 401, api_reference.UNAUTHORIZED, {}
            return 201, api_reference.token(base), {"X-Subject-Token": "gAAAAABreferencetoken"}
        if method != "GET":
            return None
        versions = {"/identity/v3": api_reference.version_identity,
                    "/compute/v2.1": api_reference.version_compute,
                    "/compute": api_reference.version_compute,
                    "/network": api_reference.version_network,
                    "/image": api_reference.version_image,
                    "/volume": api_reference.version_volume,
                    "/volume/v3": api_reference.version_volume}
        if path in versions:
            return 200, versions[path](base), {}
        if parts[:3] == ["compute", "v2.1", "flavors"]:
            return self._flavors(parts[3:])
        if path == "/compute/v2.1/limits":
            return 200, self.compute_limits, {}
        if parts[:3] == ["network", "v2.0", "networks"]:
            return self._named(parts[3:], query, self.networks, "network", 404)
        if parts[:3] == ["network", "v2.0", "quotas"] and parts[-1] in ("details",
                                                                        "details.json"):
            return 200, self.network_quota, {}
        if parts[:3] == ["image", "v2", "images"]:
            return self._named(parts[3:], query, self.images, "image", 404, wrap=False)
        if path == f"/volume/v3/{api_reference.PROJECT_ID}/limits":
            return 200, self.volume_limits, {}
        return None

    def _flavors(self, rest: list[str]) -> Response:
        if rest == ["detail"]:
            return 200, {"flavors": self.flavors}, {}
        by_id = {f["id"]: f for f in self.flavors}
        if not rest or rest[0] not in by_id:
            return 404, {"itemNotFound": {"code": 404, "message": "Flavor could not be found."}}, {}
        if rest[1:] == ["os-extra_specs"]:
            return 200, {"extra_specs": self.extra_specs[rest[0]]}, {}
        return 200, {"flavor": by_id[rest[0]]}, {}

    @staticmethod
    def _named(rest: list[str], query: dict[str, list[str]], items: list[dict[str, Any]],
               kind: str, missing: int, wrap: bool = True) -> Response:
        if rest:
            match = [item for item in items if item["id"] == rest[0]]
            if not match:
                return missing, {"NeutronError": {"type": f"{kind.title()}NotFound",
                                                  "message": f"{kind} {rest[0]} not found",
                                                  "detail": ""}}, {}
            return 200, ({kind: match[0]} if wrap else match[0]), {}
        names = query.get("name")
        listed = [item for item in items if not names or item["name"] in names]
        page: dict[str, Any] = {f"{kind}s": listed}
        if kind == "image":
            page.update(schema="/v2/schemas/images", first="/v2/images")
        return 200, page, {}


class _Handler(BaseHTTPRequestHandler):
    cloud: ReferenceCloud

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        status, body, headers = self.cloud.respond(self.command, self.path,
                                                   self.rfile.read(length))
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: requests are kept in ReferenceCloud.requests."""


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[ReferenceCloud]:
    state = ReferenceCloud()
    handler = type("Handler", (_Handler,), {"cloud": state})
    for name in [n for n in os.environ if n.startswith("OS_")]:
        monkeypatch.delenv(name)
    with http_server(handler) as state.base:
        yield state
