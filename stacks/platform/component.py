"""The Platform component: every tool of the paper's prototype as pinned Helm releases on the
cluster the kubeconfig provider points at, wired to each other by the names in wiring.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.platform import pins
from stacks.platform.ci import RUNNER_SECRET, RunnerToken, gitlab_runner_values
from stacks.platform.common import namespace, release, tls_annotations
from stacks.platform.config import NAMESPACE, PlatformConfig, Serving, load
from stacks.platform.credentials import generated, secret
from stacks.platform.data import pachyderm_values
from stacks.platform.database import Postgres, PostgresArgs
from stacks.platform.labels import ADMIN_SECRET, ADMIN_TOKEN_KEY, label_studio_values
from stacks.platform.serving import (
    MODEL_STORAGE_SECRET,
    SCORING_SECRET,
    kserve_values,
    seldon_values,
)
from stacks.platform.smoke import (
    DETERMINED_ADMIN_SECRET,
    LABEL_STUDIO_TOKEN_SECRET,
    RELEASE_TIMEOUT,
    in_cluster,
    smoke_values,
)
from stacks.platform.storage import ROOT_USER, ObjectStorage, ObjectStorageArgs
from stacks.platform.tls import Tls, TlsArgs
from stacks.platform.training import UI_TLS_SECRET as DETERMINED_TLS_SECRET
from stacks.platform.training import determined_values
from stacks.platform.wiring import (
    DETERMINED_DB,
    DETERMINED_HOST,
    DETERMINED_PORT,
    DETERMINED_RELEASE,
    DETERMINED_SERVICE,
    LABEL_STUDIO_DB,
    LABEL_STUDIO_RELEASE,
    PACHYDERM_DB,
    PACHYDERM_RELEASE,
    POSTGRES_HOST,
    POSTGRES_PORT,
    USECASES_DB,
    Namespace,
)

DETERMINED_ADMIN = "admin"


@dataclass(frozen=True)
class PlatformArgs:
    config: PlatformConfig
    # Secret config for cdl:objectStore=external.
    object_store_access_key: pulumi.Input[str] | None = None
    object_store_secret_key: pulumi.Input[str] | None = None
    # The runner's authentication token, created on the GitLab host by the gitlab role
    # (Configure.runner_token): the default way, no admin token needed.
    gitlab_runner_token: pulumi.Input[str] | None = None
    # Or a GitLab token allowed to create instance runners (cdl:gitlabAdminToken): the runner
    # is then created through GitLab's API, for a GitLab this stack does not configure.
    gitlab_admin_token: pulumi.Input[str] | None = None

    @classmethod
    def from_config(cls, config: pulumi.Config | None = None,
                    runner_token: pulumi.Input[str] | None = None) -> PlatformArgs:
        """The `cdl:*` platform keys and secrets of the current stack; ``runner_token`` is the
        configure step's, when the stack has a GitLab host."""
        config = config or pulumi.Config(NAMESPACE)
        return cls(load(config), config.get_secret("objectStoreAccessKey"),
                   config.get_secret("objectStoreSecretKey"), runner_token,
                   config.get_secret("gitlabAdminToken"))


class Platform(pulumi.ComponentResource):
    """Pass the cluster's kubernetes Provider in ``opts.providers``: every child uses it."""

    urls: pulumi.Output[dict[str, str]]
    credentials: pulumi.Output[Any]
    determined_master: pulumi.Output[str]
    s3_endpoint: pulumi.Output[str]
    images: pulumi.Output[dict[str, str]]
    # Addresses inside the cluster, as the smoke Job reads them (smoke.in_cluster).
    pachd: pulumi.Output[str]
    database: pulumi.Output[dict[str, Any]]
    serving: pulumi.Output[str]
    models_namespace: pulumi.Output[str]

    def __init__(self, name: str, args: PlatformArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:platform:Platform", name, None, opts)
        config = args.config
        with_runner = config.gitlab_url is not None and (
            args.gitlab_admin_token is not None or args.gitlab_runner_token is not None)
        wanted = [ns for ns in Namespace if ns is not Namespace.CI or with_runner]
        spaces = {ns: namespace(ns, self) for ns in wanted}

        tls = Tls("tls", TlsArgs(config.acme_email, config.ingress_class), spaces[Namespace.TLS],
                  pulumi.ResourceOptions(parent=self))
        storage = ObjectStorage(
            "storage",
            ObjectStorageArgs(config, tls.issuer, args.object_store_access_key,
                              args.object_store_secret_key),
            spaces[Namespace.STORAGE], pulumi.ResourceOptions(parent=self, depends_on=[tls]))
        postgres = Postgres("postgres", PostgresArgs(config, storage),
                            spaces[Namespace.DATABASE_OPERATOR], spaces[Namespace.DATABASE],
                            pulumi.ResourceOptions(parent=self))
        ready = [postgres, storage, tls]

        # Data: Pachyderm.
        data_ns = spaces[Namespace.DATA]
        pachyderm = release(
            PACHYDERM_RELEASE, pins.PACHYDERM, Namespace.DATA,
            pachyderm_values(config, tls.issuer, storage.endpoint, storage.access_key,
                             storage.secret_key),
            self, [*ready, postgres.login(PACHYDERM_DB.owner, Namespace.DATA, [data_ns])])

        # Labels: Label Studio.
        labels_ns = spaces[Namespace.LABELS]
        label_admin = generated("label-studio-admin-password", self)
        label_admin_user = f"admin@{config.domain}"
        # The admin's API token (Label Studio's legacy token, up to 40 characters), set when
        # the release first creates the admin: what the smoke labels through.
        label_token = generated("label-studio-api-token", self, length=40)
        label_studio = release(
            LABEL_STUDIO_RELEASE, pins.LABEL_STUDIO, Namespace.LABELS,
            label_studio_values(config, tls.issuer, storage.url),
            self, [*ready,
                   postgres.login(LABEL_STUDIO_DB.owner, Namespace.LABELS, [labels_ns]),
                   storage.credentials(Namespace.LABELS, [labels_ns]),
                   secret(ADMIN_SECRET, Namespace.LABELS,
                          {"username": label_admin_user, "password": label_admin,
                           ADMIN_TOKEN_KEY: label_token},
                          self, depends_on=[labels_ns])])

        # Experiments and model registry: Determined, its UI through the ingress.
        det_admin = generated("determined-admin-password", self)
        determined = release(
            DETERMINED_RELEASE, pins.DETERMINED, Namespace.TRAINING,
            determined_values(config, storage.url, postgres.passwords[DETERMINED_DB.owner],
                              storage.access_key, storage.secret_key, det_admin),
            self, [*ready, spaces[Namespace.TRAINING]])
        det_host = config.host("determined")
        k8s.networking.v1.Ingress(
            "determined",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="determined", namespace=Namespace.TRAINING,
                                                annotations=tls_annotations(tls.issuer)),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=config.ingress_class,
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=[det_host],
                                                      secret_name=DETERMINED_TLS_SECRET)],
                rules=[k8s.networking.v1.IngressRuleArgs(
                    host=det_host,
                    http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=[
                        k8s.networking.v1.HTTPIngressPathArgs(
                            path="/", path_type="Prefix",
                            backend=k8s.networking.v1.IngressBackendArgs(
                                service=k8s.networking.v1.IngressServiceBackendArgs(
                                    name=DETERMINED_SERVICE,
                                    port=k8s.networking.v1.ServiceBackendPortArgs(
                                        number=DETERMINED_PORT))))]))]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[determined]))

        serving = self._serving(config, storage, tls, spaces)
        # Scoring Data: the served models write each request to the use cases' database
        models_ns = spaces[Namespace.MODELS]
        dsn = postgres.passwords[USECASES_DB.owner].apply(
            lambda password: f"host={POSTGRES_HOST} port={POSTGRES_PORT} "
                             f"dbname={USECASES_DB.name} user={USECASES_DB.owner} "
                             f"password={password}")
        serving.append(secret(SCORING_SECRET, Namespace.MODELS, {"dsn": dsn}, self,
                              depends_on=[models_ns]))

        # The smoke drives every tool, so it starts once they all answer; its credentials are
        # copies in its own namespace (Secrets do not cross namespaces).
        inside = in_cluster(config, storage.url, storage.release is not None)
        smoke_ns = spaces[Namespace.SMOKE]
        smoke_secrets = [
            storage.credentials(Namespace.SMOKE, [smoke_ns]),
            postgres.login(USECASES_DB.owner, Namespace.SMOKE, [smoke_ns]),
            secret(DETERMINED_ADMIN_SECRET, Namespace.SMOKE,
                   {"username": DETERMINED_ADMIN, "password": det_admin}, self,
                   depends_on=[smoke_ns]),
            secret(LABEL_STUDIO_TOKEN_SECRET, Namespace.SMOKE, {ADMIN_TOKEN_KEY: label_token},
                   self, depends_on=[smoke_ns]),
        ]
        release("cdl-smoke", pins.own_chart("cdl-smoke"), Namespace.SMOKE,
                smoke_values(inside, config.images()["cpu"]), self,
                [*ready, determined, pachyderm, label_studio, *serving, smoke_ns,
                 *smoke_secrets], timeout=RELEASE_TIMEOUT)
        if with_runner:
            assert config.gitlab_url is not None
            runner_token: pulumi.Input[str]
            if args.gitlab_admin_token is not None:  # the option: created through the API
                runner_token = RunnerToken(
                    "gitlab-runner", config.gitlab_url, args.gitlab_admin_token,
                    f"cdl {pulumi.get_stack()}", pulumi.ResourceOptions(parent=self)).token
            else:
                assert args.gitlab_runner_token is not None
                runner_token = pulumi.Output.secret(args.gitlab_runner_token)
            runner_secret = secret(RUNNER_SECRET, Namespace.CI,
                                   {"runner-registration-token": "", "runner-token": runner_token},
                                   self, depends_on=[spaces[Namespace.CI]])
            release("gitlab-runner", pins.GITLAB_RUNNER, Namespace.CI,
                    gitlab_runner_values(config.gitlab_url), self, [runner_secret])

        tools = {"determined": det_host, "labels": config.host("labels"),
                 "pachyderm": config.host("pachyderm")}
        if storage.release is not None:
            tools["minio"] = config.host("minio")
        self.urls = pulumi.Output.from_input({tool: f"https://{host}"
                                              for tool, host in tools.items()})
        self.determined_master = pulumi.Output.from_input(f"https://{det_host}")
        self.s3_endpoint = pulumi.Output.from_input(storage.url)
        # What the cluster steps run (trials, the validation worker, cdl-model, the smoke)
        self.images = pulumi.Output.from_input(inside["images"])
        self.pachd = pulumi.Output.from_input(inside["pachd"])
        self.database = pulumi.Output.from_input(inside["database"])
        self.serving = pulumi.Output.from_input(inside["serving"])
        self.models_namespace = pulumi.Output.from_input(inside["modelsNamespace"])
        credentials: dict[str, dict[str, pulumi.Input[str]]] = {
            "determined": {"username": DETERMINED_ADMIN, "password": det_admin},
            "labelStudio": {"username": label_admin_user, "password": label_admin,
                            "token": label_token},
            "s3": {"accessKey": storage.access_key, "secretKey": storage.secret_key},
            "postgres": dict(postgres.passwords),
        }
        if storage.root_password is not None:
            credentials["minio"] = {"rootUser": ROOT_USER, "rootPassword": storage.root_password}
        self.credentials = pulumi.Output.secret(pulumi.Output.from_input(credentials))
        self.register_outputs({"urls": self.urls, "credentials": self.credentials,
                               "determined_master": self.determined_master,
                               "determined_master_internal":
                                   f"http://{DETERMINED_HOST}:{DETERMINED_PORT}",
                               "s3_endpoint": self.s3_endpoint, "images": self.images,
                               "pachd": self.pachd, "database": self.database,
                               "serving": self.serving,
                               "models_namespace": self.models_namespace})

    def _serving(self, config: PlatformConfig, storage: ObjectStorage, tls: Tls,
                 spaces: dict[Namespace, k8s.core.v1.Namespace]) -> list[pulumi.Resource]:
        """The serving operator and what charts/cdl-model needs in the models' namespace;
        returns what a cdl-model release waits for."""
        system = spaces[Namespace.SERVING_SYSTEM]
        operator: list[pulumi.Resource]
        if config.serving is Serving.SELDON:
            operator = [release("seldon-core", pins.SELDON_CORE, Namespace.SERVING_SYSTEM,
                                seldon_values(), self, [system, tls])]
        else:
            crds = release("kserve-crd", pins.KSERVE_CRD, Namespace.SERVING_SYSTEM, {}, self,
                           [system])
            operator = [crds, release("kserve", pins.KSERVE, Namespace.SERVING_SYSTEM,
                                      kserve_values(config.ingress_class), self, [crds, tls])]
        model_storage = storage.credentials(Namespace.MODELS, [spaces[Namespace.MODELS]],
                                            name=MODEL_STORAGE_SECRET,
                                            extra={"endpoint": storage.endpoint})
        return [*operator, model_storage]
