"""S4TF's Epochs API: shuffled, seeded, batched and collated epochs over a dataset.

:class:`TrainingEpochs` is an endless sequence of epochs; epoch ``k`` visits the samples in a
permutation drawn from ``(seed, k)`` alone, so the same seed gives the same epochs in every run
(and a run resumed at epoch ``k`` sees exactly the batches the uninterrupted run saw), while
different epochs see different orders. Each epoch is a sequence of batches, collated by
default (numpy arrays in the samples' structure) and produced on a background thread
(:mod:`s4tf_py.data.prefetching`). :class:`InferenceBatches` is the in-order, keep-everything
counterpart for validation and inference.

>>> import numpy as np
>>> x, y = np.arange(10, dtype=np.float32).reshape(5, 2), np.arange(5)
>>> epochs = TrainingEpochs((x, y), batch_size=2, seed=0)
>>> for epoch in epochs.prefix(2):
...     for xb, yb in epoch:
...         assert xb.shape == (2, 2) and yb.shape == (2,)
>>> seen = np.concatenate([yb for _, yb in epochs[0]])      # one sample is left over
>>> len(epochs[0]), len(seen), len(set(seen.tolist()))
(2, 4, 4)
>>> [yb.tolist() for _, yb in InferenceBatches((x, y), batch_size=2)]
[[0, 1], [2, 3], [4]]
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Callable

import numpy as np

from .collation import collate as _default_collate
from .datasets import Sampling, as_dataset
from .prefetching import Prefetcher


def _check_batch_size(batch_size) -> int:
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _check_seed(seed) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_prefetch(prefetch) -> int:
    if not isinstance(prefetch, int) or prefetch < 0:
        raise ValueError(f"prefetch must be a non-negative integer (0 turns it off), "
                         f"got {prefetch!r}")
    return prefetch


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of ``range(n)`` that epoch ``epoch`` of a run seeded ``seed`` visits.

    A function of its arguments only (numpy's PCG64 seeded with ``SeedSequence([seed,
    epoch])``): no global random state is read or changed.

    >>> epoch_order(5, seed=1, epoch=0).tolist() == epoch_order(5, seed=1, epoch=0).tolist()
    True
    """
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, epoch])))
    return rng.permutation(n)


class _Batches(Sequence):
    """A sequence of batches: batch ``i`` is ``collate(Sampling(samples, order[i*b:(i+1)*b]))``.

    Indexing gathers one batch on the calling thread; iterating produces them on a background
    thread when ``prefetch`` > 0.
    """

    def __init__(self, samples: Sequence, order: np.ndarray, batch_size: int,
                 drop_remainder: bool, collate: Callable | None, prefetch: int):
        self.samples = samples
        self.order = order
        self.batch_size = batch_size
        self.drop_remainder = drop_remainder
        self._collate = collate
        self._prefetch = prefetch
        n, b = len(order), batch_size
        self._len = n // b if drop_remainder else -(-n // b)

    def __len__(self) -> int:
        return self._len

    def batch_indices(self, i: int) -> np.ndarray:
        """The sample indices of batch ``i``."""
        if not -self._len <= i < self._len:
            raise IndexError(f"batch {i} is out of range ({self._len} batches)")
        i %= self._len
        return self.order[i * self.batch_size:(i + 1) * self.batch_size]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._len))]
        view = Sampling(self.samples, self.batch_indices(i))
        return view if self._collate is None else self._collate(view)

    def _generate(self) -> Iterator:
        for i in range(self._len):
            yield self[i]

    def __iter__(self) -> Iterator:
        if self._prefetch:
            return Prefetcher(self._generate(), self._prefetch)
        return self._generate()


class Epoch(_Batches):
    """One epoch of a :class:`TrainingEpochs`: ``index``, the sample ``order`` it visits, and
    its batches (``len(epoch)``, ``epoch[i]``, ``for batch in epoch``). Iterating twice gives the
    same batches."""

    def __init__(self, index: int, samples, order, batch_size, drop_remainder, collate,
                 prefetch):
        super().__init__(samples, order, batch_size, drop_remainder, collate, prefetch)
        self.index = index

    def __repr__(self) -> str:
        return f"Epoch({self.index}: {len(self)} batches of {self.batch_size})"


class TrainingEpochs:
    """An endless sequence of shuffled epochs over ``samples`` (S4TF's ``TrainingEpochs``).

    ``samples``: a dataset (``len`` and indexing, e.g. an :class:`ArrayDataset`, an
    :class:`ImageFolder`, a list of samples) or arrays / a tuple or dict of arrays (wrapped in
    an ArrayDataset). ``batch_size``: samples per batch. ``seed``: epoch ``k``'s order is
    :func:`epoch_order` ``(len(samples), seed, k)``. ``drop_remainder`` (default True, as in
    S4TF): every batch has exactly ``batch_size`` samples; the leftover samples of an epoch are
    skipped (different ones each epoch); False keeps a last, shorter batch. ``collate``: how a
    batch (a :class:`Sampling` view) becomes a value, :func:`collate` by default; None yields
    the views themselves. ``prefetch``: batches produced ahead on a background thread while the
    step runs (0: none).

    ``for epoch in epochs`` never ends by itself: take ``epochs.prefix(n)``, index
    ``epochs[k]`` or break.

    >>> import numpy as np
    >>> epochs = TrainingEpochs(np.arange(6), batch_size=3, seed=7)
    >>> e0, e1 = epochs.prefix(2)
    >>> [b.tolist() for b in e0] == [b.tolist() for b in TrainingEpochs(
    ...     np.arange(6), batch_size=3, seed=7)[0]]
    True
    >>> sorted(np.concatenate(list(e1)).tolist())
    [0, 1, 2, 3, 4, 5]
    """

    def __init__(self, samples: Any, batch_size: int, *, seed: int = 0,
                 drop_remainder: bool = True, collate: Callable | None = _default_collate,
                 prefetch: int = 2):
        self.samples = as_dataset(samples)
        self.batch_size = _check_batch_size(batch_size)
        self.seed = _check_seed(seed)
        self.drop_remainder = bool(drop_remainder)
        self.collate = collate
        self.prefetch = _check_prefetch(prefetch)
        n = len(self.samples)
        if n == 0:
            raise ValueError("TrainingEpochs needs at least one sample")
        if self.drop_remainder and n < self.batch_size:
            raise ValueError(f"with drop_remainder=True, {n} samples make no batch of "
                             f"{self.batch_size}; lower batch_size or pass "
                             f"drop_remainder=False")

    @property
    def batches_per_epoch(self) -> int:
        """How many batches each epoch has."""
        n = len(self.samples)
        return n // self.batch_size if self.drop_remainder else -(-n // self.batch_size)

    def __getitem__(self, epoch: int) -> Epoch:
        if not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise IndexError(f"epochs are numbered 0, 1, 2, ...; got {epoch!r}")
        order = epoch_order(len(self.samples), self.seed, int(epoch))
        return Epoch(int(epoch), self.samples, order, self.batch_size, self.drop_remainder,
                     self.collate, self.prefetch)

    def __iter__(self) -> Iterator[Epoch]:
        k = 0
        while True:
            yield self[k]
            k += 1

    def prefix(self, n: int, start: int = 0) -> list[Epoch]:
        """Epochs ``start, ..., start + n - 1`` (S4TF's ``prefix``; ``start`` resumes a run)."""
        return [self[k] for k in range(start, start + n)]

    def __repr__(self) -> str:
        return (f"TrainingEpochs({len(self.samples)} samples, batch_size={self.batch_size}, "
                f"seed={self.seed}, drop_remainder={self.drop_remainder})")


class InferenceBatches(_Batches):
    """``samples`` in their own order, in batches of ``batch_size``, the last one possibly
    shorter: for validation and inference. Same ``collate`` and ``prefetch`` as
    :class:`TrainingEpochs`; iterate it as often as you like.

    >>> import numpy as np
    >>> [b.tolist() for b in InferenceBatches(np.arange(5), batch_size=2, prefetch=0)]
    [[0, 1], [2, 3], [4]]
    """

    def __init__(self, samples: Any, batch_size: int, *,
                 collate: Callable | None = _default_collate, prefetch: int = 2):
        ds = as_dataset(samples)
        super().__init__(ds, np.arange(len(ds)), _check_batch_size(batch_size), False,
                         collate, _check_prefetch(prefetch))

    def __repr__(self) -> str:
        return f"InferenceBatches({len(self.order)} samples, {len(self)} batches)"
