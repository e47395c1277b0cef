"""The BBC news classifier: an MLP over Porter-stemmed token counts.

Imported by training and by serving; it depends on torch only.
"""

from __future__ import annotations

import torch
from torch import nn


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
