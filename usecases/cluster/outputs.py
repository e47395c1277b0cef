"""The platform as `pulumi up` left it: the stack's outputs, read from the Pulumi CLI
(``pulumi stack output --json --show-secrets``) or from a file of the same shape, for a machine
without the CLI. The keys are the ones ``stacks/__main__.py`` exports; charts/cdl-smoke renders
the same shape with in-cluster addresses for its Job, without credentials.

Each credential is read from the environment first, then from the outputs' ``credentials``
(the Job gets them as environment variables from Secrets). Two addresses can be replaced from
the environment, for a run from outside the cluster through port-forwards: pachd's gRPC
(``CDL_PACHD_ADDRESS``) and the use cases' database (``CDL_DATABASE_URL``, a libpq URL or
conninfo, its password included)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usecases.errors import CDLError

_SAVE = "pulumi stack output --json --show-secrets > outputs.json"


@dataclass(frozen=True)
class Platform:
    """What the smoke needs of a deployed platform. The credentials stay in memory: never
    printed, logged or written."""

    urls: dict[str, str]  # determined, labels, pachyderm, minio (when the platform runs it)
    determined_master: str
    s3_endpoint: str
    images: dict[str, str]  # cpu, gpu: CDL's image as the cluster pulls it
    credentials: dict[str, Any]
    pachd: str | None = None  # grpc://HOST:PORT (in-cluster)
    database: dict[str, Any] | None = None  # host, port, dbname, user of the use cases' tables
    serving: str = "seldon"  # or kserve: what a cdl-model release creates
    models_namespace: str = "cdl-models"
    kubeconfig: str | None = None  # the stack's; None in the cluster (the Job's account)

    def secret(self, env: str, *path: str) -> str | None:
        """A credential: ``env`` when set, else ``credentials[path[0]][path[1]]...``."""
        if os.environ.get(env):
            return os.environ[env]
        found: Any = self.credentials
        for key in path:
            found = found.get(key) if isinstance(found, dict) else None
        return str(found) if found else None

    def plan(self, timeout: float) -> dict[str, Any]:
        """The checks that every tool the smoke drives answers, through the ingress. A
        status of None takes any HTTP answer (the service is there; its root needs no
        particular page)."""
        checks = [{"name": "determined-master", "url": f"{self.determined_master}/info",
                   "status": 200}]
        if "labels" in self.urls:
            checks.append({"name": "label-studio", "url": f"{self.urls['labels']}/health",
                           "status": 200})
        if "pachyderm" in self.urls:
            checks.append({"name": "pachyderm", "url": self.urls["pachyderm"], "status": None})
        if "minio" in self.urls:
            checks.append({"name": "minio", "url": f"{self.urls['minio']}/minio/health/live",
                           "status": 200})
        return {"checks": checks, "models": [], "timeoutSeconds": timeout}


def parse(outputs: dict[str, Any], where: str) -> Platform:
    """The platform from a stack's outputs; a CDLError naming the key that is missing."""
    if "urls" not in outputs or "determinedMaster" not in outputs:
        raise CDLError(f"{where} has no platform outputs (no 'urls', 'determinedMaster'): "
                       "the tool stack was not deployed",
                       "set cdl:domain and run `pulumi up`, then pass that stack")
    missing = [key for key in ("s3Endpoint", "images") if key not in outputs]
    if missing:
        raise CDLError(f"{where} lacks the output(s) {', '.join(missing)}",
                       "run `pulumi up` with this version of the program, then save its "
                       f"outputs again ({_SAVE})")
    kubeconfig = outputs.get("kubeconfig")
    return Platform(dict(outputs["urls"]), str(outputs["determinedMaster"]).rstrip("/"),
                    str(outputs["s3Endpoint"]), dict(outputs["images"]),
                    dict(outputs.get("credentials") or {}),
                    pachd=outputs.get("pachd"), database=outputs.get("database"),
                    serving=str(outputs.get("serving", "seldon")),
                    models_namespace=str(outputs.get("modelsNamespace", "cdl-models")),
                    kubeconfig=kubeconfig if isinstance(kubeconfig, str) else
                    (json.dumps(kubeconfig) if kubeconfig else None))


def from_file(path: Path) -> Platform:
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise CDLError(f"outputs file {path} does not exist", f"write it with `{_SAVE}`"
                       ) from None
    except (OSError, ValueError) as exc:
        raise CDLError(f"outputs file {path} is not readable JSON ({type(exc).__name__})",
                       f"write it again with `{_SAVE}`") from None
    if not isinstance(body, dict):
        raise CDLError(f"outputs file {path} is not a JSON object of stack outputs",
                       f"write it with `{_SAVE}`")
    return parse(body, f"outputs file {path}")


def from_stack(stack: str) -> Platform:
    """The outputs of a Pulumi stack, through the Pulumi CLI in this folder's project."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise CDLError("the Pulumi CLI is not installed here",
                       f"on a machine that has it, run `{_SAVE}`, then pass --outputs FILE")
    try:
        done = subprocess.run([pulumi, "stack", "output", "--json", "--show-secrets",
                               "--stack", stack], capture_output=True, text=True, timeout=120,
                              check=False)
    except subprocess.TimeoutExpired:
        raise CDLError(f"`pulumi stack output --stack {stack}` did not answer in 120 s",
                       "check the Pulumi backend is reachable (`pulumi whoami`)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise CDLError(f"pulumi could not read stack {stack}'s outputs: {last}",
                       "check the stack's name (`pulumi stack ls`) and the backend login")
    return parse(json.loads(done.stdout), f"stack {stack}")
