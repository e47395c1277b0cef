"""TLS for every UI: cert-manager, a self-signed CA of the platform's own, ACME optional."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks.platform import pins
from stacks.platform.common import release, resources
from stacks.platform.wiring import Namespace

SELF_SIGNED_ISSUER = "cdl-selfsigned"
CA_ISSUER = "cdl-ca"
CA_SECRET = "cdl-ca"
ACME_ISSUER = "cdl-acme"
ACME_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"


def cert_manager_values() -> dict[str, Any]:
    return {
        # The chart owns the CRDs and keeps them on uninstall: deleting them would delete
        # every Certificate in the cluster.
        "crds": {"enabled": True, "keep": True},
        "resources": resources("50m", "128Mi", memory_limit="256Mi"),
        "webhook": {"resources": resources("20m", "64Mi", memory_limit="128Mi")},
        "cainjector": {"resources": resources("20m", "128Mi", memory_limit="256Mi")},
        "startupapicheck": {"resources": resources("20m", "64Mi", memory_limit="128Mi")},
    }


def ca_certificate_spec() -> dict[str, Any]:
    return {
        "isCA": True,
        "commonName": "CDL platform CA",
        "secretName": CA_SECRET,
        "duration": "87600h",
        "privateKey": {"algorithm": "ECDSA", "size": 256},
        "issuerRef": {"name": SELF_SIGNED_ISSUER, "kind": "ClusterIssuer",
                      "group": "cert-manager.io"},
    }


def acme_issuer_spec(email: str, ingress_class: str) -> dict[str, Any]:
    return {"acme": {
        "email": email,
        "server": ACME_DIRECTORY,
        "privateKeySecretRef": {"name": f"{ACME_ISSUER}-account"},
        "solvers": [{"http01": {"ingress": {"ingressClassName": ingress_class}}}],
    }}


@dataclass(frozen=True)
class TlsArgs:
    acme_email: str | None
    ingress_class: str


class Tls(pulumi.ComponentResource):
    """cert-manager and the ClusterIssuer every Ingress of the platform names."""

    issuer: str
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: TlsArgs, namespace: pulumi.Resource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("cdl:platform:Tls", name, None, opts)
        self.release = release("cert-manager", pins.CERT_MANAGER, Namespace.TLS,
                               cert_manager_values(), self, [namespace])
        after_chart = pulumi.ResourceOptions(parent=self, depends_on=[self.release])

        def cluster_issuer(issuer: str, spec: dict[str, Any],
                           opts: pulumi.ResourceOptions) -> k8s.apiextensions.CustomResource:
            return k8s.apiextensions.CustomResource(
                issuer, api_version="cert-manager.io/v1", kind="ClusterIssuer",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=issuer), spec=spec, opts=opts)

        self_signed = cluster_issuer(SELF_SIGNED_ISSUER, {"selfSigned": {}}, after_chart)
        ca = k8s.apiextensions.CustomResource(
            "cdl-ca-certificate", api_version="cert-manager.io/v1", kind="Certificate",
            # A ClusterIssuer reads its CA secret from cert-manager's own namespace.
            metadata=k8s.meta.v1.ObjectMetaArgs(name=CA_SECRET, namespace=Namespace.TLS),
            spec=ca_certificate_spec(),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self_signed]))
        cluster_issuer(CA_ISSUER, {"ca": {"secretName": CA_SECRET}},
                       pulumi.ResourceOptions(parent=self, depends_on=[ca]))
        self.issuer = CA_ISSUER
        if args.acme_email:
            cluster_issuer(ACME_ISSUER, acme_issuer_spec(args.acme_email, args.ingress_class),
                           after_chart)
            self.issuer = ACME_ISSUER
        self.register_outputs({"issuer": self.issuer})
