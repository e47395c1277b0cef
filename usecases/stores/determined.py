"""Experiment Registry and Model Registry on a Determined master: the cluster side of
``experiments.py`` and ``registry.py``, which the post-deployment smoke tests drive (#13).

A use case's own YAML and folder go to the master as they are (``create_experiment``), with only
``environment.image`` set to the project's image; the best checkpoint of the finished experiment
(``list_checkpoints`` on a validation metric) becomes a version of a model in Determined's model
registry, its lineage (dataset commit, hyperparameters, metrics, code version) the version's
metadata.

Thin over the ``determined`` SDK 0.38.1 (its last release), departing from ``Determined(...)`` in
two ways, both for a smoke test's sake. It logs in every time, without the SDK's token cache: a
cached token lets a wrong password pass, and the cache is the user's ``~/.config/determined``.
And every request has a timeout: the SDK sends none, so a master that does not answer would hang
a run for minutes. Both rest on the SDK's session classes and ``Determined._from_session``, the
way the SDK's own CLI builds its client.
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from determined import errors as det_errors
from determined.common import api
from determined.common.api import bindings, certs, errors
from determined.experimental.client import Determined, DownloadMode, ExperimentState, OrderBy

from usecases.errors import CDLError

# (connect, read) seconds: a master that is down fails in seconds; a read waits for one answer.
TIMEOUT = (5.0, 60.0)
# States an experiment does not leave for COMPLETED; a PAUSED one waits for a person.
_ENDED_UNFINISHED = {ExperimentState.ERROR, ExperimentState.CANCELED, ExperimentState.DELETED,
                     ExperimentState.DELETING, ExperimentState.DELETE_FAILED,
                     ExperimentState.STOPPING_ERROR, ExperimentState.STOPPING_CANCELED,
                     ExperimentState.STOPPING_KILLED, ExperimentState.PAUSED}


def _reason(error: Exception) -> str:
    """Why a connection failed, out of the SDK's long message (refused, unresolved, timed out,
    a certificate)."""
    found = re.search(r"\[Errno -?\d+\][^'\")]*|timed out|certificate verify failed",
                      str(error))
    return found.group(0) if found else type(error).__name__


def _said(error: Exception) -> str:
    """The master's own message in an answer the SDK raised for (it keeps the whole body)."""
    for arg in error.args:
        if isinstance(arg, requests.Response):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                return str(arg.json()["message"])
    return str(error)


class _Timed(api.BaseSession):
    """A session whose requests carry ``TIMEOUT`` unless their caller set one."""

    def _do_request(self, method: str, path: str, params: dict[str, Any] | None, json: Any,
                    data: str | None, headers: dict[str, Any] | None, timeout: int | None,
                    stream: bool) -> requests.Response:
        return super()._do_request(method, path, params, json, data, headers,
                                   timeout or TIMEOUT,  # type: ignore[arg-type]
                                   stream)


class _Unauthenticated(_Timed, api.UnauthSession):
    pass


class _Authenticated(_Timed, api.Session):
    pass


@dataclass(frozen=True)
class BestCheckpoint:
    """The best completed checkpoint of an experiment and the trial it came from."""

    uuid: str
    trial_id: int
    hparams: dict[str, Any]
    validation_metrics: dict[str, float]  # the trial's averages at that checkpoint


class DeterminedMaster:
    """A logged-in client of one Determined master."""

    def __init__(self, master: str, user: str, password: str, cert_path: str | None = None,
                 noverify: bool = False) -> None:
        self.master = api.canonicalize_master_url(master)
        try:
            cert = certs.default_load(self.master, cert_path, None, noverify)
        except OSError as error:
            raise CDLError(f"cannot read the master's CA certificate: {error}",
                           "pass the path of the PEM file the master's TLS certificate is "
                           "signed with") from None
        login = bindings.v1LoginRequest(username=user, password=api.salt_and_hash(password),
                                        isHashed=True)
        with self._answering("log in"):
            try:
                # no retries, as the SDK's own login: a refused connection is an answer
                token = bindings.post_Login(_Unauthenticated(self.master, cert, max_retries=0),
                                            body=login).token
            except (errors.UnauthenticatedException, errors.ForbiddenException):
                raise CDLError(f"the Determined master at {self.master} refused the login of "
                               f"user {user!r}", "check the user name and password of the "
                               "master's account (an admin can reset it: `det user "
                               "change-password`)") from None
        self._session = _Authenticated(self.master, user, token, cert)
        self._client = Determined._from_session(self._session)

    @contextlib.contextmanager
    def _answering(self, doing: str) -> Iterator[None]:
        """The SDK's failures as errors naming the master and what was being done."""
        try:
            yield
        except (errors.BadRequestException, errors.BadResponseException,
                requests.RequestException) as error:
            # the SDK wraps a failed connection or a timeout in its own exceptions
            cause = error if isinstance(error, requests.RequestException) else error.__context__
            if isinstance(cause, requests.RequestException):
                raise CDLError(f"the Determined master at {self.master} did not answer "
                               f"({doing}): {_reason(cause)}",
                               f"check the URL and that this machine reaches it (`det -m "
                               f"{self.master} master info`); over TLS, pass the master's CA "
                               "certificate") from error
            raise CDLError(f"the Determined master at {self.master} could not {doing}: "
                           f"{_said(error)}",
                           "its answer says what it refused; the log of the cluster's "
                           "determined-master pod says more") from error

    def submit(self, config: Mapping[str, Any], model_dir: Path, image: str | None = None,
               cuda_image: str | None = None) -> int:
        """Create and activate an experiment of ``config`` with ``model_dir`` (its
        ``.detignore`` honoured) as the model definition; the experiment's id.

        ``image`` runs on every slot type. With ``cuda_image`` too, the master picks by slot
        type: ``image`` on CPU slots, ``cuda_image`` on GPUs (both set, since a type left out
        falls back to Determined's default image, which lacks this project). Neither: the
        YAML's own, else the master's task container default.
        """
        if cuda_image and not image:
            raise CDLError("a CUDA image without a CPU image: CPU slots would run Determined's "
                           "default image, which lacks this project",
                           "pass the CPU variant too (scripts/images.sh cpu)")
        sent = copy.deepcopy(dict(config))
        if image:
            sent.setdefault("environment", {})["image"] = (
                {"cpu": image, "cuda": cuda_image} if cuda_image else image)
        try:
            # the SDK prints its upload progress on stdout, which is the CLI's
            with self._answering(f"create an experiment from {model_dir}"), \
                    contextlib.redirect_stdout(io.StringIO()):
                return self._client.create_experiment(sent, model_dir).id
        except ValueError as error:  # the folder is missing, or over the master's size limit
            raise CDLError(f"cannot send {model_dir} as a model definition: {error}",
                           "pass the use case's folder; if it is too large, list what the "
                           f"image already has in {model_dir / '.detignore'}") from None

    def wait(self, experiment_id: int, timeout_s: float, poll_s: float = 10.0) -> None:
        """Return once the experiment completed; an error naming it and its state when it
        ended otherwise, or was still going after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        logs = f"`det -m {self.master} experiment logs {experiment_id}`"
        with self._answering(f"report experiment {experiment_id}"):
            experiment = self._client.get_experiment(experiment_id)
            while experiment.state != ExperimentState.COMPLETED:
                state = experiment.state.name if experiment.state else "unknown"
                if experiment.state in _ENDED_UNFINISHED:
                    raise CDLError(
                        f"experiment {experiment_id} on {self.master} ended {state}",
                        f"resume it: `det -m {self.master} experiment activate {experiment_id}`"
                        if experiment.state == ExperimentState.PAUSED else
                        f"read why in its logs: {logs} (the first trial's), or `det -m "
                        f"{self.master} experiment list-trials {experiment_id}` and `det -m "
                        f"{self.master} trial logs TRIAL_ID`")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CDLError(
                        f"experiment {experiment_id} on {self.master} did not complete within "
                        f"{timeout_s:g} s (state {state})",
                        f"follow it with {logs} --follow and wait longer, or stop it: "
                        f"`det -m {self.master} experiment kill {experiment_id}`")
                time.sleep(min(poll_s, left))
                experiment.reload()

    def best_checkpoint(self, experiment_id: int, metric: str,
                        smaller_is_better: bool) -> BestCheckpoint:
        """The completed checkpoint with the best validation ``metric`` (a name the trials
        report, e.g. the YAML's ``searcher.metric``)."""
        order = OrderBy.ASC if smaller_is_better else OrderBy.DESC
        with self._answering(f"list the checkpoints of experiment {experiment_id}"):
            found = self._client.get_experiment(experiment_id).list_checkpoints(
                sort_by=metric, order_by=order, max_results=1)
        training = found[0].training if found else None
        if training is None:
            raise CDLError(f"experiment {experiment_id} on {self.master} has no completed "
                           f"checkpoint with a validation of {metric!r}",
                           f"check that its trials report {metric!r} (searcher.metric) and "
                           "save checkpoints")
        return BestCheckpoint(found[0].uuid, training.trial_id, dict(training.hparams),
                              dict(training.validation_metrics.get("avgMetrics") or {}))

    def register(self, model_name: str, checkpoint_uuid: str,
                 metadata: Mapping[str, Any]) -> int:
        """Register the checkpoint as the next version of ``model_name`` (created if new) with
        ``metadata``, its lineage; the version's number.

        The version and its metadata are one request (``PostModelVersion``, the REST call of
        ``Model.register_version``, which cannot send metadata), so no version is ever listed
        without its lineage.
        """
        with self._answering(f"register checkpoint {checkpoint_uuid} in model {model_name!r}"):
            try:
                self._client.get_model(model_name)
            except errors.NotFoundException:
                self._client.create_model(model_name)
            created = bindings.post_PostModelVersion(
                self._session, modelName=model_name, body=bindings.v1PostModelVersionRequest(
                    checkpointUuid=checkpoint_uuid, modelName=model_name,
                    metadata=dict(metadata)))
        return created.modelVersion.version

    def download(self, checkpoint_uuid: str, path: Path) -> Path:
        """Fetch the checkpoint's files into ``path`` through the master, which reaches the
        checkpoint storage when this machine does not."""
        with self._answering(f"send checkpoint {checkpoint_uuid}"):
            try:
                return Path(self._client.get_checkpoint(checkpoint_uuid).download(
                    str(path), mode=DownloadMode.MASTER))
            except (det_errors.CheckpointStateException,
                    det_errors.ProxiedDownloadFailed) as error:
                raise CDLError(f"checkpoint {checkpoint_uuid} on {self.master} cannot be "
                               f"downloaded: {error}",
                               "download a COMPLETED checkpoint (best_checkpoint returns "
                               "only those)") from None
