"""Morphological layers (S4TF's ``Morphological.swift``): grayscale ``Dilation2D`` and
``Erosion2D`` of NHWC input by a ``(height, width, channels)`` structuring function.

As TensorFlow's ``dilation2d``/``erosion2d`` (which S4TF's layers call), for output position
``(y, x)`` and channel ``c``, with strides ``s``, rates ``r`` and the input padded per
``padding`` (positions in the padding never win)::

    dilation[b, y, x, c] = max_{i, j} input[b, s0*y + r0*i, s1*x + r1*j, c] + filter[i, j, c]
    erosion[b, y, x, c]  = min_{i, j} input[b, s0*y + r0*i, s1*x + r1*j, c]
                                      - filter[kh - 1 - i, kw - 1 - j, c]

(erosion is ``-dilation(-input, filter reversed in height and width)``). Both are built from
differentiable ops: the windows are strided slices of the padded input, stacked, and reduced
with a max, so gradients reach the input and the filter at each window's maximum (ties share
it equally, where TensorFlow picks one).

>>> import s4tf_py as s4
>>> from s4tf_py.nn.morphology import Dilation2D, Erosion2D
>>> x = s4.reshape(s4.arange(9.0), (1, 3, 3, 1))
>>> Dilation2D(filter=s4.zeros((2, 2, 1)))(x)[0, ..., 0].tolist()    # a flat filter: max pooling
[[4.0, 5.0], [7.0, 8.0]]
>>> Erosion2D(filter=s4.zeros((2, 2, 1)))(x)[0, ..., 0].tolist()
[[0.0, 1.0], [3.0, 4.0]]
"""
from __future__ import annotations

import itertools
from typing import Callable, ClassVar, Sequence

from .. import dtypes as dt
from ..autodiff.structs import no_derivative
from ..errors import ShapeError, op_error
from ..ops._core import to_tensor
from ..ops.nn import _padding
from ..ops.shape import flip, pad, reshape, slice as _slice, stack
from ..tensor import Tensor
from . import initializers
from .convolutional import SpatialLayer, _check_param, _init_kwargs, padding_spec, spatial_tuple

__all__ = ["Dilation2D", "Erosion2D", "dilation2d", "erosion2d"]


def dilation2d(x: Tensor, filter: Tensor, strides=(1, 1), rates=(1, 1), padding="valid",
               *, op: str = "dilation2d") -> Tensor:
    """Grayscale dilation of NHWC ``x`` by the ``(kh, kw, C)`` ``filter`` (TF ``dilation2d``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.morphology import dilation2d
    >>> dilation2d(s4.Tensor([[[[1.0], [5.0], [2.0]]]]), s4.Tensor([[[0.0], [-1.0]]])).tolist()
    [[[[4.0], [5.0]]]]
    """
    x, filter = to_tensor(x), to_tensor(filter)
    rank = filter.ndim - 1
    if rank < 1 or x.ndim != rank + 2 or x.shape[-1] != filter.shape[-1]:
        raise op_error(ShapeError, op, f"expects input (batch, *spatial, C) and filter "
                                       f"(*window, C) with one more dimension than spatial ones, "
                                       f"got shapes {x.shape} and {filter.shape}", [x, filter])
    kernel = filter.shape[:rank]
    strides = spatial_tuple(op, strides, rank, "strides")
    rates = spatial_tuple(op, rates, rank, "rates")
    eff = [(k - 1) * r + 1 for k, r in zip(kernel, rates)]
    pads = _padding(op, padding, x.shape[1:-1], eff, strides)
    out = [(n + lo + hi - e) // s + 1 for n, (lo, hi), e, s in zip(x.shape[1:-1], pads, eff,
                                                                    strides)]
    if any(n + lo + hi < e for n, (lo, hi), e in zip(x.shape[1:-1], pads, eff)):
        raise op_error(ShapeError, op, f"the (dilated) window {tuple(eff)} is larger than the "
                                       f"padded input {x.shape}", [x, filter])
    if any(p != (0, 0) for p in pads):
        # -inf padding: a position outside the input never is a window's maximum
        x = pad(x, ((0, 0),) + tuple(pads) + ((0, 0),), constant_values=float("-inf"))
    n, c = x.shape[0], x.shape[-1]
    windows = []
    for off in itertools.product(*[range(k) for k in kernel]):
        start = (0,) + tuple(o * r for o, r in zip(off, rates)) + (0,)
        limit = (n,) + tuple(b + (m - 1) * s + 1 for b, m, s in zip(start[1:], out, strides)) \
            + (c,)
        windows.append(_slice(x, start, limit, (1,) + strides + (1,)))
    # (K, N, *out, C) + filter (K, 1, ..., 1, C), reduced over the window axis
    stacked = stack(windows, axis=0)
    f = reshape(filter, (len(windows),) + (1,) * (rank + 1) + (c,))
    return (stacked + f).max(axis=0)


def erosion2d(x: Tensor, filter: Tensor, strides=(1, 1), rates=(1, 1), padding="valid",
              *, op: str = "erosion2d") -> Tensor:
    """Grayscale erosion (TF/S4TF ``erosion2D``): ``-dilation2d(-x, filter reversed in its
    spatial axes)``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.morphology import erosion2d
    >>> erosion2d(s4.Tensor([[[[1.0], [5.0], [2.0]]]]), s4.Tensor([[[0.0], [-1.0]]])).tolist()
    [[[[2.0], [2.0]]]]
    """
    x, filter = to_tensor(x), to_tensor(filter)
    rank = filter.ndim - 1
    return -dilation2d(-x, flip(filter, tuple(range(rank))), strides, rates, padding, op=op)


class _Morphology(SpatialLayer):
    """A learned ``(kh, kw, C)`` structuring function applied by ``operation``."""

    filter: Tensor
    strides: tuple = no_derivative(default=(1, 1))
    rates: tuple = no_derivative(default=(1, 1))
    padding: object = no_derivative(default="valid")
    operation: ClassVar[Callable]

    def __init__(self, filter: Tensor | None = None, strides: int | Sequence[int] = (1, 1),
                 rates: int | Sequence[int] = (1, 1), padding="valid", *,
                 filter_shape: Sequence[int] | None = None,
                 filter_initializer: Callable = initializers.zeros, seed: int | None = None,
                 key: Tensor | None = None, dtype=dt.float32):
        name, rank = type(self).__name__, self.spatial_rank
        if (filter is None) == (filter_shape is None):
            raise op_error(TypeError, name, "needs filter (a (height, width, channels) tensor) "
                                            "or filter_shape=, not both")
        if filter is None:
            shape = tuple(int(d) for d in filter_shape)
            if len(shape) != rank + 1 or any(d < 1 for d in shape):
                raise op_error(ValueError, name, f"filter_shape must be {rank + 1} positive ints "
                                                 f"(height, width, channels), got {shape}")
            # default zeros: a flat structuring element, i.e. max (min) pooling to start from
            filter = filter_initializer(shape, dtype, **_init_kwargs(seed, key, 1)[0])
        self.filter = _check_param(name, filter, rank + 1, "filter (height, width, channels)")
        self.strides = spatial_tuple(name, strides, rank, "strides")
        self.rates = spatial_tuple(name, rates, rank, "rates")
        self.padding = padding_spec(name, padding, rank)

    def __call__(self, x) -> Tensor:
        x = self._check_input(x, self.filter.shape[-1])
        return type(self).operation(x, self.filter, self.strides, self.rates, self.padding,
                                    op=type(self).__name__)


class Dilation2D(_Morphology):
    """Grayscale morphological dilation (S4TF ``Dilation2D``): the maximum over each window of
    ``input + filter``; the output keeps the input's channels.

    ``Dilation2D(filter, strides=(1, 1), rates=(1, 1), padding="valid")``, or
    ``Dilation2D(filter_shape=(kh, kw, C), ...)`` with a zero filter (``filter_initializer=``,
    ``seed=``, ``key=``, ``dtype=`` to change it).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.morphology import Dilation2D
    >>> layer = Dilation2D(filter_shape=(3, 3, 2), strides=(2, 2), padding="same")
    >>> layer(s4.ones((1, 5, 5, 2))).shape
    (1, 3, 3, 2)
    """

    spatial_rank = 2
    operation = staticmethod(dilation2d)


class Erosion2D(_Morphology):
    """Grayscale morphological erosion (S4TF ``Erosion2D``): the minimum over each window of
    ``input - filter`` (the filter reversed in height and width, as TensorFlow); arguments as
    :class:`Dilation2D`.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.morphology import Erosion2D
    >>> Erosion2D(filter_shape=(2, 2, 3), rates=(2, 2))(s4.ones((1, 5, 5, 3))).shape
    (1, 3, 3, 3)
    """

    spatial_rank = 2
    operation = staticmethod(erosion2d)
