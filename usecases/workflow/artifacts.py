"""A run's results as the files a CI system shows: ``cdl demo --artifacts DIR``.

GitLab reads three of them as reports (``artifacts:reports``): ``junit.xml``, one test case per
use case whose failure is a gate below its threshold (shown in merge requests and the pipeline's
Tests tab); ``metrics.txt``, ``name value`` lines (its metrics report); ``model.env``, dotenv
variables later jobs of the pipeline receive. ``summary.md`` is for people: each use case's
figures, the gate's verdict, the dataset version and the model's versions.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from usecases.state import atomic_write
from usecases.stores.registry import ModelVersion

JUNIT, METRICS, DOTENV, SUMMARY = "junit.xml", "metrics.txt", "model.env", "summary.md"


def write(folder: Path, usecases: dict[str, dict[str, Any]],
          versions: Iterable[ModelVersion]) -> list[Path]:
    """The four files for ``usecases`` (a run report's, by name) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    by_model: dict[str, list[ModelVersion]] = {}
    for entry in versions:
        by_model.setdefault(entry.name, []).append(entry)
    files = {JUNIT: junit(usecases), METRICS: metrics(usecases), DOTENV: dotenv(usecases),
             SUMMARY: summary(usecases, by_model)}
    for name, text in files.items():
        atomic_write(folder / name, text)
    return [folder / name for name in files]


def junit(usecases: dict[str, dict[str, Any]]) -> str:
    suite = ET.Element("testsuite", name="cdl gate", tests=str(len(usecases)),
                       failures=str(sum(not r["gate_passed"] for r in usecases.values())))
    for name, result in usecases.items():
        case = ET.SubElement(suite, "testcase", classname=f"cdl.{name}",
                             name=f"test accuracy >= gate {result['gate']['threshold']:g}",
                             time=f"{result['timings'].get('total', 0.0):.2f}")
        if not result["gate_passed"]:
            failure = ET.SubElement(case, "failure", message=(
                f"test accuracy {result['test_accuracy']:.4f} is below the gate "
                f"{result['gate']['threshold']:g}"))
            failure.text = (f"{result['model']['name']} v{result['model']['version']} on "
                            f"dataset {result['dataset']['version']} stays registered, "
                            "not approved")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def metrics(usecases: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, result in usecases.items():
        lines += [f"{name}_test_accuracy {result['test_accuracy']:.4f}",
                  f"{name}_val_accuracy {result['val_accuracy']:.4f}",
                  f"{name}_gate {result['gate']['threshold']:g}",
                  f"{name}_gate_passed {int(bool(result['gate_passed']))}",
                  f"{name}_model_version {result['model']['version']}"]
    return "\n".join(lines) + "\n"


def dotenv(usecases: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, result in usecases.items():
        key = f"CDL_{name.upper()}"
        lines += [f"{key}_MODEL={result['model']['name']}",
                  f"{key}_MODEL_VERSION={result['model']['version']}",
                  f"{key}_DATASET_VERSION={result['dataset']['version']}",
                  f"{key}_GATE_PASSED={'true' if result['gate_passed'] else 'false'}"]
    return "\n".join(lines) + "\n"


def summary(usecases: dict[str, dict[str, Any]],
            by_model: dict[str, list[ModelVersion]]) -> str:
    out = ["# cdl: model report", ""]
    for name, result in usecases.items():
        model, dataset, counts = result["model"], result["dataset"], result["dataset"]["counts"]
        verdict = "passed" if result["gate_passed"] else "**failed**"
        out += [f"## {name}: {model['name']} v{model['version']}, gate {verdict}", "",
                "| | |", "| --- | --- |",
                f"| test accuracy | {result['test_accuracy']:.4f} |",
                f"| validation accuracy | {result['val_accuracy']:.4f} |",
                f"| gate | {result['gate']['threshold']:g}: {verdict} |",
                f"| dataset version | `{dataset['version']}` ({counts['valid']} valid, "
                f"{counts['quarantined']} quarantined) |",
                f"| search | {result['search']['trials']} trials, "
                f"{result['search']['pruned']} pruned |",
                f"| code version | `{model['code_version']}` |",
                f"| trained | {'reused from an earlier run' if model['reused'] else 'now'} |",
                "", f"### {model['name']}: registered versions", "",
                "| version | dataset | test accuracy | gate | verdict |",
                "| ---: | --- | ---: | ---: | --- |"]
        for entry in by_model.get(model["name"], []):
            out.append(
                f"| {entry.version} | `{entry.dataset_version}` | "
                f"{'' if entry.test_accuracy is None else f'{entry.test_accuracy:.4f}'} | "
                f"{'' if entry.gate_threshold is None else f'{entry.gate_threshold:g}'} | "
                f"{_verdict(entry.gate_passed)} |")
        out.append("")
    return "\n".join(out)


def _verdict(passed: bool | None) -> str:
    return "not evaluated" if passed is None else "approved" if passed else "not approved"
