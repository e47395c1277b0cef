from __future__ import annotations

import gzip

import numpy as np
import pytest

from usecases.errors import CDLError
from usecases.fmnist.idx import parse, read_split, write_idx

IMAGES = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
LABELS = np.array([0, 9, 4], dtype=np.uint8)


def test_round_trip_of_a_small_split() -> None:
    split = read_split("train", write_idx(IMAGES), write_idx(LABELS))
    np.testing.assert_array_equal(split.images, IMAGES)
    np.testing.assert_array_equal(split.labels, LABELS)


def test_header_is_the_official_layout() -> None:
    raw = gzip.decompress(write_idx(LABELS))
    assert raw[:4] == b"\x00\x00\x08\x01"  # magic 2049: labels
    assert int.from_bytes(raw[4:8], "big") == 3
    assert gzip.decompress(write_idx(IMAGES))[:4] == b"\x00\x00\x08\x03"  # magic 2051


@pytest.mark.parametrize(("images", "labels", "message"), [
    (write_idx(IMAGES)[:200], write_idx(LABELS), "not a valid gzip file"),
    (b"plain bytes", write_idx(LABELS), "not a valid gzip file"),
    (gzip.compress(gzip.decompress(write_idx(IMAGES))[:-5]), write_idx(LABELS),
     "header (3, 28, 28) promises 2352"),
    (gzip.compress(b"\x00\x00"), write_idx(LABELS), "truncated"),
    (gzip.compress(b"\x00\x00\x08\x03\x00\x00"), write_idx(LABELS), "truncated inside its header"),
    (write_idx(LABELS), write_idx(LABELS), "magic number 0x00000801, expected 0x00000803"),
    (write_idx(IMAGES.astype(np.uint16)), write_idx(IMAGES), "expected 0x00000801"),
    (write_idx(IMAGES[:, :14, :]), write_idx(LABELS), "14x28 images, expected 28x28"),
    (write_idx(IMAGES), write_idx(LABELS[:2]), "3 images but"),
    (write_idx(IMAGES), write_idx(np.array([0, 10, 1], np.uint8)), "label 10, outside 0..9"),
], ids=["truncated-gzip", "not-gzip", "short-data", "no-header", "cut-header", "labels-as-images",
        "wrong-dtype", "wrong-shape", "count-mismatch", "label-range"])
def test_corrupt_or_truncated_files_are_rejected(images: bytes, labels: bytes,
                                                 message: str) -> None:
    with pytest.raises(CDLError) as err:
        read_split("train", images, labels)
    assert message in str(err.value)
    assert "dataset-fashion-mnist" in err.value.fix


def test_parse_checks_the_dimension_count() -> None:
    with pytest.raises(CDLError, match="3 dimensions"):
        parse("x", gzip.decompress(write_idx(LABELS)), 3)
