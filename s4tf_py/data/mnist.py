"""MNIST's IDX files (also Fashion-MNIST's and Kuzushiji-MNIST's, which use the same format).

An IDX file is: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16,
0x0C int32, 0x0D float32, 0x0E float64), the number of dimensions, each dimension as a
big-endian uint32, then the data, big-endian, row-major. MNIST's images file has magic number
0x00000803 (ubyte, 3 dimensions: N×28×28), its labels file 0x00000801 (ubyte, N). Files may be
gzip-compressed (as they are distributed).

>>> import os, struct, tempfile
>>> d = tempfile.mkdtemp()
>>> with open(os.path.join(d, "labels"), "wb") as f:
...     _ = f.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([7, 2, 1]))
>>> read_idx(os.path.join(d, "labels")).tolist()
[7, 2, 1]
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._files import read_bytes
from .errors import DataFormatError

#: IDX type code → numpy dtype (big-endian, as stored)
IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzip-compressed or not), in native byte order.

    Raises DataFormatError naming the file for: a wrong magic number, an unknown type code, a
    header or data shorter than announced (truncated), or bytes left over after the data.
    """
    data = read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(path, f"truncated: {len(data)} bytes, shorter than the 4-byte "
                                    f"IDX magic number")
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[0] != 0 or data[1] != 0 or code not in IDX_TYPES:
        raise DataFormatError(
            path, f"wrong magic number 0x{magic:08x}: not an IDX file (an IDX file starts with "
                  f"two zero bytes, a type code in "
                  f"{{{', '.join(f'0x{c:02x}' for c in IDX_TYPES)}}} and the number of "
                  f"dimensions; MNIST images are 0x00000803, labels 0x00000801)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(path, f"truncated: the header announces {ndim} dimensions "
                                    f"({header} bytes) but the file has {len(data)} bytes")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found < expected:
        raise DataFormatError(path, f"truncated: the header announces shape {shape} "
                                    f"({expected} bytes of data) but only {found} bytes follow")
    if found > expected:
        raise DataFormatError(path, f"{found - expected} unexpected bytes after the data of "
                                    f"shape {shape} (is this really an IDX file?)")
    arr = np.frombuffer(data, dtype=dtype, offset=header, count=expected // dtype.itemsize)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


_PREFIX = {"train": "train", "test": "t10k"}


def _find(directory: Path, stem: str, kind: str) -> Path:
    names = [f"{stem}-{kind}", f"{stem}-{kind.replace('-', '.', 1)}"]
    candidates = [n + ext for n in names for ext in ("", ".gz")]
    for name in candidates:
        if (directory / name).is_file():
            return directory / name
    raise DataFormatError(directory, f"no MNIST file {candidates[0]!r} (looked for "
                                     f"{', '.join(candidates)})")


def load_mnist(directory: str | os.PathLike, split: str = "train") -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """MNIST (or Fashion-/Kuzushiji-MNIST) from the four IDX files in ``directory``.

    ``split`` is "train" (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``) or "test"
    (``t10k-...``); each name may also be spelled ``train-images.idx3-ubyte`` and may end in
    ``.gz``. Returns ``(images, labels)``: uint8 images of shape (N, 28, 28) (N, H, W in
    general) and int32 labels of shape (N,).
    """
    if split not in _PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = Path(directory)
    if not d.is_dir():
        raise DataFormatError(d, "no such folder")
    ipath = _find(d, _PREFIX[split], "images-idx3-ubyte")
    lpath = _find(d, _PREFIX[split], "labels-idx1-ubyte")
    images, labels = read_idx(ipath), read_idx(lpath)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFormatError(ipath, f"expected unsigned-byte images of shape (N, rows, cols), "
                                     f"found {images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataFormatError(lpath, f"expected unsigned-byte labels of shape (N,), found "
                                     f"{labels.dtype} of shape {labels.shape}")
    if len(images) != len(labels):
        raise DataFormatError(lpath, f"{len(labels)} labels for the {len(images)} images in "
                                     f"{ipath.name}")
    return images, labels.astype(np.int32)
