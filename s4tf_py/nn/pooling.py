"""Pooling layers (S4TF's ``Pooling.swift``): ``MaxPool1D/2D/3D``, ``AvgPool1D/2D/3D``,
``GlobalAvgPool1D/2D/3D``, ``GlobalMaxPool1D/2D/3D`` and ``FractionalMaxPool2D``.

Inputs are channels-last (``NWC``, ``NHWC``, ``NDHWC``). Windowed pools take
``pool_size`` and ``strides`` (an int, one per spatial dimension, or S4TF's full-rank tuple;
``strides`` defaults to ``pool_size``, S4TF's 1-D ``stride=`` is accepted) and ``padding``
(``"valid"``, ``"same"`` or explicit). With padding, max pooling never picks the padding and
average pooling averages over the real elements only (TensorFlow's rule). Global pools reduce
every spatial dimension: ``(batch, *spatial, channels) -> (batch, channels)``.

>>> import s4tf_py as s4
>>> from s4tf_py.nn.pooling import MaxPool2D, GlobalAvgPool2D
>>> x = s4.reshape(s4.arange(16.0), (1, 4, 4, 1))
>>> MaxPool2D(pool_size=(2, 2), strides=(2, 2))(x)[0, ..., 0].tolist()
[[5.0, 7.0], [13.0, 15.0]]
>>> GlobalAvgPool2D()(x).tolist()
[[7.5]]
"""
from __future__ import annotations

import math
from typing import ClassVar, Sequence

import numpy as np

from .. import dtypes as dt
from .. import random as _random
from ..autodiff.structs import no_derivative
from ..errors import ShapeError, op_error
from ..ops import nn as F
from ..ops.creation import arange
from ..ops.indexing import take
from ..ops.math import ceil, minimum
from ..ops.reduction import cumsum
from ..ops.shape import concatenate, reshape, slice as _slice
from ..tensor import Tensor
from .convolutional import SpatialLayer, padding_spec, spatial_tuple

__all__ = ["MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
           "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D",
           "GlobalMaxPool2D", "GlobalMaxPool3D", "FractionalMaxPool2D"]


# ---- windowed max and average pooling -----------------------------------------------------------

class _Pool(SpatialLayer):
    """``kind`` ("max" or "avg") pooling over windows of ``pool_size``."""

    pool_size: tuple = no_derivative(default=None)
    strides: tuple = no_derivative(default=None)
    padding: object = no_derivative(default="valid")
    kind: ClassVar[str] = "max"

    def __init__(self, pool_size: int | Sequence[int] = 2,
                 strides: int | Sequence[int] | None = None, padding="valid", *,
                 stride: int | None = None):
        name, rank = type(self).__name__, self.spatial_rank
        self.pool_size = spatial_tuple(name, pool_size, rank, "pool_size")
        if strides is None and stride is None:
            strides = self.pool_size           # Keras' default; S4TF always passes strides
        self.strides = spatial_tuple(name, strides, rank, "strides", stride, "stride")
        self.padding = padding_spec(name, padding, rank)

    def __call__(self, x) -> Tensor:
        x = self._check_input(x)
        pool = getattr(F, f"{self.kind}_pool{self.spatial_rank}d")
        return pool(x, self.pool_size, self.strides, self.padding)


class _MaxPool(_Pool):
    kind = "max"


class _AvgPool(_Pool):
    kind = "avg"


class MaxPool1D(_MaxPool):
    """Max pooling over ``(batch, width, channels)`` (S4TF ``MaxPool1D``).

    ``MaxPool1D(pool_size=2, strides=pool_size, padding="valid")``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import MaxPool1D
    >>> x = s4.Tensor([[[1.0], [3.0], [2.0], [0.0]]])
    >>> MaxPool1D(pool_size=3, stride=1)(x)[0, :, 0].tolist()
    [3.0, 3.0]
    """

    spatial_rank = 1


class MaxPool2D(_MaxPool):
    """Max pooling over NHWC input (S4TF ``MaxPool2D``).

    ``MaxPool2D(pool_size=(2, 2), strides=pool_size, padding="valid")``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import MaxPool2D
    >>> MaxPool2D(pool_size=(3, 3), strides=(2, 2), padding="same")(s4.ones((1, 5, 5, 2))).shape
    (1, 3, 3, 2)
    """

    spatial_rank = 2


class MaxPool3D(_MaxPool):
    """Max pooling over NDHWC input (S4TF ``MaxPool3D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import MaxPool3D
    >>> MaxPool3D(pool_size=2)(s4.ones((1, 4, 4, 4, 3))).shape
    (1, 2, 2, 2, 3)
    """

    spatial_rank = 3


class AvgPool1D(_AvgPool):
    """Average pooling over ``(batch, width, channels)`` (S4TF ``AvgPool1D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import AvgPool1D
    >>> AvgPool1D(pool_size=2)(s4.Tensor([[[1.0], [3.0], [2.0], [0.0]]]))[0, :, 0].tolist()
    [2.0, 1.0]
    """

    spatial_rank = 1


class AvgPool2D(_AvgPool):
    """Average pooling over NHWC input (S4TF ``AvgPool2D``); with "same" padding, windows
    average over the real elements only.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import AvgPool2D
    >>> AvgPool2D(pool_size=(2, 2), strides=(1, 1), padding="same")(s4.ones((1, 3, 3, 1))).tolist()
    [[[[1.0], [1.0], [1.0]], [[1.0], [1.0], [1.0]], [[1.0], [1.0], [1.0]]]]
    """

    spatial_rank = 2


class AvgPool3D(_AvgPool):
    """Average pooling over NDHWC input (S4TF ``AvgPool3D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import AvgPool3D
    >>> AvgPool3D(pool_size=(1, 2, 2))(s4.ones((2, 3, 4, 4, 1))).shape
    (2, 3, 2, 2, 1)
    """

    spatial_rank = 3


# ---- global pooling ----------------------------------------------------------------------------

class _GlobalPool(SpatialLayer):
    """``kind`` ("avg" or "max") over every spatial dimension: ``(N, *spatial, C) -> (N, C)``."""

    kind: ClassVar[str] = "avg"

    def __call__(self, x) -> Tensor:
        x = self._check_input(x)
        return getattr(F, f"global_{self.kind}_pool{self.spatial_rank}d")(x)


class _GlobalAvgPool(_GlobalPool):
    kind = "avg"


class _GlobalMaxPool(_GlobalPool):
    kind = "max"


class GlobalAvgPool1D(_GlobalAvgPool):
    """The mean over the width: ``(N, W, C) -> (N, C)`` (S4TF ``GlobalAvgPool1D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import GlobalAvgPool1D
    >>> GlobalAvgPool1D()(s4.Tensor([[[1.0, 2.0], [3.0, 6.0]]])).tolist()
    [[2.0, 4.0]]
    """

    spatial_rank = 1


class GlobalAvgPool2D(_GlobalAvgPool):
    """The mean over height and width: NHWC -> ``(N, C)`` (S4TF ``GlobalAvgPool2D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import GlobalAvgPool2D
    >>> GlobalAvgPool2D()(s4.ones((2, 3, 3, 5))).shape
    (2, 5)
    """

    spatial_rank = 2


class GlobalAvgPool3D(_GlobalAvgPool):
    """The mean over depth, height and width: NDHWC -> ``(N, C)`` (S4TF ``GlobalAvgPool3D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import GlobalAvgPool3D
    >>> GlobalAvgPool3D()(s4.ones((2, 2, 3, 3, 5))).shape
    (2, 5)
    """

    spatial_rank = 3


class GlobalMaxPool1D(_GlobalMaxPool):
    """The maximum over the width: ``(N, W, C) -> (N, C)`` (S4TF ``GlobalMaxPool1D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import GlobalMaxPool1D
    >>> GlobalMaxPool1D()(s4.Tensor([[[1.0, 2.0], [3.0, -6.0]]])).tolist()
    [[3.0, 2.0]]
    """

    spatial_rank = 1


class GlobalMaxPool2D(_GlobalMaxPool):
    """The maximum over height and width: NHWC -> ``(N, C)`` (S4TF ``GlobalMaxPool2D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import GlobalMaxPool2D
    >>> GlobalMaxPool2D()(s4.ones((2, 3, 3, 5))).shape
    (2, 5)
    """

    spatial_rank = 2


class GlobalMaxPool3D(_GlobalMaxPool):
    """The maximum over depth, height and width: NDHWC -> ``(N, C)`` (S4TF
    ``GlobalMaxPool3D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import GlobalMaxPool3D
    >>> GlobalMaxPool3D()(s4.ones((2, 2, 3, 3, 5))).shape
    (2, 5)
    """

    spatial_rank = 3


# ---- fractional max pooling ---------------------------------------------------------------------

def _pooling_sequence(n_in: int, n_out: int, key: Tensor, pseudo_random: bool) -> Tensor:
    """The ``n_out + 1`` region boundaries ``0 = b_0 < b_1 < ... < b_n_out = n_in`` (int32) of
    TensorFlow's ``FractionalMaxPool`` (Graham 2014), drawn from ``key``.

    Random: the region lengths are ``n_in // n_out`` or one more (``n_in % n_out`` of those),
    shuffled. Pseudo-random: ``b_i = ceil(alpha * (i + u)) - 1`` with ``alpha = n_in / n_out``
    and one ``u`` uniform in ``[0, u_max)``, TensorFlow's bound that keeps every length in
    ``{k, k + 1}``. Both are computed with tensor ops, so a traced key gives traced regions.
    """
    device = key.device
    if pseudo_random:
        alpha = n_in / n_out
        k = n_in // n_out
        u_max = min((k + 2) / alpha - 1, (n_in + 1 - k) / alpha - (n_out - 1))
        # float64, as TensorFlow: ceil() of a product that is (nearly) an integer must not
        # move a boundary by one through float32 rounding
        u = _random.uniform((), key=key, dtype=dt.float64) * u_max
        i = arange(1, n_out, dtype=dt.float64, device=device)
        inner = (ceil((i + u) * alpha) - 1.0).astype(dt.int32)
        ends = [Tensor(np.zeros(1, np.int32), device=device), inner,
                Tensor(np.full(1, n_in, np.int32), device=device)]
        return concatenate(ends)
    k, extra = divmod(n_in, n_out)
    lengths = np.array([k + 1] * extra + [k] * (n_out - extra), np.int32)
    lengths = _random.permutation(key, Tensor(lengths, device=device))
    return concatenate([Tensor(np.zeros(1, np.int32), device=device), cumsum(lengths)])


def _max_over_regions(x: Tensor, axis: int, seq: Tensor, longest: int,
                      overlapping: bool) -> Tensor:
    """The maximum of ``x`` along ``axis`` over each region of the boundaries ``seq``.

    Region ``r`` is ``[seq[r], seq[r + 1])``, or ``[seq[r], seq[r + 1]]`` when overlapping
    (TensorFlow's rule, clipped to the input). Each region is gathered as ``longest`` indices
    ``min(start + j, last)``: the repeats of ``last`` in a short region do not change its
    maximum, and their gradients add up to the element's own (ties share it equally).
    """
    n_in, n_out = x.shape[axis], seq.shape[0] - 1
    starts = _slice(seq, (0,), (n_out,))
    last = _slice(seq, (1,), (n_out + 1,)) - (0 if overlapping else 1)
    last = minimum(last, n_in - 1)
    offsets = arange(longest, dtype=dt.int32, device=x.device)
    idx = minimum(reshape(starts, (n_out, 1)) + offsets, reshape(last, (n_out, 1)))
    g = take(x, reshape(idx, (n_out * longest,)), axis=axis)
    g = reshape(g, x.shape[:axis] + (n_out, longest) + x.shape[axis + 1:])
    return g.max(axis=axis + 1)


class FractionalMaxPool2D(SpatialLayer):
    """Fractional max pooling over NHWC input (S4TF ``FractionalMaxPool2D``, TensorFlow's
    ``FractionalMaxPool``, Graham 2014): the output has ``floor(in / ratio)`` rows and columns,
    each the maximum over a region whose boundaries are drawn at random.

    ``FractionalMaxPool2D(pooling_ratio, pseudo_random=False, overlapping=False,
    deterministic=False, seed=0, seed2=0)``; ``pooling_ratio`` is ``(height, width)`` or S4TF's
    ``(1, height, width, 1)``, each at least 1. ``pseudo_random`` draws the regions as Graham's
    pseudo-random sequence instead of a shuffle of the region lengths; ``overlapping`` lets
    neighbouring regions share their boundary row/column.

    Randomness (stateless, :mod:`s4tf_py.random`): ``layer(x, key=k)`` draws the regions from
    the key ``k``. Without a key, a ``deterministic`` layer uses the same regions on every
    call (from ``seed`` and ``seed2``); otherwise each call draws new regions from the global
    key (``s4.random.set_seed`` makes runs repeatable), and, as in TensorFlow, ``seed`` and
    ``seed2`` must then be 0. One draw serves the whole batch, as in TensorFlow.

    Inside ``s4.compile``: the key is part of the step. A draw from the global key happens when
    the step is traced, so the compiled step reuses those regions on every call; pass the key
    as an argument of the step (``s4.random.fold_in(base_key, step)``) for fresh regions each
    step without retracing. The regions are computed with tensor ops, so a traced key works.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.pooling import FractionalMaxPool2D
    >>> pool = FractionalMaxPool2D(pooling_ratio=(1.5, 1.5), deterministic=True, seed=7)
    >>> x = s4.ones((1, 10, 9, 3))
    >>> pool(x).shape
    (1, 6, 6, 3)
    >>> rows, cols = pool.pooling_sequences(10, 9)
    >>> rows.shape, int(rows[0]), int(rows[-1])
    ((7,), 0, 10)
    """

    pooling_ratio: tuple = no_derivative(default=(1.0, 1.0))
    pseudo_random: bool = no_derivative(default=False)
    overlapping: bool = no_derivative(default=False)
    deterministic: bool = no_derivative(default=False)
    seed: int = no_derivative(default=0)
    seed2: int = no_derivative(default=0)

    spatial_rank = 2

    def __init__(self, pooling_ratio: Sequence[float], pseudo_random: bool = False,
                 overlapping: bool = False, deterministic: bool = False, seed: int = 0,
                 seed2: int = 0):
        name = type(self).__name__
        ratio = tuple(float(r) for r in pooling_ratio)
        if len(ratio) == 4:
            if ratio[0] != 1.0 or ratio[3] != 1.0:
                raise op_error(ValueError, name, "pooling on the batch and channel dimensions is "
                                                 f"not supported, got pooling_ratio {ratio}")
            ratio = ratio[1:3]
        if len(ratio) != 2 or not all(math.isfinite(r) and r >= 1.0 for r in ratio):
            raise op_error(ValueError, name, "pooling_ratio must be (height, width) ratios of at "
                                             f"least 1.0, got {tuple(pooling_ratio)}")
        if not deterministic and (seed or seed2):
            raise op_error(ValueError, name, "seed and seed2 must be 0 unless deterministic=True "
                                             "(pass key= to a call for a reproducible draw)")
        self.pooling_ratio = ratio
        self.pseudo_random = bool(pseudo_random)
        self.overlapping = bool(overlapping)
        self.deterministic = bool(deterministic)
        self.seed = int(seed)
        self.seed2 = int(seed2)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """``(floor(height / ratio_h), floor(width / ratio_w))``, TensorFlow's output size."""
        return (int(math.floor(height / self.pooling_ratio[0])),
                int(math.floor(width / self.pooling_ratio[1])))

    def _key(self, key) -> Tensor:
        if key is not None:
            return key
        if self.deterministic:
            k = _random.fold_in(_random.key(self.seed), self.seed2 >> 32)
            return _random.fold_in(k, self.seed2 & 0xFFFFFFFF)
        return _random.random_bits((2,))       # a fresh key from the global one

    def pooling_sequences(self, height: int, width: int, key: Tensor | None = None
                          ) -> tuple[Tensor, Tensor]:
        """The row and column boundaries (int32, ``out + 1`` each, from 0 to the input size)
        that a call on ``height x width`` input with this ``key`` uses (TensorFlow's
        ``row_pooling_sequence`` and ``col_pooling_sequence``)."""
        oh, ow = self.output_size(height, width)
        if oh < 1 or ow < 1:
            raise op_error(ShapeError, type(self).__name__,
                           f"pooling_ratio {self.pooling_ratio} leaves no output for input of "
                           f"height {height} and width {width}")
        rows_key, cols_key = _random.split(self._key(key), 2)
        return (_pooling_sequence(height, oh, rows_key, self.pseudo_random),
                _pooling_sequence(width, ow, cols_key, self.pseudo_random))

    def __call__(self, x, key: Tensor | None = None) -> Tensor:
        x = self._check_input(x)
        h, w = x.shape[1:3]
        rows, cols = self.pooling_sequences(h, w, key)
        for axis, seq in ((1, rows), (2, cols)):
            n_in, n_out = x.shape[axis], seq.shape[0] - 1
            # a region is at most k + 1 long (+1 overlapping); pseudo-random regions get one
            # more index of slack against rounding (repeated indices are harmless)
            longest = n_in // n_out + 1 + self.pseudo_random + self.overlapping
            x = _max_over_regions(x, axis, seq, longest, self.overlapping)
        return x
