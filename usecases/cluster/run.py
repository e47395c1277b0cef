"""A run of the workflow on a deployed platform: the same orchestration as on this machine
(``workflow.run.run``), its stores assembled from the cluster's sides.

- ML Data: Pachyderm; the raw folder committed, validated by the pipeline's worker.
- Transformation Registry: features built here, committed to the features repo, read by the
  trials from pachd.
- Labels, Scoring Data, feedback: the use cases' database on the cluster's PostgreSQL; Label
  Studio's release when a token is given.
- Experiment Registry: the Determined master runs the experiment; the database keeps its best
  trial.
- Model Registry: the database's table, and each evaluated version registered in
  Determined's registry.
- Serving: the packaged folder on S3, and a cdl-model release per version.

This machine's ``CDL_HOME`` holds what a run downloads and builds (validated files, features,
the checkpoint, the packaged folder) and the run log; the cluster holds the rest.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from usecases.cluster.data import PachydermFeatures, PachydermMLData
from usecases.cluster.experiments import MasterTraining
from usecases.cluster.outputs import Platform
from usecases.cluster.registry import DeterminedRegistry
from usecases.cluster.serving import ReleaseServing
from usecases.errors import CDLError
from usecases.state import State
from usecases.stores.database import Database, server_conninfo
from usecases.stores.determined import DeterminedMaster
from usecases.stores.experiments import LocalExperiments
from usecases.stores.feedback import PostgresFeedback
from usecases.stores.labels import LocalLabels
from usecases.stores.labelstudio import LabelStudioClient, Studio
from usecases.stores.local import Stores
from usecases.stores.pachyderm import Pachyderm
from usecases.stores.releases import Releases
from usecases.stores.releases import Serving as ServingKind
from usecases.stores.s3 import ModelFolders
from usecases.stores.scoring import PostgresScoringStore
from usecases.workflow.context import Context
from usecases.workflow.display import Display
from usecases.workflow.run import finish_background, run_log

IN_CLUSTER = ("run it in the cluster, where the stack's addresses resolve: the cdl-smoke Job "
              "(`helm upgrade cdl-smoke CHART -n cdl-smoke --reuse-values` runs it again)")


def _required(value: str | None, what: str, env: str, fix: str) -> str:
    if not value:
        raise CDLError(f"the platform's outputs give no {what}, and {env} is not set",
                       f"set {env} ({fix}), or {IN_CLUSTER}")
    return value


def _resolves(url: str, what: str, env: str, forward: str) -> None:
    """Fail before the run, not at its deploy step, where the stack's in-cluster address of a
    service does not resolve on this machine."""
    host = urlsplit(url).hostname or url
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        raise CDLError(f"{what} {url} does not resolve here: the stack's outputs give "
                       "in-cluster addresses", f"{IN_CLUSTER}; or port-forward it ({forward}) "
                       f"and set {env}") from None


def database_conninfo(platform: Platform) -> str:
    """The use cases' database: ``CDL_DATABASE_URL``, else the outputs' ``database`` with the
    password of its role."""
    if os.environ.get("CDL_DATABASE_URL"):
        return os.environ["CDL_DATABASE_URL"]
    found = platform.database or {}
    forward = ("a URL of the cluster's PostgreSQL, e.g. through `kubectl -n cdl-db "
               "port-forward svc/cdl-pg-rw 5432`")
    host = _required(found.get("host"), "database address", "CDL_DATABASE_URL", forward)
    _resolves(host, "the database host", "CDL_DATABASE_URL", forward)
    user = str(found.get("user", ""))
    password = _required(platform.secret("CDL_DATABASE_PASSWORD", "postgres", user),
                         f"password of database role {user!r}", "CDL_DATABASE_PASSWORD",
                         "the role's password from its Secret in cdl-db")
    return server_conninfo(str(found["host"]), int(found.get("port", 5432)),
                           str(found.get("dbname", "cdl")), user, password)


@contextlib.contextmanager
def kubeconfig_file(platform: Platform) -> Iterator[Path | None]:
    """The stack's kubeconfig as a private file for helm while the run lasts; None in the
    cluster, where helm uses the Job's service account."""
    if not platform.kubeconfig:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="cdl-kube-") as folder:
        path = Path(folder, "kubeconfig")
        path.touch(mode=0o600)
        path.write_text(platform.kubeconfig)
        yield path


def cluster_stores(state: State, db: Database, platform: Platform, kubeconfig: Path | None,
                   keep: bool) -> Stores:
    """Every store's cluster side. Every address and credential is checked to be given (and
    the S3 store's address to resolve here) before pachd and the Determined master are
    connected to: the S3 store and the cluster's API are first used by the deploy step."""
    pachd = _required(os.environ.get("CDL_PACHD_ADDRESS") or platform.pachd,
                      "pachd gRPC address", "CDL_PACHD_ADDRESS",
                      "e.g. grpc://localhost:30650 through `kubectl -n cdl-data port-forward "
                      "svc/pachd 30650`")
    user = _required(platform.secret("CDL_DETERMINED_USER", "determined", "username"),
                     "Determined user", "CDL_DETERMINED_USER", "the platform's admin user")
    password = _required(platform.secret("CDL_DETERMINED_PASSWORD", "determined", "password"),
                         "Determined password", "CDL_DETERMINED_PASSWORD",
                         "the admin's generated password")
    access_key = _required(platform.secret("CDL_S3_ACCESS_KEY", "s3", "accessKey"),
                           "S3 access key", "CDL_S3_ACCESS_KEY", "the models bucket's access key")
    secret_key = _required(platform.secret("CDL_S3_SECRET_KEY", "s3", "secretKey"),
                           "S3 secret key", "CDL_S3_SECRET_KEY", "the models bucket's secret key")
    if platform.serving not in ("seldon", "kserve"):
        raise CDLError(f"the platform's serving is {platform.serving!r}",
                       "set cdl:serving to seldon or kserve and run `pulumi up`")
    kind: ServingKind = "seldon" if platform.serving == "seldon" else "kserve"
    s3_endpoint = os.environ.get("CDL_S3_ENDPOINT") or platform.s3_endpoint
    _resolves(s3_endpoint, "the S3 endpoint", "CDL_S3_ENDPOINT",
              "`kubectl -n cdl-storage port-forward svc/minio 9000`, then http://localhost:9000")
    pachyderm = Pachyderm(pachd, auth_token=platform.secret("CDL_PACHD_TOKEN", "pachyderm",
                                                            "token"))
    # the trials reach pachd at its in-cluster address, whatever this machine uses
    training = MasterTraining(DeterminedMaster(platform.determined_master, user, password),
                              platform.images, platform.pachd or pachd)
    mldata = PachydermMLData(pachyderm, db, platform.images["cpu"], state.dir("cluster", "data"))
    folders = ModelFolders(s3_endpoint, access_key, secret_key)
    releases = Releases(kubeconfig, namespace=platform.models_namespace, driver="configmap")
    return Stores(
        db=db,
        mldata=mldata,
        labels=LocalLabels(db, state.dir("cluster", "labels")),
        features=PachydermFeatures(pachyderm, state.transforms),
        experiments=LocalExperiments(db),
        models=DeterminedRegistry(db, state.models, training, mldata),
        scoring=PostgresScoringStore(db),
        feedback=PostgresFeedback(db),
        training=training,
        serving=lambda ctx, stack: ReleaseServing(ctx, stack, releases, folders, kind,
                                                  platform.images["cpu"], keep),
    )


@contextlib.contextmanager
def open_cluster_run(state: State, display: Display, platform: Platform, command: str,
                     keep: bool = False) -> Iterator[Context]:
    """The context of a run on the platform: the writer lock and run log of this machine's
    ``CDL_HOME``, the cluster's database (migrated to this version's tables), the stores'
    cluster sides, Label Studio's release when a token is given (else the labels go the
    direct path), and the background worker."""
    with contextlib.ExitStack() as services:
        services.enter_context(state.writer(command))
        services.enter_context(run_log(state))
        kubeconfig = services.enter_context(kubeconfig_file(platform))
        db = Database(database_conninfo(platform))
        start = time.perf_counter()
        with display.stage("Connecting to the cluster's PostgreSQL"):
            db.migrate()
        ctx = Context(state, cluster_stores(state, db, platform, kubeconfig, keep), display)
        ctx.timings["database"] = round(time.perf_counter() - start, 2)
        token = platform.secret("CDL_LABEL_STUDIO_TOKEN", "labelStudio", "token")
        if token and "labels" in platform.urls:
            studio = LabelStudioClient(Studio(platform.urls["labels"], token))
            ctx.studio = lambda: studio
        else:
            display.note("no Label Studio token (CDL_LABEL_STUDIO_TOKEN): the labels go the "
                         "direct path into the cluster's database")
        services.enter_context(ctx.background)
        yield ctx
        finish_background(ctx)
