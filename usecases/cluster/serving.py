"""Serving on a cluster (``workflow.run.Serving``): each packaged model folder is uploaded to the
platform's S3 (``s3://cdl-models/<name>/<version>``) and served by its own ``charts/cdl-model``
release in the models' namespace (Seldon Core's V2 protocol, or KServe by ``cdl:serving``),
which answers once its ``helm test`` passes. The smoke then queries the release's in-cluster
URL, so a full cluster smoke runs where those resolve: in the cluster (the cdl-smoke Job).

What a run deployed is removed when it ends (releases, then their folders), unless it is asked
to keep them; a removal that fails is reported, not raised, so the run's own outcome stands.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from usecases.errors import CDLError
from usecases.stores.releases import release_name
from usecases.workflow import deploy

if TYPE_CHECKING:
    from usecases.stores.releases import Releases, Serving
    from usecases.stores.s3 import ModelFolders
    from usecases.workflow.context import Context


class ReleaseServing:
    def __init__(self, ctx: Context, stack: contextlib.ExitStack, releases: Releases,
                 folders: ModelFolders, kind: Serving, image: str, keep: bool = False) -> None:
        self.ctx = ctx
        self.releases = releases
        self.folders = folders
        self.kind = kind
        self.image = image
        self.title = (f"cdl-model releases in namespace {releases.namespace} ({kind}): "
                      "models ready")
        self.lock = threading.Lock()
        self.versions: dict[str, int] = {}  # model name -> the version its release serves
        self.uploaded: list[tuple[str, int]] = []
        self.released: list[str] = []
        if not keep:  # registered first, so it runs after the deploys have ended
            stack.callback(self.remove)
        self.loads = stack.enter_context(
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="cdl-release"))

    def load(self, name: str) -> Future[None]:
        return self.loads.submit(self._deploy, name)

    def url(self, name: str) -> str:
        return self.releases.url(name, self.versions[name], self.kind)

    def _deploy(self, name: str) -> None:
        repository = deploy.served_models(self.ctx.state)
        version = deploy.packaged_versions(repository).get(name)
        if version is None:
            raise CDLError(f"no packaged folder of model {name} in {repository}",
                           "package the approved version first (the deploy step)")
        uri = self.folders.upload(deploy.model_folder(repository, name), name, version)
        with self.lock:
            self.uploaded.append((name, version))
        with self.lock:  # before the install: a release that never got ready is removed too
            self.released.append(release_name(name, version))
        release = self.releases.deploy(name, version, uri, self.kind, self.image)
        with self.lock:
            self.versions[name] = version
        self.ctx.display.note(f"{name} v{version}: release {release} serves {uri}")

    def remove(self) -> None:
        """Uninstall this run's releases, then delete their folders from S3."""
        for release in self.released:
            with self._reported(f"release {release}"):
                self.releases.remove(release)
        for name, version in self.uploaded:
            with self._reported(self.folders.uri(name, version)):
                self.folders.delete(name, version)

    @contextlib.contextmanager
    def _reported(self, what: str) -> Iterator[None]:
        try:
            yield
        except CDLError as exc:
            self.ctx.display.note(f"cleanup: {what} was left in place: {exc.problem} "
                                  f"({exc.fix})")
