"""Differentiable structs: the ``Differentiable`` protocol and synthesized ``TangentVector``s.

As in S4TF, a struct whose stored properties are differentiable is itself differentiable, and
its ``TangentVector`` is synthesized: a struct with one field per differentiable property
(fields marked ``s4.no_derivative`` are left out). ``TangentVector`` supports ``+``, ``-``,
scalar ``*``, unary ``-``, ``TangentVector.zero(like=x)``, and ``x.move(along=t)`` adds a
tangent to a value. Structs nest; tuples, lists and dicts of tensors are differentiable too
(their tangent has the same shape).

>>> import s4tf_py as s4
>>> @s4.differentiable_struct
... class Affine:
...     w: s4.Tensor
...     b: s4.Tensor
...     name: str = s4.no_derivative(default="affine")
>>> p = Affine(w=s4.Tensor(2.0), b=s4.Tensor(1.0))
>>> g = s4.gradient(at=p, of=lambda p: p.w * 3.0 + p.b)
>>> type(g).__name__, g.w.item(), g.b.item()
('TangentVector', 3.0, 1.0)
"""
from __future__ import annotations

import dataclasses
import warnings

from .. import tree
from ..tensor import Tensor

_NO_DERIVATIVE = "s4tf_no_derivative"


def no_derivative(default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING):
    """Mark a struct field as not differentiable (S4TF's ``@noDerivative``)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={_NO_DERIVATIVE: True})


class Differentiable:
    """Protocol of values with a ``TangentVector`` type and ``move(along=)``."""

    TangentVector: type

    def move(self, along):
        """Add the tangent ``along`` to every differentiable field (in place, like S4TF's
        mutating ``move(along:)``; tensors held elsewhere keep their values)."""
        fields = type(self).__s4_diff_fields__
        for name in fields:
            t = getattr(along, name)
            if t is None:
                continue
            v = getattr(self, name)
            object.__setattr__(self, name, _move_value(v, t))
        return self


def _is_struct(v) -> bool:
    return hasattr(type(v), "__s4_diff_fields__")


def _move_value(v, t):
    if _is_struct(v):
        v.move(along=t)
        return v
    if isinstance(v, Tensor):
        return v + t
    if isinstance(v, float):
        return v + float(t)
    if isinstance(v, (tuple, list)):
        return type(v)(_move_value(a, b) for a, b in zip(v, t))
    if isinstance(v, dict):
        return {k: _move_value(v[k], t[k]) for k in v}
    return v


def _is_differentiable_value(v) -> bool:
    if isinstance(v, Tensor):
        from ..dtypes import is_floating
        return is_floating(v.dtype)
    if isinstance(v, float) or _is_struct(v):
        return True
    if isinstance(v, (tuple, list)):
        return len(v) > 0 and all(_is_differentiable_value(x) for x in v)
    if isinstance(v, dict):
        return len(v) > 0 and all(_is_differentiable_value(x) for x in v.values())
    return False


class TangentVectorBase:
    """Base of synthesized tangent vectors: a vector space over the differentiable fields."""

    __s4_fields__: tuple = ()

    def _map(self, fn, *others):
        vals = {}
        for name in self.__s4_fields__:
            vals[name] = _tmap(fn, getattr(self, name), *[getattr(o, name) for o in others])
        return type(self)(**vals)

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:   # sum() starts from 0
            return self
        return self._map(lambda a, b: a + b, other)

    __radd__ = __add__

    def __sub__(self, other):
        return self._map(lambda a, b: a - b, other)

    def __mul__(self, scalar):
        return self._map(lambda a: a * scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        return self._map(lambda a: a / scalar)

    def __neg__(self):
        return self._map(lambda a: -a)

    @classmethod
    def zero(cls, like):
        """The zero tangent of the value ``like``."""
        return zero_tangent(like)

    def __iter__(self):
        return iter(getattr(self, n) for n in self.__s4_fields__)

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__s4_fields__)
        return f"{self.__class__.__qualname__}({inner})"


def _tmap(fn, a, *rest):
    if a is None:
        return None
    if isinstance(a, TangentVectorBase):
        return fn(a, *rest)
    if isinstance(a, (tuple, list)) and not isinstance(a, Tensor):
        return type(a)(_tmap(fn, *xs) for xs in zip(a, *rest))
    if isinstance(a, dict):
        return {k: _tmap(fn, a[k], *[r[k] for r in rest]) for k in a}
    return fn(a, *rest)


def zero_tangent(x):
    """The zero tangent of ``x`` (zeros of the same shape, in ``x``'s tangent structure)."""
    from ..ops.creation import zeros_like
    leaves, td = tree.flatten(x, is_leaf=lambda v: isinstance(v, Tensor))
    zs = [zeros_like(v) if isinstance(v, Tensor) else (0.0 if isinstance(v, float) else None)
          for v in leaves]
    return tangent_unflatten(td, zs)


def tangent_unflatten(treedef, leaves):
    """Rebuild ``treedef`` around tangent leaves, mapping structs to their ``TangentVector``."""
    def build(kind, aux, children):
        tv = getattr(kind, "TangentVector", None) if isinstance(kind, type) else None
        if isinstance(tv, type) and issubclass(tv, TangentVectorBase):
            names = tv.__s4_fields__ if kind is tv else kind.__s4_diff_fields__
            return tv(**dict(zip(names, children)))
        return NotImplemented
    return tree.unflatten(treedef, leaves, build)


_WARNED: set = set()


def make_differentiable(cls, *, init=True):
    """Turn ``cls`` into a differentiable dataclass with a synthesized ``TangentVector``."""
    if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
        cls = dataclasses.dataclass(cls, eq=False, repr=True, init=init, kw_only=True)
    fields = [f for f in dataclasses.fields(cls)]
    diff = tuple(f.name for f in fields if not f.metadata.get(_NO_DERIVATIVE))
    nodiff = tuple(f.name for f in fields if f.metadata.get(_NO_DERIVATIVE))
    cls.__s4_diff_fields__ = diff
    cls.__s4_nodiff_fields__ = nodiff
    tv = type("TangentVector", (TangentVectorBase,), {
        "__s4_fields__": diff, "__qualname__": f"{cls.__qualname__}.TangentVector",
        "__module__": cls.__module__,
        "__annotations__": {n: object for n in diff},
    })
    tv = dataclasses.dataclass(tv, eq=False, repr=False, kw_only=True)
    tv.TangentVector = tv          # a tangent vector is its own tangent space
    cls.TangentVector = tv
    if not issubclass(cls, Differentiable):
        # dataclasses may not change bases; add the protocol's methods instead
        cls.move = Differentiable.move

    def flatten(obj):
        for name in diff:
            v = getattr(obj, name)
            key = (cls, name)
            if not _is_differentiable_value(v) and key not in _WARNED and v is not None:
                _WARNED.add(key)
                warnings.warn(
                    f"field '{name}' of {cls.__qualname__} holds a {type(v).__name__}, which is "
                    f"not differentiable; mark it s4.no_derivative (S4TF's @noDerivative) to say "
                    "it has no derivative", UserWarning, stacklevel=5)
        return [getattr(obj, n) for n in diff], tuple(getattr(obj, n) for n in nodiff)

    def unflatten(aux, children):
        obj = object.__new__(cls)
        for n, v in zip(diff, children):
            object.__setattr__(obj, n, v)
        for n, v in zip(nodiff, aux):
            object.__setattr__(obj, n, v)
        return obj

    tree.register(cls, flatten, unflatten)
    tree.register(tv, lambda t: ([getattr(t, n) for n in diff], None),
                  lambda aux, ch: tv(**dict(zip(diff, ch))))
    return cls


def differentiable_struct(cls):
    """Class decorator: a dataclass whose fields are differentiable unless ``s4.no_derivative``."""
    return make_differentiable(cls)
