"""The platform's `cdl:*` keys: defaults, errors that name the key, secrets read as secrets."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest

from stacks.platform import PlatformArgs
from stacks.platform.config import KEYS, SECRET_KEYS, PlatformConfigError, load
from tests.stacks.platform.conftest import PlatformMocks


def _stack(monkeypatch: pytest.MonkeyPatch, values: dict[str, str],
           secret: tuple[str, ...] = ()) -> pulumi.Config:
    """The stack's config as the CLI hands it to the program."""
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({f"cdl:{k}": v for k, v in values.items()}))
    monkeypatch.setenv("PULUMI_CONFIG_SECRET_KEYS", json.dumps([f"cdl:{k}" for k in secret]))
    pulumi.runtime.set_mocks(PlatformMocks(), project="cdl", stack="test", preview=False)
    return pulumi.Config("cdl")


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(_stack(monkeypatch, {"domain": "cdl.example.org"}))
    assert (config.serving, config.object_store, config.ingress_class) == (
        "seldon", "minio", "public")
    assert config.host("determined") == "determined.cdl.example.org"


@pytest.mark.parametrize(("values", "message"), [
    ({"domain": "cdl.example.org", "serving": "triton"}, "cdl:serving: Input should be"),
    ({}, "cdl:domain: Field required"),
    ({"domain": "not a name"}, "is not a DNS name"),
    ({"domain": "cdl.example.org", "objectStore": "external"},
     "objectStoreEndpoint is required"),
    ({"domain": "cdl.example.org", "gitlabUrl": "http://gitlab.example.org"}, "https://"),
    ({"domain": "cdl.example.org", "gpusPerNode": "0"}, "cdl:gpusPerNode"),
])
def test_errors_name_the_key(monkeypatch: pytest.MonkeyPatch, values: dict[str, str],
                             message: str) -> None:
    with pytest.raises(PlatformConfigError, match=message) as raised:
        load(_stack(monkeypatch, values))
    # Pulumi prints a RunError as its message alone: one line, no traceback
    assert isinstance(raised.value, pulumi.RunError)


def test_secrets_come_from_secret_config(monkeypatch: pytest.MonkeyPatch) -> None:
    stack = _stack(monkeypatch, {"domain": "cdl.example.org", "objectStore": "external",
                                 "objectStoreEndpoint": "s3.example.org:443",
                                 "objectStoreAccessKey": "ak", "objectStoreSecretKey": "sk",
                                 "gitlabAdminToken": "glpat"}, secret=SECRET_KEYS)
    args = PlatformArgs.from_config(stack)
    assert args.config.object_store_endpoint == "s3.example.org:443"
    seen: dict[str, Any] = {}

    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        values = [pulumi.Output.from_input(v) for v in (
            args.object_store_access_key, args.object_store_secret_key, args.gitlab_admin_token)]
        secret = [pulumi.Output.from_input(v.is_secret()) for v in values]
        return pulumi.Output.all(*values, *secret).apply(lambda got: seen.update(got=got))

    check()
    assert seen["got"] == ["ak", "sk", "glpat", True, True, True]
    assert set(KEYS).isdisjoint(SECRET_KEYS)
