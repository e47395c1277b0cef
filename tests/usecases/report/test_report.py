"""``cdl report``'s page from real stores: what it says, and that it renders in Chromium with
its figures, no console error and no request beyond itself."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from usecases.bbc.usecase import USECASE as BBC
from usecases.report import content, page
from usecases.state import State
from usecases.stores.experiments import Trial
from usecases.stores.labels import Export, ExportSummary, Row
from usecases.stores.local import Stores
from usecases.stores.mldata import Counts, Manifest
from usecases.stores.registry import Confusion
from usecases.workflow.report import (
    DatasetReport,
    GateReport,
    ModelReport,
    QuarantinedFile,
    SearchReport,
    UseCaseReport,
)

from ...cli import assert_one_line_error, cdl
from .browser import coloured_pixels, open_page

CLASSES = ["business", "sport", "tech"]


def _epochs(accuracies: list[float]) -> list[dict[str, float]]:
    return [{"training_loss": 1.0 - a, "validation_loss": 1.1 - a, "validation_accuracy": a}
            for a in accuracies]


def _recorded_run(stores: Stores) -> dict[str, Any]:
    """A BBC run as the stores hold it: a version with a quarantined file, labels exported,
    a search with a pruned trial, a registered and evaluated version, served predictions."""
    counts = Counts(ingested=13, valid=12, quarantined=1, train=9, test=3)
    stores.mldata.commit(Manifest("bbc-1", "bbc", "/raw", {}, [], counts))
    rows = [Row(f"{c}-{i}", f"{c}/{i}.txt", c, "cdl-dataset-labels", "2026-12-01T00:00:00Z")
            for c in CLASSES for i in range(3)]
    stores.labels.replace("bbc-1", "bbc", "train", rows, Export("label-studio", 9, 9,
                                                                 "http://127.0.0.1:8089", 4))
    trials = [Trial(0, {"hidden_size": 256}, "pruned", _epochs([0.4, 0.5])),
              Trial(1, {"hidden_size": 512}, "completed", _epochs([0.6, 0.8, 0.9, 0.95]))]
    experiment = stores.experiments.record("bbc", "bbc-1", {}, trials)

    def export(folder: Path) -> None:
        (folder / "model.pt").write_bytes(b"weights")
        (folder / "vocab.txt").write_text("market\nmatch\n")

    version = stores.models.register("bbc-news", "bbc", "bbc-1", experiment, trials[1].hparams,
                                     trials[1].val_metrics, "abc123", export)
    stores.models.record_evaluation("bbc-news", version.version, 2 / 3, 0.5,
                                    Confusion(CLASSES, [[1, 0, 0], [0, 1, 0], [1, 0, 0]]))
    with stores.db.connect() as conn:
        for i, prediction in enumerate(["sport"] * 30 + ["tech"] * 5):
            conn.execute("INSERT INTO scoring_data (at, model, model_version, input_sha256,"
                         " prediction, latency_ms) VALUES (now(), 'bbc-news', '1', %s, %s, %s)",
                         (f"{i:064x}", prediction, 1.0 + i))
    report = UseCaseReport(
        dataset=DatasetReport("bbc-1", False, counts,
                              [QuarantinedFile("tech/broken.txt", "not valid UTF-8 text")],
                              "/m/manifest.json"),
        labeling=ExportSummary("label-studio", "http://127.0.0.1:8089", tasks=9, labels=9),
        model=ModelReport("bbc-news", version.version, trials[1].hparams,
                          str(version.artifact_path), "abc123"),
        search=SearchReport(2, 1, 1), val_accuracy=0.95, val_metrics=trials[1].val_metrics,
        test_accuracy=2 / 3, gate=GateReport(0.5), gate_passed=True)
    return {"usecases": {"bbc": report.to_dict()}, "cdl_home": "/h", "background": [],
            "timings": {"serve": 1.5}}


def _svg(data_url: str) -> str:
    return base64.b64decode(data_url.removeprefix("data:image/svg+xml;base64,")).decode()


def test_the_page_shows_the_run_with_its_figures(stores: Stores, state: State,
                                                 tmp_path: Path) -> None:
    run = _recorded_run(stores)
    html = page.render(content.gather(stores, run, usecases={"bbc": BBC}))
    assert "<script" not in html and not re.search(r"""(src|href)=["']?https?:""", html)
    assert "tech/broken.txt" in html and "not valid UTF-8 text" in html  # the quarantine
    figures = dict(re.findall(r'<img class="figure" alt="([^"]+)" src="([^"]+)"', html))
    assert set(figures) == {"training and validation curves of every trial",
                            "confusion matrix on the test set",
                            "class mix of the served predictions"}
    curves = _svg(figures["training and validation curves of every trial"])
    assert "trial 0 (pruned)" in curves and "trial 1 (registered)" in curves
    assert "dotted: training" in curves
    assert all(label in _svg(figures["confusion matrix on the test set"]) for label in CLASSES)
    assert "35 predictions" in html and "PSI" in html and "drifted" in html
    # Model Maintenance's verdict: the class mix (30 of 35 sport) drifted
    assert re.search(r'Model Maintenance: <span class="fail">drift</span>', html)
    assert "out-of-vocabulary rate" in html
    assert "bbc-1" in html and "abc123" in html  # lineage: dataset version, code
    assert re.search(r"<td>train</td><td>label-studio</td><td[^>]*>4</td>", html)  # project

    written = page.write(state.dir("reports"), html)
    assert written.read_text() == (state.home / "reports" / page.LATEST).read_text() == html
    opened = open_page(written, tmp_path / "profile", tmp_path / "page.png")
    assert opened.requests == [written.as_uri()]
    assert opened.console == [] and opened.page_errors == []
    assert len(opened.images) == 3 and all(width > 0 for _, width in opened.images)
    # drawn, not blank: the registered trial's red line and the served bars' blue
    assert coloured_pixels(opened.screenshot, (0xD6, 0x27, 0x28)) > 100
    assert coloured_pixels(opened.screenshot, (0x1F, 0x77, 0xB4)) > 1000


def test_report_without_a_run_is_one_line(tmp_path: Path) -> None:
    run = cdl("report", home=tmp_path / "home")
    assert_one_line_error(run, "no run is recorded")
    assert "run `cdl demo` first" in run.stderr


@pytest.mark.parametrize("text", ["{", "[]"])
def test_a_damaged_run_record_is_one_line(tmp_path: Path, text: str) -> None:
    reports = tmp_path / "home" / "reports"
    reports.mkdir(parents=True)
    (reports / content.RUN_FILE).write_text(text)
    run = cdl("report", home=tmp_path / "home")
    assert_one_line_error(run, "run report")
