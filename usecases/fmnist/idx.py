"""The official Fashion-MNIST files: IDX arrays, gzip-compressed, validated against their headers.

IDX header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then
each dimension as a big-endian uint32; the data follows.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass

import numpy as np

from usecases.errors import CDLError

UBYTE = 0x08
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
# split -> (images file, labels file), the names the dataset is published under
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FIX = "reinstall the dataset (apt-get install --reinstall dataset-fashion-mnist) or pass --data"


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (n, 28, 28) uint8
    labels: np.ndarray  # (n,) uint8


def decompress(name: str, blob: bytes) -> bytes:
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as exc:
        raise CDLError(f"{name} is not a valid gzip file ({exc})", FIX) from None


def parse(name: str, raw: bytes, ndim: int) -> np.ndarray:
    """An IDX array whose header must say ``ndim`` unsigned-byte dimensions."""
    if len(raw) < 4:
        raise CDLError(f"{name} is truncated: {len(raw)} bytes, no IDX header", FIX)
    zero, code, dims = raw[:2], raw[2], raw[3]
    if zero != b"\0\0" or code != UBYTE or dims != ndim:
        magic = int.from_bytes(raw[:4], "big")
        raise CDLError(
            f"{name} has magic number 0x{magic:08x}, expected 0x{(UBYTE << 8) | ndim:08x} "
            f"(unsigned bytes, {ndim} dimensions)", FIX)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CDLError(f"{name} is truncated inside its header", FIX)
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CDLError(f"{name} holds {len(raw) - header} data bytes but its header "
                       f"{shape} promises {expected}", FIX)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_split(split: str, images_blob: bytes, labels_blob: bytes) -> Split:
    """Validate and read one split from the two gzip files' bytes."""
    image_name, label_name = FILES[split]
    images = parse(image_name, decompress(image_name, images_blob), 3)
    labels = parse(label_name, decompress(label_name, labels_blob), 1)
    return check_split(split, images, labels)


def check_split(split: str, images: np.ndarray, labels: np.ndarray) -> Split:
    """Images and labels of one split agree with each other and with the dataset's shape."""
    image_name, label_name = FILES[split]
    if images.shape[1:] != IMAGE_SHAPE:
        raise CDLError(f"{image_name} holds {images.shape[1]}x{images.shape[2]} images, "
                       f"expected 28x28", FIX)
    if len(images) != len(labels):
        raise CDLError(f"{image_name} has {len(images)} images but {label_name} has "
                       f"{len(labels)} labels", FIX)
    if len(labels) and int(labels.max()) >= N_CLASSES:
        raise CDLError(f"{label_name} has label {int(labels.max())}, outside 0..9", FIX)
    return Split(images, labels)


def write_idx(array: np.ndarray) -> bytes:
    """Gzip-compressed IDX bytes of an unsigned-byte array (for tests and tools)."""
    header = bytes([0, 0, UBYTE, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0)
