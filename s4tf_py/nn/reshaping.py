"""Padding and upsampling layers (S4TF's ``ZeroPadding1D/2D/3D`` and
``UpSampling1D/2D/3D``) over channels-last input.

>>> import s4tf_py as s4
>>> from s4tf_py.nn.reshaping import UpSampling2D, ZeroPadding2D
>>> x = s4.reshape(s4.arange(4.0), (1, 2, 2, 1))
>>> UpSampling2D(size=2)(x)[0, ..., 0].tolist()
[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0], [2.0, 2.0, 3.0, 3.0], [2.0, 2.0, 3.0, 3.0]]
>>> ZeroPadding2D(padding=((1, 0), (0, 1)))(x)[0, ..., 0].tolist()
[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [2.0, 3.0, 0.0]]
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..autodiff.structs import no_derivative
from ..errors import op_error
from ..ops.shape import broadcast_to, pad, reshape
from ..tensor import Tensor
from .convolutional import SpatialLayer, spatial_tuple

__all__ = ["ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "UpSampling1D", "UpSampling2D",
           "UpSampling3D"]


def _padding_pairs(cls_name: str, padding, rank: int) -> tuple[tuple[int, int], ...]:
    """S4TF's padding forms as ``rank`` ``(before, after)`` pairs: an int (everywhere), one
    int per spatial dimension (both sides), one pair per dimension, or, for 1-D, S4TF's
    ``(before, after)``."""
    if isinstance(padding, (int, np.integer)):
        pairs = [(int(padding), int(padding))] * rank
    else:
        items = list(padding)
        if rank == 1 and len(items) == 2 and all(isinstance(p, (int, np.integer)) for p in items):
            items = [tuple(items)]              # ZeroPadding1D(padding=(before, after))
        if len(items) != rank:
            raise op_error(ValueError, cls_name, f"padding needs an int, {rank} ints or {rank} "
                                                 f"(before, after) pairs, got {padding!r}")
        pairs = []
        for p in items:
            lo, hi = (p, p) if isinstance(p, (int, np.integer)) else tuple(p)
            pairs.append((int(lo), int(hi)))
    if any(v < 0 for pair in pairs for v in pair):
        raise op_error(ValueError, cls_name, f"padding must be non-negative, got {padding!r}")
    return tuple(pairs)


class _ZeroPadding(SpatialLayer):
    """Zeros added before and after each spatial dimension."""

    padding: tuple = no_derivative(default=None)

    def __init__(self, padding: int | Sequence = 1):
        self.padding = _padding_pairs(type(self).__name__, padding, self.spatial_rank)

    def __call__(self, x) -> Tensor:
        x = self._check_input(x)
        return pad(x, ((0, 0),) + self.padding + ((0, 0),))


class ZeroPadding1D(_ZeroPadding):
    """Zero padding along the width of ``(batch, width, channels)`` (S4TF ``ZeroPadding1D``).

    ``ZeroPadding1D(padding=1)``: ``padding`` is an int or ``(before, after)``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.reshaping import ZeroPadding1D
    >>> ZeroPadding1D(padding=(2, 1))(s4.ones((1, 2, 1)))[0, :, 0].tolist()
    [0.0, 0.0, 1.0, 1.0, 0.0]
    """

    spatial_rank = 1


class ZeroPadding2D(_ZeroPadding):
    """Zero padding of the height and width of NHWC input (S4TF ``ZeroPadding2D``).

    ``padding``: an int, ``(height, width)`` (both sides) or
    ``((top, bottom), (left, right))``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.reshaping import ZeroPadding2D
    >>> ZeroPadding2D(padding=(1, 2))(s4.ones((1, 3, 3, 2))).shape
    (1, 5, 7, 2)
    """

    spatial_rank = 2


class ZeroPadding3D(_ZeroPadding):
    """Zero padding of depth, height and width of NDHWC input (S4TF ``ZeroPadding3D``);
    ``padding`` as :class:`ZeroPadding2D`, with three entries.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.reshaping import ZeroPadding3D
    >>> ZeroPadding3D(padding=((1, 0), (0, 0), (2, 2)))(s4.ones((1, 2, 2, 2, 1))).shape
    (1, 3, 2, 6, 1)
    """

    spatial_rank = 3


class _UpSampling(SpatialLayer):
    """Nearest-neighbour upsampling: every element repeated ``size`` times per dimension."""

    size: tuple = no_derivative(default=None)

    def __init__(self, size: int | Sequence[int] = 2):
        self.size = spatial_tuple(type(self).__name__, size, self.spatial_rank, "size")

    def __call__(self, x) -> Tensor:
        # S4TF's formulation: insert a unit axis after each spatial one, broadcast it to the
        # factor, merge the pairs (the gradient is a sum over each block)
        x = self._check_input(x)
        n, *spatial, c = x.shape
        split = [n]
        for d in spatial:
            split += [d, 1]
        wide = [n]
        for d, s in zip(spatial, self.size):
            wide += [d, s]
        y = broadcast_to(reshape(x, split + [c]), wide + [c])
        return reshape(y, [n] + [d * s for d, s in zip(spatial, self.size)] + [c])


class UpSampling1D(_UpSampling):
    """Repeat each step of ``(batch, width, channels)`` ``size`` times (S4TF ``UpSampling1D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.reshaping import UpSampling1D
    >>> UpSampling1D(size=3)(s4.Tensor([[[1.0], [2.0]]]))[0, :, 0].tolist()
    [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    """

    spatial_rank = 1


class UpSampling2D(_UpSampling):
    """Nearest-neighbour upsampling of NHWC input by ``size`` (an int as S4TF, or
    ``(height, width)`` factors) (S4TF ``UpSampling2D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.reshaping import UpSampling2D
    >>> UpSampling2D(size=(2, 3))(s4.ones((1, 2, 2, 4))).shape
    (1, 4, 6, 4)
    """

    spatial_rank = 2


class UpSampling3D(_UpSampling):
    """Nearest-neighbour upsampling of NDHWC input by ``size`` (S4TF ``UpSampling3D``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.reshaping import UpSampling3D
    >>> UpSampling3D(size=2)(s4.ones((1, 1, 2, 3, 1))).shape
    (1, 2, 4, 6, 1)
    """

    spatial_rank = 3
