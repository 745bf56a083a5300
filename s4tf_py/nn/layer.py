"""``s4.nn.Layer``: differentiable structs that compute, and ``s4.nn.Dense``.

A subclass declares its parameters as annotated fields (keyword arguments of the synthesized
constructor, as in S4TF's memberwise initializers) and defines ``__call__``. Its
``TangentVector`` is synthesized from the fields not marked ``s4.no_derivative``.

>>> import s4tf_py as s4
>>> class MLP(s4.nn.Layer):
...     l1: s4.nn.Dense
...     l2: s4.nn.Dense
...     def __call__(self, x):
...         return self.l2(s4.relu(self.l1(x)))
>>> model = MLP(l1=s4.nn.Dense(3, 4, seed=0), l2=s4.nn.Dense(4, 1, seed=1))
>>> g = s4.gradient(at=model, of=lambda m: m(s4.ones((2, 3))).sum())
>>> type(g).__qualname__, g.l1.weight.shape
('MLP.TangentVector', (3, 4))
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from ..autodiff.structs import Differentiable, make_differentiable, no_derivative
from ..errors import ShapeError, op_error
from ..tensor import Tensor


class Layer(Differentiable):
    """Base class of layers: fields are parameters (or sub-layers), ``__call__`` computes."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        make_differentiable(cls, init="__init__" not in cls.__dict__)

    def __call__(self, x):  # pragma: no cover - subclasses define it
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def parameters(self) -> list[Tensor]:
        """The differentiable tensors of this layer and its sub-layers, in field order."""
        return [v for _, v in self.named_parameters()]

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Tensor]]:
        """``(key path, tensor)`` pairs such as ``("l1.weight", ...)``."""
        out = []
        for name in type(self).__s4_diff_fields__:
            out.extend(_named(getattr(self, name), prefix + name))
        return out


def _named(v, path):
    if isinstance(v, Tensor):
        return [(path, v)]
    if isinstance(v, Layer):
        return v.named_parameters(path + ".")
    if isinstance(v, (list, tuple)):
        return [p for i, x in enumerate(v) for p in _named(x, f"{path}.{i}")]
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in _named(x, f"{path}.{k}")]
    return []


def glorot_uniform(shape, fan_in, fan_out, seed=None, dtype=dt.float32) -> Tensor:
    """Glorot/Xavier uniform initialization (S4TF's default for Dense and Conv)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    rng = np.random.default_rng(seed)
    return Tensor(rng.uniform(-limit, limit, size=shape).astype(dtype))


class Dense(Layer):
    """A fully connected layer ``activation(x @ weight + bias)``.

    ``Dense(input_size, output_size, activation=None, use_bias=True, seed=None)``.
    """

    weight: Tensor
    bias: Tensor
    activation: object = no_derivative(default=None)
    use_bias: bool = no_derivative(default=True)

    def __init__(self, input_size: int = None, output_size: int = None, activation=None,
                 use_bias: bool = True, *, weight: Tensor = None, bias: Tensor = None,
                 seed=None, dtype=dt.float32):
        if weight is None:
            if input_size is None or output_size is None:
                raise TypeError("Dense needs input_size and output_size (or weight=)")
            weight = glorot_uniform((input_size, output_size), input_size, output_size, seed, dtype)
        if bias is None:
            bias = Tensor(np.zeros((weight.shape[1],), dtype=weight.dtype))
        self.weight = weight
        self.bias = bias
        self.activation = activation
        self.use_bias = use_bias

    def __call__(self, x):
        if x.shape[-1] != self.weight.shape[0]:
            raise op_error(ShapeError, "Dense",
                           f"expects inputs with {self.weight.shape[0]} features in the last "
                           f"dimension, got shape {x.shape}", [x])
        y = x @ self.weight
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y
