"""Every experiment YAML of the use cases against Determined 0.38's rules (#13), offline.

The master checks an experiment config against its JSON schemas (``schemas/expconf/v0`` of the
0.38.1 tag, read in place from ``shared/upstream``, see tests/charts/upstream.py) with custom
keywords that only its Go code implements (``master/pkg/schemas/extensions/*.go``). A stock
validator ignores them, and with them the searcher and the hyperparameters. This module
validates with jsonschema's Draft 7 plus small Python versions of those keywords. They are our
reading of the Go semantics, not the master itself, and they are checked against Determined's
own test cases (``test_cases/v0``) below.

Implemented:

- ``optionalRef``: null passes; anything else must match the referenced schema.
- ``union``: as in union.go, every item is tried and exactly one must match. The unionKey
  (``always``, ``never``, ``not:``, ``const:k=v``, ``singleproperty:``, ``type:``,
  ``hasattr:``) only picks the item whose errors are reported; none picked gives the
  union's default message.
- ``checks``: each subschema must match; when one does not, its key is the error.
- ``compareProperties``: ``a<b``, ``a<=b``, ``a_is_subdir_of_b``. A missing or mistyped
  operand is no error of this keyword, since Go recovers from its panic there. An unknown
  type raises.
- ``disallowProperties``: a listed key that is present, even as null, is an error with its
  message.
- ``eventuallyRequired`` (listed keys present and not null) and ``eventually`` (a subschema)
  apply only in the completeness pass. The master runs that pass at submit time, after it has
  filled in defaults; the sanity pass on the raw config leaves them out.

Skipped: ``conditional``, which Go registers but no v0 schema uses, and ``default``, which is
not validation. The master applies the defaults before its completeness pass. We do not;
``completed()`` adds only the fields without a usable schema default that the master fills
from the cluster.

Some of 0.38's rules are in no schema. Per the 0.38.0 release note
(docs/release-notes/searcher-context-removal.rst), ASHA needs ``time_metric`` and
``max_time``, and ``max_length`` is deprecated: the schemas still accept it, but ASHA ignores it.
The entrypoint is a command, no longer ``model_def:Trial``. ``rule_problems`` checks these,
together with our own rules: the entrypoint is ``python3 -m`` on a module of this repository,
and ``resources.slots_per_trial`` is set.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, ValidationError, validators
from referencing import Registry
from referencing.jsonschema import DRAFT7

from tests.charts.upstream import find_upstream, upstream_root

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = "determined-0.38.1/schemas"
V0 = "http://determined.ai/schemas/expconf/v0/"
EXPERIMENT = V0 + "experiment.json"
# Every YAML in a use case's folder is one of its experiment configs.
EXPERIMENTS = sorted(p.relative_to(REPO) for p in (REPO / "usecases").glob("*/*.yaml"))
ADAPTIVE = [p for p in EXPERIMENTS if p.name == "adaptive.yaml"]
# What cdl puts into data.features: the folder of a featurised dataset version, as a string.
FEATURES = "/var/lib/cdl/features/0123abcd"
IMAGE = "registry.example:5000/cdl:1.0"
# environment.image as the cluster adapter (usecases/stores/determined.py) sets it: none,
# one image, or a CPU and a CUDA image.
SUBMITTED_IMAGES: dict[str, Any] = {"no-image": None, "one-image": IMAGE,
                                    "cpu-cuda": {"cpu": IMAGE, "cuda": IMAGE + "-cuda"}}


# ---- the validator ---------------------------------------------------------------------------

def schemas_root() -> Path:
    path = upstream_root() / SCHEMAS
    if not (path / "expconf" / "v0").is_dir():
        pytest.fail(f"no Determined experiment-config schemas in {path} (see SOURCES.md)")
    return path


@functools.cache
def _registry() -> Registry[Any]:
    resources = []
    for path in sorted((schemas_root() / "expconf" / "v0").glob("*.json")):
        schema = json.loads(path.read_text())
        # With "$schema" there, jsonschema would switch to the stock Draft7Validator (no custom
        # keywords) on entering this document through a $ref.
        schema.pop("$schema", None)
        resources.append((schema["$id"], DRAFT7.create_resource(schema)))
    return Registry().with_resources(resources)


Keyword = Iterator[ValidationError]


def _optional_ref(validator: Any, ref: str, instance: Any, schema: Any) -> Keyword:
    if instance is not None:
        yield from validator.descend(instance, {"$ref": ref})


def _key_holds(key: str, instance: Any) -> bool:
    kind, _, arg = key.partition(":")
    if kind in ("always", "never"):
        return kind == "always"
    if kind == "not":
        return not _key_holds(arg, instance)
    if kind == "type":
        return isinstance(instance, {"array": list, "object": dict}[arg])
    if not isinstance(instance, dict):
        return False
    if kind == "const":
        name, _, value = arg.partition("=")
        return instance.get(name) == value
    if kind == "singleproperty":
        return list(instance) == [arg]
    if kind == "hasattr":
        return arg in instance
    raise ValueError(f"unknown unionKey {key!r}")


def _union(validator: Any, union: dict[str, Any], instance: Any, schema: Any) -> Keyword:
    tried = [(item, list(validator.descend(instance, item))) for item in union["items"]]
    matched = sum(not errors for _, errors in tried)
    if matched == 1:
        return
    if matched > 1:
        yield ValidationError(f"{matched} union items matched (a bug in the schema)")
        return
    shown = next((errors for item, errors in tried if _key_holds(item["unionKey"], instance)),
                 [])
    yield ValidationError(union.get("defaultMessage", "union failed to validate"), context=shown)


def _checks(validator: Any, checks: dict[str, Any], instance: Any, schema: Any) -> Keyword:
    for message, subschema in checks.items():
        if next(validator.descend(instance, subschema), None) is not None:
            yield ValidationError(message)


def _compare_properties(validator: Any, compare: dict[str, str], instance: Any,
                        schema: Any) -> Keyword:
    def operand(path: str) -> Any:
        value = instance
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        return value

    kind, a, b = compare["type"], operand(compare["a"]), operand(compare["b"])
    if kind in ("a<b", "a<=b"):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)) and (
                a >= b if kind == "a<b" else a > b):
            yield ValidationError(f"{compare['a']} must be less than {compare['b']}")
    elif kind == "a_is_subdir_of_b":
        if isinstance(a, str) and isinstance(b, str):
            a, b = posixpath.normpath(a), posixpath.normpath(b)
            if a.startswith("/") and not a.startswith(b) or a.startswith(".."):
                yield ValidationError(f"{compare['a']} must be a subdirectory of {compare['b']}")
    else:
        raise ValueError(f"unknown compareProperties type {kind!r}")


def _disallow_properties(validator: Any, disallowed: dict[str, str], instance: Any,
                         schema: Any) -> Keyword:
    if isinstance(instance, dict):
        yield from (ValidationError(msg) for key, msg in disallowed.items() if key in instance)


def _eventually_required(validator: Any, required: list[str], instance: Any,
                         schema: Any) -> Keyword:
    if isinstance(instance, dict):
        yield from (ValidationError(f"{key} is a required property")
                    for key in required if instance.get(key) is None)


def _eventually(validator: Any, subschema: Any, instance: Any, schema: Any) -> Keyword:
    yield from validator.descend(instance, subschema)


Sane = validators.extend(Draft7Validator, {
    "optionalRef": _optional_ref, "union": _union, "checks": _checks,
    "compareProperties": _compare_properties, "disallowProperties": _disallow_properties})
Complete = validators.extend(Sane, {"eventuallyRequired": _eventually_required,
                                    "eventually": _eventually})


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    if error.context:
        for child in error.context:
            yield from _leaves(child)
    else:
        yield error


def schema_errors(instance: Any, url: str = EXPERIMENT, complete: bool = False) -> list[str]:
    """The errors of ``instance`` against the schema ``url``, rendered as the master renders
    them (``<config>.a.b[2]: message``); ``complete`` adds the completeness pass."""
    validator = (Complete if complete else Sane)({"$ref": url}, registry=_registry())
    rendered = []
    for top in validator.iter_errors(instance):
        for leaf in _leaves(top):
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                           for p in leaf.absolute_path)
            rendered.append(f"<config>{path}: {leaf.message}")
    return rendered


# ---- Determined's own test cases -------------------------------------------------------------

# (file, case, pass, schema URL, expected errors: None where the case is valid). Every file of
# test_cases/v0 takes part, each with every case that states a verdict: sane_as and
# sanity_errors for the sanity pass, complete_as and completeness_errors for the completeness
# pass. Their other cases (default_as, merge_as) test defaults and merging, which is not
# validation.
UpstreamCase = tuple[str, dict[str, Any], bool, str, list[str] | None]


def _upstream_cases() -> list[Any]:
    root = find_upstream()
    folder = root / SCHEMAS / "test_cases" / "v0" if root else None
    if folder is None or not folder.is_dir():  # the test then skips or fails, saying why
        return [pytest.param(None, id="no-upstream")]
    params = []
    for path in sorted(folder.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()):
            for complete, valid_key, invalid_key in ((False, "sane_as", "sanity_errors"),
                                                     (True, "complete_as",
                                                      "completeness_errors")):
                expected: dict[str, list[str] | None] = {
                    url: None for url in case.get(valid_key, [])}
                expected.update(case.get(invalid_key, {}))
                for url, errors in expected.items():
                    verdict = "valid" if errors is None else "invalid"
                    name = f"{path.stem}: {case['name']}: {valid_key[:-3]} {url.rsplit('/')[-1]}"
                    params.append(pytest.param((path.stem, case, complete, url, errors),
                                               id=f"{name} {verdict}"))
    return params


@pytest.mark.parametrize("upstream", _upstream_cases())
def test_agrees_with_determined_test_case(upstream: UpstreamCase | None) -> None:
    if upstream is None:
        schemas_root()
        pytest.fail(f"no test cases in {schemas_root() / 'test_cases' / 'v0'}")
    _, case, complete, url, expected = upstream
    errors = schema_errors(case.get("case"), url, complete)
    if expected is None:
        assert errors == []
    else:
        assert errors, "refused by Determined, passed here"
        # Each expected message (a regular expression, as in Determined's own test) is among ours.
        missing = [p for p in expected if not any(re.search(p, e) for e in errors)]
        assert not missing, f"expected {missing} among {errors}"


# ---- our experiment YAMLs --------------------------------------------------------------------

def load(path: Path) -> dict[str, Any]:
    """The experiment as cdl sends it: ``data.features`` filled in with a folder."""
    config: dict[str, Any] = yaml.safe_load((REPO / path).read_text())
    config["data"] = {**(config.get("data") or {}), "features": FEATURES}
    return config


def completed(config: dict[str, Any]) -> dict[str, Any]:
    """What the master adds, beyond schema defaults, before its completeness pass: the
    cluster's checkpoint storage (stacks/platform/training.py, S3 on the platform's object
    store) and a seed."""
    storage = {"type": "s3", "bucket": "checkpoints", "endpoint_url": "http://minio:9000",
               "access_key": "key", "secret_key": "secret", "save_experiment_best": 0,
               "save_trial_best": 1, "save_trial_latest": 1}
    return {"checkpoint_storage": storage, "reproducibility": {"experiment_seed": 1}, **config}


def _module_exists(module: str) -> bool:
    base = REPO.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()


def rule_problems(config: dict[str, Any]) -> list[str]:
    """0.38's rules the schemas do not carry, and ours (see the module's docstring)."""
    problems = []
    searcher = config.get("searcher") or {}
    if "max_length" in searcher:
        problems.append("searcher.max_length: deprecated in 0.38 (ASHA: time_metric + max_time;"
                        " otherwise the training code's own length)")
    if searcher.get("name") == "adaptive_asha":
        problems += [f"searcher.{key}: adaptive_asha needs it"
                     for key in ("time_metric", "max_time", "max_trials")
                     if searcher.get(key) is None]
    entrypoint = config.get("entrypoint")
    argv = shlex.split(entrypoint) if isinstance(entrypoint, str) else entrypoint or []
    if len(argv) != 3 or argv[:2] != ["python3", "-m"]:
        problems.append(f"entrypoint: {entrypoint!r} is not `python3 -m MODULE`")
    elif not _module_exists(argv[2]):
        problems.append(f"entrypoint: no module {argv[2]} in {REPO}")
    slots = (config.get("resources") or {}).get("slots_per_trial")
    if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
        problems.append(f"resources.slots_per_trial: {slots!r}, not a number of slots")
    return problems


def problems(config: dict[str, Any]) -> list[str]:
    """Everything the master (schemas, sanity and completeness) and 0.38's rules refuse."""
    return (schema_errors(config) + schema_errors(completed(config), complete=True)
            + rule_problems(config))


def test_the_experiments_are_found() -> None:
    assert {p.as_posix() for p in EXPERIMENTS} >= {
        f"usecases/{u}/{n}.yaml" for u in ("bbc", "fmnist")
        for n in ("const", "adaptive", "smoke")} | {"usecases/fmnist/distributed.yaml"}


@pytest.mark.parametrize("image", SUBMITTED_IMAGES.values(), ids=SUBMITTED_IMAGES.keys())
@pytest.mark.parametrize("path", EXPERIMENTS, ids=str)
def test_experiment_is_valid_as_submitted(path: Path, image: Any) -> None:
    config = load(path)
    assert "image" not in (config.get("environment") or {}), "the adapter sets the image"
    if image is not None:
        config.setdefault("environment", {})["image"] = image
    assert schema_errors(config) == []


@pytest.mark.parametrize("path", EXPERIMENTS, ids=str)
def test_experiment_is_complete_on_the_master(path: Path) -> None:
    assert schema_errors(completed(load(path)), complete=True) == []


@pytest.mark.parametrize("path", EXPERIMENTS, ids=str)
def test_experiment_follows_the_rules(path: Path) -> None:
    config = load(path)
    assert rule_problems(config) == []
    # The same rules spelled out, so a failure reads plainly.
    searcher = config["searcher"]
    assert "max_length" not in searcher
    if searcher["name"] == "adaptive_asha":
        assert {"time_metric", "max_time", "max_trials"} <= searcher.keys()
    assert config["resources"]["slots_per_trial"] >= 1
    python, flag, module = shlex.split(config["entrypoint"])
    assert (python, flag) == ("python3", "-m")
    assert (REPO / Path(*module.split("."))).with_suffix(".py").is_file()


# ---- refusals --------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ADAPTIVE, ids=str)
def test_max_length_instead_of_max_time_is_refused(path: Path) -> None:
    config = load(path)
    for key in ("max_time", "time_metric"):
        del config["searcher"][key]
    config["searcher"]["max_length"] = {"epochs": 16}
    # The schemas still take the deprecated field: the refusal is 0.38's ASHA rule.
    assert schema_errors(config) == []
    assert problems(config) == [
        "searcher.max_length: deprecated in 0.38 (ASHA: time_metric + max_time; otherwise the "
        "training code's own length)",
        "searcher.time_metric: adaptive_asha needs it",
        "searcher.max_time: adaptive_asha needs it"]


@pytest.mark.parametrize("path", ADAPTIVE, ids=str)
def test_a_searcher_name_typo_is_refused(path: Path) -> None:
    config = load(path)
    config["searcher"]["name"] = "adaptive_ashaa"
    assert any("object[\"name\"] is one of" in e for e in schema_errors(config))


@pytest.mark.parametrize("path", ADAPTIVE, ids=str)
def test_an_unknown_top_level_key_is_refused(path: Path) -> None:
    config = load(path)
    config["hyperparameter"] = config.pop("hyperparameters")
    assert any("'hyperparameter' was unexpected" in e for e in schema_errors(config))
