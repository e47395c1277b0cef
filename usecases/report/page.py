"""The page: content and figures through one Jinja template, written under
``CDL_HOME/reports`` (timestamped, and ``latest.html``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from usecases.report import figures
from usecases.report.content import RUN_FILE, Content, Section
from usecases.state import atomic_write

LATEST = "latest.html"


def _figures(section: Section) -> dict[str, Any]:
    version = section.version
    return {
        "curves": figures.curves(section.trials, section.best_trial),
        "confusion": figures.confusion(version.test_confusion)
        if version is not None and version.test_confusion is not None else None,
        "class_mix": {str(s["version"]): figures.class_mix(
            s["classes"], section.trained_classes.get(str(s["version"]), {}))
            for s in section.scoring if "classes" in s},
    }


def render(content: Content) -> str:
    """The whole page as one HTML string: no script, no outside URL."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("usecases.report", "."),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True)
    template = environment.get_template("page.html.j2")
    return template.render(content=content,
                           figures={s.name: _figures(s) for s in content.sections})


def keep_run(reports: Path, body: dict[str, Any]) -> None:
    """Record a run's report where ``cdl report`` reads it."""
    reports.mkdir(parents=True, exist_ok=True)
    atomic_write(reports / RUN_FILE, json.dumps(body, indent=2) + "\n")


def write(reports: Path, html: str) -> Path:
    """Write the page as ``report-<UTC time>.html`` and as ``latest.html``; return the first."""
    reports.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = reports / f"report-{stamp}.html"
    atomic_write(path, html)
    atomic_write(reports / LATEST, html)
    return path
