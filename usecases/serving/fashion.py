"""Fashion-MNIST at serving time: pixel normalization.

Training imports ``normalize`` from here, so both sides scale pixels the same way.
"""

from __future__ import annotations

import numpy as np


def normalize(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels (0..255) to float32 in 0..1."""
    return pixels.astype(np.float32) / 255.0
