"""``s4.nn.Sequential`` and ``s4.nn.sequenced``: layers applied one after another.

``Sequential(layer1, layer2, ...)`` is a layer whose sub-layers have the key paths ``0``,
``1``, ...: its parameters are named ``0.weight``, ``1.bias`` (``block.0.conv.filter`` inside
a model), its gradient is a ``Sequential.TangentVector`` with the same fields, and optimizers,
checkpoints and ``s4.compile`` see it as any other layer. A plain function among the layers is
wrapped in ``s4.nn.Function``.

S4TF wrote ``input.sequenced(through: l1, l2)``; here it is ``s4.nn.sequenced(x, through=[l1,
l2])`` (``through`` is keyword-only, as S4TF's label was).

>>> import s4tf_py as s4
>>> model = s4.nn.Sequential(s4.nn.Dense(3, 4, seed=0), s4.relu, s4.nn.Dense(4, 2, seed=1))
>>> [name for name, _ in model.named_parameters()]
['0.weight', '0.bias', '2.weight', '2.bias']
>>> x = s4.ones((5, 3))
>>> model(x).shape
(5, 2)
>>> g = s4.gradient(at=model, of=lambda m: m(x).sum())
>>> type(g).__qualname__, g[2].weight.shape
('Sequential.TangentVector', (4, 2))
>>> bool(s4.all(s4.nn.sequenced(x, through=[model[0], model[1], model[2]]) == model(x)))
True
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Sequence

from .. import tree
from .core import Function
from .layer import _ANNOTATED, Layer, _annotate, _register_tree

__all__ = ["Sequential", "sequenced"]


class Sequential(Layer):
    """Layers applied in order: ``Sequential(l1, l2, l3)(x) == l3(l2(l1(x)))``.

    The sub-layers are fields named ``"0"``, ``"1"``, ... (every Sequential of ``n`` layers has
    one class, so a compiled step keys on the structure, not the object). Index it as a
    sequence: ``model[0]``, ``model[-1]``, ``model[1:]`` (a Sequential sharing the layers),
    ``len(model)``, ``for layer in model``; its tangent vectors index the same way.

    >>> import s4tf_py as s4
    >>> m = s4.nn.Sequential(s4.nn.Flatten(), s4.nn.Dense(6, 2, seed=0))
    >>> len(m), type(m[1]).__name__, m(s4.ones((4, 2, 3))).shape
    (2, 'Dense', (4, 2))
    """

    def __new__(cls, *layers, **kwargs):
        if cls is Sequential:
            cls = _sequential_class(len(layers))
        return object.__new__(cls)

    def __init__(self, *layers: Layer | Callable):
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        if len(layers) != len(type(self).__s4_diff_fields__):
            raise TypeError(f"this Sequential holds {len(type(self).__s4_diff_fields__)} "
                            f"layers, got {len(layers)}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                if not callable(layer):
                    raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, "
                                    "neither a Layer nor a function")
                layer = Function(layer)
            setattr(self, str(i), layer)

    def __call__(self, x):
        for name in type(self).__s4_diff_fields__:
            x = getattr(self, name)(x)
        return x

    # ---- a sequence of layers ----------------------------------------------------------------
    @property
    def layers(self) -> tuple:
        """The sub-layers, in order."""
        return tuple(getattr(self, n) for n in type(self).__s4_diff_fields__)

    def __len__(self) -> int:
        return len(type(self).__s4_diff_fields__)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*self.layers[i])
        return self.layers[i]

    def __reduce__(self):
        return (Sequential, self.layers)     # the per-length classes are not importable

    def __repr__(self) -> str:
        return f"Sequential({', '.join(repr(layer) for layer in self.layers)})"


_CLASSES: dict[int, type] = {}


def _sequential_class(n: int) -> type:
    """The class of Sequentials of ``n`` layers: fields ``"0"`` ... ``"n-1"``, all
    differentiable, and its ``TangentVector``."""
    cls = _CLASSES.get(n)
    if cls is not None:
        return cls
    names = tuple(str(i) for i in range(n))
    ns = {"__annotations__": {name: Layer for name in names}, "__qualname__": "Sequential",
          "__module__": __name__, "__doc__": Sequential.__doc__}
    cls = type("Sequential", (Sequential,), ns, _s4_manual=True)
    # no generated __init__/__repr__/__eq__: their code would spell `self.0`
    cls = dataclasses.dataclass(cls, init=False, repr=False, eq=False)
    cls.__s4_diff_fields__ = names
    cls.__s4_nodiff_fields__ = ()
    cls.TangentVector = _tangent_class(names)
    _register_tree(cls)
    _CLASSES[n] = cls
    return cls


def _tangent_class(names: tuple) -> type:
    """A ``TangentVector`` with fields ``names`` (written out: dataclasses cannot make one
    whose fields are not identifiers)."""

    def __init__(self, **fields):
        unknown = set(fields) - set(names)
        if unknown:
            raise TypeError(f"Sequential.TangentVector has no field {sorted(unknown)[0]!r}")
        for name in names:
            object.__setattr__(self, name, fields.get(name))

    def __getitem__(self, i):
        if isinstance(i, slice):
            raise TypeError("a Sequential.TangentVector is indexed by position, not sliced")
        return getattr(self, names[i])

    # a subclass of Sequential.TangentVector, so isinstance(g, Sequential.TangentVector) holds
    tv = type("TangentVector", (Sequential.TangentVector,), {
        "__s4_fields__": names, "__init__": __init__, "__getitem__": __getitem__,
        "__len__": lambda self: len(names), "__qualname__": "Sequential.TangentVector",
        "__module__": __name__})
    tv.TangentVector = tv          # a tangent vector is its own tangent space
    tree.register(tv, lambda t: ([getattr(t, n) for n in names], None),
                  lambda aux, children: tv(**dict(zip(names, children))))
    return tv


class _Through(tuple):
    """The layers of one ``sequenced`` call (named in errors as the model that was called)."""


_Through.__name__ = "sequenced"


def sequenced(x, *, through: Sequence[Layer | Callable] | Layer):
    """``x`` passed through the layers in order (S4TF's ``x.sequenced(through: l1, l2)``).

    A ``ShapeError`` inside names the layer's position (``layer 1 (Dense) of sequenced``).

    >>> import s4tf_py as s4
    >>> s4.nn.sequenced(s4.ones((2, 3)), through=[s4.nn.Dense(3, 4, seed=0), s4.relu]).shape
    (2, 4)
    """
    layers = (through,) if callable(through) else tuple(through)
    try:
        for layer in layers:
            x = layer(x)
    except _ANNOTATED as e:
        _annotate(e, _Through(layers))
        raise
    return x
