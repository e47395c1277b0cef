"""The Platform under mocks: pinned releases in their namespaces, secrets by reference, the
wiring between tools, the serving and object-store switches, the outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from policies.rules import CHART_HELD_CREDENTIALS
from stacks.platform import pins
from stacks.platform.wiring import Bucket, Namespace
from tests.charts.conftest import CHARTS, HELM, run_helm
from tests.charts.upstream import iter_documents, validate_custom_resource, validate_manifest
from tests.stacks.platform.conftest import (
    NAMESPACE,
    RUNNER_TOKEN,
    SECRET,
    Deploy,
    Deployment,
    is_secret,
    plain,
)

GITLAB = {"gitlabUrl": "https://gitlab.example.org"}
# Releases whose chart takes no existing Secret for some credential (the policy pack's default
# allowlist names the values): each is passed as a Pulumi secret (encrypted in the state) and
# the chart writes it into a Secret of its own.
CHART_HELD = {entry.chart for entry in CHART_HELD_CREDENTIALS}
WELL_KNOWN = {"postgres", "console123", "minio123", "miniokey", "insecure-user-password",
              "insecure-root-password"}
EXPECTED_NAMESPACE = {
    "cert-manager": Namespace.TLS, "cloudnative-pg": Namespace.DATABASE_OPERATOR,
    "minio": Namespace.STORAGE, "pachyderm": Namespace.DATA, "label-studio": Namespace.LABELS,
    "determined": Namespace.TRAINING, "seldon-core": Namespace.SERVING_SYSTEM,
    "kserve-crd": Namespace.SERVING_SYSTEM, "kserve": Namespace.SERVING_SYSTEM,
    "gitlab-runner": Namespace.CI, "cdl-smoke": Namespace.SMOKE,
}


@pytest.fixture
def full(deploy: Deploy) -> Deployment:
    return deploy({**GITLAB, "acmeEmail": "ops@example.org"}, gitlab_admin_token="glpat-admin")


def _walk(node: Any, path: tuple[str, ...] = ()) -> Any:
    """(path, value) for every leaf."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, (*path, str(key)))
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, path)
    else:
        yield path, node


def _at(values: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        values = values[key]
    return values


def test_every_release_pins_a_chart_version_from_the_pins_module(full: Deployment) -> None:
    own = pins.own_chart("cdl-smoke")
    by_chart = {(p.chart, p.version) for p in pins.CHARTS} | {("cdl-smoke", own.version)}
    assert full.releases()["cdl-smoke"].inputs["chart"] == own.chart
    for name, release in full.releases().items():
        chart = release.inputs["chart"].rsplit("/", 1)[-1]
        assert release.inputs.get("version"), f"{name} floats on the newest chart"
        assert (chart, release.inputs["version"]) in by_chart, name


def test_every_release_sits_in_its_concerns_namespace(full: Deployment) -> None:
    declared = {r.inputs["metadata"]["name"] for r in full.of(NAMESPACE)}
    for name, release in full.releases().items():
        assert release.inputs["namespace"] == EXPECTED_NAMESPACE[name]
        assert release.inputs["namespace"] in declared


def test_resources_have_requests_and_limits_and_no_gpu_outside_training(full: Deployment
                                                                        ) -> None:
    for name in full.releases():
        values = full.values(name)
        blocks = [block for path, block in _walk_dicts(values) if path[-1:] == ("resources",)]
        for block in blocks:
            assert set(block) == {"requests", "limits"}, f"{name}: {block}"
        assert "nvidia.com/gpu" not in json.dumps([b for b in blocks]), name
    sizes = {"determined": "masterMemLimit", "seldon-core": "manager"}
    for name, key in sizes.items():
        assert key in full.values(name)


def _walk_dicts(node: Any, path: tuple[str, ...] = ()) -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk_dicts(value, (*path, str(key)))
    elif isinstance(node, list):
        for value in node:
            yield from _walk_dicts(value, path)


def test_generated_credentials_reach_releases_only_by_reference(full: Deployment) -> None:
    secrets = full.generated() | {RUNNER_TOKEN}
    for name, release in full.releases().items():
        leaves = {value for _, value in _walk(full.values(name))}
        if name in CHART_HELD:
            assert leaves & secrets, name
            assert is_secret(release.inputs["values"]), f"{name}: values not a Pulumi secret"
        else:
            assert not leaves & secrets, f"{name} carries a credential in its values"


def test_every_secret_holding_a_credential_is_a_pulumi_secret(full: Deployment) -> None:
    secrets = full.generated() | {RUNNER_TOKEN}
    for resource in full.of(SECRET):
        data = plain(resource.inputs["stringData"])
        if set(data.values()) & secrets:
            assert is_secret(resource.inputs["stringData"]) or all(
                is_secret(v) for k, v in resource.inputs["stringData"].items()
                if plain(v) in secrets), resource.name


def test_referenced_secrets_exist_in_the_releases_namespace(full: Deployment) -> None:
    references = {
        "minio": ["existingSecret", "users"],
        "pachyderm": ["global.postgresql.postgresqlExistingSecretName"],
        "label-studio": ["global.pgConfig.password.secretName",
                         "global.persistence.config.s3.accessKeyExistingSecret",
                         "global.persistence.config.s3.secretKeyExistingSecret",
                         "global.extraEnvironmentSecrets"],
        "gitlab-runner": ["runners.secret"],
    }
    for release, paths in references.items():
        values, namespace = full.values(release), EXPECTED_NAMESPACE[release]
        for path in paths:
            found = _at(values, path)
            names = ([found] if isinstance(found, str)
                     else [leaf for key, leaf in _walk(found) if key[-1].lower().endswith(
                         ("secret", "secretname"))])
            assert names, (release, path)
            for secret_name in names:
                full.secret(namespace, secret_name)


def test_no_well_known_credential_anywhere(full: Deployment) -> None:
    for name in full.releases():
        for path, value in _walk(full.values(name)):
            if any(word in path[-1].lower() for word in ("password", "secretkey", "rootuser")):
                assert value not in WELL_KNOWN, (name, path)
    for resource in full.of(SECRET):
        assert not set(plain(resource.inputs["stringData"]).values()) & WELL_KNOWN


def test_database_hosts_are_the_cnpg_read_write_service(full: Deployment) -> None:
    (cluster,) = full.custom("Cluster")
    host = (f"{cluster['metadata']['name']}-rw.{cluster['metadata']['namespace']}"
            ".svc.cluster.local")
    assert full.values("determined")["db"]["hostAddress"] == host
    assert full.values("pachyderm")["global"]["postgresql"]["postgresqlHost"] == host
    assert full.values("label-studio")["global"]["pgConfig"]["host"] == host


def test_each_tool_logs_in_as_a_managed_role_owning_its_database(full: Deployment) -> None:
    (cluster,) = full.custom("Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    owners = {db["spec"]["name"]: db["spec"]["owner"] for db in full.custom("Database")}
    owners[initdb["database"]] = initdb["owner"]
    roles = {r["name"]: r["passwordSecret"]["name"] for r in cluster["spec"]["managed"]["roles"]}
    roles[initdb["owner"]] = initdb["secret"]["name"]
    det = full.values("determined")["db"]
    pach = full.values("pachyderm")["global"]["postgresql"]
    ls = full.values("label-studio")["global"]["pgConfig"]
    uses = [(det["name"], det["user"]), (pach["postgresqlDatabase"], pach["postgresqlUsername"]),
            (pach["identityDatabaseFullNameOverride"], pach["postgresqlUsername"]),
            (ls["dbName"], ls["userName"])]
    for database, user in uses:
        assert owners[database] == user
    db_ns = cluster["metadata"]["namespace"]
    password = {role: plain(full.secret(db_ns, secret)["stringData"])["password"]
                for role, secret in roles.items()}
    assert det["password"] == password[det["user"]]
    for namespace, role, secret in [(Namespace.DATA, pach["postgresqlUsername"],
                                     pach["postgresqlExistingSecretName"]),
                                    (Namespace.LABELS, ls["userName"],
                                     ls["password"]["secretName"])]:
        copy = plain(full.secret(namespace, secret)["stringData"])
        assert copy == {"username": role, "password": password[role]}


def test_bucket_names_and_endpoints_agree_across_tools(full: Deployment) -> None:
    minio = full.values("minio")
    created = {bucket["name"] for bucket in minio["buckets"]}
    det = full.values("determined")["checkpointStorage"]
    pach = full.values("pachyderm")["pachd"]["storage"]["minio"]
    ls = full.values("label-studio")["global"]["persistence"]["config"]["s3"]
    (cluster,) = full.custom("Cluster")
    barman = cluster["spec"]["backup"]["barmanObjectStore"]
    used = {det["bucket"], pach["bucket"], ls["bucket"],
            barman["destinationPath"].removeprefix("s3://").strip("/")}
    assert used <= created
    assert len(used) == 4, "two tools share a bucket"
    assert Bucket.MODELS in created
    endpoint = f"minio.{Namespace.STORAGE}.svc.cluster.local:9000"
    assert full.releases()["minio"].inputs["namespace"] == Namespace.STORAGE
    assert {det["endpointUrl"], ls["endpointUrl"], barman["endpointURL"],
            f"http://{pach['endpoint']}"} == {f"http://{endpoint}"}
    assert full.outputs["s3_endpoint"] == f"http://{endpoint}"


@pytest.mark.parametrize("serving", ["seldon", "kserve"])
def test_the_serving_switch_changes_what_is_deployed(deploy: Deploy, serving: str) -> None:
    run = deploy({"serving": serving})
    releases = set(run.releases())
    if serving == "seldon":
        assert "seldon-core" in releases and not releases & {"kserve", "kserve-crd"}
        assert run.releases()["seldon-core"].inputs["version"] == "1.17.1"
    else:
        assert {"kserve", "kserve-crd"} <= releases and "seldon-core" not in releases
        kserve = run.values("kserve")["kserve"]["controller"]
        assert kserve["deploymentMode"] == "RawDeployment"
    # charts/cdl-model reads the models' bucket through this Secret under either operator.
    storage = plain(run.secret(Namespace.MODELS, "cdl-model-storage")["stringData"])
    assert set(storage) == {"accessKey", "secretKey", "endpoint"}
    assert f"http://{storage['endpoint']}" == run.outputs["s3_endpoint"]
    # and records Scoring Data in the use cases' database, as the role that owns it
    (cluster,) = run.custom("Cluster")
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    dsn = conninfo_to_dict(plain(run.secret(Namespace.MODELS, "cdl-scoring")["stringData"])[
        "dsn"])
    assert dsn["dbname"] == initdb["database"] and dsn["user"] == initdb["owner"]
    assert dsn["host"] == run.values("label-studio")["global"]["pgConfig"]["host"]
    assert dsn["password"] == plain(run.secret(Namespace.DATABASE, f"cdl-pg-{dsn['user']}")[
        "stringData"])["password"]
    expected_rest = {"cert-manager", "cloudnative-pg", "minio", "pachyderm", "label-studio",
                     "determined"}
    assert expected_rest <= releases


def test_an_external_object_store_replaces_minio(deploy: Deploy) -> None:
    run = deploy({"objectStore": "external", "objectStoreEndpoint": "s3.example.org:443"},
                 object_store_access_key="ext-access", object_store_secret_key="ext-secret")
    assert "minio" not in run.releases()
    assert run.values("determined")["checkpointStorage"]["endpointUrl"] == "http://s3.example.org:443"
    assert run.values("pachyderm")["pachd"]["storage"]["minio"]["endpoint"] == "s3.example.org:443"
    assert "minio" not in run.outputs["urls"]
    assert "minio" not in run.outputs["credentials"]
    assert plain(run.secret(Namespace.LABELS, "cdl-s3")["stringData"])["secretKey"] == "ext-secret"


def test_outputs_name_every_ui_and_keep_credentials_secret(full: Deployment) -> None:
    assert full.outputs["urls"] == {tool: f"https://{tool}.cdl.example.org"
                                    for tool in ("determined", "labels", "pachyderm", "minio")}
    assert full.outputs["determined_master"] == "https://determined.cdl.example.org"
    assert full.outputs["credentials_secret"] is True
    assert set(full.outputs["credentials"]) == {"determined", "labelStudio", "s3", "postgres",
                                                "minio"}


@pytest.mark.parametrize("kind", ["Cluster", "Database", "ScheduledBackup", "ClusterIssuer",
                                  "Certificate"])
def test_custom_resources_match_their_crd_schemas(full: Deployment, kind: str) -> None:
    resources = full.custom(kind)
    assert resources
    for resource in resources:
        validate_custom_resource(resource)


def test_acme_is_optional_and_the_self_signed_ca_is_the_default(deploy: Deploy) -> None:
    issuers = {r["metadata"]["name"] for r in deploy().custom("ClusterIssuer")}
    assert issuers == {"cdl-selfsigned", "cdl-ca"}
    annotations = deploy().values("label-studio")["app"]["ingress"]["annotations"]
    assert annotations == {"cert-manager.io/cluster-issuer": "cdl-ca"}


def test_every_ui_is_behind_the_ingress_with_tls(full: Deployment) -> None:
    (ingress,) = full.of("kubernetes:networking.k8s.io/v1:Ingress")
    manifest = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": ingress.inputs["metadata"], "spec": ingress.inputs["spec"]}
    validate_manifest(manifest)
    assert manifest["spec"]["tls"][0]["hosts"] == ["determined.cdl.example.org"]
    minio = full.values("minio")["consoleIngress"]
    ls = full.values("label-studio")["app"]["ingress"]
    pach = full.values("pachyderm")["ingress"]
    assert minio["enabled"] and minio["tls"] and ls["enabled"] and ls["tls"]
    assert pach["enabled"] and pach["tls"]["enabled"]
    for notes in (minio["annotations"], ls["annotations"], pach["annotations"],
                  manifest["metadata"]["annotations"]):
        assert notes["cert-manager.io/cluster-issuer"] == "cdl-acme"


def test_no_service_is_opened_to_the_world(full: Deployment) -> None:
    assert not full.of("kubernetes:core/v1:Service")
    for name in full.releases():
        for path, value in _walk(full.values(name)):
            if path[-1] == "type" and len(path) > 1 and "service" in path[-2].lower():
                assert value == "ClusterIP", (name, path)
    assert full.values("minio")["mode"] == "standalone"
    assert "ingress" not in full.values("minio") or not full.values("minio")["ingress"]


def test_the_gitlab_runner_needs_a_url_and_an_api_token(deploy: Deploy, full: Deployment
                                                        ) -> None:
    assert "gitlab-runner" not in deploy(GITLAB).releases()
    assert "gitlab-runner" not in deploy(gitlab_admin_token="glpat").releases()
    token = full.secret(Namespace.CI, "gitlab-runner-token")
    assert plain(token["stringData"])["runner-token"] == RUNNER_TOKEN
    (runner,) = full.of("pulumi-python:dynamic:Resource")
    assert is_secret(runner.inputs["admin_token"])
    assert runner.inputs["url"] == GITLAB["gitlabUrl"]


def test_the_runner_registers_with_the_token_made_on_the_gitlab_host(deploy: Deploy) -> None:
    """The default path: the gitlab role created the runner (no admin token); its token
    reaches the runner's Secret, secret all the way, and no API call creates another."""
    run = deploy(GITLAB, gitlab_runner_token="glrt-made-on-the-host")
    assert "gitlab-runner" in run.releases()
    token = run.secret(Namespace.CI, "gitlab-runner-token")
    assert is_secret(token["stringData"])
    assert plain(token["stringData"])["runner-token"] == "glrt-made-on-the-host"
    assert not run.of("pulumi-python:dynamic:Resource")
    assert "gitlab-runner" not in deploy(gitlab_runner_token="glrt-x").releases()  # no URL


@pytest.mark.parametrize("object_store", ["minio", "external"])
def test_the_smoke_runs_last_against_the_platforms_own_endpoints(deploy: Deploy, tmp_path: Path,
                                                                object_store: str) -> None:
    """The release renders with our chart (a real helm) into valid objects whose plan names
    the services the platform deployed."""
    external = {"objectStore": "external", "objectStoreEndpoint": "s3.example.org:443"}
    run = deploy(external if object_store == "external" else {},
                 object_store_access_key="a", object_store_secret_key="s")
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(run.values("cdl-smoke")))
    if not HELM.exists():
        pytest.fail(f"no helm binary at {HELM}: run scripts/helm.sh")
    done = run_helm(HELM, "template", "cdl-smoke", str(CHARTS / "cdl-smoke"), "-f", str(values),
                    "--namespace", Namespace.SMOKE)
    assert done.returncode == 0, done.stderr
    objects = list(iter_documents(done.stdout))
    for obj in objects:
        validate_manifest(obj)
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    checks = {c["name"]: c["url"] for c in json.loads(config["data"]["plan.json"])["checks"]}
    # The Determined chart names its service determined-master-service-<release>.
    assert checks["determined-master"] == ("http://determined-master-service-determined."
                                           f"{Namespace.TRAINING}.svc.cluster.local:8080/info")
    assert ("minio" in checks) == (object_store == "minio")
    # `cdl smoke --plan`, then `cdl smoke --outputs`, in CDL's pinned image from the stack's
    # registry
    (job,) = [o for o in objects if o["kind"] == "Job"]
    pod = job["spec"]["template"]["spec"]
    (plan, data), (smoke,) = pod["initContainers"], pod["containers"]
    for container in (plan, data, smoke):
        assert container["image"] == pins.cdl_image(pins.DEFAULT_IMAGE_REGISTRY, "cpu").ref
    assert plan["command"][:3] == ["cdl", "smoke", "--plan"]
    assert smoke["command"][:3] == ["cdl", "smoke", "--outputs"]


def test_the_cluster_steps_image_comes_from_the_pins_and_the_stacks_registry(
        deploy: Deploy) -> None:
    """One place names CDL's image: pins.py, with the registry cdl:imageRegistry sets; the
    smoke release and the stack output `images` (what cdl smoke submits trials with) agree."""
    run = deploy({"imageRegistry": "registry.example.org:5050/ml/cdl-project"})
    expected = {v: f"registry.example.org:5050/ml/cdl-project/cdl:{pins.CDL_VERSION}-{v}"
                for v in ("cpu", "gpu")}
    assert run.outputs["images"] == expected
    image = run.values("cdl-smoke")["image"]
    assert f"{image['repository']}:{image['tag']}" == expected["cpu"]
