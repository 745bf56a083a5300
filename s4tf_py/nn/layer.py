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

    def state_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """Every tensor of this layer and its sub-layers by key path, ``prefix`` prepended.

        A superset of :meth:`named_parameters` (same names, same tensors): it also holds the
        fields marked ``s4.no_derivative`` that hold tensors (state such as running
        statistics, frozen sub-layers). This is what ``s4.save(layer, path)`` writes.

        >>> import s4tf_py as s4
        >>> class Scaled(s4.nn.Layer):
        ...     dense: s4.nn.Dense
        ...     running_mean: s4.Tensor = s4.no_derivative(default=None)
        ...     def __call__(self, x):
        ...         return self.dense(x) - self.running_mean
        >>> m = Scaled(dense=s4.nn.Dense(2, 3, seed=0), running_mean=s4.zeros((3,)))
        >>> [n for n, _ in m.named_parameters()], list(m.state_dict())
        (['dense.weight', 'dense.bias'], ['dense.weight', 'dense.bias', 'running_mean'])
        """
        from ..checkpoint import state_dict
        return state_dict(self, prefix)

    def load_state(self, source, strict: bool = True, *, name_map=None):
        """Set this layer's tensors from a checkpoint, in place; returns a ``LoadReport``.

        ``source``: a checkpoint path (file, or a sharded folder; read tensor by tensor, so
        peak memory stays near one copy of the model), what ``s4.load`` returned, an open
        ``CheckpointReader``, a dict of key path to tensor or array, or another layer.
        Fields are rebound to new tensors, as ``move(along=)`` does: tensors held elsewhere
        keep their values. Each tensor keeps its device; a floating-point checkpoint tensor
        is converted to the model's float dtype (listed in ``report.cast``).

        ``strict=True``: unless every key matches in name and shape, raises
        ``CheckpointMismatchError`` listing the missing, unexpected and mismatched keys with
        their shapes, and changes nothing. ``strict=False`` loads the keys that match and
        reports the rest in the returned ``LoadReport``. ``name_map`` renames the
        checkpoint's keys (a dict, or a function giving the new name or None to drop it).

        >>> import s4tf_py as s4
        >>> a, b = s4.nn.Dense(2, 3, seed=0), s4.nn.Dense(2, 3, seed=1)
        >>> old = b.weight
        >>> b.load_state({"weight": a.weight}, strict=False).missing
        ['bias']
        >>> bool(s4.all(b.weight == a.weight)), bool(s4.all(old == b.weight))
        (True, False)
        """
        from ..checkpoint import load_state
        return load_state(self, source, strict, name_map=name_map)


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
