"""The Pachyderm validation worker run for real, as Pachyderm runs it: its command over a
``/pfs``-style tree (the input commit at /pfs/raw, output to /pfs/out), bad files included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.rawdata import add_bad_files, write_bbc, write_fmnist
from usecases import defaults
from usecases.cli.common import usecase_named
from usecases.cluster import pipelines
from usecases.stores.mldata import Manifest, sha256_bytes
from usecases.workflow.data import SplitRules, build_manifest
from usecases.workflow.usecase import DataOptions

REPO = Path(__file__).resolve().parents[3]


def local_manifest(usecase_name: str, folder: Path) -> Manifest:
    """What the local ingest decides over ``folder`` with the default rules."""
    usecase = usecase_named(usecase_name)
    candidates, rules = usecase.scan(DataOptions(folder=folder,
                                                 max_bytes=defaults.MAX_FILE_BYTES,
                                                 min_chars=defaults.MIN_CHARS))
    split = SplitRules() if usecase.needs_split() else None
    return build_manifest(usecase.name, folder, candidates,
                          [sha256_bytes(c.data) for c in candidates], rules, split)


def run_worker(usecase: str, pfs: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The pipeline spec's own command, from the input mount's parent."""
    command = pipelines.validate_pipeline(usecase, "unused")["transform"]["cmd"]
    command = [sys.executable if part == "python" else part.replace("/pfs", str(pfs))
               for part in command]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, **env})


def test_bbc_worker_writes_the_version_and_quarantines_every_bad_file(tmp_path: Path) -> None:
    pfs = tmp_path / "pfs"
    write_bbc(pfs / "raw", per_class=8)
    bad = add_bad_files(pfs / "raw")
    ran = run_worker("bbc", pfs, raw_COMMIT="0123abcd")
    assert ran.returncode == 0, ran.stderr
    out = pfs / "out"

    quarantined = {q["path"]: q for q in json.loads((out / "quarantine.json").read_text())}
    assert set(quarantined) == set(bad)
    for path, reason in bad.items():
        assert quarantined[path]["reason"].startswith(reason)
        # kept, byte for byte, never dropped
        kept = (out / "quarantine" / path).read_bytes()
        assert kept == (pfs / "raw" / path).read_bytes()
        assert quarantined[path]["sha256"] == sha256_bytes(kept)
        assert not (out / "data" / path).exists()
        assert f"quarantined {path}: {reason}" in ran.stdout

    manifest = Manifest.from_json((out / "manifest.json").read_text())
    assert manifest.source == "pfs:raw@0123abcd"  # the input commit: the lineage key
    valid = [e for e in manifest.entries if e.status == "valid"]
    assert len(valid) == 40
    for entry in valid:
        assert (out / "data" / entry.path).read_bytes() == (pfs / "raw" / entry.path).read_bytes()
    assert (out / "data" / "bbc.vocab").is_file()  # the dataset's metadata goes along
    assert {e.split for e in valid} == {"train", "test"}


def test_the_worker_decides_as_the_local_ingest_does(tmp_path: Path) -> None:
    """Same files, same rules: the same version id, verdicts and split as the local path."""
    pfs = tmp_path / "pfs"
    write_bbc(pfs / "raw", per_class=6, seed=3)
    add_bad_files(pfs / "raw")
    assert run_worker("bbc", pfs).returncode == 0
    worker = Manifest.from_json((pfs / "out" / "manifest.json").read_text())

    local = local_manifest("bbc", pfs / "raw")
    assert worker.version == local.version
    assert [(e.path, e.status, e.reason, e.split) for e in worker.entries] == [
        (e.path, e.status, e.reason, e.split) for e in local.entries]


def test_fmnist_worker_keeps_the_official_split_and_quarantines_strays(tmp_path: Path) -> None:
    pfs = tmp_path / "pfs"
    write_fmnist(pfs / "raw", n_train=50, n_test=20)
    (pfs / "raw" / "notes.txt").write_text("not an IDX file")
    ran = run_worker("fmnist", pfs)
    assert ran.returncode == 0, ran.stderr
    listed = json.loads((pfs / "out" / "quarantine.json").read_text())
    assert [(q["path"], q["reason"]) for q in listed] == [
        ("notes.txt", "not one of the four Fashion-MNIST IDX files")]
    assert len(list((pfs / "out" / "data").iterdir())) == 4


def test_input_with_nothing_valid_fails_the_job_with_one_line(tmp_path: Path) -> None:
    pfs = tmp_path / "pfs"
    (pfs / "raw" / "sport").mkdir(parents=True)
    (pfs / "raw" / "sport" / "empty.txt").write_bytes(b"")
    ran = run_worker("bbc", pfs)
    assert ran.returncode == 1
    assert ran.stderr.startswith("error: no valid files in") and "Traceback" not in ran.stderr
    assert ran.stderr.count("\n") == 1
