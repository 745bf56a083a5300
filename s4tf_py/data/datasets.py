"""Datasets: in-memory arrays (:class:`ArrayDataset`) and S4TF's collection views over any
dataset (:class:`Sampling`, :class:`Slices`).

A *dataset* here is anything with ``len(ds)`` and ``ds[i]`` (a sample; see
:mod:`s4tf_py.data.collation`): a list of samples, an :class:`ArrayDataset`, an
:class:`~s4tf_py.data.ImageFolder` that reads files on demand. A dataset may also have
``take(indices)``, which returns the *collated* batch of those samples in one step; batching
uses it when present (for in-memory arrays this is one fancy-indexing gather per field).

>>> import numpy as np
>>> ds = ArrayDataset((np.arange(10).reshape(5, 2), np.array([0, 1, 0, 1, 1])))
>>> x1, y1 = ds[1]
>>> len(ds), x1.tolist(), int(y1)
(5, [2, 3], 1)
>>> [len(s) for s in Slices(ds, 2)]
[2, 2, 1]
>>> Sampling(ds, [4, 0]).collated()[1].tolist()
[1, 0]
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .collation import _collate, leaves, map_structure


def _as_indices(selection: Any, n: int) -> np.ndarray:
    idx = np.asarray(selection)
    if idx.dtype == bool:
        raise TypeError("a selection is a sequence of integer indices, not a boolean mask "
                        "(use np.flatnonzero(mask))")
    if idx.size == 0:
        return np.zeros(0, np.int64)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError(f"a selection is a 1-D sequence of integer indices, got an array of "
                        f"shape {idx.shape} and dtype {idx.dtype}")
    idx = idx.astype(np.int64, copy=False)
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"index {int(idx[bad][0])} is out of range for a dataset of "
                         f"{n} samples")
    return np.where(idx < 0, idx + n, idx)


class ArrayDataset(Sequence):
    """An in-memory dataset over arrays: sample ``i`` is every array's row ``i``.

    ``data`` is one array or a tuple, named tuple, list or dict of arrays (nested freely);
    every leaf must have the same length along axis 0. This is what tf.data's
    ``from_tensor_slices`` did. ``ds[i]`` is one sample (same structure, row ``i`` of each
    leaf), ``ds[a:b]`` a smaller ArrayDataset, and ``ds.take(indices)`` the collated batch of
    those rows. The arrays are not copied.

    >>> import numpy as np
    >>> ds = ArrayDataset({"image": np.zeros((4, 2, 2)), "label": np.arange(4)})
    >>> int(ds[3]["label"]), ds.take([2, 0])["image"].shape, len(ds[1:])
    (3, (2, 2, 2), 3)
    """

    def __init__(self, data: Any):
        arrays = map_structure(np.asarray, data)
        flat = leaves(arrays)
        if not flat:
            raise ValueError("an ArrayDataset needs at least one array")
        lengths = []
        for a in flat:
            if a.ndim == 0:
                raise ValueError("an ArrayDataset's arrays need a leading (sample) axis; got a "
                                 "0-d array")
            lengths.append(a.shape[0])
        if len(set(lengths)) != 1:
            desc = map_structure(lambda a: a.shape, arrays)
            raise ValueError(f"the arrays of an ArrayDataset must all have the same length "
                             f"along axis 0; got shapes {desc}")
        self.data = arrays
        self._n = lengths[0]

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ArrayDataset(map_structure(lambda a: a[i], self.data))
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"dataset indices are integers or slices, not {type(i).__name__}")
        if not -self._n <= i < self._n:
            raise IndexError(f"index {i} is out of range for a dataset of {self._n} samples")
        return map_structure(lambda a: a[i], self.data)

    def take(self, indices) -> Any:
        """The collated batch of samples ``indices`` (one gather per array)."""
        idx = _as_indices(indices, self._n)
        return map_structure(lambda a: a[idx], self.data)

    def __repr__(self) -> str:
        shapes = map_structure(lambda a: f"{a.dtype}{list(a.shape)}", self.data)
        return f"ArrayDataset({self._n} samples: {shapes})"


class Sampling(Sequence):
    """S4TF's ``Sampling``: the samples of ``base`` at ``selection`` (indices), in that order.

    Nothing is copied; ``collated()`` gathers the batch (in one step when ``base`` has
    ``take``).

    >>> s = Sampling(["a", "b", "c"], [2, 2, 0])
    >>> list(s), s.collated().tolist()
    (['c', 'c', 'a'], ['c', 'c', 'a'])
    """

    def __init__(self, base: Sequence, selection):
        self.base = base
        self.indices = _as_indices(selection, len(base))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sampling(self.base, self.indices[i])
        return self.base[int(self.indices[i])]

    def take(self, indices) -> Any:
        """The collated batch of this view's samples at ``indices``."""
        idx = self.indices[_as_indices(indices, len(self.indices))]
        take = getattr(self.base, "take", None)
        if callable(take):
            return take(idx)
        if len(idx) == 0:
            raise ValueError("cannot collate an empty sequence of samples")
        return _collate([self.base[int(j)] for j in idx], ())

    def collated(self) -> Any:
        """All of this view's samples as one batch (S4TF's ``.collated``)."""
        return self.take(np.arange(len(self.indices)))

    def __repr__(self) -> str:
        return f"Sampling({len(self.indices)} of {len(self.base)} samples)"


class Slices(Sequence):
    """S4TF's ``Slices``: ``base`` cut into consecutive pieces of ``batch_size`` samples (the
    last piece may be shorter). Each piece is a :class:`Sampling` view.

    >>> [list(s) for s in Slices(range(5), 2)]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, base: Sequence, batch_size: int):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.base = base
        self.batch_size = int(batch_size)

    def __len__(self) -> int:
        return -(-len(self.base) // self.batch_size)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"slice {i} is out of range ({n} slices)")
        i = i % n
        start = i * self.batch_size
        return Sampling(self.base, np.arange(start, min(start + self.batch_size,
                                                        len(self.base))))

    def __repr__(self) -> str:
        return f"Slices({len(self)} slices of up to {self.batch_size} samples)"


def _is_array(x: Any) -> bool:
    return isinstance(x, np.ndarray) or type(x).__name__ == "Tensor"


def as_dataset(samples: Any) -> Sequence:
    """``samples`` as a dataset. An array, or a tuple / named tuple / dict whose leaves are all
    arrays, becomes an :class:`ArrayDataset`; anything else with ``len`` and indexing (a list
    of samples, an ImageFolder, ...) is used as it is.

    >>> type(as_dataset(np.zeros((3, 2)))).__name__, type(as_dataset([1, 2])).__name__
    ('ArrayDataset', 'list')
    """
    if _is_array(samples):
        return ArrayDataset(np.asarray(samples))
    if isinstance(samples, (tuple, dict)):
        flat = leaves(samples)
        if flat and all(_is_array(x) for x in flat):
            return ArrayDataset(map_structure(np.asarray, samples))
    if hasattr(samples, "__len__") and hasattr(samples, "__getitem__"):
        return samples
    raise TypeError(f"expected a dataset (len() and indexing) or arrays, got "
                    f"{type(samples).__name__}")
