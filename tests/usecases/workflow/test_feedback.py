"""Which served inputs Model Maintenance sends to labeling first."""

from __future__ import annotations

from datetime import UTC, datetime

from usecases.stores.mldata import sha256_bytes
from usecases.stores.scoring import ServedInput
from usecases.workflow.feedback import input_bytes, least_confident

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _row(row_id: int, text: str, confidence: float | None) -> ServedInput:
    return ServedInput(row_id, "", AT, text, "sport", confidence)


def test_the_least_confident_come_first_one_per_input_and_none_sent_twice() -> None:
    served = [_row(1, "calm", 0.99), _row(2, "unsure", 0.31), _row(3, "old server", None),
              _row(4, "unsure", 0.30), _row(5, "sent before", 0.05), _row(6, "torn", 0.4)]
    known = {sha256_bytes(b"sent before")}
    picked = least_confident(served, known, 3)
    # the same text served twice is one sample (its least confident row); a row without a
    # confidence goes last; an input sent before is never picked again
    assert [row.id for row, _ in picked] == [4, 6, 1]
    assert [sha for _, sha in picked] == [sha256_bytes(input_bytes(r.input)) for r, _ in picked]
    assert [row.id for row, _ in least_confident(served, known, 10)] == [4, 6, 1, 3]


def test_pixels_are_kept_as_served_and_text_as_utf8() -> None:
    assert input_bytes(bytes([0, 255])) == b"\x00\xff"
    assert input_bytes("Zürich") == "Zürich".encode()
