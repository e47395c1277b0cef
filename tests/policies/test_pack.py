"""The pack's entry point wires every rule as a mandatory policy.

pulumi-policy lives in the pack's own virtualenv (it pins protobuf 5; the project's venv has
protobuf 6), and building the real PolicyPack serves gRPC and blocks. So this test runs
policies/__main__.py against a small stand-in for the pulumi_policy module that records what the
pack declares; the rules themselves are tested in test_rules.py.
"""

from __future__ import annotations

import json
import runpy
import sys
import types
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from policies.rules import CHART_HELD_CREDENTIALS, CHART_HELD_KEY, RULES, chart_values

PACK = Path(__file__).resolve().parents[2] / "policies"


class _Level(Enum):
    MANDATORY = "mandatory"


class _Recorder:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class _Args:
    def __init__(self, resource_type: str, props: dict[str, Any],
                 config: dict[str, Any] | None = None) -> None:
        self.resource_type, self.props, self.config = resource_type, props, config or {}

    def get_config(self) -> dict[str, Any]:
        return self.config


@pytest.fixture
def pack(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    stand_in = types.ModuleType("pulumi_policy")
    declared: dict[str, Any] = {}
    for name in ("PolicyConfigSchema", "ResourceValidationPolicy"):
        setattr(stand_in, name, _Recorder)
    stand_in.PolicyPack = lambda **kwargs: declared.update(kwargs)  # type: ignore[attr-defined]
    stand_in.EnforcementLevel = _Level  # type: ignore[attr-defined]
    stand_in.ReportViolation = stand_in.ResourceValidationArgs = object  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pulumi_policy", stand_in)
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"cdl:gpuFlavor": "g1.t4"}))
    runpy.run_path(str(PACK), run_name="__main__")
    return declared


def test_every_rule_is_a_mandatory_policy(pack: dict[str, Any]) -> None:
    assert pack["enforcement_level"] is _Level.MANDATORY
    policies = [p.kwargs for p in pack["policies"]]
    assert [p["name"] for p in policies] == [rule.name for rule in RULES]
    assert all(p["enforcement_level"] is _Level.MANDATORY and p["description"]
               for p in policies)


def test_gpu_flavor_defaults_to_the_stack_config(pack: dict[str, Any]) -> None:
    by_name = {p.kwargs["name"]: p.kwargs for p in pack["policies"]}
    schema = by_name["gpu-nodes-on-configured-flavor"]["config_schema"].kwargs
    assert schema["properties"]["gpuFlavors"]["default"] == ["g1.t4"]
    reported: list[str] = []
    by_name["gpu-nodes-on-configured-flavor"]["validate"](
        _Args("openstack:compute/instance:Instance",
              {"metadata": {"cdl_role": "gpu_node"}, "flavorName": "m1.large"}),
        lambda message, urn: reported.append(message))
    assert reported == ["GPU node on flavor 'm1.large'; expected one of g1.t4 (flavorName)"]



@pytest.mark.parametrize(("config", "expected"), [
    ({}, []),
    ({CHART_HELD_KEY: []}, ["values.db.password"]),
])
def test_chart_held_credentials_come_from_the_pack_config(
        pack: dict[str, Any], config: dict[str, Any], expected: list[str]) -> None:
    policy = {p.kwargs["name"]: p.kwargs
              for p in pack["policies"]}["helm-values-without-plaintext-secrets"]
    schema = policy["config_schema"].kwargs["properties"][CHART_HELD_KEY]
    assert chart_values(schema["default"]) == CHART_HELD_CREDENTIALS
    determined = {"chart": "determined", "version": "0.38.1", "values": {"db": {"password": "p"}}}
    reported: list[str] = []
    policy["validate"](_Args("kubernetes:helm.sh/v3:Release", determined, config),
                       lambda message, urn: reported.append(message))
    assert [message.split(" holds ")[0] for message in reported] == expected
