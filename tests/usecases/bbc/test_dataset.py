from __future__ import annotations

from pathlib import Path

import numpy as np

from usecases.bbc.dataset import TextRules, Vocabulary, clean, scan, tokenize, validate
from usecases.defaults import MAX_FILE_BYTES as MiB

ARTICLE = (b"Quarterly profits at US media giant TimeWarner jumped 76% to $1.13bn for the three "
           b"months to December, from $639m year-earlier. ")
RULES = TextRules()


def test_a_good_article_is_valid() -> None:
    assert validate("business/001.txt", ARTICLE, RULES) is None


def test_each_kind_of_bad_file_gets_its_reason() -> None:
    assert validate("business/a.txt", b"", RULES) == "empty file"
    assert validate("business/a.pdf", ARTICLE, RULES) == "wrong extension: expected .txt"
    oversized = ARTICLE * (MiB // len(ARTICLE) + 1)
    assert validate("business/a.txt", oversized, RULES).startswith("too large")  # type: ignore[union-attr]
    assert validate("business/a.txt", b"short", RULES).startswith("too short")  # type: ignore[union-attr]
    garbage = bytes(range(256)) * 8
    assert validate("business/a.txt", garbage, RULES).startswith("binary content")  # type: ignore[union-attr]
    high_bytes = bytes(b for b in range(128, 256)) * 8  # no NUL, still not text
    assert validate("business/a.txt", high_bytes, RULES).startswith("binary content")  # type: ignore[union-attr]


def test_max_size_is_configurable() -> None:
    assert validate("business/a.txt", ARTICLE, TextRules(max_bytes=50)) is not None


def test_a_few_invalid_bytes_are_replaced_and_the_article_kept() -> None:
    damaged = ARTICLE[:40] + b"\xa3" + ARTICLE[40:]
    assert validate("sport/199.txt", damaged, RULES) is None
    text, replaced = clean(damaged)
    assert replaced == 1 and "\ufffd" in text


def test_scan_labels_by_folder_and_quarantines_strays(tmp_path: Path) -> None:
    (tmp_path / "business").mkdir()
    (tmp_path / "business" / "001.txt").write_bytes(ARTICLE)
    (tmp_path / "business" / "002.txt").write_bytes(ARTICLE[:30] + b"\xff" + ARTICLE[30:])
    (tmp_path / "weather").mkdir()
    (tmp_path / "weather" / "001.txt").write_bytes(ARTICLE)
    (tmp_path / "stray.txt").write_bytes(ARTICLE)
    (tmp_path / "tech" / "deep").mkdir(parents=True)
    (tmp_path / "tech" / "deep" / "x.txt").write_bytes(ARTICLE)
    (tmp_path / "README.TXT").write_text("about the dataset")
    found = {c.path: c for c in scan(tmp_path, RULES)}
    assert found["business/001.txt"].status == "valid"
    assert found["business/001.txt"].label == "business"
    assert found["business/001.txt"].item_id == "business/001"
    assert found["business/002.txt"].notes == {"replaced_invalid_utf8": 1}
    assert found["weather/001.txt"].reason.startswith("unknown class folder 'weather'")  # type: ignore[union-attr]
    assert found["stray.txt"].reason == "outside any class folder"
    assert found["tech/deep/x.txt"].reason == "nested below a class folder"
    assert found["README.TXT"].status == "metadata"


def test_tokenize_matches_the_published_vocabulary_stemming() -> None:
    assert tokenize("Profits were buoyed by high-speed Internet, £600m!") == [
        "profit", "were", "buoi", "by", "highspe", "internet", "£600m"]


def test_vocabulary_counts(tmp_path: Path) -> None:
    path = tmp_path / "v.vocab"
    path.write_text("profit\nbuoi\nprofit\n\n")
    vocab = Vocabulary.load(path)
    assert len(vocab) == 2  # duplicates and blank lines ignored
    counts = vocab.counts(["Profits and profit buoyed", "nothing here"])
    np.testing.assert_array_equal(counts, [[2, 1], [0, 0]])
