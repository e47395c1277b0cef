"""Model Maintenance's monitor on real served traffic: models trained and packaged by the real
``cdl demo``, a real MLServer recording Scoring Data in the real database, ``cdl maintain`` on
an undrifted window and on a shifted one."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from usecases.bbc.dataset import CLASSES
from usecases.fmnist.usecase import USECASE as FMNIST
from usecases.state import State
from usecases.stores.database import open_database
from usecases.stores.feedback import PostgresFeedback
from usecases.stores.mldata import LocalMLData
from usecases.stores.registry import LocalModelRegistry
from usecases.stores.scoring import PostgresScoringStore
from usecases.workflow import deploy

from ...cli import assert_one_line_error, cdl
from ...packaged import package, serving
from ...rawdata import article, banded_images
from .feedback_project import annotate, feedback_tasks


def _texts(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                        "data": texts}]}


def _images(images: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(images.shape),
                        "data": images.ravel().tolist()}]}


def _fresh_images(n: int, seed: int) -> np.ndarray:
    """Images from the same distribution as the training data's (tests/rawdata.write_fmnist)."""
    return banded_images(n, np.random.default_rng(seed))[0]


def _send(home: Path, requests: list[tuple[str, dict[str, Any]]]) -> None:
    # leaving the context stops MLServer, which writes every Scoring Data row first
    with serving(home, "mlserver-maintain.log") as (url, _):
        for model, payload in requests:
            status, body = deploy.infer(url, model, payload)
            assert status == 200, body


def _maintain(home: Path, usecase: str, since: datetime) -> tuple[dict[str, Any], str]:
    run = cdl("maintain", "--usecase", usecase, "--since", since.isoformat(), home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout), run.stderr


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both models served twice: first inputs like their training data (then judged), then
    shifted ones (BBC: sport only, padded with words the vocabulary lacks; Fashion-MNIST:
    inverted)."""
    home = package(tmp_path_factory.mktemp("maintain"), ("bbc", "fmnist"))["home"]
    rng = random.Random(7)
    calm = datetime.now(UTC)
    _send(home, [("bbc-news", _texts([article(rng.choice(CLASSES), rng) for _ in range(50)]))
                 for _ in range(4)]
          + [("fmnist", _images(_fresh_images(100, seed))) for seed in (7, 8, 9)])
    # judged before the shifted traffic comes: a window runs up to now
    undrifted = {name: _maintain(home, name, calm) for name in ("bbc", "fmnist")}
    asked = cdl("maintain", "--usecase", "bbc", "--since", calm.isoformat(), "--feedback", "5",
                "--label-studio-port", str(deploy.free_port()), home=home)
    shifted = datetime.now(UTC)
    gibberish = ["".join(rng.choice("qxzjvk") for _ in range(7)) for _ in range(400)]
    _send(home, [("bbc-news", _texts([article("sport", rng) + " " + " ".join(
        rng.sample(gibberish, 60)) for _ in range(50)])) for _ in range(2)]
          + [("fmnist", _images(255 - _fresh_images(100, seed))) for seed in (10, 11, 12)])
    return {"home": home, "undrifted": undrifted, "shifted": shifted, "asked": asked}


@pytest.mark.slow
@pytest.mark.parametrize("usecase", ["bbc", "fmnist"])
def test_an_undrifted_model_is_said_so_and_nothing_is_done(windows: dict[str, Any],
                                                           usecase: str) -> None:
    verdict, stderr = windows["undrifted"][usecase]
    served = 200 if usecase == "bbc" else 300
    assert verdict["requests"] >= served  # the window also holds the packaging's smoke
    assert verdict["verdict"] == "no drift", verdict
    assert verdict["prediction_drift"]["drifted"] is False
    assert verdict["input_drift"] and all(s["drifted"] is False for s in verdict["input_drift"])
    assert verdict["reasons"] == [] and "no drift; nothing to do" in stderr


@pytest.mark.slow
def test_feedback_on_an_undrifted_model_sends_nothing(windows: dict[str, Any]) -> None:
    asked = windows["asked"]
    assert asked.returncode == 0, asked.stderr[-3000:]
    verdict = json.loads(asked.stdout)
    assert verdict["verdict"] == "no drift" and "feedback" not in verdict
    assert "nothing to do" in asked.stderr and "Label Studio" not in asked.stderr
    state = State.from_env(windows["home"])
    with open_database(state) as db:
        assert PostgresFeedback(db).samples("bbc") == []


def _feedback(home: Path, port: int, *args: str) -> dict[str, Any]:
    run = cdl("maintain", "--usecase", "fmnist", "--label-studio-port", str(port), *args,
              home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    body: dict[str, Any] = json.loads(run.stdout)
    return body | {"stderr": run.stderr}


@pytest.mark.slow
def test_drift_sends_the_least_confident_inputs_to_labeling_and_labels_make_a_new_version(
        windows: dict[str, Any]) -> None:
    """Inverted images: the 20 least confident served ones become pre-annotated tasks; a
    second send adds only inputs not sent before; a person's label and the accepted
    pre-annotations turn into a new dataset version of the training items plus the samples,
    each traced to its Scoring Data row."""
    home, since = windows["home"], windows["shifted"].isoformat()
    state = State.from_env(home)
    port = deploy.free_port()
    started = cdl("studio", "start", "--label-studio-port", str(port), home=home)
    assert started.returncode == 0, started.stderr
    try:
        first = _feedback(home, port, "--since", since, "--feedback", "20")
        assert first["verdict"] == "drift" and first["feedback"]["sent"] == 20
        sent = first["feedback"]["samples"]
        with open_database(state) as db:
            served = PostgresScoringStore(db).served_inputs("fmnist", "1", windows["shifted"])
            model = LocalModelRegistry(db, state.models).get("fmnist", 1)
        lowest = sorted(r.confidence for r in served if r.confidence is not None)
        assert [s["confidence"] for s in sent] == sorted(s["confidence"] for s in sent)
        assert sent[-1]["confidence"] <= lowest[len(lowest) // 2]  # from the uncertain end
        by_row = {r.id: r for r in served}
        assert all(by_row[s["scoring_id"]].prediction == s["prediction"] for s in sent)
        second = _feedback(home, port, "--since", since, "--feedback", "5")
        assert second["feedback"]["sent"] == 5 and second["feedback"]["pending"] == 25
        assert "25 waiting for a label" in second["stderr"]

        sdk, tasks = feedback_tasks(state, "fmnist")
        assert len(tasks) == 25
        assert len({t.data["content"] for t in tasks}) == 25  # one task per input
        first_task = next(t for t in tasks if t.data["scoring_id"] == sent[0]["scoring_id"])
        (prediction,) = first_task.predictions
        assert prediction.model_version == "fmnist v1"
        assert prediction.score == pytest.approx(sent[0]["confidence"])
        assert prediction.result[0]["value"]["choices"] == [sent[0]["prediction"]]
        assert first_task.data["image"].startswith("/data/local-files/")
        person = "Coat" if sent[0]["prediction"] != "Coat" else "Bag"
        annotate(sdk, first_task, person)

        one = _feedback(home, port, "--collect")
        assert (one["labeled"], one["new_labels"], one["pending"]) == (1, 1, 24)
        assert one["base_version"] == model.dataset_version
        every = _feedback(home, port, "--collect", "--accept-predictions")
        assert (every["labeled"], every["new_labels"], every["pending"]) == (25, 24, 0)
        assert every["dataset_version"] not in (one["dataset_version"], model.dataset_version)
    finally:
        cdl("studio", "stop", home=home)
        cdl("db", "stop", home=home)  # `studio start` left it running

    with open_database(state) as db:
        mldata = LocalMLData(state.mldata, db)
        base = mldata.load(model.dataset_version)
        grown = mldata.load(every["dataset_version"])
        samples = {s.scoring_id: s for s in PostgresFeedback(db).samples("fmnist")}
    added = [e for e in grown.entries if e.notes.get("kind") == "scoring-sample"]
    assert [e.path for e in grown.entries if e not in added] == [e.path for e in base.entries]
    assert {e.notes["scoring_id"] for e in added} == set(samples) == {
        s["scoring_id"] for s in sent + second["feedback"]["samples"]}
    mine = next(e for e in added if e.notes["scoring_id"] == sent[0]["scoring_id"])
    assert mine.label == person and mine.notes["labeler"] != "cdl-accepted-prediction"
    assert all(e.label == by_row[e.notes["scoring_id"]].prediction
               and e.notes["labeler"] == "cdl-accepted-prediction"
               for e in added if e is not mine)
    assert {e.split for e in added} == {"train", "test"}
    assert all(samples[e.notes["scoring_id"]].dataset_version == grown.version for e in added)
    # the use case reads the samples back as items whose pixels are the served ones
    items = FMNIST.items(grown, mldata)
    assert len(items) == len(FMNIST.items(base, mldata)) + 25
    sample_items = [i for i in items if i.item_id.startswith("scoring-")]
    pixels = FMNIST.served_inputs(sample_items, mldata)
    assert all(pixels[n] == by_row[int(i.item_id.split("-")[1])].input
               for n, i in enumerate(sample_items))

    # The challenger trained on that version meets a champion whose own predictions are most
    # of the new samples' labels: it cannot be better on them, so the champion stays.
    run = cdl("maintain", "--usecase", "fmnist", "--challenge", "--trials", "1",
              "--no-label-studio", home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    decision = json.loads(run.stdout)
    held = sum(e.split == "test" for e in added)
    assert decision["dataset_version"] == grown.version and decision["champion"] == 1
    assert decision["new_samples"]["items"] == held
    assert decision["test_set"]["items"] == sum(i.split == "test"
                                                for i in FMNIST.items(base, mldata))
    assert decision["promoted"] is False and "not better on the new samples" in decision["reason"]
    assert "not promoted over v1" in run.stderr
    with open_database(state) as db:
        recorded = LocalModelRegistry(db, state.models).get("fmnist", decision["challenger"])
    assert recorded.dataset_version == grown.version and recorded.decision == decision
    assert deploy.packaged_versions(state.home / "serving" / "models")["fmnist"] == 1


@pytest.mark.slow
def test_collect_before_any_feedback_is_one_line(windows: dict[str, Any]) -> None:
    run = cdl("maintain", "--usecase", "bbc", "--collect", "--label-studio-port",
              str(deploy.free_port()), home=windows["home"])
    assert_one_line_error(run, "no served input of bbc was sent to labeling yet",
                          "--feedback N")
    assert "Label Studio" not in run.stderr.split("Fix:")[0]


def test_accept_predictions_needs_collect(tmp_path: Path) -> None:
    run = cdl("maintain", "--usecase", "bbc", "--accept-predictions", home=tmp_path / "home")
    assert_one_line_error(run, "--accept-predictions only applies to --collect")


@pytest.mark.slow
def test_shifted_news_is_drift_in_the_class_mix_and_the_vocabulary(
        windows: dict[str, Any]) -> None:
    verdict, stderr = _maintain(windows["home"], "bbc", windows["shifted"])
    assert verdict["requests"] == 100 and verdict["verdict"] == "drift"
    assert verdict["prediction_drift"]["drifted"] is True
    assert set(verdict["prediction_drift"]["served"]) == {"sport"}
    signals = {s["name"]: s for s in verdict["input_drift"]}
    assert signals["out-of-vocabulary rate"]["drifted"] is True
    assert signals["out-of-vocabulary rate"]["served"]["mean"] > 0.4
    assert signals["out-of-vocabulary rate"]["reference"]["mean"] < 0.1  # the title words
    assert signals["text length (tokens)"]["drifted"] is True
    # every served prediction carries the model's probability for it
    assert verdict["confidence"]["n"] == 100 and 0 < verdict["confidence"]["mean"] <= 1
    assert "bbc: bbc-news v1, 100 predictions" in stderr and ": drift (" in stderr


@pytest.mark.slow
def test_inverted_images_are_input_drift(windows: dict[str, Any]) -> None:
    verdict, _ = _maintain(windows["home"], "fmnist", windows["shifted"])
    assert verdict["requests"] == 300 and verdict["verdict"] == "drift"
    signals = {s["name"]: s for s in verdict["input_drift"]}
    intensity = signals["mean intensity"]
    assert intensity["drifted"] is True and intensity["p_value"] < 1e-6
    assert intensity["served"]["mean"] > 150 > intensity["reference"]["mean"]
    assert any("mean intensity" in reason for reason in verdict["reasons"])


@pytest.mark.slow
def test_too_few_predictions_give_no_verdict(windows: dict[str, Any]) -> None:
    verdict, stderr = _maintain(windows["home"], "bbc", datetime.now(UTC))
    assert verdict["requests"] == 0 and verdict["verdict"] == "no verdict"
    assert verdict["prediction_drift"]["drifted"] is None
    assert "a verdict needs 30" in verdict["reasons"][0]


def test_maintain_without_a_served_version_is_one_line(tmp_path: Path) -> None:
    run = cdl("maintain", "--usecase", "bbc", home=tmp_path / "home")
    assert_one_line_error(run, "no version of bbc-news is packaged")


def test_a_bad_window_start_is_one_line(tmp_path: Path) -> None:
    run = cdl("maintain", "--usecase", "bbc", "--since", "yesterday", home=tmp_path / "home")
    assert_one_line_error(run, "--since 'yesterday' is not an ISO 8601 time")
