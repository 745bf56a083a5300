"""Layers without parameters that reshape or wrap: ``Flatten``, ``Reshape``, ``Function``.

As in S4TF: ``Flatten`` keeps the first (batch) dimension and flattens the rest; ``Reshape``
reshapes to its whole shape, batch dimension included (``-1`` stands for the one dimension
that the size determines, usually the batch); ``Function`` makes a layer of a function.

>>> import s4tf_py as s4
>>> x = s4.ones((2, 3, 4))
>>> s4.nn.Flatten()(x).shape
(2, 12)
>>> s4.nn.Reshape((-1, 4, 3))(x).shape
(2, 4, 3)
>>> s4.nn.Function(s4.relu)(x - 2.0).sum().item()
0.0
"""
from __future__ import annotations

import math
from typing import Callable

from ..autodiff.structs import no_derivative
from ..errors import ShapeError, op_error
from ..tensor import Tensor
from .layer import Layer

__all__ = ["Flatten", "Reshape", "Function"]


class Flatten(Layer):
    """Flattens every dimension but the first: ``(batch, d1, d2, ...) -> (batch, d1*d2*...)``.

    >>> import s4tf_py as s4
    >>> s4.nn.Flatten()(s4.zeros((5, 2, 2, 3))).shape
    (5, 12)
    """

    def __init__(self):
        pass

    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim < 1:
            raise op_error(ShapeError, "Flatten", "expects an input with a batch dimension "
                           f"(at least 1-D), got shape {x.shape}", [x])
        # the product is spelled out (not -1) so a batch of 0 flattens too
        return x.reshape((x.shape[0], math.prod(x.shape[1:])))


class Reshape(Layer):
    """Reshapes its input to ``shape`` (S4TF's ``Reshape(shape:)``): the whole shape, batch
    dimension included; one dimension may be ``-1``.

    >>> import s4tf_py as s4
    >>> s4.nn.Reshape((-1, 28, 28, 1))(s4.zeros((3, 784))).shape
    (3, 28, 28, 1)
    """

    shape: tuple = no_derivative()

    def __init__(self, shape):
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(int(d) for d in shape)
        if shape.count(-1) > 1 or any(d < -1 for d in shape):
            raise ValueError(f"Reshape: the shape may hold one -1 and otherwise sizes >= 0, "
                             f"got {shape}")
        self.shape = shape      # a tuple: hashable, so a compiled step keys on it

    def __call__(self, x: Tensor) -> Tensor:
        known = math.prod(d for d in self.shape if d != -1)
        if (x.size != known) if -1 not in self.shape else (known == 0 or x.size % known):
            raise op_error(ShapeError, "Reshape",
                           f"expects an input that fills shape {self.shape}, got shape "
                           f"{x.shape} ({x.size} elements)", [x])
        return x.reshape(self.shape)


class Function(Layer):
    """A layer that calls ``body`` (S4TF's ``Function``): ``Function(body)(x) == body(x)``.

    ``body`` is configuration, not a parameter: a closure over tensors is differentiated
    through (its tensors are constants to the layer), and a compiled step keys on the
    function object.

    >>> import s4tf_py as s4
    >>> double = s4.nn.Function(lambda x: 2.0 * x)
    >>> double(s4.ones((2,))).tolist()
    [2.0, 2.0]
    """

    body: Callable = no_derivative()

    def __init__(self, body: Callable):
        if not callable(body):
            raise TypeError(f"Function expects a callable, got {type(body).__name__}")
        self.body = body

    def __call__(self, *args, **kwargs):
        return self.body(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Function({getattr(self.body, '__qualname__', self.body)!s})"
