"""The policy pack's Helm rules (policies/rules.py) over every release the Platform declares.

Policies see secret inputs decrypted, as the mocks' unwrapped inputs here."""

from __future__ import annotations

from typing import Any

import pytest

from policies.rules import (
    CHART_HELD_CREDENTIALS,
    CHART_HELD_KEY,
    RULES,
    helm_chart_unpinned,
    helm_plaintext_secrets,
)
from stacks.platform import pins
from tests.stacks.platform.conftest import RELEASE, Deploy, Deployment, plain

PLAINTEXT_RULE = next(rule for rule in RULES
                      if rule.name == "helm-values-without-plaintext-secrets")
# What each default allowlist entry lets through, by release: the credentials the pinned
# Determined and Pachyderm charts take only as values.
CHART_HELD = {
    "determined": {"values.db.password", "values.checkpointStorage.accessKey",
                   "values.checkpointStorage.secretKey", "values.initialUserPassword"},
    "pachyderm": {"values.pachd.storage.minio.secret"},
}


@pytest.fixture(params=["seldon", "kserve"])
def platform(request: pytest.FixtureRequest, deploy: Deploy) -> Deployment:
    return deploy({"serving": request.param, "gitlabUrl": "https://gitlab.example.org"},
                  gitlab_admin_token="glpat-admin")


def _flagged(props: dict[str, Any], **allowed: Any) -> set[str]:
    return {message.split(" holds ")[0]
            for message in helm_plaintext_secrets(RELEASE, props, **allowed)}


def test_the_pack_has_the_helm_rules() -> None:
    names = {rule.name for rule in RULES}
    assert {"helm-chart-version-pinned", "helm-values-without-plaintext-secrets"} <= names


def test_every_release_passes_the_pinned_chart_rule(platform: Deployment) -> None:
    for release in platform.of(RELEASE):
        assert helm_chart_unpinned(RELEASE, plain(release.inputs)) == [], release.name


def test_every_release_complies_under_the_default_allowlist(platform: Deployment) -> None:
    for release in platform.of(RELEASE):
        props = plain(release.inputs)
        assert helm_plaintext_secrets(RELEASE, props) == [], release.name
        # The pack's policy with no config of its own takes the same default.
        assert PLAINTEXT_RULE.check(RELEASE, props, {}) == [], release.name


def test_without_the_allowlist_exactly_the_chart_held_credentials_fire(
        platform: Deployment) -> None:
    flagged = {name: found for name, release in platform.releases().items()
               if (found := _flagged(plain(release.inputs), allowed=()))}
    assert flagged == CHART_HELD
    releases = platform.releases()
    for name in CHART_HELD:
        props = plain(releases[name].inputs)
        assert PLAINTEXT_RULE.check(RELEASE, props, {CHART_HELD_KEY: []})


@pytest.mark.parametrize("entry", CHART_HELD_CREDENTIALS, ids=lambda e: f"{e.chart}:{e.path}")
def test_removing_an_allowlist_entry_makes_the_rule_fire_again(deploy: Deploy,
                                                               entry: Any) -> None:
    props = plain(deploy().releases()[entry.chart].inputs)
    rest = [e for e in CHART_HELD_CREDENTIALS if e != entry]
    assert _flagged(props, allowed=rest) == {f"values.{entry.path}"}


def test_the_allowlist_follows_the_pinned_chart_versions(deploy: Deploy) -> None:
    pinned = {pin.chart: pin.version for pin in (pins.DETERMINED, pins.PACHYDERM)}
    assert {entry.chart: entry.version for entry in CHART_HELD_CREDENTIALS} == pinned
    # A chart upgrade loses the allowance: the new version must be checked for a Secret option.
    props = {**plain(deploy().releases()["determined"].inputs), "version": "0.39.0"}
    assert _flagged(props) == CHART_HELD["determined"]


def test_the_values_the_rule_accepts_as_references_name_existing_secrets(
        platform: Deployment) -> None:
    """The keys the rule no longer flags name a Secret the platform writes, holding that key."""
    values = {name: platform.values(name) for name in ("gitlab-runner", "minio", "label-studio")}
    namespace = {name: release.inputs["namespace"]
                 for name, release in platform.releases().items()}

    def data(release: str, name: str) -> dict[str, str]:
        return plain(platform.secret(namespace[release], name)["stringData"])

    def holds(release: str, name: str, key: str) -> None:
        assert key in data(release, name), (name, key)

    holds("gitlab-runner", values["gitlab-runner"]["runners"]["secret"], "runner-token")
    (user,) = values["minio"]["users"]
    holds("minio", user["existingSecret"], user["existingSecretKey"])
    # The user name is also the identity in the Secret the other tools log in with.
    assert data("minio", user["existingSecret"])["accessKey"] == user["accessKey"]
    studio = values["label-studio"]["global"]
    references = [studio["pgConfig"]["password"], *studio["extraEnvironmentSecrets"].values()]
    for reference in references:
        holds("label-studio", reference["secretName"], reference["secretKey"])
