"""Upstream data files (chart values, schemas, CRDs) read in place, and validators over them.

The files live in ``shared/upstream`` next to the repository (see SOURCES.md there); they are
read, never copied into the repository. ``CDL_UPSTREAM`` overrides the location; where none
is found, the tests that need them are skipped with that reason.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = "1.33.0"


def candidates() -> list[Path]:
    """Where the upstream files may be: CDL_UPSTREAM, else beside the clone, else the machine's
    shared copy."""
    found = [Path(p) for p in [os.environ.get("CDL_UPSTREAM")] if p]
    return found + [REPO.parent / "shared" / "upstream", Path("/work/shared/upstream")]


def find_upstream() -> Path | None:
    return next((c for c in candidates() if (c / "crds").is_dir()), None)


def upstream_root() -> Path:
    found = find_upstream()
    if found is None:
        # A clone on a user's machine has no such copy (the charts' own files are not ours to
        # commit): the checks against them are skipped there, and setup.sh says so up front.
        pytest.skip("the upstream chart data (values, schemas, CRDs) is not in "
                    + ", ".join(map(str, candidates())) + "; set CDL_UPSTREAM to a copy")
    return found


@functools.cache
def _crds() -> dict[tuple[str, str, str], dict[str, dict[str, Any]]]:
    """(group, version, kind) → {CRD file: that version's openAPIV3Schema}. A kind can come in
    several releases (KServe 0.14.1, the pin, and 0.20.0, the upgrade target)."""
    found: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for path in sorted((upstream_root() / "crds").glob("*.yaml")):
        # libyaml's loader: the CRDs are 9 MB of YAML, minutes for the pure-Python one.
        for crd in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (spec["group"], version["name"], spec["names"]["kind"])
                found.setdefault(key, {})[path.name] = version["schema"]["openAPIV3Schema"]
    return found


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The API server prunes fields a structural schema does not declare, so a misspelled field
    vanishes silently; validating here, an undeclared field is an error instead."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {k: _closed(v) for k, v in schema["properties"].items()}
        if ("additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            schema[key] = _closed(schema[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            schema[key] = [_closed(s) for s in schema[key]]
    return schema


def validate_custom_resource(obj: dict[str, Any]) -> list[str]:
    """Validate a custom resource against every copy of its CRD; fail if none is known.
    Returns the CRD files it was checked against."""
    group, _, version = obj["apiVersion"].rpartition("/")
    key = (group, version, obj["kind"])
    schemas = _crds().get(key)
    if not schemas:
        pytest.fail(f"no CRD for {key} in {upstream_root() / 'crds'}")
    for schema in schemas.values():
        closed = _closed(schema)
        # metadata is the API server's ObjectMeta, not described by the CRD's schema.
        closed["properties"]["metadata"] = {"type": "object"}
        jsonschema.Draft7Validator(closed).validate(obj)
    return sorted(schemas)


def is_custom(obj: dict[str, Any]) -> bool:
    group, _, version = obj["apiVersion"].rpartition("/")
    return (group, version, obj["kind"]) in _crds()


def validate_manifest(obj: dict[str, Any]) -> None:
    """A built-in kind through kubernetes-validate --strict for Kubernetes 1.33, a custom
    resource through its CRD (kubernetes-validate passes those without looking)."""
    if is_custom(obj):
        validate_custom_resource(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


# ---- chart values -------------------------------------------------------------------------

def chart_dir(name: str) -> Path:
    path = upstream_root() / name
    if not (path / "values.yaml").exists():
        pytest.fail(f"no upstream values.yaml for {name} in {upstream_root()}")
    return path


def defaults(name: str) -> dict[str, Any]:
    return yaml.safe_load((chart_dir(name) / "values.yaml").read_text()) or {}


def values_schema(name: str) -> dict[str, Any] | None:
    path = chart_dir(name) / "values.schema.json"
    return json.loads(path.read_text()) if path.exists() else None


def merged(base: Any, ours: Any) -> Any:
    """Helm's coalescing: maps merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(ours, dict):
        out = dict(base)
        for key, value in ours.items():
            out[key] = merged(base.get(key), value) if key in base else value
        return out
    return ours


def documented_paths(name: str) -> set[tuple[str, ...]]:
    """Keys the chart's values.yaml documents only in comments (``# hostAddress:``), by path.

    Charts without a schema (Determined) document most options as commented-out keys; the
    indentation of the uncommented line places each under its parent."""
    paths: set[tuple[str, ...]] = set()
    stack: list[tuple[int, str]] = []
    for line in (chart_dir(name) / "values.yaml").read_text().splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        commented = stripped.startswith("#")
        if commented:
            body = stripped.lstrip("#")
            body = body[1:] if body.startswith(" ") else body
            indent += len(body) - len(body.lstrip())
            stripped = body.lstrip()
        item = stripped.startswith("- ")
        if item:
            stripped = stripped[2:].lstrip()
            indent += 2
        key, colon, _ = stripped.partition(":")
        if not colon or not key or not all(c.isalnum() or c in "_-." for c in key):
            continue
        # Prose in comments ("NOTE: ...", "Example: ...") is capitalised; chart keys are not.
        if commented and not key[0].islower():
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        paths.add(tuple(k for _, k in stack))
    return paths


FREE = {"x-free-form": True}


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (cert-manager's schema is all ``#/$defs/...``)."""
    while "$ref" in schema and schema["$ref"].startswith("#/"):
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        schema = target
    return schema


def _schema_at(schema: dict[str, Any] | None, key: str, root: dict[str, Any]
               ) -> dict[str, Any] | None:
    """The sub-schema for ``key`` under an object schema; FREE where the schema leaves the map
    open (any key, any content); None where the schema does not know the key."""
    if schema is None:
        return None
    if schema is FREE:
        return FREE
    schema = _resolve(schema, root)
    props = schema.get("properties", {})
    if key in props:
        return _resolve(props[key], root)
    extra = schema.get("additionalProperties")
    if extra is True or (schema.get("type") == "object" and not props and extra is None):
        return FREE
    if isinstance(extra, dict):
        return _resolve(extra, root)
    return None


def unknown_keys(values: dict[str, Any], chart: str,
                 free_form: dict[tuple[str, ...], str]) -> list[str]:
    """Every key of ``values`` the chart does not know, as a dotted path.

    A key is known if the chart's default values, its values.schema.json or its commented
    documentation has it at that path. Below a path in ``free_form`` anything goes: those are
    maps the chart passes through verbatim (resources, annotations, pod specs), each listed
    with the reason. Helm itself ignores an unknown key silently, which is why this exists."""
    documented = documented_paths(chart)
    schema = values_schema(chart)
    problems: list[str] = []

    def walk(node: Any, default: Any, sub: dict[str, Any] | None, path: tuple[str, ...]) -> None:
        if path in free_form or sub is FREE:
            return
        if isinstance(node, list):
            default_item = default[0] if isinstance(default, list) and default else None
            item_schema = _resolve(sub, schema or {}).get("items") if sub else None
            for item in node:
                walk(item, default_item, item_schema if isinstance(item_schema, dict) else None,
                     path)
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            here = (*path, key)
            in_defaults = isinstance(default, dict) and key in default
            child_schema = _schema_at(sub, key, schema or {})
            if not (in_defaults or child_schema is not None or here in documented
                    or here in free_form):
                problems.append(".".join(here))
                continue
            walk(value, default.get(key) if isinstance(default, dict) else None,
                 child_schema, here)

    walk(values, defaults(chart), schema, ())
    return problems


def schema_errors(values: dict[str, Any], chart: str) -> list[str]:
    """Errors of the merged values against the chart's values.schema.json, as Helm checks."""
    schema = values_schema(chart)
    if schema is None:
        return []
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(merged(defaults(chart), values))]


def iter_documents(text: str) -> Iterator[dict[str, Any]]:
    for document in yaml.safe_load_all(text):
        if document:
            yield document
