"""The platform smoke: every endpoint in the plan answers, every model is ready and infers.

Standard library only (it runs in a stock Python image). Reads the plan from PLAN (JSON),
prints one JSON line per check, exits 1 if any failed.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

Check = Callable[[dict[str, Any], float], "str | None"]


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
    if status != expected:
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


def main() -> None:
    plan = json.loads(os.environ["PLAN"])
    timeout = plan["timeoutSeconds"]
    failed = 0
    runs: list[tuple[str, dict[str, Any], Check]] = [
        ("endpoint", c, check_endpoint) for c in plan["checks"]]
    runs += [("model", m, check_model) for m in plan["models"]]
    for kind, item, run in runs:
        try:
            problem = run(item, timeout)
        except (OSError, ValueError) as error:
            problem = f"{type(error).__name__}: {error}"
        failed += problem is not None
        print(json.dumps({"kind": kind, "name": item["name"], "ok": problem is None,
                          "problem": problem}), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
