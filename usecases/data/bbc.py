"""The raw BBC news dataset from its publisher (http://mlg.ucd.ie/datasets/bbc.html).

The archive is trusted for its articles alone: their set and bytes must be the published
2,225, checked against `CONTENT_DIGEST` before anything is written, and checked again in the
extracted tree before it is renamed into place, so a destination holds the verified dataset
or nothing. Beside the articles the archive may hold only the publisher's README.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from usecases.data import download, vocabulary
from usecases.errors import CDLError
from usecases.state import TEMP_PREFIX, staged_dir

URL = "http://mlg.ucd.ie/files/datasets/bbc-fulltext.zip"
ARCHIVE = "bbc-fulltext.zip"
FOLDER = "bbc"  # the archive's top folder, and the dataset's folder under a datasets folder
README = "README.TXT"
VOCAB_FILE = "bbc.vocab"
ARTICLES = {"business": 510, "entertainment": 386, "politics": 417, "sport": 511, "tech": 401}
# sha256 of the lines "<class>/<NNN>.txt<TAB><sha256 of its bytes, hex>\n", sorted by path,
# of every article (README and vocabulary aside); `content_digest` computes it.
CONTENT_DIGEST = "d8897f83f179a9706d3af885e58913043b6dad0bbdc728a8200269b4b710c564"
# sha256 of the bbc.vocab that `vocabulary.build` makes from those articles
VOCAB_SHA256 = "854f68c4b138777962e7e0aa0d0bbd7b7869391cbc1e7a28e18d9aeebd158753"
# The archive is about 2.8 MB, its longest article 25 KB: far larger means a wrong file.
MAX_ARCHIVE_BYTES = 32 * 1024 * 1024
MAX_MEMBER_BYTES = 256 * 1024

_ARTICLE = re.compile(rf"({'|'.join(ARTICLES)})/[0-9]{{3}}\.txt")
_RETRY = "run `cdl data fetch bbc` again: it downloads the archive afresh"
_RESUME = ("check the network and run `cdl data fetch bbc` again (what arrived is resumed), "
           "pass --url with another copy, or set CDL_DATASETS to a folder holding bbc/")


@dataclass(frozen=True)
class Fetched:
    folder: Path
    already: bool  # a verified copy was in place: nothing was downloaded or written


def content_digest(hashes: Mapping[str, str]) -> str:
    """The digest of an article set, from each article's relative path and sha256."""
    lines = "".join(f"{path}\t{hashes[path]}\n" for path in sorted(hashes))
    return hashlib.sha256(lines.encode()).hexdigest()


def fetch(dest: Path, url: str = URL, progress: download.Progress | None = None) -> Fetched:
    """Make `dest`/bbc the verified dataset with its vocabulary, downloading what is missing."""
    try:
        return _fetch(dest, url, progress)
    except OSError as exc:  # the network's are CDLErrors by now: this is the disk
        raise CDLError(f"cannot write the dataset under {dest} ({exc.strerror or exc})",
                       "check the folder's permissions and free space, or pass --dest "
                       "another folder") from None


def _fetch(dest: Path, url: str, progress: download.Progress | None) -> Fetched:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / FOLDER
    with _locked(dest):
        if target.exists() or target.is_symlink():
            problem = check_folder(target)
            if problem is None:
                return Fetched(target, already=True)
            raise CDLError(f"{target} exists but is not the verified BBC dataset ({problem})",
                           "move it away or delete it, or pass --dest another folder")
        for stale in dest.glob(f"{TEMP_PREFIX}{FOLDER}.*"):
            # a staging tree of a fetch that died: the lock says none is running now
            shutil.rmtree(stale, ignore_errors=True)
        part = dest / f"{ARCHIVE}.part"
        download.download(url, part, MAX_ARCHIVE_BYTES, progress, fix=_RESUME)
        try:
            articles, readme = read_archive(part)
            verify_articles({path: _sha256(data) for path, data in articles.items()})
            vocab = _vocabulary(articles)
            with staged_dir(target) as staging:
                _write(staging, articles, readme, vocab)
                if (problem := check_folder(staging)) is not None:
                    raise CDLError(f"the extracted dataset does not verify ({problem})",
                                   f"check the disk under {dest}, then {_RETRY}")
        except CDLError:
            # a part that does not verify must not be resumed: the next fetch starts over
            download.discard(part)
            raise
        download.discard(part)
    return Fetched(target, already=False)


def read_archive(path: Path) -> tuple[dict[str, bytes], bytes | None]:
    """The articles (by path under the top folder) and the README of the zip at `path`.

    Anything else in it, a member too large, a link, or a zip that does not read whole
    (truncated, corrupt: zipfile checks every member's CRC) is a `CDLError`.
    """
    articles: dict[str, bytes] = {}
    readme: bytes | None = None
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = _member(info)
                if name is None:
                    continue
                data = archive.read(info)
                if name == README:
                    readme = data
                elif name in articles:
                    raise CDLError(f"{ARCHIVE} holds {FOLDER}/{name} twice",
                                   f"{_RETRY}, or pass --url with an unaltered copy")
                else:
                    articles[name] = data
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            ValueError) as exc:
        raise CDLError(f"{ARCHIVE} is truncated or corrupt ({type(exc).__name__}: "
                       f"{str(exc)[:120]})", _RETRY) from None
    return articles, readme


def _member(info: zipfile.ZipInfo) -> str | None:
    """The member's path under the top folder if it is an article or the README; None for a
    folder of the layout; a `CDLError` for anything else."""
    name = info.filename
    fix = f"pass --url with the publisher's unaltered {ARCHIVE}"
    if stat.S_ISLNK(info.external_attr >> 16):
        raise CDLError(f"{ARCHIVE} holds a link, {name}", fix)
    if info.is_dir():
        if name.rstrip("/") in (FOLDER, *(f"{FOLDER}/{c}" for c in ARTICLES)):
            return None
        raise CDLError(f"{ARCHIVE} holds an unexpected folder {name}", fix)
    rel = name.removeprefix(f"{FOLDER}/")
    if rel == name or not (rel == README or _ARTICLE.fullmatch(rel)):
        raise CDLError(f"{ARCHIVE} holds an unexpected file {name} (only {FOLDER}/{README} "
                       f"and the articles {FOLDER}/<class>/<NNN>.txt belong)", fix)
    if info.file_size > MAX_MEMBER_BYTES:
        raise CDLError(f"{ARCHIVE} holds {name} of {info.file_size} bytes, larger than any "
                       "article", fix)
    return rel


def verify_articles(hashes: Mapping[str, str]) -> None:
    """A `CDLError` unless `hashes` (path -> sha256) are exactly the published articles."""
    counts = Counter(path.split("/", 1)[0] for path in hashes)
    fix = f"pass --url with the publisher's unaltered {ARCHIVE}, or {_RETRY}"
    off = [f"{c}: {counts[c]} articles, expected {n}" for c, n in ARTICLES.items()
           if counts[c] != n]
    if off:
        raise CDLError(f"the articles are not the published BBC dataset ({'; '.join(off)})",
                       fix)
    digest = content_digest(hashes)
    if digest != CONTENT_DIGEST:
        raise CDLError(f"the articles differ from the published BBC dataset (content digest "
                       f"{digest[:16]}…, expected {CONTENT_DIGEST[:16]}…)", fix)


def check_folder(folder: Path) -> str | None:
    """What makes `folder` other than a fetched dataset; None when it verifies."""
    if folder.is_symlink() or not folder.is_dir():
        return "not a folder"
    hashes: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            return f"{rel} is a link"
        if path.is_dir():
            if rel not in ARTICLES:
                return f"unexpected folder {rel}"
        elif _ARTICLE.fullmatch(rel):
            hashes[rel] = _sha256(path.read_bytes())
        elif rel not in (README, VOCAB_FILE):
            return f"unexpected file {rel}"
    vocab = folder / VOCAB_FILE
    if not vocab.is_file():
        return f"no {VOCAB_FILE}"
    if _sha256(vocab.read_bytes()) != VOCAB_SHA256:
        return f"{VOCAB_FILE} is not the one built from the articles"
    try:
        verify_articles(hashes)
    except CDLError as exc:
        return exc.problem
    return None


def _vocabulary(articles: Mapping[str, bytes]) -> bytes:
    # decoded as the workflow's cleaning decodes them (invalid bytes replaced)
    texts = (articles[path].decode("utf-8", errors="replace") for path in sorted(articles))
    vocab = vocabulary.build(texts).encode()
    if _sha256(vocab) != VOCAB_SHA256:
        raise CDLError("the vocabulary built from the verified articles is not the expected "
                       "one (another nltk Porter stemmer?)",
                       "reinstall the project's dependencies (pip install -e .), or pass "
                       "--vocab to `cdl demo` with a vocabulary of your own")
    return vocab


def _write(staging: Path, articles: Mapping[str, bytes], readme: bytes | None,
           vocab: bytes) -> None:
    for name in ARTICLES:
        (staging / name).mkdir()
    for path, data in articles.items():
        (staging / path).write_bytes(data)
    if readme is not None:
        (staging / README).write_bytes(readme)
    (staging / VOCAB_FILE).write_bytes(vocab)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """One fetch at a time per datasets folder: two would write the same part file."""
    fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CDLError(f"another `cdl data fetch` is writing into {dest}",
                           "wait for it to finish") from None
        yield
    finally:
        os.close(fd)
