"""CIFAR-10 and CIFAR-100 in their binary versions (``cifar-10-batches-bin``,
``cifar-100-binary``).

A CIFAR-10 file is a run of 3,073-byte records: one label byte (0-9), then a 32×32 colour image
as 1,024 red, 1,024 green and 1,024 blue bytes, each plane row-major. CIFAR-100 records have two
label bytes, coarse (0-19) then fine (0-99), then the same 3,072 image bytes. CIFAR-10 splits
its training set over ``data_batch_1.bin`` … ``data_batch_5.bin`` and has ``test_batch.bin``;
CIFAR-100 has ``train.bin`` and ``test.bin``. Images come back as uint8 NHWC (N, 32, 32, 3),
labels as int32.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "test_batch.bin")
>>> with open(path, "wb") as f:
...     _ = f.write(bytes([3]) + bytes(1024) + bytes([255]) * 1024 + bytes(1024))
>>> images, labels = read_cifar10_batch(path)
>>> images.shape, labels.tolist(), images[0, 0, 0].tolist()  # (R, G, B) of pixel (0, 0)
((1, 32, 32, 3), [3], [0, 255, 0])
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._files import read_bytes
from .errors import DataFormatError

IMAGE_BYTES = 3 * 32 * 32


def _records(path, label_bytes: int) -> np.ndarray:
    data = read_bytes(path, gunzip=False)
    size = label_bytes + IMAGE_BYTES
    if len(data) == 0:
        raise DataFormatError(path, "is empty; expected CIFAR records")
    if len(data) % size:
        raise DataFormatError(path, f"truncated or not a CIFAR file: {len(data)} bytes is not "
                                    f"a whole number of {size}-byte records ({label_bytes} "
                                    f"label byte{'s' if label_bytes > 1 else ''} + "
                                    f"{IMAGE_BYTES} image bytes); {len(data) % size} bytes "
                                    f"are left over")
    return np.frombuffer(data, np.uint8).reshape(-1, size)


def _images(records: np.ndarray, label_bytes: int) -> np.ndarray:
    chw = records[:, label_bytes:].reshape(-1, 3, 32, 32)
    return np.ascontiguousarray(chw.transpose(0, 2, 3, 1))


def _check_labels(path, labels: np.ndarray, limit: int, what: str) -> None:
    bad = np.flatnonzero(labels >= limit)
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(path, f"record {i} has {what} label {int(labels[i])}, outside "
                                    f"0..{limit - 1} (is this a file of the other CIFAR?)")


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)`` of one CIFAR-10 binary file (e.g. ``data_batch_1.bin``)."""
    rec = _records(path, 1)
    labels = rec[:, 0]
    _check_labels(path, labels, 10, "a")
    return _images(rec, 1), labels.astype(np.int32)


def read_cifar100_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images, coarse_labels, fine_labels)`` of a CIFAR-100 binary file (``train.bin``)."""
    rec = _records(path, 2)
    coarse, fine = rec[:, 0], rec[:, 1]
    _check_labels(path, coarse, 20, "a coarse")
    _check_labels(path, fine, 100, "a fine")
    return _images(rec, 2), coarse.astype(np.int32), fine.astype(np.int32)


def _folder(directory, subfolder: str, first_file: str) -> Path:
    d = Path(directory)
    if not d.is_dir():
        raise DataFormatError(d, "no such folder")
    if not (d / first_file).exists() and (d / subfolder).is_dir():
        return d / subfolder
    return d


def _check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")


def load_cifar10(directory: str | os.PathLike, split: str = "train") -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """CIFAR-10 ``(images, labels)`` from ``directory`` (or its ``cifar-10-batches-bin``
    subfolder): "train" reads ``data_batch_1.bin`` … ``data_batch_5.bin`` in order, "test"
    ``test_batch.bin``."""
    _check_split(split)
    names = ([f"data_batch_{i}.bin" for i in range(1, 6)] if split == "train"
             else ["test_batch.bin"])
    d = _folder(directory, "cifar-10-batches-bin", names[0])
    parts = [read_cifar10_batch(d / n) for n in names]
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def load_cifar100(directory: str | os.PathLike, split: str = "train", *,
                  label_mode: str = "fine") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-100 ``(images, labels)`` from ``directory`` (or its ``cifar-100-binary``
    subfolder): ``train.bin`` or ``test.bin``; ``label_mode`` "fine" (100 classes) or
    "coarse" (20 superclasses)."""
    _check_split(split)
    if label_mode not in ("fine", "coarse"):
        raise ValueError(f"label_mode must be 'fine' or 'coarse', got {label_mode!r}")
    name = f"{split}.bin"
    d = _folder(directory, "cifar-100-binary", name)
    images, coarse, fine = read_cifar100_batch(d / name)
    return images, (fine if label_mode == "fine" else coarse)


def read_label_names(path: str | os.PathLike) -> list[str]:
    """The class names in a CIFAR meta file (``batches.meta.txt``, ``fine_label_names.txt``):
    one per line, blank lines ignored."""
    from ._files import decode_utf8
    text = decode_utf8(read_bytes(path, gunzip=False), path)
    return [line.strip() for line in text.splitlines() if line.strip()]
