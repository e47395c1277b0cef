"""The Transformation Registry's keys: what changes a model input makes a new entry, and an
unchanged input reuses the one built before."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from usecases.bbc.usecase import USECASE
from usecases.stores.labels import Row
from usecases.workflow import labeling
from usecases.workflow.context import Case, Context, RunOptions
from usecases.workflow.data import ingest
from usecases.workflow.features import build_features
from usecases.workflow.usecase import DataOptions

from ...rawdata import write_bbc


def test_labels_and_vocabulary_key_the_cache(tmp_path: Path, ctx: Context) -> None:
    raw = write_bbc(tmp_path / "raw", per_class=10)
    case = Case(USECASE, RunOptions(DataOptions(raw, max_bytes=1 << 20, min_chars=10)))
    dataset = ingest(ctx, case)
    labeling.label(ctx, case, dataset)

    first, reused = build_features(ctx, case, dataset)
    assert not reused and (first / "train.npz").exists()
    again, reused = build_features(ctx, case, dataset)
    assert reused and again == first

    # The same labels stored again in another row order (as a merged export leaves them):
    # the same entry, so the model trained on it is reused too.
    stored = ctx.stores.labels.load(dataset.id, "train")
    ctx.stores.labels.replace(dataset.id, "bbc", "train", [
        Row(i, i + ".txt", label, "ann", "2026-01-01") for i, label in reversed(stored.items())])
    reordered, reused = build_features(ctx, case, dataset)
    assert reused and reordered == first

    # A person relabels one training article: a new entry, carrying the new label.
    item_id = next(iter(stored))
    other = next(c for c in USECASE.classes if c != stored[item_id])
    rows = [Row(i, i + ".txt", other if i == item_id else label, "ann", "2026-01-01")
            for i, label in stored.items()]
    ctx.stores.labels.replace(dataset.id, "bbc", "train", rows)
    relabeled, reused = build_features(ctx, case, dataset)
    assert not reused and relabeled != first
    arrays = {s: np.load(relabeled / f"{s}.npz") for s in ("train", "val")}
    labels = {str(i): int(label) for s in arrays
              for i, label in zip(arrays[s]["item_ids"], arrays[s]["labels"], strict=True)}
    assert labels[item_id] == USECASE.classes.index(other)

    # A changed vocabulary (same path, one stem more) is another transformation.
    vocab = raw / "bbc.vocab"
    vocab.write_text(vocab.read_text() + "zzzextra\n")
    revocab, reused = build_features(ctx, case, dataset)
    assert not reused and revocab not in (first, relabeled)

