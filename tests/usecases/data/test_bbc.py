"""`cdl data fetch bbc` as a user runs it, against archives served on 127.0.0.1 that the tests
zip from the raw dataset: the published one is extracted whole, anything else is refused with
nothing left behind, and a cut download resumes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from usecases.data import bbc, vocabulary
from usecases.errors import CDLError
from usecases.state import TEMP_PREFIX

from ...cli import assert_one_line_error, cdl, environment
from ..test_imports import HEAVY
from .server import FileServer, Served, file_server

PATH = "/files/datasets/bbc-fulltext.zip"
# Runs `cdl data fetch` in this process; prints its exit code and the heavy packages it loaded.
PROBE = """
import json, sys
from usecases.cli import app
try:
    app(sys.argv[1:], prog_name="cdl")
    code = 0
except SystemExit as exc:
    code = exc.code
print(json.dumps([code, sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))]))
"""


def members(raw: Path) -> dict[str, bytes]:
    """The archive's files as the publisher lays them out: the top folder, README, articles."""
    files = {f"bbc/{p.relative_to(raw).as_posix()}": p.read_bytes()
             for p in sorted(raw.glob("*/*.txt"))}
    return {"bbc/README.TXT": (raw / "README.TXT").read_bytes(), **files}


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in ["bbc/", *(f"bbc/{c}/" for c in bbc.ARTICLES)]:
            archive.writestr(folder, b"")
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def published(bbc_raw: Path) -> dict[str, bytes]:
    return members(bbc_raw)


@pytest.fixture(scope="session")
def archive(published: dict[str, bytes]) -> bytes:
    return zipped(published)


@pytest.fixture
def server(archive: bytes) -> Iterator[FileServer]:
    with file_server() as running:
        running.files[PATH] = Served(archive)
        yield running


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_pinned_digest_is_that_of_the_raw_dataset(bbc_raw: Path) -> None:
    hashes = {p.relative_to(bbc_raw).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in bbc_raw.glob("*/*.txt")}
    assert len(hashes) == sum(bbc.ARTICLES.values()) == 2225
    assert bbc.content_digest(hashes) == bbc.CONTENT_DIGEST
    others = {p.name for p in bbc_raw.iterdir() if p.is_file()}
    assert others == {bbc.README, bbc.VOCAB_FILE}


@pytest.mark.slow
def test_the_built_vocabulary_is_pinned(bbc_raw: Path) -> None:
    texts = [p.read_bytes().decode("utf-8", errors="replace")
             for p in sorted(bbc_raw.glob("*/*.txt"))]
    built = vocabulary.build(texts)
    assert hashlib.sha256(built.encode()).hexdigest() == bbc.VOCAB_SHA256
    assert len(built.splitlines()) == 9902


@pytest.mark.slow
def test_the_published_archive_is_extracted_whole_and_a_second_fetch_does_nothing(
        server: FileServer, bbc_raw: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    stale = home / "datasets" / f"{TEMP_PREFIX}bbc.0123456789ab"  # what a killed fetch leaves
    (stale / "sport").mkdir(parents=True)
    first = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", "data", "fetch", "bbc", "--url",
         server.url(PATH)], capture_output=True, text=True, env=environment(home),
        cwd=tmp_path, timeout=300, check=False)
    code, heavy = json.loads(first.stdout.strip().splitlines()[-1])
    assert code == 0, first.stderr
    assert heavy == []
    fetched = home / "datasets" / "bbc"  # the default: CDL_HOME/datasets
    assert first.stdout.splitlines()[0] == str(fetched)
    assert os.listdir(home / "datasets") == ["bbc"]
    got, source = tree(fetched), tree(bbc_raw)
    assert hashlib.sha256(got.pop(bbc.VOCAB_FILE)).hexdigest() == bbc.VOCAB_SHA256
    source.pop(bbc.VOCAB_FILE)
    assert got == source

    again = cdl("data", "fetch", "bbc", "--url", server.url(PATH), home=home)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(fetched)
    assert "nothing to do" in again.stderr
    assert len(server.log) == 1


BAD = {
    "truncated": ("truncated or corrupt", lambda files: (z := zipped(files))[:len(z) // 2]),
    "changed article": ("differ from the published BBC dataset", lambda files: zipped(
        {**files, "bbc/business/001.txt": files["bbc/business/001.txt"].replace(b"76%", b"67%")})),
    "missing article": ("tech: 400 articles, expected 401", lambda files: zipped(
        {k: v for k, v in files.items() if k != "bbc/tech/401.txt"})),
    "extra article": ("business: 511 articles, expected 510", lambda files: zipped(
        {**files, "bbc/business/511.txt": files["bbc/business/001.txt"]})),
    "extra text file": ("unexpected file bbc/notes.txt", lambda files: zipped(
        {**files, "bbc/notes.txt": b"hello"})),
    "extra file in a class folder": ("unexpected file bbc/sport/photo.jpg", lambda files: zipped(
        {**files, "bbc/sport/photo.jpg": b"\xff\xd8\xff"})),
    "file outside the top folder": ("unexpected file other/001.txt", lambda files: zipped(
        {**files, "other/001.txt": b"text"})),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_an_archive_that_is_not_the_published_one_is_refused_and_nothing_is_left(
        server: FileServer, published: dict[str, bytes], tmp_path: Path, kind: str) -> None:
    needle, make = BAD[kind]
    server.files[PATH] = Served(make(published))
    dest = tmp_path / "datasets"
    run = cdl("data", "fetch", "bbc", "--dest", str(dest), "--url", server.url(PATH),
              home=tmp_path / "home")
    assert_one_line_error(run, needle)
    assert os.listdir(dest) == []


@pytest.mark.slow
def test_a_cut_download_resumes_with_only_the_rest_requested(
        server: FileServer, archive: bytes, tmp_path: Path) -> None:
    dest, cut = tmp_path / "datasets", 1_000_000
    server.files[PATH].drop_after = cut
    first = cdl("data", "fetch", "bbc", "--dest", str(dest), "--url", server.url(PATH),
                home=tmp_path / "home")
    assert_one_line_error(first, f"stopped after {cut} of {len(archive)} bytes", "resume")
    assert (dest / f"{bbc.ARCHIVE}.part").stat().st_size == cut
    assert not (dest / "bbc").exists()

    second = cdl("data", "fetch", "bbc", "--dest", str(dest), "--url", server.url(PATH),
                 home=tmp_path / "home")
    assert second.returncode == 0, second.stderr
    assert [(r.range, r.status, r.sent) for r in server.log] == [
        (None, 200, cut), (f"bytes={cut}-", 206, len(archive) - cut)]
    assert os.listdir(dest) == ["bbc"]
    assert bbc.check_folder(dest / "bbc") is None


def test_a_folder_in_the_way_is_left_as_it_is(server: FileServer, tmp_path: Path) -> None:
    dest = tmp_path / "datasets"
    (dest / "bbc" / "sport").mkdir(parents=True)
    (dest / "bbc" / "sport" / "001.txt").write_text("mine")
    run = cdl("data", "fetch", "bbc", "--dest", str(dest), "--url", server.url(PATH),
              home=tmp_path / "home")
    assert_one_line_error(run, "exists but is not the verified BBC dataset")
    assert tree(dest / "bbc") == {"sport/001.txt": b"mine"}
    assert server.log == []


def test_links_and_oversized_members_are_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("bbc/sport/001.txt")
    link.external_attr = (0o120777 << 16)
    cases: list[tuple[zipfile.ZipInfo | str, bytes, str]] = [
        (link, b"/etc/passwd", "holds a link"),
        ("bbc/sport/002.txt", b"x" * (bbc.MAX_MEMBER_BYTES + 1), "larger than any article")]
    for info, data, needle in cases:
        path = tmp_path / "a.zip"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(info, data)
        with pytest.raises(CDLError, match=needle):
            bbc.read_archive(path)


def test_fashion_mnist_is_left_to_debian(tmp_path: Path) -> None:
    # CDL_BBC_URL, set for a BBC mirror, is no --url for fmnist.
    run = cdl("data", "fetch", "fmnist", home=tmp_path / "home",
              env={"CDL_BBC_URL": "http://127.0.0.1:9/bbc.zip"})
    if Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file():
        assert run.returncode == 0 and "dataset-fashion-mnist" in run.stderr
    else:
        assert_one_line_error(run, "does not download Fashion-MNIST", "dataset-fashion-mnist")
