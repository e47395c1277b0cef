from __future__ import annotations

from collections import Counter
from pathlib import Path

from usecases.bbc.dataset import TextRules, scan
from usecases.bbc.usecase import USECASE
from usecases.stores.local import Stores
from usecases.stores.mldata import Entry, sha256_bytes
from usecases.workflow.data import DatasetVersion, SplitRules, stratified_split, version

from ...rawdata import add_bad_files, write_bbc


def _entries(n_per_label: int, labels: tuple[str, ...] = ("a", "b")) -> list[Entry]:
    return [Entry(f"{label}/{i}", f"{label}/{i}.txt", sha256_bytes(f"{label}{i}".encode()), 1,
                  label, "valid") for label in labels for i in range(n_per_label)]


def test_split_is_stratified_seeded_and_reproducible() -> None:
    first, second, other_seed = _entries(50), _entries(50), _entries(50)
    stratified_split(first, SplitRules(0.2, seed=1))
    stratified_split(second, SplitRules(0.2, seed=1))
    stratified_split(other_seed, SplitRules(0.2, seed=2))
    assert [e.split for e in first] == [e.split for e in second]
    assert [e.split for e in first] != [e.split for e in other_seed]
    per_label = Counter((e.label, e.split) for e in first)
    assert per_label == {("a", "test"): 10, ("a", "train"): 40, ("b", "test"): 10,
                         ("b", "train"): 40}


def test_exact_duplicates_stay_in_one_split() -> None:
    entries = _entries(30)
    for i in range(10):  # ten pairs of identical articles
        entries[i + 10].sha256 = entries[i].sha256
    stratified_split(entries, SplitRules(0.5, seed=3))
    for i in range(10):
        assert entries[i].split == entries[i + 10].split


def test_quarantined_files_never_enter_a_split() -> None:
    entries = _entries(10)
    entries[0].status = "quarantined"
    stratified_split(entries, SplitRules())
    assert entries[0].split is None


def _ingest(stores: Stores, raw: Path) -> DatasetVersion:
    rules = TextRules()
    return version(stores.mldata, USECASE, raw, scan(raw, rules), rules.as_dict(), SplitRules())


def test_ingest_versions_by_content_and_quarantines_with_reasons(tmp_path: Path,
                                                                 stores: Stores) -> None:
    raw = write_bbc(tmp_path / "raw", per_class=10)
    expected = add_bad_files(raw)
    first = _ingest(stores, raw)
    counts = first.counts
    assert counts.valid == 50 and counts.quarantined == len(expected)
    assert counts.ingested == counts.valid + counts.quarantined
    assert counts.train + counts.test == counts.valid
    # one meaning of counts: the version's row and its manifest say what the report says
    assert stores.mldata.versions()[first.id] == counts
    assert stores.mldata.load(first.id).counts == counts
    with stores.db.connect() as conn:
        stored = dict(conn.execute("SELECT path, reason FROM quarantine").fetchall())
    assert set(stored) == set(expected)
    for path, reason in expected.items():
        assert stored[path].startswith(reason)

    again = _ingest(stores, raw)
    assert again.reused and again.id == first.id and again.counts == counts

    (raw / "sport" / "001.txt").write_bytes((raw / "sport" / "001.txt").read_bytes() + b" ")
    changed = _ingest(stores, raw)
    assert not changed.reused and changed.id != first.id
    with stores.db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM dataset_versions").fetchone() == (2,)
