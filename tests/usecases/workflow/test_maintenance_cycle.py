"""Model Maintenance's whole cycle with real components (issue #19's scenario): ``cdl serve``
serves a Fashion-MNIST model trained by the real ``cdl demo``; inverted images arrive; ``cdl
maintain`` flags them and sends the least confident to a real Label Studio, where a person (the
test, through Label Studio's API) gives each its true class; the labels become a dataset version,
the challenger trained on it wins, and the running server switches to it while clients keep
sending requests."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from usecases.fmnist.usecase import CLASSES
from usecases.state import State
from usecases.stores.database import open_database
from usecases.stores.registry import LocalModelRegistry
from usecases.stores.scoring import PostgresScoringStore
from usecases.workflow import deploy

from ...cli import cdl, environment, interruptible
from ...packaged import package
from ...rawdata import banded_images
from ..cloud.gitlab_reference import PROJECT_PATH, reference_gitlab
from .feedback_project import annotate, feedback_tasks


def _inverted(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Images shifted from the training data's (tests/rawdata.write_fmnist): the class is
    still the band's rows, but the band is dark on a bright background."""
    images, labels = banded_images(n, np.random.default_rng(seed))
    return 255 - images, labels


def _payload(images: np.ndarray) -> dict[str, Any]:
    return {"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": list(images.shape),
                        "data": images.ravel().tolist()}]}


def _accuracy(url: str, images: np.ndarray, labels: np.ndarray) -> tuple[float, str]:
    """The served model's accuracy on ``images`` and the version that answered."""
    code, answer = deploy.infer(url, "fmnist", _payload(images))
    assert code == 200, answer
    predicted = answer["outputs"][0]["data"]
    return float(np.mean([p == CLASSES[t] for p, t in zip(predicted, labels, strict=True)])), \
        answer["model_version"]


def _wait_serving(url: str, server: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if deploy.infer(url, "fmnist", _payload(_inverted(1, seed=0)[0]))[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"cdl serve did not answer (exit status {server.poll()})")


def _maintain(home: Path, *args: str) -> dict[str, Any]:
    run = cdl("maintain", "--usecase", "fmnist", *args, home=home)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout) | {"stderr": run.stderr}


def _recorded(state: State, since: datetime, count: int) -> dict[int, bytes]:
    """Scoring Data rows of v1 since ``since`` by id, once the server has written ``count``."""
    deadline = time.monotonic() + 60
    while True:
        with open_database(state) as db:
            rows = PostgresScoringStore(db).served_inputs("fmnist", "1", since)
        if len(rows) >= count or time.monotonic() > deadline:
            assert len(rows) >= count, f"{len(rows)} of {count} rows written"
            return {r.id: bytes(r.input) for r in rows if isinstance(r.input, bytes)}
        time.sleep(0.5)


class Clients:
    """Two clients sending shifted images to the served model in a loop."""

    def __init__(self, url: str, images: np.ndarray) -> None:
        self.url, self.payload = url, _payload(images)
        self.answers: list[tuple[int, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.client) for _ in range(2)]

    def client(self) -> None:
        while not self.stop.is_set():
            try:
                code, body = deploy.infer(self.url, "fmnist", self.payload, timeout=60)
            except OSError as error:
                code, body = 0, {"error": str(error)}
            self.answers.append((code, body.get("model_version")))
            time.sleep(0.05)

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()


@pytest.mark.slow
def test_shifted_traffic_labeled_in_label_studio_promotes_a_better_model_with_no_failed_request(
        tmp_path: Path) -> None:
    home = package(tmp_path, ("fmnist",))["home"]
    state = State.from_env(home)
    port, studio_port = deploy.free_port(), deploy.free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        interruptible([sys.executable, "-m", "usecases.cli", "serve", "--http-port", str(port),
                       "--grpc-port", str(deploy.free_port())]), env=environment(home),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_serving(url, server)
        since = datetime.now(UTC)
        images, labels = _inverted(300, seed=1)
        truth = {image.tobytes(): CLASSES[label] for image, label in zip(images, labels,
                                                                          strict=True)}
        before, version = _accuracy(url, images, labels)
        assert version == "1"
        rows = _recorded(state, since, 300)

        # Monitor: input drift, and the 100 least confident inputs go to Label Studio
        started = cdl("studio", "start", "--label-studio-port", str(studio_port), home=home)
        assert started.returncode == 0, started.stderr
        sent = _maintain(home, "--since", since.isoformat(), "--feedback", "100",
                         "--label-studio-port", str(studio_port))
        assert sent["verdict"] == "drift" and sent["feedback"]["sent"] == 100
        assert any("mean intensity" in reason for reason in sent["reasons"])

        # A person labels each task with the class its image shows
        sdk, tasks = feedback_tasks(state, "fmnist")
        assert len(tasks) == 100
        for task in tasks:
            annotate(sdk, task, truth[rows[task.data["scoring_id"]]])
        collected = _maintain(home, "--collect", "--label-studio-port", str(studio_port))
        assert (collected["labeled"], collected["pending"]) == (100, 0)

        # On a cluster the same decision starts the GitLab pipeline (a contract: the server
        # answers like GitLab's trigger API, tests/usecases/cloud/gitlab_reference.py)
        with reference_gitlab(secrets.token_hex(13)) as gitlab:
            triggered = cdl("maintain", "--usecase", "fmnist", "--challenge", "--via", "gitlab",
                            home=home, env={"CDL_GITLAB_URL": gitlab.base,
                                            "CDL_GITLAB_PROJECT": PROJECT_PATH,
                                            "CDL_GITLAB_TRIGGER_TOKEN": gitlab.token})
        assert triggered.returncode == 0, triggered.stderr[-3000:]
        assert gitlab.token not in triggered.stdout + triggered.stderr
        ((_, _, body),) = gitlab.requests
        assert body["variables"]["CDL_MAINTAIN_DATASET"] == collected["dataset_version"]
        assert body["variables"]["CDL_MAINTAIN_CHAMPION"] == "1"
        assert json.loads(triggered.stdout)["web_url"] in triggered.stderr

        # The challenger is trained, decided and switched in while two clients keep asking
        with Clients(url, _inverted(20, seed=2)[0]) as clients:
            decided = _maintain(home, "--challenge", "--trials", "1", "--no-label-studio")
            time.sleep(1)
        after, version = _accuracy(url, *_inverted(200, seed=3))
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
        cdl("studio", "stop", home=home)
        cdl("db", "stop", home=home)
    assert server.returncode == 0, stderr[-2000:]

    assert decided["dataset_version"] == collected["dataset_version"]
    assert decided["promoted"] is True, decided["reason"]
    assert decided["new_samples"]["challenger"] > decided["new_samples"]["champion"]
    assert decided["served"] == url and f"{url} now serves it" in decided["stderr"]
    failed = [answer for answer in clients.answers if answer[0] != 200]
    assert not failed and len(clients.answers) > 20, failed[:3]
    served = [version for _, version in clients.answers]
    assert served[0] == "1" and served[-1] == str(decided["challenger"])
    assert version == str(decided["challenger"]) and after > before
    with open_database(state) as db:
        recorded = LocalModelRegistry(db, state.models).get("fmnist", decided["challenger"])
    assert recorded.decision == {k: v for k, v in decided.items() if k != "stderr"}
    assert deploy.packaged_versions(state.home / "serving" / "models")["fmnist"] == \
        decided["challenger"]
