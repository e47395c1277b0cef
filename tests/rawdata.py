"""Small raw datasets written by tests, shaped like the real ones (never copies of them)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from usecases.bbc.dataset import CLASSES, tokenize
from usecases.fmnist.idx import FILES, write_idx

TOPIC_WORDS = {
    "business": "profit market shares bank economy investor growth sales",
    "entertainment": "film music actor award singer festival album star",
    "politics": "minister election party labour tory vote parliament policy",
    "sport": "match goal cup team coach champion league player",
    "tech": "software internet mobile computer digital users network phone",
}
COMMON = ["the", "a", "of", "to", "in", "and", "said", "that", "was", "for", "on", "with",
          "year", "people", "new"]


def article(label: str, rng: random.Random, words: int = 60) -> str:
    topic = TOPIC_WORDS[label].split()
    body = [rng.choice(topic if rng.random() < 0.4 else COMMON) for _ in range(words)]
    return f"{label.title()} news item\n\n" + " ".join(body) + ".\n"


def write_bbc(root: Path, per_class: int = 20, seed: int = 0) -> Path:
    """A raw BBC-shaped folder with ``per_class`` valid articles per class and its vocabulary."""
    rng = random.Random(seed)
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            (root / label / f"{i + 1:03d}.txt").write_text(article(label, rng))
    stems = sorted({s for words in TOPIC_WORDS.values() for s in tokenize(words)}
                   | set(tokenize(" ".join(COMMON))))
    (root / "bbc.vocab").write_text("\n".join(stems) + "\n")
    return root


def add_bad_files(root: Path) -> dict[str, str]:
    """One file per kind of bad input; returns path -> expected start of the reason."""
    (root / "business" / "empty.txt").write_bytes(b"")
    (root / "tech" / "garbage.txt").write_bytes(bytes(random.Random(1).randbytes(4096)))
    (root / "sport" / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"jpeg" * 100)
    (root / "politics" / "huge.txt").write_text("vote " * 300_000)
    (root / "orphan.txt").write_text(article("sport", random.Random(2)))
    return {
        "business/empty.txt": "empty file",
        "tech/garbage.txt": "binary content",
        "sport/photo.jpg": "wrong extension",
        "politics/huge.txt": "too large",
        "orphan.txt": "outside any class folder",
    }


def banded_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` dark noisy 28x28 images, each with a bright band at its class's rows; their
    classes."""
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        images[i, 2 * label + 4: 2 * label + 6, :] = 250
    return images, labels


def write_fmnist(root: Path, n_train: int = 300, n_test: int = 100, seed: int = 0) -> Path:
    """Small IDX files in the official layout: each class is a bright band at its own rows."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = banded_images(n, rng)
        image_file, label_file = FILES[split]
        (root / image_file).write_bytes(write_idx(images))
        (root / label_file).write_bytes(write_idx(labels))
    return root
