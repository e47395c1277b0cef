"""BBC news at serving time: text features and the network.

Training imports both from here, so both sides compute the same thing. No server imports: any
server (MLServer here, the Seldon wrapper in the benchmark) can use it.
"""

from __future__ import annotations

import functools
import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from nltk.stem.porter import PorterStemmer
from torch import nn

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


class NewsClassifier(nn.Module):
    """Five linear layers with LayerNorm, ReLU and dropout between them.

    Takes raw token counts; the log scaling lives here so that serving feeds the same counts.
    """

    def __init__(self, n_features: int, n_classes: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        widths = [n_features, hidden_size, hidden_size, hidden_size // 2, hidden_size // 2]
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths, widths[1:], strict=False):
            layers += [nn.Linear(width_in, width_out), nn.LayerNorm(width_out), nn.ReLU(),
                       nn.Dropout(dropout)]
        layers.append(nn.Linear(widths[-1], n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        return self.net(torch.log1p(counts))


def quantize_dynamic(model: nn.Module) -> nn.Module:
    """int8 weights for the linear layers, activations quantized on the fly."""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, still present in 2.13
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def load_network(folder: Path, meta: dict[str, Any]) -> nn.Module:
    """The network described by ``model.json``, with its (possibly int8) weights."""
    model: nn.Module = NewsClassifier(meta["n_features"], len(meta["classes"]),
                                      meta["hidden_size"], meta["dropout"])
    if meta.get("quantization") == "dynamic-int8":
        model = quantize_dynamic(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = torch.load(folder / meta.get("weights", "model.pt"), map_location="cpu",
                           weights_only=True)
    model.load_state_dict(state)
    return model.eval()
