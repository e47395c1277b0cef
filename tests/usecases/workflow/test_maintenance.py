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
from usecases.workflow import deploy

from ...cli import assert_one_line_error, cdl
from ...packaged import package, serving
from ...rawdata import article


def _texts(texts: list[str]) -> dict[str, Any]:
    return {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)],
                        "data": texts}]}


def _images(images: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(images.shape),
                        "data": images.ravel().tolist()}]}


def _fresh_images(n: int, seed: int) -> np.ndarray:
    """Images from the same distribution as the training data's (tests/rawdata.write_fmnist)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(rng.integers(0, 10, n)):
        images[i, 2 * label + 4: 2 * label + 6, :] = 250
    return images


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
    shifted = datetime.now(UTC)
    gibberish = ["".join(rng.choice("qxzjvk") for _ in range(7)) for _ in range(400)]
    _send(home, [("bbc-news", _texts([article("sport", rng) + " " + " ".join(
        rng.sample(gibberish, 60)) for _ in range(50)])) for _ in range(2)]
          + [("fmnist", _images(255 - _fresh_images(100, seed))) for seed in (10, 11, 12)])
    return {"home": home, "undrifted": undrifted, "shifted": shifted}


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
