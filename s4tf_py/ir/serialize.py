"""IR objects as bytes, for the on-disk caches of optimized functions and compiled plans.

:func:`dumps` pickles ``Function``/``Eqn``/``Var`` graphs (and the LLVM backend's plans, whose
kernel specs hold lowering functions). Primitives are saved by name and a primitive's
registered functions (its LLVM lowering, its numpy impl) by the primitive's name and slot, so
what :func:`loads` returns refers to this process's registry rows. Variables get fresh ids;
the identity of a value shared by several equations is kept (pickle's memo).

>>> import s4tf_py as s4
>>> from s4tf_py.ir import serialize
>>> fn = s4.trace(lambda x: s4.exp(x) * 2.0, s4.ones((3,)))
>>> str(serialize.loads(serialize.dumps(fn))) == str(fn)
True
"""
from __future__ import annotations

import io
import pickle

from .registry import REGISTRY, Primitive, get

#: the Primitive slots that hold functions a saved plan may refer to
_FUNCTION_SLOTS = ("llvm", "impl", "stablehlo")


def _primitive(name: str) -> Primitive:
    return get(name)


def _registered_function(name: str, slot: str):
    return getattr(get(name), slot)


class _Pickler(pickle.Pickler):
    def __init__(self, file):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._functions = {}
        for p in REGISTRY.values():
            for slot in _FUNCTION_SLOTS:
                f = getattr(p, slot, None)
                if f is not None:
                    self._functions.setdefault(id(f), (p.name, slot))

    def reducer_override(self, obj):
        if type(obj) is Primitive:
            return _primitive, (obj.name,)
        ref = self._functions.get(id(obj))
        if ref is not None:
            return _registered_function, ref
        return NotImplemented


def dumps(obj) -> bytes:
    """``obj`` as bytes; raises ``pickle.PicklingError`` (or ``TypeError``/``AttributeError``)
    when it holds something that cannot be saved, such as a closure no registry row names."""
    buf = io.BytesIO()
    _Pickler(buf).dump(obj)
    return buf.getvalue()


def loads(data: bytes):
    """What :func:`dumps` saved, bound to this process's registry."""
    return pickle.loads(data)   # noqa: S301 - our own cache files, in the user's cache folder
