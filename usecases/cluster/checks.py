"""The platform's checks: every endpoint answers, every served model is ready and infers.

A plan is JSON: ``{"checks": [{"name", "url", "status"?}], "models": [{"name", "url",
"request", "minOutputs"?}], "timeoutSeconds"}``, as charts/cdl-smoke renders it for its Job
(in-cluster service names) and as ``cdl smoke --stack`` derives it from the stack's outputs
(the ingress URLs). The checks run in parallel, so a plan of unreachable endpoints fails within
one timeout. Standard library only: nothing heavy is imported for them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

Check = Callable[[dict[str, Any], float], "str | None"]


@dataclass(frozen=True)
class Result:
    kind: str  # "endpoint" | "model"
    name: str
    url: str
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "url": self.url, "ok": self.ok,
                "problem": self.problem}


def fetch(url: str, timeout: float, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def check_endpoint(check: dict[str, Any], timeout: float) -> str | None:
    status, _ = fetch(check["url"], timeout)
    expected = check.get("status", 200)
    if expected is not None and status != expected:  # None: any HTTP answer
        return f"HTTP {status}, expected {expected}"
    return None


def check_model(model: dict[str, Any], timeout: float) -> str | None:
    base = model["url"].rstrip("/")
    status, _ = fetch(base + "/ready", timeout)
    if status != 200:
        return f"not ready (HTTP {status})"
    status, body = fetch(base, timeout)
    if status != 200 or json.loads(body).get("name") != model["name"]:
        return f"metadata does not name {model['name']} (HTTP {status})"
    status, body = fetch(base + "/infer", timeout, model["request"])
    if status != 200:
        return f"inference failed (HTTP {status}): {body[:200]!r}"
    outputs = json.loads(body).get("outputs", [])
    if len(outputs) < model.get("minOutputs", 1):
        return f"{len(outputs)} outputs, expected at least {model.get('minOutputs', 1)}"
    return None


def _problem(run: Check, item: dict[str, Any], timeout: float) -> str | None:
    try:
        return run(item, timeout)
    except urllib.error.URLError as error:
        return f"unreachable: {error.reason}"
    except (OSError, ValueError) as error:  # timeouts, resets, a body that is not JSON
        return f"{type(error).__name__}: {error}"


def run_plan(plan: dict[str, Any]) -> list[Result]:
    """Every check of the plan, in the plan's order: endpoints, then models."""
    timeout = float(plan.get("timeoutSeconds", 10))
    runs: list[tuple[str, dict[str, Any], Check]] = [
        ("endpoint", c, check_endpoint) for c in plan.get("checks", [])]
    runs += [("model", m, check_model) for m in plan.get("models", [])]
    if not runs:
        return []
    with ThreadPoolExecutor(max_workers=min(len(runs), 16)) as pool:
        problems = list(pool.map(lambda run: _problem(run[2], run[1], timeout), runs))
    return [Result(kind, item["name"], item["url"], problem)
            for (kind, item, _), problem in zip(runs, problems, strict=True)]
