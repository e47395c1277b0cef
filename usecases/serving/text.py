"""BBC news text at serving time: the tokenizer and the vocabulary's token counts.

No torch here: fetching the dataset builds its vocabulary with this tokenizer
(``usecases.data.vocabulary``), and the features and the served model count tokens with it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from nltk.stem.porter import PorterStemmer

_NON_TOKEN = re.compile(r"[^a-z0-9£\s]")


@functools.lru_cache(maxsize=1)
def _stemmer() -> PorterStemmer:
    return PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM)


@functools.lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stem(word)


def tokenize(text: str) -> list[str]:
    """Lower-case, drop punctuation (so "high-speed" becomes "highspeed"), Porter-stem."""
    return [_stem(word) for word in _NON_TOKEN.sub("", text.lower()).split()]


class Vocabulary:
    def __init__(self, words: Iterable[str]) -> None:
        self.words = list(dict.fromkeys(words))
        self.index = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(line.strip() for line in path.read_text().splitlines() if line.strip())

    def __len__(self) -> int:
        return len(self.words)

    def counts(self, texts: Iterable[str]) -> np.ndarray:
        """Token counts over the vocabulary, one row per text (float32)."""
        rows = []
        for text in texts:
            row = np.zeros(len(self.words), dtype=np.float32)
            for token in tokenize(text):
                i = self.index.get(token)
                if i is not None:
                    row[i] += 1
            rows.append(row)
        if not rows:
            return np.zeros((0, len(self.words)), dtype=np.float32)
        return np.stack(rows)
