"""The cdl-smoke release under mocks: it trains (train.enabled) on the platform as a Pod sees it
(platform.json), reaches what the other releases deploy, gets its credentials only from Secrets
in its own namespace, starts after every tool it drives, and the stack exports the same
platform."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pulumi.runtime.mocks import MockMonitor

from stacks.platform import pins
from stacks.platform.labels import ADMIN_SECRET
from stacks.platform.serving import MODEL_STORAGE_SECRET
from stacks.platform.wiring import (
    S3_SECRET,
    USECASES_DB,
    Namespace,
    role_secret,
)
from tests.charts.upstream import defaults
from tests.stacks.conftest import VALID, Run
from tests.stacks.platform.conftest import RELEASE, SECRET, Deploy, Deployment, is_secret, plain

IMAGE = f"localhost:32000/cdl:{pins.CDL_VERSION}"
# platform.json for `cdl:domain` alone: what `cdl smoke --outputs` reads in the Job.
DEFAULT_PLATFORM = {
    "urls": {
        "determined": "http://determined-master-service-determined.cdl-training.svc.cluster.local:8080",
        "labels": "http://label-studio-ls-app.cdl-labels.svc.cluster.local",
        "pachyderm": "http://pachyderm-proxy.cdl-data.svc.cluster.local",
        "minio": "http://minio.cdl-storage.svc.cluster.local:9000",
    },
    "determinedMaster":
        "http://determined-master-service-determined.cdl-training.svc.cluster.local:8080",
    "s3Endpoint": "http://minio.cdl-storage.svc.cluster.local:9000",
    "images": {"cpu": f"{IMAGE}-cpu", "gpu": f"{IMAGE}-gpu"},
    "pachd": "grpc://pachd.cdl-data.svc.cluster.local:30650",
    "database": {"host": "cdl-pg-rw.cdl-db.svc.cluster.local", "port": 5432, "dbname": "cdl",
                 "user": "cdl"},
    "serving": "seldon",
    "modelsNamespace": "cdl-models",
}
# The variables `cdl smoke --outputs` reads its credentials from (usecases/cluster/run.py).
CREDENTIAL_ENV = {"CDL_DETERMINED_USER", "CDL_DETERMINED_PASSWORD", "CDL_S3_ACCESS_KEY",
                  "CDL_S3_SECRET_KEY", "CDL_DATABASE_PASSWORD", "CDL_LABEL_STUDIO_TOKEN"}
# Stack output → platform.json key, where the two carry the same value.
SAME_AS_PLATFORM_JSON = {"pachd": "pachd", "database": "database", "serving": "serving",
                         "models_namespace": "modelsNamespace", "s3_endpoint": "s3Endpoint",
                         "images": "images"}


def _platform(run: Deployment) -> dict[str, Any]:
    return run.values("cdl-smoke")["platform"]


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield node


def test_the_smoke_trains_on_the_platform_as_a_pod_sees_it(deploy: Deploy) -> None:
    run = deploy()
    values = run.values("cdl-smoke")
    assert values["train"] == {"enabled": True, "modelsNamespace": "cdl-models",
                               "activeDeadlineSeconds": 5400}
    assert values["platform"] == DEFAULT_PLATFORM
    # Helm waits for the hook Job longer than the Job may run: a training still within its
    # deadline is not cut off (and rolled back) by the release's own timeout
    assert run.releases()["cdl-smoke"].inputs["timeout"] > 5400


@pytest.mark.parametrize("serving", ["seldon", "kserve"])
def test_platform_json_names_what_the_other_releases_deploy(deploy: Deploy,
                                                            serving: str) -> None:
    run = deploy({"serving": serving})
    platform = _platform(run)
    releases = run.releases()
    # Determined: the service the Ingress sends the UI to
    (ingress,) = run.of("kubernetes:networking.k8s.io/v1:Ingress")
    backend = ingress.inputs["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    master = (f"http://{backend['name']}.{ingress.inputs['metadata']['namespace']}"
              f".svc.cluster.local:{int(backend['port']['number'])}")
    assert platform["determinedMaster"] == platform["urls"]["determined"] == master
    # Label Studio's app Service and pachd's gRPC port, as the pinned charts' defaults have them
    labels = releases["label-studio"].inputs
    # (the URL leaves out the chart's HTTP port, 80)
    assert defaults(pins.LABEL_STUDIO.upstream or "")["app"]["service"]["port"] == 80
    assert platform["urls"]["labels"] == (f"http://{labels['name']}-ls-app."
                                          f"{labels['namespace']}.svc.cluster.local")
    pachd = defaults(pins.PACHYDERM.upstream or "")["pachd"]["service"]["apiGRPCPort"]
    assert "service" not in run.values("pachyderm")["pachd"]
    assert platform["pachd"] == (f"grpc://pachd.{releases['pachyderm'].inputs['namespace']}"
                                 f".svc.cluster.local:{pachd}")
    # the use cases' database: the one CloudNativePG bootstraps, on the host the tools use
    (cluster,) = run.custom("Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    pg = run.values("label-studio")["global"]["pgConfig"]
    assert platform["database"] == {"host": pg["host"], "port": pg["port"],
                                    "dbname": initdb["database"], "user": initdb["owner"]}
    # the S3 endpoint and namespace the served models' Secret gives cdl-model
    storage = run.secret(Namespace.MODELS, MODEL_STORAGE_SECRET)
    assert platform["s3Endpoint"] == f"http://{plain(storage['stringData'])['endpoint']}"
    assert platform["modelsNamespace"] == storage["metadata"]["namespace"]
    assert platform["serving"] == serving
    assert run.values("cdl-smoke")["train"]["modelsNamespace"] == platform["modelsNamespace"]


def test_the_smoke_gets_each_credential_the_tools_use_from_secrets_in_its_namespace(
        deploy: Deploy) -> None:
    full = deploy()
    env = {e["name"]: (e["secretName"], e["key"]) for e in full.values("cdl-smoke")["env"]}
    assert set(env) == CREDENTIAL_ENV

    def given(name: str) -> str:
        secret_name, key = env[name]
        data = full.secret(Namespace.SMOKE, secret_name)["stringData"]
        assert is_secret(data) or is_secret(data[key]), name
        return str(plain(data)[key])

    credentials = full.outputs["credentials"]
    determined = full.values("determined")
    minio_user = plain(full.secret(Namespace.STORAGE, S3_SECRET)["stringData"])
    database = plain(full.secret(Namespace.DATABASE, role_secret(USECASES_DB.owner))
                     ["stringData"])
    studio = full.values("label-studio")["global"]
    token = studio["extraEnvironmentSecrets"]["LABEL_STUDIO_USER_TOKEN"]
    assert given("CDL_DETERMINED_USER") == credentials["determined"]["username"]
    assert given("CDL_DETERMINED_PASSWORD") == determined["initialUserPassword"]
    assert given("CDL_S3_ACCESS_KEY") == minio_user["accessKey"]
    assert given("CDL_S3_SECRET_KEY") == minio_user["secretKey"]
    assert given("CDL_DATABASE_PASSWORD") == database["password"]
    assert token["secretName"] == ADMIN_SECRET
    assert given("CDL_LABEL_STUDIO_TOKEN") == plain(full.secret(
        Namespace.LABELS, ADMIN_SECRET)["stringData"])[token["secretKey"]]
    assert given("CDL_LABEL_STUDIO_TOKEN") == credentials["labelStudio"]["token"]
    # Label Studio 1.23 accepts that token only with legacy API tokens on
    assert studio["extraEnvironmentVars"]["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] is True


def test_no_credential_reaches_the_smoke_values(deploy: Deploy) -> None:
    external = {"objectStore": "external", "objectStoreEndpoint": "s3.example.org:443"}
    for run in (deploy(), deploy(external, object_store_access_key="external-access-key-1",
                                 object_store_secret_key="external-secret-key-1")):
        credentials = set(_leaves(run.outputs["credentials"]))
        assert not set(_leaves(run.values("cdl-smoke"))) & credentials
        assert not is_secret(run.releases()["cdl-smoke"].inputs["values"])


@pytest.mark.parametrize("serving", ["seldon", "kserve"])
def test_the_stack_outputs_the_platform_json_values(deploy: Deploy, serving: str) -> None:
    run = deploy({"serving": serving})
    platform = _platform(run)
    for output, key in SAME_AS_PLATFORM_JSON.items():
        assert run.outputs[output] == platform[key], output


def test_the_program_exports_them_beside_the_other_outputs(
        run_program: Callable[[dict[str, Any]], Run]) -> None:
    run = run_program({**VALID, "domain": "cdl.example.org", "serving": "kserve"})
    (smoke,) = [r for r in run.of(RELEASE) if r.inputs["name"] == "cdl-smoke"]
    platform = plain(smoke.inputs["values"])["platform"]
    for key in ("pachd", "database", "serving", "modelsNamespace", "s3Endpoint", "images"):
        assert run.exports[key] == platform[key], key
    assert {"urls", "credentials", "determinedMaster"} <= set(run.exports)


@pytest.fixture
def dependencies(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], set[str]]:
    """(type, name) → the names of the resources it was registered to wait for."""
    found: dict[tuple[str, str], set[str]] = {}
    register = MockMonitor.RegisterResource

    def record(self: MockMonitor, request: Any) -> Any:
        found[(request.type, request.name)] = {urn.rsplit("::", 1)[-1]
                                               for urn in request.dependencies}
        return register(self, request)

    monkeypatch.setattr(MockMonitor, "RegisterResource", record)
    return found


@pytest.mark.parametrize(("serving", "operator"), [("seldon", "seldon-core"),
                                                   ("kserve", "kserve")])
def test_the_smoke_starts_after_every_tool_it_drives(deploy: Deploy,
                                                     dependencies: dict[tuple[str, str],
                                                                        set[str]],
                                                     serving: str, operator: str) -> None:
    deploy({"serving": serving})
    waits_for = dependencies[(RELEASE, "cdl-smoke")]
    tools = {"determined", "pachyderm", "label-studio", "minio", operator, "cdl-pg"}
    assert tools <= waits_for
    secrets = {f"{Namespace.SMOKE}-{name}" for name in (
        S3_SECRET, role_secret(USECASES_DB.owner), "determined-admin", "label-studio-token")}
    assert {name for (typ, name) in dependencies if typ == SECRET
            and name.startswith(f"{Namespace.SMOKE}-")} == secrets
    assert secrets <= waits_for
