"""Every experiment YAML's ``entrypoint``, run as Determined runs it: the string split like a shell,
``python3`` from PATH, the model folder as working directory. There is no master here, so it runs
under Determined's local training mode, with the experiment named by ``CDL_EXPERIMENT``.

``distributed.yaml`` asks for two slots; without a master there are no slots, so locally its
entrypoint trains its hyperparameters on one device. What this shows for it is that the entrypoint
accepts that YAML and trains, checkpoints and reports; the MirroredStrategy path over several GPUs
runs only on a cluster.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from usecases.bbc.usecase import USECASE as BBC
from usecases.fmnist import idx
from usecases.fmnist.usecase import USECASE as FMNIST

USECASES = {u.model_dir: u for u in (BBC, FMNIST)}
EXPERIMENTS = sorted(p for u in USECASES.values() for p in u.model_dir.glob("*.yaml"))
# One run per distinct entrypoint is enough to show how it fails.
ENTRYPOINTS = sorted({(p.parent, yaml.safe_load(p.read_text())["entrypoint"])
                      for p in EXPERIMENTS})
EPOCHS = 2  # two, so a run that ignored the searcher's length could not pass by chance
# What the next workflow step (export) reads from a checkpoint of each use case.
WEIGHTS = {"bbc": "state_dict.pth", "fmnist": "model.keras"}
VOCABULARY = 64
# How Determined's Core API logs each validation report (local mode and cluster alike).
VALIDATION = re.compile(r"report_validation_metrics\(steps_completed=(\d+), metrics=(\{.*\})\)")


def write_features(name: str, classes: tuple[str, ...], folder: Path) -> Path:
    """A featurised dataset version shaped like usecases.workflow.features writes it."""
    rng = np.random.default_rng(0)
    dtype: type[np.unsignedinteger[Any]]
    shape: tuple[int, ...]
    if name == "bbc":  # bag-of-words counts over the vocabulary
        dtype, shape, high = np.uint16, (VOCABULARY,), 4
    else:  # raw pixels
        dtype, shape, high = np.uint8, idx.IMAGE_SHAPE, 256
    folder.mkdir()
    np.save(folder / "classes.npy", np.array(classes))
    labels_of: dict[str, list[tuple[str, str]]] = {}
    for split, n in (("train", 40), ("val", 20), ("test", 20)):
        labels = np.arange(n, dtype=np.int64) % len(classes)
        item_ids = [f"{split}/{i:03d}" for i in range(n)]
        np.savez(folder / f"{split}.npz", inputs=rng.integers(0, high, (n, *shape)).astype(dtype),
                 labels=labels, item_ids=np.array(item_ids))
        labels_of[split] = [(i, classes[label]) for i, label in zip(item_ids, labels, strict=True)]
    (folder / "transform.json").write_text(json.dumps(
        {"dataset": "test", "labels": labels_of, "transform": {"features": f"{name}-test"}}))
    return folder


def reduced(experiment: Path, features: Path, target: Path) -> dict[str, Any]:
    """The experiment with its data filled in and its length cut to EPOCHS, as cdl would."""
    config = yaml.safe_load(experiment.read_text())
    config["data"] = {**(config.get("data") or {}), "features": str(features)}
    if config["searcher"].get("time_metric") == "epochs":
        config["searcher"]["max_time"] = EPOCHS
    else:
        config["hyperparameters"]["epochs"] = EPOCHS
    target.write_text(yaml.safe_dump(config))
    return config


def run_entrypoint(model_dir: Path, entrypoint: str, tmp_path: Path,
                   experiment: Path | None) -> subprocess.CompletedProcess[str]:
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if k != "CDL_EXPERIMENT"}
    env.update(PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
               XDG_DATA_HOME=str(tmp_path / "xdg"))
    if experiment is not None:
        env["CDL_EXPERIMENT"] = str(experiment)
    argv = shlex.split(entrypoint)
    assert shutil.which(argv[0], path=env["PATH"]) == str(venv_bin / argv[0]), \
        f"{argv[0]} would not be the test's interpreter"
    return subprocess.run(argv, cwd=model_dir, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS,
                         ids=[f"{p.parent.name}/{p.name}" for p in EXPERIMENTS])
def test_entrypoint_trains_checkpoints_and_reports(experiment: Path, tmp_path: Path) -> None:
    usecase = USECASES[experiment.parent]
    features = write_features(usecase.name, usecase.classes, tmp_path / "features")
    config = reduced(experiment, features, tmp_path / experiment.name)

    done = run_entrypoint(experiment.parent, config["entrypoint"], tmp_path,
                          tmp_path / experiment.name)

    assert done.returncode == 0, done.stderr[-3000:]
    reports = [(int(step), ast.literal_eval(metrics))
               for step, metrics in VALIDATION.findall(done.stderr)]
    assert len(reports) == EPOCHS, done.stderr[-3000:]
    metric = config["searcher"]["metric"]
    assert all(math.isfinite(float(metrics[metric])) for _, metrics in reports)
    checkpoints = list((tmp_path / "xdg" / "determined").iterdir())
    # One per validated epoch, at the same step: what a restart resumes from.
    written = sorted(json.loads((c / "metadata.json").read_text())["steps_completed"]
                     for c in checkpoints)
    assert written == [step for step, _ in reports]
    assert all((c / WEIGHTS[usecase.name]).stat().st_size > 0 for c in checkpoints)


@pytest.mark.parametrize("with_repo_yaml", [False, True], ids=["no-experiment", "features-null"])
@pytest.mark.parametrize(("model_dir", "entrypoint"), ENTRYPOINTS,
                         ids=[f"{d.name}:{e}" for d, e in ENTRYPOINTS])
def test_entrypoint_without_input_says_what_to_do(model_dir: Path, entrypoint: str,
                                                  with_repo_yaml: bool, tmp_path: Path) -> None:
    # The repository's own YAML, as a user would first try it: its data.features is null.
    experiment = model_dir / "const.yaml" if with_repo_yaml else None

    done = run_entrypoint(model_dir, entrypoint, tmp_path, experiment)

    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Fix: " in lines[0], lines
    assert not (tmp_path / "xdg").exists()
