"""Deterministic, seeded train/validation splits of in-memory data sets.

>>> import numpy as np
>>> x, y = np.arange(20).reshape(10, 2), np.arange(10) % 2
>>> (xt, yt), (xv, yv) = train_validation_split((x, y), validation_fraction=0.3, seed=0)
>>> len(yt), len(yv), sorted(np.concatenate([yt, yv]).tolist())
(7, 3, [0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
>>> sorted(np.concatenate([xt[:, 0], xv[:, 0]]).tolist()) == list(range(0, 20, 2))
True
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .datasets import ArrayDataset


def split_indices(n: int, validation_fraction: float = 0.2, *, seed: int = 0,
                  shuffle: bool = True, stratify: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``(train_indices, validation_indices)`` for ``n`` samples, each sorted ascending.

    ``validation_fraction`` of the samples (rounded to the nearest count, at least one and at
    most ``n - 1``) go to validation. ``shuffle``: pick them at random from ``seed`` (numpy
    PCG64, no global state); False takes the last ones (a contiguous tail: right for a token
    stream or a time series). ``stratify``: labels (length ``n``); each class is split on its
    own, so both parts keep the class proportions.

    >>> train, valid = split_indices(10, 0.2, seed=3)
    >>> len(train), len(valid), sorted(train.tolist() + valid.tolist()) == list(range(10))
    (8, 2, True)
    >>> split_indices(5, 0.4, shuffle=False)[1].tolist()
    [3, 4]
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be strictly between 0 and 1, got "
                         f"{validation_fraction!r}")
    if n < 2:
        raise ValueError(f"cannot split {n} sample(s) into two non-empty parts")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")

    def count(m: int) -> int:
        return int(min(max(round(m * validation_fraction), 1), m - 1)) if m > 1 else 0

    if not shuffle:
        if stratify is not None:
            raise ValueError("stratify needs shuffle=True")
        k = count(n)
        return np.arange(n - k), np.arange(n - k, n)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 0x5b1])))
    if stratify is None:
        perm = rng.permutation(n)
        k = count(n)
        valid = perm[:k]
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratify must hold one label per sample ({n}), got shape "
                             f"{labels.shape}")
        parts = []
        for cls in np.unique(labels):
            members = np.flatnonzero(labels == cls)
            parts.append(members[rng.permutation(len(members))[:count(len(members))]])
        valid = np.concatenate(parts)
    mask = np.zeros(n, bool)
    mask[valid] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def train_validation_split(data: Any, validation_fraction: float = 0.2, *, seed: int = 0,
                           shuffle: bool = True, stratify: Any = None) -> tuple[Any, Any]:
    """Split ``data`` (an array, or a tuple / named tuple / dict of arrays with one row per
    sample, or an :class:`ArrayDataset`) into ``(train, validation)`` of the same structure,
    by :func:`split_indices`. The same seed gives the same split on every call.

    >>> from s4tf_py.data import digits
    >>> train, valid = train_validation_split(digits(), 0.2, seed=0, stratify=digits().labels)
    >>> train.images.shape, valid.images.shape
    ((1438, 8, 8), (359, 8, 8))
    """
    is_ds = isinstance(data, ArrayDataset)
    ds = data if is_ds else ArrayDataset(data)
    tr, va = split_indices(len(ds), validation_fraction, seed=seed, shuffle=shuffle,
                           stratify=stratify)
    train, valid = ds.take(tr), ds.take(va)
    if is_ds:
        return ArrayDataset(train), ArrayDataset(valid)
    return train, valid            # the caller's structure (named tuples included)
