"""charts/cdl-smoke's training smoke (train.enabled, as the platform installs it): the checks
first, then `cdl smoke --outputs` with credentials from Secrets only, under a service account
whose Role reaches the models' namespace and nothing else. Every object it renders also goes
through kubernetes-validate --strict in test_charts.py (ci/train-values.yaml)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.charts.conftest import CHARTS, Render, RenderError

CHART = CHARTS / "cdl-smoke"
TRAIN = CHART / "ci" / "train-values.yaml"
RELEASE_NAMESPACE = "cdl-smoke"
PLAN = ["cdl", "smoke", "--plan", "/etc/cdl-smoke/plan.json"]
OUTPUTS = ["cdl", "smoke", "--outputs", "/etc/cdl-smoke/platform.json"]
# What helm needs to install, wait for, test and remove charts/cdl-model releases (one
# SeldonDeployment or InferenceService and a `helm test` Pod each), release records kept as
# ConfigMaps: (API group, resource) → verbs. Anything wider fails the RBAC test.
MODEL_VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}
GRANTED = {
    ("machinelearning.seldon.io", "seldondeployments"): MODEL_VERBS,
    ("serving.kserve.io", "inferenceservices"): MODEL_VERBS,
    ("", "pods"): {"get", "list", "watch", "create", "delete"},
    ("", "services"): {"get", "list", "watch"},
    ("", "configmaps"): {"get", "list", "create", "update", "patch", "delete"},
}


def _render(render: Render, *values: Any, sets: dict[str, str] | None = None
            ) -> list[dict[str, Any]]:
    return render("cdl-smoke", *(values or (TRAIN,)), sets=sets, namespace=RELEASE_NAMESPACE)


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def _job_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(objects, "Job")["spec"]["template"]["spec"]


def _secret_env(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {e["name"]: (e["valueFrom"]["secretKeyRef"]["name"],
                        e["valueFrom"]["secretKeyRef"]["key"])
            for e in container.get("env", []) if "valueFrom" in e}


def test_the_job_checks_first_then_trains_on_the_platform_file(render: Render) -> None:
    settings = yaml.safe_load(TRAIN.read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    objects = _render(render)
    job, pod = _one(objects, "Job"), _job_pod(objects)
    (plan, data), (smoke,) = pod["initContainers"], pod["containers"]
    assert plan["command"] == PLAN
    # the raw BBC articles fetched (and verified) into the scratch folder the smoke reads
    assert data["command"] == ["cdl", "data", "fetch", "bbc", "--dest", "/tmp/datasets"]
    assert {"name": "CDL_DATASETS", "value": "/tmp/datasets"} in smoke["env"]
    assert smoke["command"] == OUTPUTS
    config = _one(objects, "ConfigMap")
    assert json.loads(config["data"]["platform.json"]) == settings["platform"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    assert {i["key"]: i["path"] for i in volume["configMap"]["items"]} == {
        "plan.json": "plan.json", "platform.json": "platform.json"}
    for container in (plan, smoke):
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
        assert mount == {"name": volume["name"], "mountPath": "/etc/cdl-smoke", "readOnly": True}
    # training's deadline and CPU/memory; the checks keep their small container
    assert job["spec"]["activeDeadlineSeconds"] == defaults["train"]["activeDeadlineSeconds"]
    assert smoke["resources"] == defaults["train"]["resources"]
    assert plan["resources"] == defaults["resources"]


def test_keep_leaves_the_served_models_installed(render: Render) -> None:
    (smoke,) = _job_pod(_render(render, sets={"train.keep": "true"}))["containers"]
    assert smoke["command"] == [*OUTPUTS, "--keep"]


def test_credentials_reach_the_training_container_only_from_secrets(render: Render) -> None:
    settings = yaml.safe_load(TRAIN.read_text())
    pod = _job_pod(_render(render))
    (plan, data), (smoke,) = pod["initContainers"], pod["containers"]
    assert _secret_env(smoke) == {e["name"]: (e["secretName"], e["key"])
                                  for e in settings["env"]}
    plain = {e["name"]: e["value"] for e in smoke["env"] if "value" in e}
    # Helm's release records as ConfigMaps: the account needs no access to Secrets
    assert plain == {"HOME": "/tmp", "CDL_HOME": "/tmp/cdl", "CDL_DATASETS": "/tmp/datasets",
                     "HELM_DRIVER": "configmap"}
    assert not _secret_env(plan) and not _secret_env(data)


def test_the_bbc_archive_can_come_from_a_copy_inside_the_network(render: Render) -> None:
    url = "https://files.example.internal/bbc-fulltext.zip"
    _, data = _job_pod(_render(render, sets={"train.bbcUrl": url}))["initContainers"]
    assert {"name": "CDL_BBC_URL", "value": url} in data["env"]


def test_both_containers_run_unprivileged_writing_only_to_scratch(render: Render) -> None:
    pod = _job_pod(_render(render))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    scratch = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in (*pod["initContainers"], *pod["containers"]):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        writable = [m["mountPath"] for m in container["volumeMounts"] if m["name"] in scratch]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        for variable in ("HOME", "CDL_HOME"):
            assert any(env[variable].startswith(path) for path in writable), variable


def test_helm_test_runs_the_checks_only(render: Render) -> None:
    objects = _render(render)
    (test,) = [o for o in objects
               if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]
    pod = test["spec"]
    (container,) = pod["containers"]
    assert container["command"] == PLAN
    assert "initContainers" not in pod and "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False
    assert not _secret_env(container)


def test_the_jobs_account_reaches_only_what_helm_needs_in_the_models_namespace(
        render: Render) -> None:
    objects = _render(render)
    assert not {o["kind"] for o in objects} & {"ClusterRole", "ClusterRoleBinding"}
    account, role, binding = (_one(objects, k) for k in ("ServiceAccount", "Role",
                                                         "RoleBinding"))
    # the token only in the Job's pod, which runs under this account
    assert account["automountServiceAccountToken"] is False
    pod = _job_pod(objects)
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "cdl-models"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": RELEASE_NAMESPACE}]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert not any("*" in (group, resource, *verbs)
                   for (group, resource), verbs in granted.items())
    assert not any(resource.startswith("secrets") for _, resource in granted)
    assert granted == GRANTED


def test_the_role_follows_the_models_namespace_the_smoke_deploys_to(render: Render) -> None:
    objects = _render(render, sets={"train.modelsNamespace": "models-b",
                                    "platform.modelsNamespace": "models-b"})
    assert {_one(objects, k)["metadata"]["namespace"] for k in ("Role", "RoleBinding")} == {
        "models-b"}
    with pytest.raises(RenderError, match="differ"):
        _render(render, sets={"train.modelsNamespace": "models-b"})


def test_without_training_the_job_runs_the_checks_alone_with_no_account(render: Render) -> None:
    objects = _render(render, CHART / "ci" / "platform-values.yaml")
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "Job", "Pod"]
    assert set(_one(objects, "ConfigMap")["data"]) == {"plan.json"}
    job = _one(objects, "Job")
    assert job["spec"]["activeDeadlineSeconds"] == 600
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == PLAN
    assert "initContainers" not in pod and "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize(("sets", "message"), [
    # platform.json is a ConfigMap: no key for a credential
    ({"platform.database.password": "pw"}, "password"),
    ({"platform.credentials.s3": "key"}, "credentials"),
    # an env entry names a Secret's key; it cannot carry the value
    ({"env[0].value": "pw"}, "value"),
    ({"platform.serving": "triton"}, "serving"),
])
def test_the_schema_keeps_credentials_out_of_the_values(render: Render, sets: dict[str, str],
                                                        message: str) -> None:
    with pytest.raises(RenderError, match="values don't meet the specifications") as refused:
        _render(render, sets=sets)
    assert message in str(refused.value)


def test_training_needs_the_whole_platform(render: Render) -> None:
    with pytest.raises(RenderError, match="values don't meet the specifications") as refused:
        _render(render, CHART / "ci" / "platform-values.yaml", sets={"train.enabled": "true"})
    for key in ("urls", "determinedMaster", "pachd", "database", "serving"):
        assert key in str(refused.value)
