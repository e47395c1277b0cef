"""``cdl`` as a user runs it: real PostgreSQL, real Determined training, real files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ..cli import assert_one_line_error, cdl
from ..conftest import REPO, datasets_root, free_port
from ..rawdata import add_bad_files, write_bbc
from .report.browser import open_page


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory: pytest.TempPathFactory, bbc_raw: Path) -> dict[str, Any]:
    """Two demo runs on the real datasets in one state dir: an ASHA search on BBC, then both use
    cases with a single trial each (BBC's dataset and labels reused, a second model version)."""
    home = tmp_path_factory.mktemp("real") / "cdl"
    first = home.parent / "r0.json"
    run = cdl("demo", "--usecase", "bbc", "--data", str(bbc_raw), "--trials", "4",
              "--report", str(first), "--label-studio-port", str(free_port()), home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    both = home.parent / "r1.json"
    run = cdl("demo", "--trials", "1", "--report", str(both), "--label-studio-port",
              str(free_port()), home=home, env={"CDL_DATASETS": str(bbc_raw.parent)})
    assert run.returncode == 0, run.stderr[-3000:]
    reports = [json.loads(path.read_text()) for path in (first, both)]
    return {"home": home, "reports": [r["usecases"]["bbc"] for r in reports], "raw": bbc_raw,
            "both": reports[1], "stderr": run.stderr}


@pytest.mark.slow
def test_demo_on_the_real_dataset_passes_the_gate(real_runs: dict[str, Any]) -> None:
    report = real_runs["reports"][0]
    assert report["test_accuracy"] >= 0.95
    assert report["gate_passed"] is True
    assert isinstance(report["dataset"]["version"], str)
    counts = report["dataset"]["counts"]
    assert counts["ingested"] == 2225 == counts["valid"] + counts["quarantined"]
    assert counts["quarantined"] == 0  # the one article with an invalid byte is cleaned, kept
    assert report["model"]["name"] == "bbc-news" and report["model"]["version"] == 1
    assert set(report["model"]["hparams"]) >= {"hidden_size", "dropout", "learning_rate",
                                               "global_batch_size"}
    assert 0.9 <= report["val_accuracy"] <= 1.0
    assert report["search"]["trials"] == 4
    assert {"ingest", "label", "transform", "search", "register", "evaluate",
            "total"} <= set(report["timings"])


@pytest.mark.slow
def test_second_run_reuses_the_dataset_and_adds_a_model_version(
        real_runs: dict[str, Any]) -> None:
    first, second = real_runs["reports"]
    assert second["dataset"]["version"] == first["dataset"]["version"]
    assert second["dataset"]["reused"] is True and first["dataset"]["reused"] is False
    assert second["model"]["version"] == 2
    assert second["test_accuracy"] >= 0.95
    # labeled through Label Studio once; the second run reuses that export
    assert first["labeling"]["tool"] == "label-studio"
    assert first["labeling"]["exported"] == first["dataset"]["counts"]["valid"] == 2225
    assert first["labeling"]["tasks"] == first["labeling"]["annotations"] == 2225
    assert second["labeling"]["reused"] is True and second["labeling"]["exported"] == 2225


@pytest.mark.slow
def test_label_re_exports_and_a_broken_label_studio_is_one_line(
        real_runs: dict[str, Any]) -> None:
    home, raw = real_runs["home"], str(real_runs["raw"])
    run = cdl("label", "--usecase", "bbc", "--data", raw, home=home,
              env={"CDL_LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
                   "CDL_LABEL_STUDIO_TOKEN": "not-a-token"})
    assert run.returncode == 1
    assert_one_line_error(run, "cannot reach Label Studio", "labels already stored")
    run = cdl("label", "--usecase", "bbc", "--data", raw, "--label-studio-port",
              str(free_port()), home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)["bbc"]
    assert summary["labels"] == summary["tasks"] == 2225 and summary["imported"] == 0
    assert summary["by_people"] == 0 and summary["reused"] is False


@pytest.mark.slow
def test_state_stays_in_cdl_home_and_the_database_is_stopped(real_runs: dict[str, Any]) -> None:
    home: Path = real_runs["home"]
    assert any((home / "checkpoints" / "determined").iterdir())
    assert not (REPO / "usecases" / "bbc" / "checkpoints").exists()
    manifest = json.loads(Path(real_runs["reports"][0]["dataset"]["manifest"]).read_text())
    cleaned = [e for e in manifest["entries"] if e["notes"].get("replaced_invalid_utf8")]
    assert [e["path"] for e in cleaned] == ["sport/199.txt"]
    for service in ("db", "studio"):
        status = cdl(service, "status", home=home)
        assert status.returncode == 3 and status.stdout.strip() == "stopped", service


@pytest.mark.slow
def test_gate_failure_exits_nonzero_with_the_reason(real_runs: dict[str, Any]) -> None:
    run = cdl("evaluate", "--data", str(real_runs["raw"]), "--gate", "0.9999",
              home=real_runs["home"])
    assert run.returncode == 2
    assert_one_line_error(run, "below the gate 0.9999")
    assert json.loads(run.stdout)["gate_passed"] is False


@pytest.mark.slow
def test_corrupt_model_artifacts_are_reported_not_loaded(real_runs: dict[str, Any]) -> None:
    weights = Path(real_runs["reports"][1]["model"]["artifact"]) / "model.pt"
    weights.write_bytes(weights.read_bytes()[:100])
    run = cdl("evaluate", "--data", str(real_runs["raw"]), "--version", "2",
              home=real_runs["home"])
    assert run.returncode == 1
    assert_one_line_error(run, "corrupt", "model.pt")


@pytest.mark.slow
def test_bad_files_are_quarantined_and_counted(tmp_path: Path) -> None:
    raw = write_bbc(tmp_path / "raw", per_class=16)
    expected = add_bad_files(raw)
    report_path = tmp_path / "r.json"
    run = cdl("demo", "--usecase", "bbc", "--data", str(raw), "--trials", "1", "--report",
              str(report_path), "--no-label-studio", home=tmp_path / "home")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(report_path.read_text())["usecases"]["bbc"]
    counts = report["dataset"]["counts"]
    assert counts == {"ingested": 80 + len(expected), "valid": 80,
                      "quarantined": len(expected), "train": 65, "test": 15}  # 3 of 16 per class
    reasons = {q["path"]: q["reason"] for q in report["dataset"]["quarantined"]}
    assert set(reasons) == set(expected)
    for path, reason in expected.items():
        assert reasons[path].startswith(reason)
        assert f"quarantined {path}" in run.stderr


@pytest.mark.slow
def test_a_rerun_with_the_same_inputs_reuses_the_model_and_retrain_trains_anew(
        tmp_path: Path) -> None:
    raw, home = write_bbc(tmp_path / "raw", per_class=8), tmp_path / "home"
    models = []
    for number, flags in enumerate(([], [], ["--retrain"], ["--seed", "7"])):
        report_path = tmp_path / f"r{number}.json"
        run = cdl("demo", "--usecase", "bbc", "--data", str(raw), "--trials", "1", "--smoke",
                  "0", "--report", str(report_path), "--no-label-studio", *flags, home=home)
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(report_path.read_text())["usecases"]["bbc"]
        models.append((report["model"]["version"], report["model"]["reused"],
                       report["test_accuracy"]))
    (first, _, accuracy), again, retrained, reseeded = models
    assert again == (first, True, accuracy)  # evaluated again, not trained again
    assert retrained[:2] == (first + 1, False)
    assert reseeded[:2] == (first + 2, False)  # another seed is another search


def test_max_bytes_is_a_flag(tmp_path: Path) -> None:
    raw = write_bbc(tmp_path / "raw", per_class=16)
    run = cdl("demo", "--usecase", "bbc", "--data", str(raw), "--trials", "1", "--max-bytes",
              "10", "--no-label-studio", home=tmp_path / "home")
    assert_one_line_error(run, "no valid files")


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_unusable_data_folder(tmp_path: Path, make: str) -> None:
    target = tmp_path / "data"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    run = cdl("demo", "--usecase", "bbc", "--data", str(target), home=tmp_path / "home")
    assert run.returncode == 1
    assert_one_line_error(run, str(target), "--data")


def test_unreachable_database(tmp_path: Path) -> None:
    raw = write_bbc(tmp_path / "raw", per_class=2)
    run = cdl("demo", "--usecase", "bbc", "--data", str(raw), home=tmp_path / "home",
              env={"CDL_DATABASE_URL": "postgresql://cdl:pw@127.0.0.1:1/cdl"})
    assert run.returncode == 1
    assert_one_line_error(run, "cannot reach PostgreSQL", "127.0.0.1:1")
    assert "pw@" not in run.stderr


def test_missing_vocabulary(tmp_path: Path) -> None:
    raw = write_bbc(tmp_path / "raw", per_class=4)
    (raw / "bbc.vocab").unlink()
    run = cdl("demo", "--usecase", "bbc", "--data", str(raw), "--no-label-studio",
              home=tmp_path / "home")
    assert_one_line_error(run, "vocabulary file", "--vocab")


def test_data_needs_a_single_usecase(tmp_path: Path) -> None:
    run = cdl("demo", "--data", str(tmp_path), home=tmp_path / "home")
    assert_one_line_error(run, "--data needs a single use case")


@pytest.mark.slow
def test_demo_runs_both_usecases_into_one_report(real_runs: dict[str, Any],
                                                 tmp_path: Path) -> None:
    home: Path = real_runs["home"]
    usecases = real_runs["both"]["usecases"]
    assert set(usecases) == {"bbc", "fmnist"}
    fmnist = usecases["fmnist"]
    assert fmnist["dataset"]["counts"] == {"ingested": 70000, "valid": 70000, "quarantined": 0,
                                           "train": 60000, "test": 10000}
    assert fmnist["test_accuracy"] >= 0.85 and fmnist["gate_passed"] is True
    assert fmnist["model"]["name"] == "fmnist" and fmnist["model"]["hparams"]["hidden_size"]
    assert usecases["bbc"]["gate_passed"] is True
    for name, report in usecases.items():
        smoke = report["serving"]["smoke"]
        assert smoke["requests"] == 20, name
        assert smoke["matches_offline"] is True, name
        assert smoke["scored"] == smoke["requests"], name  # a Scoring Data row per request
        labeling = report["labeling"]
        assert labeling["tool"] == "label-studio", name
        assert labeling["labels"] == report["dataset"]["counts"]["valid"], name
    assert usecases["bbc"]["labeling"]["exported"] == 2225  # the paper's round trip
    # Fashion-MNIST trains on the dataset's labels; its 70,000 tasks went to Label Studio in
    # the background, finished before the demo stopped it, and `cdl label` finds them there
    assert usecases["fmnist"]["labeling"]["importing"] == 70000
    jobs = {job["title"]: job for job in real_runs["both"]["background"]}
    assert jobs["fmnist: 70000 tasks into Label Studio"]["error"] is None
    stderr: str = real_runs["stderr"]
    assert "Label Studio: http://127.0.0.1:" in stderr and "label-studio.json" in stderr
    # not a terminal: one plain line per finished stage with its time, no spinners
    lines = stderr.splitlines()
    assert re.compile(r"fmnist: labels \(Label Studio → PostgreSQL\): \d+\.\ds").fullmatch(
        next(line for line in lines if line.startswith("fmnist: labels")))
    assert "\r" not in stderr and "⠋" not in stderr
    _the_report_renders(home, tmp_path, stderr)
    run = cdl("label", "--usecase", "fmnist", "--label-studio-port", str(free_port()),
              home=home, env={"CDL_DATASETS": str(datasets_root())})
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)["fmnist"]
    assert summary["tasks"] == summary["labels"] == 70000
    assert summary["imported"] == 0 and summary["exported"] == summary["by_people"] == 0


def _the_report_renders(home: Path, tmp_path: Path, stderr: str) -> None:
    """The demo's HTML page, in Chromium: both use cases with their figures, nothing fetched,
    no console error; `cdl report` writes it again from the recorded run."""
    page = Path(re.search(r"^report: (\S+)$", stderr, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert page.parent == home / "reports"
    opened = open_page(page, tmp_path / "profile", tmp_path / "page.png")
    assert opened.requests == [page.as_uri()]
    assert opened.console == [] and opened.page_errors == []
    alts = sorted(alt for alt, width in opened.images if width > 0)
    # a class mix per served version: BBC's v1 (the first run's smoke) and v2, Fashion-MNIST's v1
    assert alts == sorted(["training and validation curves of every trial",
                           "confusion matrix on the test set"] * 2
                          + ["class mix of the served predictions"] * 3)
    html = page.read_text()
    assert "bbc-news v2" in html and "fmnist v1" in html and "20 predictions" in html
    run = cdl("report", home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (home / "reports" / "latest.html").exists()
