"""Trials that read their features from the Transformation Registry in Pachyderm: ``data.features``
as ``pfs://<repo>@<commit>/<key>`` (``usecases.workflow.training``).

No pachd runs here. The contract tests serve the features through the Pachyderm adapter's own
stand-in (``tests/usecases/stores/test_pachyderm.py``: pachd's gRPC method paths, pachyderm_sdk's
own messages, every request recorded), after publishing them with ``Pachyderm.put_features``, and
assert what the download asked pachd for, field by field.
"""

from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import grpc
import pytest
import yaml
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs

from tests.usecases.stores.test_pachyderm import COMMIT, PachdStandIn, assert_repo, written
from tests.usecases.test_entrypoints import VALIDATION, run_entrypoint, write_features
from usecases.bbc.usecase import USECASE as BBC
from usecases.cluster.pipelines import features_repo
from usecases.errors import CDLError
from usecases.stores.pachyderm import Pachyderm
from usecases.workflow import training
from usecases.workflow.deploy import free_port
from usecases.workflow.training import (
    PACHD_ADDRESS_ENV,
    PACHD_TOKEN_ENV,
    features_folder,
    format_features_reference,
    parse_features_reference,
)

KEY = "bbc-0123456789abcdef"  # a features key as usecases.workflow.features names them
TOKEN = "robot-token-of-the-test"


StandIn = TypeVar("StandIn", bound=PachdStandIn)


def serve(stand_in: StandIn) -> Iterator[StandIn]:
    stand_in.server.start()
    yield stand_in
    stand_in.server.stop(grace=None)


@pytest.fixture
def pachd() -> Iterator[PachdStandIn]:
    yield from serve(PachdStandIn())


class LostMidDownload(PachdStandIn):
    """Answers the first file of a download, then fails as a pachd that went away, while
    ``lost`` is set."""

    lost = True

    def _get_file(self, request: pfs.GetFileRequest, context: grpc.ServicerContext) -> Any:
        if self.lost and len(self.sent("GetFile")) > 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "pachd restarted")
        yield from super()._get_file(request, context)


@pytest.fixture
def flaky() -> Iterator[LostMidDownload]:
    yield from serve(LostMidDownload())


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """$TMPDIR of this test, for this process (tempfile caches it) and its subprocesses."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.delenv(PACHD_ADDRESS_ENV, raising=False)
    monkeypatch.setenv(PACHD_TOKEN_ENV, TOKEN)
    return tmp / "cdl-features" / "bbc-features" / COMMIT / KEY


def publish(pachd: PachdStandIn, tmp_path: Path) -> tuple[str, dict[str, bytes]]:
    """A BBC features folder committed with put_features and served back by the stand-in:
    its reference and the files, by their path in the commit."""
    folder = write_features(BBC.name, BBC.classes, tmp_path / "features")
    commit = Pachyderm(pachd.address).put_features(BBC.name, KEY, folder)
    files = written(pachd.sent("ModifyFile")[0][1:])[1]
    assert sorted(files) == sorted(f"/{KEY}/{p.name}" for p in folder.iterdir())
    pachd.files = files
    pachd.requests.clear()
    pachd.tokens.clear()
    return format_features_reference(features_repo(BBC.name), commit, KEY), files


def assert_downloaded(pachd: PachdStandIn, files: dict[str, bytes], folder: Path) -> None:
    """Connected, listed /<key> of bbc-features@COMMIT, read each file once, with the token."""
    gets = len(files)
    assert [name for name, _ in pachd.requests] == ["GetVersion", "WalkFile"] + ["GetFile"] * gets
    assert pachd.sent("GetVersion") == [Empty()]
    (walk,) = pachd.sent("WalkFile")
    assert walk.file.path == f"/{KEY}"
    assert_repo(walk.file.commit.repo, "bbc-features")
    assert walk.file.commit.id == COMMIT
    reads = pachd.sent("GetFile")
    assert sorted(r.file.path for r in reads) == sorted(files)
    for read in reads:
        assert_repo(read.file.commit.repo, "bbc-features")
        assert (read.file.commit.id, read.offset) == (COMMIT, 0)
    assert pachd.tokens == [TOKEN] * (2 + gets)
    assert {f"/{KEY}/{p.name}": p.read_bytes() for p in folder.iterdir()} == files


def closed_address() -> str:
    return f"grpc://127.0.0.1:{free_port()}"  # a port nothing listens on


def test_a_reference_round_trips() -> None:
    text = format_features_reference("bbc-features", COMMIT, KEY)
    assert text == f"pfs://bbc-features@{COMMIT}/{KEY}"
    reference = parse_features_reference(text)
    assert (reference.repo, reference.commit, reference.key) == ("bbc-features", COMMIT, KEY)
    assert format_features_reference(*reference) == text


@pytest.mark.parametrize(("text", "problem"), [
    ("/srv/cdl/features/bbc-1", "is not a pfs:// reference"),
    (f"s3://bbc-features@{COMMIT}/{KEY}", "is not a pfs:// reference"),
    (f"pfs://bbc-features/{KEY}", "names no Pachyderm repo"),
    (f"pfs://@{COMMIT}/{KEY}", "names no Pachyderm repo"),
    (f"pfs://bbc features@{COMMIT}/{KEY}", "names no Pachyderm repo"),
    (f"pfs://bbc-features@master/{KEY}", "names no commit id: 'master' is not 32 hex digits"),
    (f"pfs://bbc-features@{COMMIT[:-1]}/{KEY}", "names no commit id"),
    (f"pfs://bbc-features@{COMMIT.upper()}/{KEY}", "names no commit id"),
    (f"pfs://bbc-features@{COMMIT}", "names no features key: ''"),
    (f"pfs://bbc-features@{COMMIT}/", "names no features key: ''"),
    (f"pfs://bbc-features@{COMMIT}/{KEY}/train.npz", f"'{KEY}/train.npz' is not one path segment"),
    (f"pfs://bbc-features@{COMMIT}/..", "names no features key: '..'"),
], ids=["path", "scheme", "no-at", "no-repo", "bad-repo", "branch", "short-commit",
        "upper-commit", "no-key", "empty-key", "nested-key", "dotdot-key"])
def test_a_bad_reference_says_which_part_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(CDLError, match=re.escape(problem)) as raised:
        parse_features_reference(text)
    assert "pfs://<repo>@<commit>/<key>" in raised.value.fix


def test_format_refuses_what_parse_refuses() -> None:
    with pytest.raises(CDLError, match="names no commit id"):
        format_features_reference("bbc-features", "master", KEY)
    with pytest.raises(CDLError, match="names no features key"):
        format_features_reference("bbc-features", COMMIT, "a/b")


def test_a_local_folder_is_used_as_is_without_pachyderms_sdk(tmp_path: Path) -> None:
    probe = ("import json, sys\n"
             "from usecases.workflow.training import features_folder\n"
             f"config = {{'data': {{'features': {str(tmp_path)!r}}}}}\n"
             "print(json.dumps([str(features_folder(config)), config['data']['features'],\n"
             "                  sorted({'pachyderm_sdk', 'grpc'} & set(sys.modules))]))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True)
    assert json.loads(done.stdout) == [str(tmp_path), str(tmp_path), []]
    assert features_folder({"data": {"features": None}}) is None
    assert features_folder({}) is None


def test_contract_a_reference_is_downloaded_once_into_the_cache(
        pachd: PachdStandIn, cache: Path, tmp_path: Path) -> None:
    reference, files = publish(pachd, tmp_path)
    config: dict[str, Any] = {"data": {"features": reference, "pachyderm": pachd.address}}

    assert features_folder(config) == cache
    assert config["data"] == {"features": str(cache), "pachyderm": pachd.address}
    assert_downloaded(pachd, files, cache)
    assert list(cache.parent.iterdir()) == [cache]  # no temporary folder left beside it

    pachd.requests.clear()
    again: dict[str, Any] = {"data": {"features": reference}}  # no address: pachd not asked
    assert features_folder(again) == cache
    assert pachd.requests == []


def test_contract_on_a_cluster_the_masters_config_is_resolved_in_place(
        pachd: PachdStandIn, cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reference, files = publish(pachd, tmp_path)
    masters = {"data": {"features": reference, "pachyderm": pachd.address}}
    info = SimpleNamespace(trial=SimpleNamespace(_config=masters, hparams={"hidden_size": 8}),
                           latest_checkpoint=None)
    monkeypatch.setattr(training, "cluster_trial", lambda: info)

    got, config, hparams, resume = training.trial_inputs()

    # pytorch.init reads the experiment config from this very dict (det.get_cluster_info()
    # caches its ClusterInfo), and the trial reads data.features from there.
    assert got is info and config is masters
    assert masters["data"]["features"] == str(cache)
    assert (hparams, resume) == ({"hidden_size": 8}, None)
    assert_downloaded(pachd, files, cache)


def test_contract_the_address_in_the_environment_wins_over_the_configs(
        pachd: PachdStandIn, cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reference, files = publish(pachd, tmp_path)
    monkeypatch.setenv(PACHD_ADDRESS_ENV, pachd.address)
    config = {"data": {"features": reference, "pachyderm": closed_address()}}
    assert features_folder(config) == cache
    assert_downloaded(pachd, files, cache)


def test_contract_a_half_download_is_never_used(
        flaky: LostMidDownload, cache: Path, tmp_path: Path) -> None:
    reference, files = publish(flaky, tmp_path)
    config = {"data": {"features": reference, "pachyderm": flaky.address}}
    with pytest.raises(CDLError, match=f"pachd at {flaky.address} is unreachable"):
        features_folder(config)
    assert len(flaky.sent("GetFile")) == 2
    assert list(cache.parent.iterdir()) == []
    assert config["data"]["features"] == reference

    flaky.lost = False
    flaky.requests.clear()
    flaky.tokens.clear()
    assert features_folder(config) == cache
    assert_downloaded(flaky, files, cache)  # every file again, none taken from the first try


def test_contract_a_missing_commit_names_the_reference_and_how_to_list_versions(
        pachd: PachdStandIn, cache: Path, tmp_path: Path) -> None:
    reference, _ = publish(pachd, tmp_path)
    pachd.fail["WalkFile"] = grpc.StatusCode.NOT_FOUND
    with pytest.raises(CDLError, match=f"{re.escape(reference)} is not in pachd at") as raised:
        features_folder({"data": {"features": reference, "pachyderm": pachd.address}})
    assert "pachctl list commit bbc-features" in raised.value.fix
    assert list(cache.parent.iterdir()) == []


def test_contract_a_key_without_files_is_an_error(
        pachd: PachdStandIn, cache: Path, tmp_path: Path) -> None:
    reference, _ = publish(pachd, tmp_path)
    pachd.files = {}
    with pytest.raises(CDLError, match=f"{re.escape(reference)} holds no files"):
        features_folder({"data": {"features": reference, "pachyderm": pachd.address}})
    assert list(cache.parent.iterdir()) == []


def test_a_reference_without_a_pachd_address_says_where_to_set_one(cache: Path) -> None:
    reference = format_features_reference("bbc-features", COMMIT, KEY)
    with pytest.raises(CDLError, match="no pachd address") as raised:
        features_folder({"data": {"features": reference}})
    assert "data.pachyderm" in raised.value.fix and PACHD_ADDRESS_ENV in raised.value.fix


def experiment(features: str, target: Path, **data: str) -> Path:
    """BBC's const.yaml reading ``features``, cut to one epoch."""
    config = yaml.safe_load((BBC.model_dir / "const.yaml").read_text())
    config["data"] = {**(config.get("data") or {}), "features": features, **data}
    config["hyperparameters"]["epochs"] = 1
    target.write_text(yaml.safe_dump(config))
    return target


@pytest.mark.slow
def test_contract_the_bbc_entrypoint_trains_on_features_from_pachyderm(
        pachd: PachdStandIn, cache: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    reference, files = publish(pachd, tmp_path)
    monkeypatch.setenv(PACHD_ADDRESS_ENV, pachd.address)

    done = run_entrypoint(BBC.model_dir, "python3 -m usecases.bbc.train", tmp_path,
                          experiment(reference, tmp_path / "const.yaml"))

    assert done.returncode == 0, done.stderr[-3000:]
    reports = [(int(step), ast.literal_eval(metrics))
               for step, metrics in VALIDATION.findall(done.stderr)]
    assert [step for step, _ in reports] == [1], done.stderr[-3000:]
    assert math.isfinite(float(reports[0][1]["validation_loss"]))
    assert_downloaded(pachd, files, cache)


def test_an_unreachable_pachd_is_a_one_line_error(cache: Path, tmp_path: Path) -> None:
    address = closed_address()

    done = run_entrypoint(BBC.model_dir, "python3 -m usecases.bbc.train", tmp_path,
                          experiment(format_features_reference("bbc-features", COMMIT, KEY),
                                     tmp_path / "const.yaml", pachyderm=address))

    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: pachd at {address} is unreachable")
    assert "Fix: " in lines[0]
    assert not cache.parent.exists()
    assert not (tmp_path / "xdg").exists()
