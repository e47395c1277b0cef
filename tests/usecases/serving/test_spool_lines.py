"""A spooled Scoring Data line, as this server and as an older one wrote it, reaches the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from usecases.serving import scoring
from usecases.stores.database import Database
from usecases.stores.scoring import PostgresScoringStore

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _load(db: Database, server_id: str, line: bytes) -> None:
    with db.connect() as conn:
        conn.execute(scoring._INSERT, scoring._params(server_id, line))


def test_a_line_keeps_the_prediction_s_confidence(db: Database) -> None:
    score = scoring.Score(AT, "fmnist", "1", "r1", "0" * 64, None, bytes(range(16)), "Bag",
                          0.4, confidence=0.62, seq=1)
    _load(db, "s1", scoring._line(score))
    (row,) = PostgresScoringStore(db).served_inputs("fmnist", "1", AT)
    assert (row.input, row.prediction, row.confidence) == (bytes(range(16)), "Bag", 0.62)


def test_a_line_an_older_server_spooled_without_confidence_is_not_dropped(
        db: Database) -> None:
    old = {"seq": 1, "at": AT.isoformat(), "model": "bbc-news", "model_version": "1",
           "request_id": None, "input_sha256": "1" * 64, "input_text": "Some news",
           "input_pixels": None, "prediction": "sport", "latency_ms": 0.3}
    _load(db, "s0", json.dumps(old).encode() + b"\n")
    (row,) = PostgresScoringStore(db).served_inputs("bbc-news", "1", AT)
    assert (row.input, row.prediction, row.confidence) == ("Some news", "sport", None)
