"""Contract tests of the data pipeline's ingest on a cluster (``usecases/cluster/data.py``).

No pachd runs here: the adapter talks gRPC to the stand-in of
``tests/usecases/stores/test_pachyderm.py``, which records every request. What stands in for
Pachyderm's job is this: when the raw commit is finished, the stand-in lays its files out as
``/pfs/raw`` and runs OUR real validation worker (``usecases.cluster.worker.validate``, the
pipeline's own code, with ``raw_COMMIT`` set as Pachyderm sets it) in-process; what the worker
wrote to ``/pfs/out`` becomes the output commit the adapter reads and downloads. Pachyderm's
scheduling, datums and storage are not exercised; the worker's decisions are real.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from tests.rawdata import add_bad_files, write_bbc
from tests.usecases.cluster.test_worker import local_manifest
from tests.usecases.stores.test_pachyderm import COMMIT, IMAGE, PachdStandIn
from usecases.cli.common import usecase_named
from usecases.cluster import worker
from usecases.cluster.data import ValidatedFolder, ingest
from usecases.cluster.pipelines import validate_pipeline
from usecases.errors import CDLError
from usecases.stores.mldata import Counts, Manifest
from usecases.stores.pachyderm import Pachyderm
from usecases.workflow.data import commit_version

OTHER_COMMIT = "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a"
PER_CLASS = 6


def run_worker(usecase: str, commit: str, files: dict[str, bytes],
               workdir: Path) -> dict[str, bytes]:
    """What Pachyderm's job does with a finished raw commit, in-process: ``files`` laid out as
    ``/pfs/raw``, OUR worker run on it with ``raw_COMMIT`` set; what it wrote to ``/pfs/out``."""
    pfs = Path(tempfile.mkdtemp(dir=workdir, prefix="pfs-"))
    for path, data in files.items():
        (pfs / "raw" / path.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (pfs / "raw" / path.lstrip("/")).write_bytes(data)
    with mock.patch.dict(os.environ, {"raw_COMMIT": commit}):
        worker.validate(usecase, pfs / "raw", pfs / "out")
    return {f"/{p.relative_to(pfs / 'out').as_posix()}": p.read_bytes()
            for p in (pfs / "out").rglob("*") if p.is_file()}


@pytest.fixture
def pachd(tmp_path: Path) -> Iterator[PachdStandIn]:
    stand_in = PachdStandIn()
    stand_in.pipeline = lambda commit, files: run_worker("bbc", commit, files, tmp_path)
    stand_in.server.start()
    yield stand_in
    stand_in.server.stop(grace=None)


@pytest.fixture
def raw(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A BBC-shaped raw folder with one bad file of each kind; the bad files' reasons."""
    folder = write_bbc(tmp_path / "bbc", per_class=PER_CLASS, seed=5)
    return folder, add_bad_files(folder)


def ingested(pachd: PachdStandIn, folder: Path,
             cache: Path) -> tuple[Manifest, ValidatedFolder, str]:
    return ingest(Pachyderm(pachd.address), usecase_named("bbc"), folder, IMAGE, cache,
                  timeout=30)


def test_contract_ingest_versions_and_quarantines_as_the_local_ingest_decides(
        pachd: PachdStandIn, raw: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, bad = raw
    manifest, store, commit = ingested(pachd, folder, tmp_path / "cache")

    assert commit == COMMIT
    assert manifest.source == f"pfs:raw@{COMMIT}"  # the raw commit: the lineage key
    assert [r.repo.name for r in pachd.sent("CreateRepo")] == ["bbc-raw", "bbc-features"]
    (create,) = pachd.sent("CreatePipelineV2")
    assert json.loads(create.create_pipeline_request_json) == validate_pipeline("bbc", IMAGE)
    assert pachd.raw == {f"/{p.relative_to(folder).as_posix()}": p.read_bytes()
                         for p in folder.rglob("*") if p.is_file()}  # one commit, every file
    reasons = {e.path: e.reason for e in manifest.quarantined}
    assert set(reasons) == set(bad)
    for path, reason in bad.items():
        assert str(reasons[path]).startswith(reason)

    local = local_manifest("bbc", folder)
    assert manifest.version == local.version
    assert [(e.path, e.sha256, e.status, e.reason, e.split) for e in manifest.entries] == [
        (e.path, e.sha256, e.status, e.reason, e.split) for e in local.entries]
    assert store.root == tmp_path / "cache" / "bbc" / manifest.version
    assert list(store.root.parent.iterdir()) == [store.root]  # no staging tree left


def test_contract_the_items_read_every_valid_article_through_the_store(
        pachd: PachdStandIn, raw: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, bad = raw
    manifest, store, _ = ingested(pachd, folder, tmp_path / "cache")
    usecase = usecase_named("bbc")

    items = usecase.items(manifest, store)
    articles = {p.relative_to(folder).as_posix() for p in folder.glob("*/*.txt")} - set(bad)
    assert len(articles) == 5 * PER_CLASS
    assert {(i.path, i.label) for i in items} == {(a, a.split("/")[0]) for a in articles}
    for item in items:
        assert store.get(item.source) == (folder / item.path).read_bytes()
    assert usecase.task_data(items[0], store, None)["text"]

    dataset = commit_version(store, usecase, manifest, reused=False)
    assert dataset.counts == Counts(ingested=5 * PER_CLASS + len(bad), valid=5 * PER_CLASS,
                                    quarantined=len(bad), train=len(dataset.split("train")),
                                    test=len(dataset.split("test")))
    assert dataset.counts.test > 0 and dataset.counts.train > 0
    assert dataset.manifest_path == f"pfs:bbc-validate@{COMMIT}/manifest.json"
    assert store.versions() == {manifest.version: dataset.counts}
    assert store.load(manifest.version) is manifest and not store.has("bbc-other")
    with pytest.raises(CDLError, match="written by Pachyderm"):
        store.put(b"new article")
    with pytest.raises(CDLError, match="written by Pachyderm"):
        store.drop(manifest.version)


def test_contract_a_second_ingest_of_the_same_folder_reuses_the_download(
        pachd: PachdStandIn, raw: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, _ = raw
    first, first_store, _ = ingested(pachd, folder, tmp_path / "cache")
    assert pachd.sent("WalkFile")
    pachd.requests.clear()
    pachd.commit = OTHER_COMMIT  # Pachyderm makes a new commit for the same files

    manifest, store, commit = ingested(pachd, folder, tmp_path / "cache")
    assert commit == OTHER_COMMIT
    assert manifest.source == f"pfs:raw@{OTHER_COMMIT}"
    assert manifest.version == first.version
    assert len(pachd.sent("ModifyFile")) == 1  # the raw folder was committed again
    assert pachd.sent("WalkFile") == []  # but nothing was downloaded
    assert [r.file.path for r in pachd.sent("GetFile")] == ["/manifest.json",
                                                            "/quarantine.json"]
    assert store.root == first_store.root
    assert all(store.get(e.sha256) for e in manifest.entries if e.status == "valid")


def test_contract_a_corrupted_or_missing_cached_file_is_detected_by_get(
        pachd: PachdStandIn, raw: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    folder, _ = raw
    manifest, store, _ = ingested(pachd, folder, tmp_path / "cache")
    corrupt, lost = [e for e in manifest.entries if e.status == "valid"][:2]
    (store.root / "data" / corrupt.path).write_bytes(b"tampered")
    (store.root / "data" / lost.path).unlink()

    with pytest.raises(CDLError, match=f"of bbc-validate@{COMMIT} is corrupt") as raised:
        store.get(corrupt.sha256)
    assert str(store.root) in raised.value.fix
    with pytest.raises(CDLError, match=f"of bbc-validate@{COMMIT} is missing"):
        store.get(lost.sha256)
    quarantined = manifest.quarantined[0]
    with pytest.raises(CDLError, match="no validated file"):
        store.get(quarantined.sha256)


def test_contract_an_output_commit_of_another_raw_commit_is_refused(
        pachd: PachdStandIn, raw: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    run_worker = pachd.pipeline
    assert run_worker is not None

    def stale(commit: str, files: dict[str, bytes]) -> dict[str, bytes]:
        return run_worker(OTHER_COMMIT, files)  # a worker that saw another commit

    pachd.pipeline = stale
    with pytest.raises(CDLError, match=f"names pfs:raw@{OTHER_COMMIT} as its source, not "
                                       f"raw commit {COMMIT}"):
        ingested(pachd, raw[0], tmp_path / "cache")
    assert pachd.sent("WalkFile") == []
    assert not (tmp_path / "cache").exists()
