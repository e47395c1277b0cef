"""Training through Determined, locally: one function per framework integration.

- PyTorch: the use case's ``PyTorchTrial`` under ``det.pytorch.Trainer`` (local training mode).
- Keras 3: Determined 0.38's bundled Keras integration does not import under Keras 3, so Keras
  models report through the Core API with :class:`DeterminedCallback`; the same callback runs on
  a cluster, where ``det.core.init()`` finds the master.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from usecases.errors import CDLError
from usecases.native_logs import import_keras
from usecases.workflow.usecase import History, OnValidation

if TYPE_CHECKING:
    from determined import ClusterInfo

EXPERIMENT_ENV = "CDL_EXPERIMENT"  # the experiment YAML an entrypoint trains without a master
PACHD_ADDRESS_ENV = "CDL_PACHD_ADDRESS"  # wins over data.pachyderm, e.g. after a port-forward
PACHD_TOKEN_ENV = "CDL_PACHD_TOKEN"  # from a Kubernetes secret in the task, never in the config
FEATURES_SCHEME = "pfs://"


@contextlib.contextmanager
def _local_mode(model_dir: Path, checkpoint_root: Path) -> Iterator[None]:
    """Checkpoints under the state dir; Determined copies the model dir (cwd) into each."""
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(checkpoint_root)
    logging.getLogger("determined").setLevel(logging.WARNING)
    try:
        with contextlib.chdir(model_dir):
            yield
    finally:
        if previous is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = previous


class _Stop(Exception):
    pass


def train_pytorch(
    trial_class: type,
    model_dir: Path,
    config: dict[str, Any],
    hparams: dict[str, Any],
    epochs: int,
    checkpoint_root: Path,
    on_validation: OnValidation | None = None,
) -> tuple[History, Path | None]:
    """Train a PyTorchTrial with Determined's local training mode.

    ``on_validation(epoch, metrics)`` returning True stops the trial (ASHA pruning). Returns the
    validation history and the final checkpoint's folder (None when stopped early).
    """
    import torch
    from determined import pytorch

    history: History = []
    written: list[Path] = []

    training: dict[str, float] = {}

    class Observer(pytorch.PyTorchCallback):
        def on_training_workload_end(self, avg_metrics: dict[str, Any],
                                     batch_metrics: Any) -> None:
            # Called at every boundary, so at each epoch's validation: the epoch's mean.
            training.update({f"training_{k}": float(v) for k, v in avg_metrics.items()})

        def on_validation_end(self, metrics: dict[str, Any]) -> None:
            history.append({**training, **{k: float(v) for k, v in metrics.items()}})
            if on_validation is not None and on_validation(len(history), history[-1]):
                raise _Stop

        def on_checkpoint_write_end(self, checkpoint_dir: str) -> None:
            written.append(Path(checkpoint_dir))

    class Observed(trial_class):
        def build_callbacks(self) -> dict[str, Any]:
            return {**super().build_callbacks(), "cdl-observer": Observer()}

    torch.manual_seed(int(config.get("reproducibility", {}).get("experiment_seed", 0)))
    with _local_mode(model_dir, checkpoint_root):
        try:
            # TensorBoard files are a cluster feature (the master serves them); none locally.
            with pytorch.init(hparams=hparams, exp_conf=config,
                              enable_tensorboard_logging=False) as context:
                trainer = pytorch.Trainer(Observed(context), context)
                trainer.fit(
                    max_length=pytorch.Epoch(epochs),
                    validation_period=pytorch.Epoch(1),
                    checkpoint_period=pytorch.Epoch(epochs),
                    checkpoint_policy="none",
                    reporting_period=pytorch.Batch(10_000),
                )
        except _Stop:
            return history, None
    return history, (written[-1] if written else None)


KERAS_MODEL_FILE = "model.keras"
KERAS_STATE_FILE = "state.json"


def keras_callback_class() -> type:
    """The callback class, built on first use so that importing this module needs no Keras."""
    keras = import_keras()
    base: Any = keras.callbacks.Callback

    class DeterminedCallback(base):
        """Reports each epoch's metrics through the Core API, checkpoints at the end of
        training and when the master asks to preempt, and stops early on request."""

        def __init__(self, core_context: Any, epochs: int, checkpoint_every: int = 0,
                     on_validation: OnValidation | None = None) -> None:
            super().__init__()
            self.core = core_context
            self.epochs = epochs
            self.checkpoint_every = checkpoint_every
            self.on_validation = on_validation
            self.history: History = []
            self.checkpoint: str | None = None
            self.stopped_early = False

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            logs = logs or {}
            done = epoch + 1
            train = {k: float(v) for k, v in logs.items() if not k.startswith("val_")}
            val = {f"validation_{k[4:]}": float(v) for k, v in logs.items()
                   if k.startswith("val_")}
            self.core.train.report_training_metrics(steps_completed=done, metrics=train)
            self.core.train.report_validation_metrics(steps_completed=done, metrics=val)
            self.core.train.report_progress(min(done / self.epochs, 1.0))
            self.history.append({**{f"training_{k}": v for k, v in train.items()}, **val})
            if self.on_validation is not None and self.on_validation(done, val):
                self.stopped_early = True
                self.model.stop_training = True
                return
            preempt = self.core.preempt.should_preempt()
            periodic = self.checkpoint_every and done % self.checkpoint_every == 0
            if done == self.epochs or preempt or periodic:
                self.save(done)
            if preempt:
                self.model.stop_training = True

        def save(self, epochs_done: int) -> None:
            metadata = {"steps_completed": epochs_done, "framework": f"keras-{keras.__version__}",
                        "format": "keras"}
            with self.core.checkpoint.store_path(metadata) as (path, storage_id):
                self.model.save(Path(path) / KERAS_MODEL_FILE)
                (Path(path) / KERAS_STATE_FILE).write_text(
                    json.dumps({"epochs_done": epochs_done}))
            self.checkpoint = storage_id

    return DeterminedCallback


def restore_keras(core_context: Any, storage_id: str) -> tuple[Any, int]:
    """Model and completed epochs from a checkpoint written by the callback (resume)."""
    keras = import_keras()

    with core_context.checkpoint.restore_path(storage_id) as path:
        model = keras.models.load_model(Path(path) / KERAS_MODEL_FILE)
        done = int(json.loads((Path(path) / KERAS_STATE_FILE).read_text())["epochs_done"])
    return model, done


def train_keras(
    fit: Callable[[Any, Any], None],
    model_dir: Path,
    epochs: int,
    checkpoint_root: Path,
    on_validation: OnValidation | None = None,
) -> tuple[History, Path | None]:
    """Run ``fit(core_context, callback)`` under a local Core API context (no master)."""
    from determined import core

    storage = checkpoint_root / "determined"
    storage.mkdir(parents=True, exist_ok=True)
    with _local_mode(model_dir, checkpoint_root), \
            core.init(checkpoint_storage=str(storage)) as core_context:
        callback = keras_callback_class()(core_context, epochs, on_validation=on_validation)
        fit(core_context, callback)
    if callback.stopped_early or callback.checkpoint is None:
        return callback.history, None
    return callback.history, storage / callback.checkpoint


# The cluster entrypoints (``python3 -m usecases.<case>.train``) share how they get their inputs.

class FeaturesReference(NamedTuple):
    """A features folder in the Transformation Registry on a cluster: ``/<key>/`` of Pachyderm
    repo ``repo`` (the features repo, ``<usecase>-features``, project ``default``) at ``commit``,
    as ``usecases.stores.pachyderm.Pachyderm.put_features`` wrote it."""

    repo: str
    commit: str  # pachd's commit id, not a branch: a branch moves, a trial trains on one version
    key: str


_REPO = re.compile(r"[A-Za-z0-9_-]+")  # what pachd accepts as a repo name
_COMMIT = re.compile(r"[0-9a-f]{32}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # one path segment, also a cache folder's name


def parse_features_reference(text: str) -> FeaturesReference:
    """``pfs://<repo>@<commit>/<key>``, the form :func:`format_features_reference` writes."""
    fix = ("write it as pfs://<repo>@<commit>/<key>: the features repo (e.g. bbc-features), the "
           "32-hex-digit commit id put_features returned and the key it was given")
    if not text.startswith(FEATURES_SCHEME):
        raise CDLError(f"{text!r} is not a {FEATURES_SCHEME} reference", fix)
    at, _, key = text.removeprefix(FEATURES_SCHEME).partition("/")
    repo, sign, commit = at.partition("@")
    if not sign or not _REPO.fullmatch(repo):
        raise CDLError(f"{text!r} names no Pachyderm repo (letters, digits, _ and -) before '@'",
                       fix)
    if not _COMMIT.fullmatch(commit):
        raise CDLError(f"{text!r} names no commit id: {commit!r} is not 32 hex digits (a branch "
                       "is no version: it moves)", fix)
    if not _KEY.fullmatch(key):
        raise CDLError(f"{text!r} names no features key: {key!r} is not one path segment of "
                       "letters, digits, '.', '_' and '-'", fix)
    return FeaturesReference(repo, commit, key)


def format_features_reference(repo: str, commit: str, key: str) -> str:
    """The reference to ``/<key>/`` of ``repo@commit``; raises where it would not parse."""
    text = f"{FEATURES_SCHEME}{repo}@{commit}/{key}"
    parse_features_reference(text)
    return text


def _downloaded(reference: FeaturesReference, configured: str | None) -> Path:
    """The referenced folder, cached under $TMPDIR (the working directory is copied into each
    checkpoint). It is downloaded into a temporary sibling and renamed into place once complete,
    so a half download (a lost pachd, a killed task) is never used. A commit never changes, so
    a cached copy is used without asking pachd."""
    text = format_features_reference(*reference)
    cached = Path(tempfile.gettempdir(), "cdl-features", *reference)
    if cached.is_dir():
        return cached
    address = os.environ.get(PACHD_ADDRESS_ENV) or configured
    if not address:
        raise CDLError(f"data.features is {text}, but no pachd address is given",
                       "set data.pachyderm in the experiment config (in the cluster: "
                       f"grpc://pachd.cdl-data.svc.cluster.local:30650) or {PACHD_ADDRESS_ENV}")
    import grpc

    from usecases.stores.pachyderm import Pachyderm

    store = Pachyderm(address, auth_token=os.environ.get(PACHD_TOKEN_ENV) or None)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{reference.key}.", dir=cached.parent) as partial:
        folder = Path(partial, reference.key)
        try:
            written = store.download(reference.repo, reference.commit, reference.key, folder)
        except CDLError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, grpc.Call) and cause.code() == grpc.StatusCode.NOT_FOUND):
                raise
            raise CDLError(f"{text} is not in pachd at {address} ({cause.details()})",
                           f"check data.features: `pachctl list commit {reference.repo}` lists "
                           f"the versions, `pachctl list file {reference.repo}@{reference.commit}"
                           ":/` the keys of one") from exc
        if not written:
            raise CDLError(f"{text} holds no files",
                           f"check the key: `pachctl list file {reference.repo}@"
                           f"{reference.commit}:/` lists those of that version")
        try:
            folder.rename(cached)
        except OSError:
            if not cached.is_dir():  # else another process finished the same download first
                raise
    return cached


def features_folder(config: dict[str, Any]) -> Path | None:
    """The folder ``data.features`` names, None where it is unset. A :class:`FeaturesReference`
    is downloaded through pachd (``CDL_PACHD_ADDRESS``, else ``data.pachyderm``; the token in
    ``CDL_PACHD_TOKEN``) and ``config["data"]["features"]`` becomes the local folder, which is
    where the trials read it."""
    data = config.get("data") or {}
    features = data.get("features")
    if not features:
        return None
    if not str(features).startswith(FEATURES_SCHEME):
        return Path(features)
    folder = _downloaded(parse_features_reference(str(features)), data.get("pachyderm"))
    config["data"] = {**data, "features": str(folder)}
    return folder


def local_experiment() -> tuple[dict[str, Any], dict[str, Any]]:
    """Config and hyperparameters for local training mode, from the YAML in ``CDL_EXPERIMENT``."""
    import optuna

    named = os.environ.get(EXPERIMENT_ENV)
    if not named:
        raise CDLError(f"no Determined master to supply the experiment, and {EXPERIMENT_ENV} "
                       "is not set",
                       "submit it with `det experiment create const.yaml .`, or set "
                       f"{EXPERIMENT_ENV} to an experiment YAML whose data.features is a "
                       "featurised dataset folder")
    path = Path(named)
    if not path.is_file():
        raise CDLError(f"{EXPERIMENT_ENV}={named} is not a file",
                       f"point {EXPERIMENT_ENV} at an experiment YAML")
    from usecases.workflow.model import load_experiment, sample_hparams

    config = load_experiment(path)
    features = (config.get("data") or {}).get("features")
    folder = features_folder(config)
    if folder is None or not (folder / "train.npz").is_file():
        raise CDLError(f"data.features in {path} ({features or 'null'}) is not a featurised "
                       "dataset folder",
                       "set it to a folder with train.npz, val.npz, test.npz and classes.npy "
                       f"(cdl keeps them under CDL_HOME), or to {FEATURES_SCHEME}<repo>@<commit>/"
                       "<key> of one in Pachyderm")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = int(config.get("reproducibility", {}).get("experiment_seed", 0))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return config, sample_hparams(config["hyperparameters"], study.ask())


def cluster_trial() -> ClusterInfo | None:
    """The master's ``ClusterInfo`` when this process is a trial, else None (local mode)."""
    import determined as det

    info = det.get_cluster_info()
    return info if info is not None and info.task_type == "TRIAL" else None


def trial_inputs() -> tuple[ClusterInfo | None, dict[str, Any], dict[str, Any], str | None]:
    """(cluster info, config, hyperparameters, checkpoint to resume from) of the trial this
    process runs. On a cluster the master supplies them. Without one (local training mode):

    - ``CDL_EXPERIMENT`` names an experiment YAML whose ``data.features`` is a featurised
      dataset folder (what ``usecases.workflow.features`` writes); the repository's YAMLs
      leave it null.
    - The hyperparameters are the first point Optuna's RandomSampler, seeded with
      ``reproducibility.experiment_seed`` (default 0), draws from the YAML's space through the
      parser the local ASHA search uses: deterministic, inside the space, and a ``single``
      config's constants as written.
    - Nothing to resume; checkpoints go where Determined's local mode puts them:
      ``$XDG_DATA_HOME/determined``.

    In both, ``data.features`` may instead be a reference into the Transformation Registry in
    Pachyderm, ``pfs://<repo>@<commit>/<key>``; the returned config names the local copy (see
    :func:`features_folder`).
    """
    info = cluster_trial()
    if info is None:
        return None, *local_experiment(), None
    # Resolved in place: pytorch.init reads the config from the same (cached) ClusterInfo.
    features_folder(info.trial._config)
    return info, info.trial._config, dict(info.trial.hparams), info.latest_checkpoint


def entrypoint(main: Callable[[], None]) -> None:
    """Run an entrypoint's ``main``: Determined's log format at INFO (the reported metrics are
    the trial's log), a CDLError as one line and exit status 1."""
    import determined as det

    logging.basicConfig(level=logging.INFO, format=det.LOG_FORMAT)
    try:
        main()
    except CDLError as exc:
        sys.exit(f"error: {exc}")
