"""The policy pack's Helm rules (policies/rules.py) over every release the Platform declares.

Policies see secret inputs decrypted, as the mocks' unwrapped inputs here."""

from __future__ import annotations

import pytest

from policies.rules import RULES, helm_chart_unpinned, helm_plaintext_secrets
from tests.stacks.platform.conftest import RELEASE, Deploy, Deployment, plain

# The charts that take these credentials only as values (no existing-Secret option in the
# pinned chart): the values are Pulumi secrets, but the pack's rule rightly flags them, since
# `helm get values` shows them. The test pins the list so nothing else joins it unnoticed.
CHART_HELD = {
    "determined": {"values.db.password", "values.checkpointStorage.accessKey",
                   "values.checkpointStorage.secretKey", "values.initialUserPassword"},
    "pachyderm": {"values.pachd.storage.minio.secret"},
}
# Flagged although they hold no credential, because the rule's key patterns cannot tell: the
# GitLab Runner chart names its token Secret with `runners.secret`; MinIO's user entry names the
# S3 user (an access key ID is an identity, its secret key comes from existingSecret); Label
# Studio's `secretKey` names the key inside the referenced Secret.
NOT_A_CREDENTIAL = {
    "gitlab-runner": {"values.runners.secret"},
    "minio": {"values.users[0].accessKey"},
    "label-studio": {"values.global.pgConfig.password.secretKey",
                     "values.global.extraEnvironmentSecrets.LABEL_STUDIO_USERNAME.secretKey",
                     "values.global.extraEnvironmentSecrets.LABEL_STUDIO_PASSWORD.secretKey"},
}


@pytest.fixture(params=["seldon", "kserve"])
def platform(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    return deploy({"serving": request.param, "gitlabUrl": "https://gitlab.example.org"},
                  gitlab_admin_token="glpat-admin")


def test_the_pack_has_the_helm_rules() -> None:
    names = {rule.name for rule in RULES}
    assert {"helm-chart-version-pinned", "helm-values-without-plaintext-secrets"} <= names


def test_every_release_passes_the_pinned_chart_rule(platform: Deployment) -> None:
    for release in platform.of(RELEASE):
        assert helm_chart_unpinned(RELEASE, plain(release.inputs)) == [], release.name


def test_only_chart_held_credentials_trip_the_plaintext_rule(platform: Deployment) -> None:
    for release in platform.of(RELEASE):
        found = helm_plaintext_secrets(RELEASE, plain(release.inputs))
        flagged = {message.split(" holds ")[0] for message in found}
        name = release.inputs["name"]
        assert flagged == CHART_HELD.get(name, set()) | NOT_A_CREDENTIAL.get(name, set()), name
    values = {name: platform.values(name) for name in NOT_A_CREDENTIAL}
    assert values["gitlab-runner"]["runners"]["secret"] == "gitlab-runner-token"
    assert values["minio"]["users"][0]["accessKey"] == "cdl-platform"
    secrets = values["label-studio"]["global"]["extraEnvironmentSecrets"]
    assert {s["secretKey"] for s in secrets.values()} == {"username", "password"}
