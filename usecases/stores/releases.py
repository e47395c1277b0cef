"""Served model versions on the cluster: one ``charts/cdl-model`` Helm release per approved
version in the models' namespace (#13), through the helm v3 CLI and the stack's kubeconfig, or,
inside the cluster (the smoke Job in CDL's image), the Pod's own service account.

The chart is ``CDL_MODEL_CHART`` where that is set (CDL's image sets it to the copy it carries:
an installed package has no ``charts/``), else the checkout's ``charts/cdl-model``.

``helm upgrade --install --wait`` waits only for the Pods, Services, Deployments (and the like)
that the release itself creates. This chart creates one custom resource (a SeldonDeployment or an
InferenceService), which Helm 3 counts as ready at once; the operator builds the server after.
So readiness is the chart's own ``helm test``, repeated until it passes or the deadline comes: a
Pod that asks the in-cluster V2 endpoint for ``/ready`` and for the model's metadata.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from usecases.errors import CDLError

NAMESPACE = "cdl-models"
CHART_VARIABLE = "CDL_MODEL_CHART"
CHECKOUT_CHART = Path(__file__).resolve().parents[2] / "charts" / "cdl-model"
Serving = Literal["seldon", "kserve"]
Driver = Literal["secret", "configmap"]
KINDS: dict[str, str] = {"seldon": "seldondeployment", "kserve": "inferenceservice"}
# The chart names its objects after the release and keeps 40 characters of it (the operators
# append their own suffixes): a release that short is its objects' name, one per version.
MAX_RELEASE = 40
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def release_name(name: str, version: int) -> str:
    """``<name>-v<version>``: a DNS-1123 label of at most 40 characters."""
    release = f"{name}-v{version}"
    if not _LABEL.match(name) or version < 1 or len(release) > MAX_RELEASE:
        raise CDLError(f"model {name!r} version {version} cannot name a release ({release!r})",
                       "use a model name of lowercase letters, digits and '-' and a version "
                       f"from 1, together at most {MAX_RELEASE} characters as NAME-vVERSION")
    return release


def image_values(ref: str) -> dict[str, str]:
    """``REGISTRY[:PORT]/NAME:TAG``, as the stack output ``images`` holds it, as the chart's
    ``image.repository`` and ``image.tag``."""
    repository, _, tag = ref.rpartition(":")
    if "@" in ref or not repository or not tag or "/" in tag:
        raise CDLError(f"image {ref!r} is not a REGISTRY/NAME:TAG reference",
                       "pass CDL's image as the stack output `images` names it "
                       "(e.g. localhost:32000/cdl:0.1.0-cpu)")
    return {"repository": repository, "tag": tag}


def model_chart() -> Path:
    """The cdl-model chart's folder: ``CDL_MODEL_CHART`` when set, else the checkout's."""
    setting = os.environ.get(CHART_VARIABLE)
    if setting:
        chart = Path(setting)
        if not (chart / "Chart.yaml").is_file():
            raise CDLError(f"{CHART_VARIABLE} is {setting}, where there is no Helm chart "
                           "(no Chart.yaml)",
                           f"point {CHART_VARIABLE} at a copy of CDL's charts/cdl-model (CDL's "
                           "image has one at /opt/cdl/share/charts/cdl-model), or unset it to "
                           "use the checkout's")
        return chart
    if not (CHECKOUT_CHART / "Chart.yaml").is_file():
        raise CDLError(f"no cdl-model chart: {CHART_VARIABLE} is not set and {CHECKOUT_CHART} "
                       "is not there (an installed package carries no charts)",
                       f"run from a checkout of CDL, or set {CHART_VARIABLE} to a copy of its "
                       "charts/cdl-model (CDL's image sets it)")
    return CHECKOUT_CHART


def _seconds(timeout: float) -> str:
    return f"{max(int(timeout), 1)}s"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


class Releases:
    """The cdl-model releases in ``namespace`` of the cluster that ``kubeconfig`` reaches; with
    none, the cluster helm finds itself (``KUBECONFIG``, ``~/.kube/config``, and in a Pod its
    service account).

    ``helm`` is the binary (a path, or a name looked up on PATH); ``chart`` the chart's folder
    (by default ``model_chart()``, found when a release is installed); ``driver`` is where Helm
    keeps its release records (``HELM_DRIVER``; ``configmap`` spares the deployer read access to
    the namespace's Secrets); ``poll`` is the pause between readiness tests, in seconds."""

    def __init__(self, kubeconfig: Path | None = None, helm: str = "helm",
                 chart: Path | None = None, namespace: str = NAMESPACE,
                 driver: Driver = "secret", poll: float = 10.0) -> None:
        self.kubeconfig = kubeconfig
        self.helm = helm
        self.chart = chart
        self.namespace = namespace
        self.driver = driver
        self.poll = poll

    @staticmethod
    def values(name: str, version: int, uri: str, serving: Serving, image: str,
               gpu: bool = False) -> dict[str, Any]:
        """The chart values for one model version; the rest are the chart's defaults."""
        if serving not in KINDS:
            raise CDLError(f"serving {serving!r} is neither seldon nor kserve",
                           "set cdl:serving to seldon or kserve")
        release_name(name, version)
        return {"serving": serving, "model": {"name": name, "version": version, "uri": uri},
                "image": image_values(image), "gpu": {"enabled": gpu, "count": 1}}

    def url(self, name: str, version: int, serving: Serving) -> str:
        """The in-cluster base URL of the release's V2 server; the model answers under
        ``/v2/models/<name>/`` (``ready``, ``infer``), as ``deploy.infer`` and ``smoke`` take it.

        As the chart's ``cdl-model.url`` helper (NOTES.txt, the ``helm test`` Pod) has it: Seldon
        Core 1.17 serves a predictor through the Service ``<SeldonDeployment>-<predictor>`` (the
        chart's predictor is ``default``) on the executor's HTTP port 8000; KServe in
        RawDeployment mode through the Service ``<InferenceService>-predictor`` on port 80. The
        chart names both objects after the release (at most 40 characters, so both Service
        names stay within 63)."""
        release = release_name(name, version)
        if serving == "seldon":
            return f"http://{release}-default.{self.namespace}.svc:8000"
        return f"http://{release}-predictor.{self.namespace}.svc"

    def deploy(self, name: str, version: int, uri: str, serving: Serving, image: str,
               gpu: bool = False, timeout: float = 600.0) -> str:
        """Install or upgrade the release of ``name`` v``version`` and wait, at most ``timeout``
        seconds in all, until its model answers; returns the release's name."""
        release = release_name(name, version)
        values = self.values(name, version, uri, serving, image, gpu)
        chart = self.chart or model_chart()
        fix = self._fix(release, serving)
        deadline = time.monotonic() + timeout
        with tempfile.TemporaryDirectory(prefix="cdl-release-") as folder:
            path = Path(folder) / "values.json"  # JSON is YAML; nothing in it is secret
            path.write_text(json.dumps(values, indent=1))
            done = self._run(release, timeout, "upgrade", "--install", release, str(chart),
                             "--values", str(path), "--wait", "--timeout", _seconds(timeout))
        if done.returncode:
            raise CDLError(f"helm could not install release {release} in namespace "
                           f"{self.namespace}: \"{_last_line(done.stderr)}\"", fix)
        while True:
            left = max(deadline - time.monotonic(), 1.0)
            done = self._run(release, left, "test", release, "--timeout", _seconds(left))
            if done.returncode == 0:
                return release
            if time.monotonic() + self.poll >= deadline:
                raise CDLError(f"release {release} in namespace {self.namespace} is not ready "
                               f"after {timeout:.0f} s: \"{_last_line(done.stderr)}\"", fix)
            time.sleep(self.poll)

    def remove(self, release: str, timeout: float = 300.0) -> None:
        """Uninstall ``release`` and wait until its objects are gone (none there is fine)."""
        done = self._run(release, timeout, "uninstall", release, "--ignore-not-found", "--wait",
                         "--timeout", _seconds(timeout))
        if done.returncode:
            raise CDLError(f"helm could not uninstall release {release} in namespace "
                           f"{self.namespace}: \"{_last_line(done.stderr)}\"",
                           f"see `helm status {release} -n {self.namespace}` and `kubectl -n "
                           f"{self.namespace} get all -l app.kubernetes.io/instance={release}`")

    def _fix(self, release: str, serving: Serving) -> str:
        ns = self.namespace
        return (f"see `kubectl -n {ns} describe {KINDS[serving]} {release}`, `kubectl -n {ns} "
                f"get pods -l app.kubernetes.io/instance={release}`, `kubectl -n {ns} logs "
                f"{release}-test` and `helm status {release} -n {ns}`")

    def _run(self, release: str, timeout: float, *args: str) -> subprocess.CompletedProcess[str]:
        helm = shutil.which(self.helm)
        if helm is None:
            raise CDLError(f"the helm binary {self.helm!r} is not there, so release {release} "
                           f"in namespace {self.namespace} was not touched",
                           "install helm v3 (scripts/helm.sh puts one in .venv/bin) or pass "
                           "its path")
        env = dict(os.environ)
        env["HELM_DRIVER"] = self.driver
        command = [helm, *args, "--namespace", self.namespace]
        if self.kubeconfig is not None:
            # the stack's kubeconfig decides the cluster: no context chosen for another one
            env.pop("HELM_KUBECONTEXT", None)
            command += ["--kubeconfig", str(self.kubeconfig)]
        try:
            # helm enforces its own --timeout; the margin covers its start and its last calls
            return subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=timeout + 60, check=False)
        except subprocess.TimeoutExpired:
            raise CDLError(f"`helm {args[0]} {release}` in namespace {self.namespace} did not "
                           f"finish within {timeout + 60:.0f} s",
                           f"see `helm status {release} -n {self.namespace}` and check that "
                           "the cluster's API server answers") from None
        except OSError as exc:
            raise CDLError(f"the helm binary {helm} could not run for release {release} in "
                           f"namespace {self.namespace} ({exc.strerror})",
                           "install helm v3 or pass the path of a working one") from None
