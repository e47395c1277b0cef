"""The policy pack: every rule of ``policies.rules`` as a mandatory resource policy.

Pulumi runs this file (``pulumi preview --policy-pack policies``); building the PolicyPack
serves it to the engine and blocks, which is why tests call the rules directly.
"""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pulumi
from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

# Pulumi runs the pack with policies/ as its directory; the rules import as `policies.rules`.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies.rules import RULES, Rule  # noqa: E402


def _defaults() -> dict[str, Any]:
    # The engine hands the stack's config to policy packs: the GPU flavor the stack asks for
    # is the one GPU nodes must use unless the pack's own gpuFlavors config says otherwise.
    flavor = pulumi.Config("cdl").get("gpuFlavor")
    return {"gpuFlavors": [flavor] if flavor else []}


def _policy(rule: Rule, defaults: Mapping[str, Any]) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        config = {**defaults, **args.get_config()}
        for message in rule.check(args.resource_type, args.props, config):
            report_violation(message, None)

    schema = None
    if rule.config_schema:
        properties = {key: {**spec, **({"default": defaults[key]} if key in defaults else {})}
                      for key, spec in rule.config_schema.items()}
        schema = PolicyConfigSchema(properties=properties)
    return ResourceValidationPolicy(name=rule.name, description=rule.description,
                                    validate=validate, config_schema=schema,
                                    enforcement_level=EnforcementLevel.MANDATORY)


_DEFAULTS = _defaults()
PolicyPack(name="cdl", enforcement_level=EnforcementLevel.MANDATORY,
           policies=[_policy(rule, _DEFAULTS) for rule in RULES])
