"""The cdl-model releases (``usecases/stores/releases.py``): the values they pass, rendered by
the real helm v3 into objects valid for Kubernetes 1.33 and the operators' CRDs; and the helm
CLI contract (the argv, the values file, exit codes and stderr), through a stand-in ``helm``
that records what it is given, and through the real helm pointed at an address where no
cluster answers; where the chart is found (``CDL_MODEL_CHART``, else the checkout's). No cluster
runs here."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stacks.platform import pins
from tests.charts.conftest import Render, helm, render  # noqa: F401  (the fixtures, reused)
from tests.charts.upstream import validate_manifest
from usecases.errors import CDLError
from usecases.stores import releases as releases_module
from usecases.stores.releases import (
    CHECKOUT_CHART,
    Releases,
    image_values,
    model_chart,
    release_name,
)
from usecases.stores.s3 import ModelFolders

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: cdl, user: {token: not-a-secret}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: cdl}}]
current-context: nowhere
"""

# Records each call (argv one per line, HELM_DRIVER, HELM_KUBECONTEXT, a copy of the --values
# file) and answers
# with the next exit code listed for its subcommand (the last one sticks), printing that
# subcommand's stderr file when the code is not 0.
STAND_IN = """\
#!/bin/sh
here=$(dirname "$0")
n=$(ls "$here/calls" | grep -c argv)
printf '%s\\n' "$@" > "$here/calls/$n.argv"
printf '%s' "$HELM_DRIVER" > "$here/calls/$n.driver"
printf '%s' "$HELM_KUBECONTEXT" > "$here/calls/$n.context"
prev=
for arg in "$@"; do
  [ "$prev" = --values ] && cp "$arg" "$here/calls/$n.values"
  prev=$arg
done
codes="$here/$1.codes"
code=0
if [ -s "$codes" ]; then
  code=$(head -n 1 "$codes")
  if [ "$(wc -l < "$codes")" -gt 1 ]; then
    tail -n +2 "$codes" > "$codes.rest" && mv "$codes.rest" "$codes"
  fi
fi
[ "$code" = 0 ] || cat "$here/$1.stderr" >&2
exit "$code"
"""


@dataclass(frozen=True)
class Call:
    argv: list[str]
    driver: str
    context: str
    values: dict[str, Any] | None


class StandIn:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "calls").mkdir(parents=True)
        self.path = folder / "helm"
        self.path.write_text(STAND_IN)
        self.path.chmod(0o755)

    def answer(self, subcommand: str, codes: list[int], stderr: str = "") -> None:
        (self.folder / f"{subcommand}.codes").write_text("".join(f"{c}\n" for c in codes))
        (self.folder / f"{subcommand}.stderr").write_text(stderr)

    def calls(self) -> list[Call]:
        found = []
        for n in range(len(list((self.folder / "calls").glob("*.argv")))):
            values = self.folder / "calls" / f"{n}.values"
            found.append(Call((self.folder / "calls" / f"{n}.argv").read_text().splitlines(),
                              (self.folder / "calls" / f"{n}.driver").read_text(),
                              (self.folder / "calls" / f"{n}.context").read_text(),
                              json.loads(values.read_text()) if values.exists() else None))
        return found


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    path.chmod(0o600)
    return path


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    monkeypatch.delenv("CDL_MODEL_CHART", raising=False)  # the checkout's chart, unless a test
    monkeypatch.delenv("HELM_KUBECONTEXT", raising=False)  # sets either
    return StandIn(tmp_path / "bin")


def _options(argv: list[str], start: int) -> dict[str, str | None]:
    """``--flag value`` and bare ``--flag`` pairs from ``argv[start:]``."""
    found: dict[str, str | None] = {}
    rest = argv[start:]
    for i, arg in enumerate(rest):
        if arg.startswith("--"):
            following = rest[i + 1] if i + 1 < len(rest) else None
            found[arg] = None if following is None or following.startswith("--") else following
    return found


IMAGE = pins.cdl_image("registry.example:5000", "cpu")
URI = ModelFolders("http://minio.example:9000", "access", "secret").uri("bbc", 3)


@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("serving", ["seldon", "kserve"])
def test_the_values_render_into_valid_objects_with_the_image_and_uri_given(
        render: Render, tmp_path: Path, serving: str, gpu: bool) -> None:  # noqa: F811
    image = pins.cdl_image("registry.example:5000", "gpu" if gpu else "cpu")
    values = Releases.values("bbc", 3, URI, serving, image.ref, gpu)  # type: ignore[arg-type]
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    objects = render("cdl-model", path, release=release_name("bbc", 3))
    for obj in objects:
        validate_manifest(obj)
    by_kind = {obj["kind"]: obj for obj in objects}
    expected = {"seldon": "SeldonDeployment", "kserve": "InferenceService"}[serving]
    assert set(by_kind) == {expected, "Pod"}
    model = by_kind[expected]
    assert model["metadata"]["name"] == "bbc-v3"
    assert model["metadata"]["labels"]["cdl.io/model-version"] == "3"
    pod = (model["spec"]["predictors"][0]["componentSpecs"][0]["spec"] if serving == "seldon"
           else model["spec"]["predictor"])
    (server,) = pod["containers"]
    (fetch,) = pod["initContainers"]
    assert server["image"] == image.ref
    assert ("nvidia.com/gpu" in server["resources"]["limits"]) == gpu
    assert fetch["args"][-2:] == ["store/cdl-models/bbc/3/", "/mnt/models/bbc/"]
    test = by_kind["Pod"]
    assert test["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = {e["name"]: e["value"] for e in test["spec"]["containers"][0]["env"]}
    releases = Releases(tmp_path / "kubeconfig")
    assert env["MODEL_URL"] == releases.url("bbc", 3, serving) + "/v2/models/bbc"  # type: ignore[arg-type]


def test_deploy_is_helm_upgrade_install_with_a_values_file_then_helm_test(
        stand_in: StandIn, kubeconfig: Path) -> None:
    releases = Releases(kubeconfig, helm=str(stand_in.path), poll=0)
    assert releases.deploy("bbc", 3, URI, "seldon", IMAGE.ref, timeout=420) == "bbc-v3"
    install, test = stand_in.calls()
    assert install.argv[:4] == ["upgrade", "--install", "bbc-v3", str(CHECKOUT_CHART)]
    options = _options(install.argv, 4)
    assert options["--namespace"] == "cdl-models"
    assert options["--kubeconfig"] == str(kubeconfig)
    assert options["--timeout"] == "420s"
    assert "--wait" in options and options["--wait"] is None
    assert not {"--set", "--set-string", "--set-json", "--set-file"} & set(install.argv)
    assert install.values == Releases.values("bbc", 3, URI, "seldon", IMAGE.ref)
    assert install.values["image"] == {"repository": IMAGE.repository, "tag": IMAGE.tag}
    assert test.argv[:2] == ["test", "bbc-v3"]
    options = _options(test.argv, 2)
    assert (options["--namespace"], options["--kubeconfig"]) == ("cdl-models", str(kubeconfig))
    assert {install.driver, test.driver} == {"secret"}


def test_readiness_is_helm_test_repeated_until_it_passes(stand_in: StandIn,
                                                         kubeconfig: Path) -> None:
    stand_in.answer("test", [1, 1, 0], "Error: 1 error occurred:\n\t* pod bbc-v3-test failed\n")
    Releases(kubeconfig, helm=str(stand_in.path), poll=0).deploy("bbc", 3, URI, "kserve",
                                                                 IMAGE.ref)
    assert [c.argv[0] for c in stand_in.calls()] == ["upgrade", "test", "test", "test"]


def test_a_model_not_ready_by_the_deadline_is_a_cdl_error(stand_in: StandIn,
                                                          kubeconfig: Path) -> None:
    stand_in.answer("test", [1], "Error: 1 error occurred:\n\t* pod bbc-v3-test failed\n")
    releases = Releases(kubeconfig, helm=str(stand_in.path), poll=5)
    with pytest.raises(CDLError) as failed:
        releases.deploy("bbc", 3, URI, "kserve", IMAGE.ref, timeout=2)
    message = str(failed.value)
    assert "release bbc-v3 in namespace cdl-models is not ready" in message
    assert '"* pod bbc-v3-test failed"' in message
    assert "kubectl -n cdl-models describe inferenceservice bbc-v3" in message
    assert "helm status bbc-v3 -n cdl-models" in message


def test_a_failing_helm_is_a_cdl_error_quoting_its_last_stderr_line(
        stand_in: StandIn, kubeconfig: Path) -> None:
    last = "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress"
    stand_in.answer("upgrade", [1], f"history.go:56: [debug] getting history\n{last}\n")
    with pytest.raises(CDLError) as failed:
        Releases(kubeconfig, helm=str(stand_in.path)).deploy("bbc", 3, URI, "seldon", IMAGE.ref)
    message = str(failed.value)
    assert f'helm could not install release bbc-v3 in namespace cdl-models: "{last}"' in message
    assert "kubectl -n cdl-models describe seldondeployment bbc-v3" in message
    assert "Traceback" not in message and "history.go" not in message
    assert [c.argv[0] for c in stand_in.calls()] == ["upgrade"]


def test_remove_is_helm_uninstall_wait(stand_in: StandIn, kubeconfig: Path) -> None:
    releases = Releases(kubeconfig, helm=str(stand_in.path), driver="configmap")
    releases.remove("bbc-v3", timeout=120)
    (call,) = stand_in.calls()
    assert call.argv[:2] == ["uninstall", "bbc-v3"]
    options = _options(call.argv, 2)
    assert options["--wait"] is None and options["--ignore-not-found"] is None
    assert options["--timeout"] == "120s"
    assert (options["--namespace"], options["--kubeconfig"]) == ("cdl-models", str(kubeconfig))
    assert call.driver == "configmap"
    stand_in.answer("uninstall", [1], "Error: uninstallation completed with 1 error(s): "
                                      "timed out waiting for the condition\n")
    with pytest.raises(CDLError, match='could not uninstall release bbc-v3 in namespace '
                                       'cdl-models: "Error: uninstallation completed'):
        releases.remove("bbc-v3")


def test_without_a_kubeconfig_helm_finds_the_cluster_itself(
        stand_in: StandIn, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In the smoke Job's Pod no kubeconfig is given: no --kubeconfig reaches helm, which then
    uses the Pod's service account (outside a Pod, KUBECONFIG and the user's context). With the
    stack's kubeconfig, the user's context is not applied to it."""
    monkeypatch.setenv("HELM_KUBECONTEXT", "lab")
    in_cluster = Releases(helm=str(stand_in.path), poll=0)
    in_cluster.deploy("bbc", 3, URI, "seldon", IMAGE.ref, timeout=60)
    in_cluster.remove("bbc-v3")
    Releases(kubeconfig, helm=str(stand_in.path)).remove("bbc-v3")
    install, test, uninstall, with_kubeconfig = stand_in.calls()
    for call in (install, test, uninstall):
        assert "--kubeconfig" not in call.argv
        assert call.argv[call.argv.index("--namespace") + 1] == "cdl-models"
        assert call.context == "lab"
    assert _options(with_kubeconfig.argv, 2)["--kubeconfig"] == str(kubeconfig)
    assert with_kubeconfig.context == ""


def test_the_chart_is_cdl_model_chart_where_that_is_set(
        stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in CDL's image, whose installed package has no charts/ beside it."""
    copy = tmp_path / "share" / "charts" / "cdl-model"
    shutil.copytree(CHECKOUT_CHART, copy)
    monkeypatch.setenv("CDL_MODEL_CHART", str(copy))
    assert model_chart() == copy
    Releases(helm=str(stand_in.path), poll=0).deploy("bbc", 3, URI, "seldon", IMAGE.ref)
    install, _ = stand_in.calls()
    assert install.argv[:4] == ["upgrade", "--install", "bbc-v3", str(copy)]


def test_a_chart_variable_naming_no_chart_is_a_cdl_error_before_helm_runs(
        stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "charts" / "cdl-model"
    empty.mkdir(parents=True)
    monkeypatch.setenv("CDL_MODEL_CHART", str(empty))
    with pytest.raises(CDLError) as failed:
        Releases(helm=str(stand_in.path)).deploy("bbc", 3, URI, "seldon", IMAGE.ref)
    message = str(failed.value)
    assert f"CDL_MODEL_CHART is {empty}, where there is no Helm chart" in message
    assert "/opt/cdl/share/charts/cdl-model" in message  # the fix names the image's copy
    assert stand_in.calls() == []


def test_no_variable_and_no_checkout_is_a_cdl_error_saying_what_to_set(
        stand_in: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package installed without the repository around it (as in an image built without
    the chart)."""
    installed = tmp_path / "site-packages" / "charts" / "cdl-model"
    monkeypatch.setattr(releases_module, "CHECKOUT_CHART", installed)
    with pytest.raises(CDLError) as failed:
        Releases(helm=str(stand_in.path)).deploy("bbc", 3, URI, "seldon", IMAGE.ref)
    message = str(failed.value)
    assert f"CDL_MODEL_CHART is not set and {installed} is not there" in message
    assert "set CDL_MODEL_CHART to a copy of its charts/cdl-model" in message
    assert stand_in.calls() == []


def test_a_missing_helm_is_a_cdl_error_naming_it(tmp_path: Path, kubeconfig: Path) -> None:
    missing = tmp_path / "no" / "helm"
    releases = Releases(kubeconfig, helm=str(missing))
    with pytest.raises(CDLError) as failed:
        releases.deploy("bbc", 3, URI, "seldon", IMAGE.ref)
    assert str(missing) in str(failed.value)
    assert "bbc-v3" in str(failed.value) and "cdl-models" in str(failed.value)
    with pytest.raises(CDLError, match="helm binary"):
        releases.remove("bbc-v3")


def test_the_real_helm_takes_the_argv_and_its_failure_is_a_cdl_error(
        helm: Path, kubeconfig: Path) -> None:  # noqa: F811
    """helm v3.18 parses every flag (an unknown one fails before any connection) and fails
    where no API server answers; that failure comes back as a CDLError."""
    releases = Releases(kubeconfig, helm=str(helm))
    with pytest.raises(CDLError) as failed:
        releases.deploy("bbc", 3, URI, "seldon", IMAGE.ref, timeout=5)
    assert 'cdl-models: "Error: Kubernetes cluster unreachable' in str(failed.value)
    with pytest.raises(CDLError, match="Kubernetes cluster unreachable"):
        releases.remove("bbc-v3", timeout=5)


def test_names_and_images_are_checked_before_helm_runs(kubeconfig: Path) -> None:
    assert release_name("fmnist", 12) == "fmnist-v12"
    assert image_values("localhost:32000/cdl:0.1.0-cpu") == {
        "repository": "localhost:32000/cdl", "tag": "0.1.0-cpu"}
    for name, version in [("BBC", 1), ("bbc_news", 1), ("bbc", 0), ("m" * 38, 1)]:
        with pytest.raises(CDLError, match="cannot name a release"):
            release_name(name, version)
    for ref in ["localhost:32000/cdl", "cdl", "localhost:32000/cdl@sha256:" + "0" * 64]:
        with pytest.raises(CDLError, match="REGISTRY/NAME:TAG"):
            image_values(ref)
    with pytest.raises(CDLError, match="neither seldon nor kserve"):
        Releases.values("bbc", 3, URI, "triton", IMAGE.ref)  # type: ignore[arg-type]
