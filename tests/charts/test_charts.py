"""Our charts under a real helm v3: lint and template for every supported value combination
(the files in each chart's ci/), every rendered object through kubernetes-validate --strict for
Kubernetes 1.33 or, for custom resources, through its CRD's schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.platform import pins
from stacks.platform.serving import MODEL_STORAGE_SECRET, SCORING_SECRET
from stacks.platform.wiring import DETERMINED_HOST, DETERMINED_PORT, MINIO_API_PORT, MINIO_HOST
from tests.charts.conftest import CHARTS, Render, RenderError, run_helm
from tests.charts.upstream import is_custom, validate_manifest

COMBINATIONS = sorted((chart.name, path.name) for chart in CHARTS.iterdir()
                      if chart.is_dir() for path in (chart / "ci").glob("*.yaml"))


def _ci(chart: str, name: str) -> Path:
    return CHARTS / chart / "ci" / name


def _model(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] in {"SeldonDeployment", "InferenceService"}]
    return found


def _pod(model: dict[str, Any]) -> dict[str, Any]:
    if model["kind"] == "SeldonDeployment":
        return model["spec"]["predictors"][0]["componentSpecs"][0]["spec"]
    return model["spec"]["predictor"]


def test_both_charts_have_supported_combinations() -> None:
    charts = {chart for chart, _ in COMBINATIONS}
    assert charts == {"cdl-model", "cdl-smoke"}
    assert len(COMBINATIONS) >= 6


@pytest.mark.parametrize(("chart", "values"), COMBINATIONS)
def test_helm_lint_is_clean(helm: Path, chart: str, values: str) -> None:
    done = run_helm(helm, "lint", "--strict", str(CHARTS / chart), "-f", str(_ci(chart, values)))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("chart", "values"), COMBINATIONS)
def test_every_rendered_object_is_valid_for_kubernetes_1_33(render: Render, chart: str,
                                                            values: str) -> None:
    objects = render(chart, _ci(chart, values))
    assert objects
    for obj in objects:
        validate_manifest(obj)
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "cdl"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize("values", ["seldon-values.yaml", "seldon-gpu-autoscaling-values.yaml",
                                    "kserve-values.yaml", "kserve-gpu-autoscaling-values.yaml"])
def test_the_model_is_served_the_way_the_values_say(render: Render, values: str) -> None:
    settings = yaml.safe_load(_ci("cdl-model", values).read_text())
    objects = render("cdl-model", _ci("cdl-model", values))
    model = _model(objects)
    assert is_custom(model)
    expected = {"seldon": "SeldonDeployment", "kserve": "InferenceService"}
    assert model["kind"] == expected[settings["serving"]]
    pod = _pod(model)
    (server,) = pod["containers"]
    (fetch,) = pod["initContainers"]
    gpu = settings.get("gpu", {}).get("enabled", False)
    assert (server["resources"]["limits"].get("nvidia.com/gpu") == 1) == gpu
    assert "nvidia.com/gpu" not in fetch["resources"]["limits"]
    assert server["command"] == ["mlserver", "start", "/mnt/models"]
    path = settings["model"]["uri"].removeprefix("s3://").rstrip("/")
    assert fetch["args"][-2:] == [f"store/{path}/", f"/mnt/models/{settings['model']['name']}/"]
    secrets = {e["valueFrom"]["secretKeyRef"]["name"] for e in fetch["env"] if "valueFrom" in e}
    assert secrets == {MODEL_STORAGE_SECRET}
    # Scoring Data: the server (only) gets the platform's database address, if it exists
    (scoring,) = [e for e in server["env"] if "valueFrom" in e]
    assert scoring == {"name": "CDL_SCORING_DSN", "valueFrom": {"secretKeyRef": {
        "name": SCORING_SECRET, "key": "dsn", "optional": True}}}
    auto = settings.get("autoscaling", {})
    if model["kind"] == "SeldonDeployment":
        predictor = model["spec"]["predictors"][0]
        assert model["spec"]["protocol"] == "v2"
        assert server["name"] == predictor["graph"]["name"] == settings["model"]["name"]
        hpa = model["spec"]["predictors"][0]["componentSpecs"][0].get("hpaSpec")
        assert (hpa is not None) == auto.get("enabled", False)
        assert ("replicas" in predictor) != auto.get("enabled", False)
    else:
        assert server["name"] == "kserve-container"
        replicas = settings.get("replicas", 1)
        low, high = ((auto["minReplicas"], auto["maxReplicas"]) if auto.get("enabled")
                     else (replicas, replicas))
        assert (pod["minReplicas"], pod["maxReplicas"]) == (low, high)
    (test,) = [o for o in objects if o["metadata"].get("annotations", {}).get(
        "helm.sh/hook") == "test"]
    url = next(e["value"] for e in test["spec"]["containers"][0]["env"]
               if e["name"] == "MODEL_URL")
    assert url.endswith(f"/v2/models/{settings['model']['name']}")


@pytest.mark.parametrize(("sets", "message"), [
    ({"serving": "triton"}, "serving"),
    ({"model.name": "BBC_model"}, "model.name"),
    ({"model.uri": "gs://bucket/bbc/1"}, "model.uri"),
    ({"replica": "2"}, "replica"),
    ({"gpu.count": "0"}, "gpu.count"),
])
def test_the_values_schema_refuses_what_the_chart_cannot_serve(render: Render,
                                                                sets: dict[str, str],
                                                                message: str) -> None:
    with pytest.raises(RenderError, match="values don't meet the specifications") as refused:
        render("cdl-model", _ci("cdl-model", "seldon-values.yaml"), sets=sets)
    assert message in str(refused.value)


def test_without_a_scoring_secret_the_model_records_nothing(render: Render) -> None:
    objects = render("cdl-model", _ci("cdl-model", "seldon-values.yaml"),
                     sets={"scoring.secretName": ""})
    (server,) = _pod(_model(objects))["containers"]
    assert "CDL_SCORING_DSN" not in {e["name"] for e in server["env"]}


def test_the_model_chart_needs_a_model(render: Render) -> None:
    with pytest.raises(RenderError) as refused:
        render("cdl-model")
    assert "model.name" in str(refused.value) and "model.uri" in str(refused.value)


def test_the_smoke_chart_needs_something_to_check(render: Render) -> None:
    with pytest.raises(RenderError, match="values don't meet the specifications"):
        render("cdl-smoke", sets={"checks": "null"})


def test_smoke_runs_as_hook_job_and_as_helm_test(render: Render) -> None:
    objects = render("cdl-smoke", _ci("cdl-smoke", "platform-values.yaml"))
    hooks = {o["kind"]: o["metadata"]["annotations"]["helm.sh/hook"] for o in objects
             if "helm.sh/hook" in o["metadata"].get("annotations", {})}
    assert hooks == {"Job": "post-install,post-upgrade", "Pod": "test"}
    (config,) = [o for o in objects if o["kind"] == "ConfigMap"]
    plan = json.loads(config["data"]["plan.json"])
    assert [c["name"] for c in plan["checks"]] == ["determined-master", "minio"]
    for pod in (o["spec"]["template"]["spec"] if o["kind"] == "Job" else o["spec"]
                for o in objects if o["kind"] in {"Job", "Pod"}):
        (container,) = pod["containers"]
        assert container["command"] == ["cdl", "smoke", "--plan", "/etc/cdl-smoke/plan.json"]
        # the plan is what the command reads; no token: the checks need no Kubernetes API
        assert {m["mountPath"] for m in container["volumeMounts"]} == {"/etc/cdl-smoke", "/tmp"}
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsUser"] == 10001


def test_chart_defaults_agree_with_the_pins_and_the_platform_wiring() -> None:
    """Our charts' default images are the pinned ones (CDL's own image from the default
    registry for the server and the smoke), their default endpoints the platform's."""
    model = yaml.safe_load((CHARTS / "cdl-model/values.yaml").read_text())
    smoke = yaml.safe_load((CHARTS / "cdl-smoke/values.yaml").read_text())
    cdl = pins.cdl_image(pins.DEFAULT_IMAGE_REGISTRY, "cpu")
    images = {name: (v["image"]["repository"], v["image"]["tag"]) for name, v in (
        ("server", model), ("fetcher", model["fetcher"]), ("test", model["test"]),
        ("smoke", smoke))}
    assert images == {"server": (cdl.repository, cdl.tag), "smoke": (cdl.repository, cdl.tag),
                      "fetcher": (pins.MINIO_CLIENT.repository, pins.MINIO_CLIENT.tag),
                      "test": (pins.SMOKE_PYTHON.repository, pins.SMOKE_PYTHON.tag)}
    assert model["storage"]["secretName"] == MODEL_STORAGE_SECRET
    urls = {check["name"]: check["url"] for check in smoke["checks"]}
    assert urls["determined-master"].startswith(f"http://{DETERMINED_HOST}:{DETERMINED_PORT}/")
    assert urls["minio"].startswith(f"http://{MINIO_HOST}:{MINIO_API_PORT}/")
