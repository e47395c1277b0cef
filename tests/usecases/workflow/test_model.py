from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import optuna
import pytest

from usecases.bbc.trial import NewsTrial
from usecases.bbc.usecase import MODEL_DIR
from usecases.errors import CDLError
from usecases.workflow import model, training


def test_search_space_is_read_from_the_determined_yaml() -> None:
    config = model.load_experiment(MODEL_DIR / "adaptive.yaml")
    assert config["searcher"]["name"] == "adaptive_asha"
    trial = optuna.trial.FixedTrial({"global_batch_size": 64, "hidden_size": 256,
                                     "dropout": 0.5, "learning_rate": 0.004})
    hparams = model.sample_hparams(config["hyperparameters"], trial)
    assert hparams == {"global_batch_size": 64, "hidden_size": 256, "dropout": 0.5,
                       "learning_rate": 0.004, "weight_decay": 0.01}


def test_log_hyperparameters_use_the_base_and_exponents() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = {"lr": {"type": "log", "base": 10, "minval": -4, "maxval": -2}}
    values = [model.sample_hparams(space, study.ask())["lr"] for _ in range(50)]
    assert all(1e-4 <= v <= 1e-2 for v in values)


def test_unknown_hyperparameter_type_is_a_clear_error() -> None:
    with pytest.raises(CDLError, match="unsupported type 'normal'"):
        model.sample_hparams({"x": {"type": "normal"}}, optuna.trial.FixedTrial({}))


def _features(root: Path, n: int = 120, width: int = 12) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir()
    np.save(root / "classes.npy", np.array(["a", "b", "c"]))
    for split, size in (("train", n), ("val", n // 3)):
        labels = rng.integers(0, 3, size)
        inputs = rng.poisson(1.0, (size, width)).astype(np.uint16)
        inputs[np.arange(size), labels] += 6  # one telling word per class
        np.savez(root / f"{split}.npz", inputs=inputs, labels=labels)
    return root


def _config(features: Path, name: str, epochs: int) -> dict[str, object]:
    config = copy.deepcopy(model.load_experiment(MODEL_DIR / name))
    config["data"] = {"features": str(features)}
    if config["searcher"]["name"] == "adaptive_asha":
        config["searcher"]["max_time"] = epochs
    else:
        config["hyperparameters"]["epochs"] = epochs
    return config


def _trainer(checkpoints: Path) -> model.TrainFn:
    return lambda config, hparams, epochs, on_validation: training.train_pytorch(
        NewsTrial, MODEL_DIR, config, hparams, epochs, checkpoints, on_validation)


def test_asha_trains_through_determined_and_prunes(tmp_path: Path) -> None:
    features = _features(tmp_path / "features")
    checkpoints = tmp_path / "checkpoints"
    config = _config(features, "adaptive.yaml", epochs=4)
    seen: list[tuple[int, int]] = []
    result = model.search(_trainer(checkpoints), config, 6,
                          progress=lambda t, e, m: seen.append((t, e)))
    assert len(result.trials) == 6
    states = {t.state for t in result.trials}
    assert "completed" in states and "pruned" in states
    for trial in result.trials:
        if trial.state == "pruned":
            assert trial.epochs < 4 and trial.checkpoint is None
        else:
            assert trial.epochs == 4 and trial.checkpoint is not None
    best, _ = result.best()
    assert best.val_metrics["validation_accuracy"] > 0.8
    # each epoch's training loss is kept beside its validation metrics (the report's curves),
    # and only validation metrics count as the trial's
    assert all(epoch["training_loss"] > 0 for t in result.trials for epoch in t.history)
    assert set(best.val_metrics) == {"validation_loss", "validation_accuracy"}
    assert best.checkpoint is not None and best.checkpoint.is_relative_to(checkpoints)
    assert (best.checkpoint / "state_dict.pth").exists()
    assert (best.checkpoint / "code" / "trial.py").exists()  # Determined copied the model dir
    assert seen[0] == (0, 1)
    model.discard_checkpoints(result, keep=best)
    assert [p for p in (checkpoints / "determined").iterdir()] == [best.checkpoint]


def test_single_training_uses_the_const_config(tmp_path: Path) -> None:
    config = _config(_features(tmp_path / "features"), "const.yaml", epochs=2)
    result = model.single(_trainer(tmp_path / "checkpoints"), config)
    (trial,) = result.trials
    assert trial.epochs == 2 and trial.hparams["hidden_size"] == 256
    assert result.metric == "validation_loss"


def test_an_experiment_without_a_length_is_a_clear_error() -> None:
    with pytest.raises(CDLError, match="neither how many epochs"):
        model.training_epochs({"name": "x", "searcher": {"name": "single"}}, {"lr": 0.1})
    assert model.training_epochs({"searcher": {"time_metric": "epochs", "max_time": 3}}, {}) == 3
