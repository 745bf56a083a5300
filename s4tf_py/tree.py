"""Flatten and rebuild nested structures of tensors (tuples, lists, dicts, dataclasses, ...).

``flatten(x)`` returns the leaves in a fixed order and a ``TreeDef`` that ``unflatten`` uses
to rebuild the same structure around new leaves. Types opt in with :func:`register`, which is
how ``s4.nn.Layer`` and optimizer states take part.

>>> import s4tf_py as s4
>>> leaves, tree = s4.tree.flatten({"b": (1, 2), "a": [3]})
>>> leaves
[3, 1, 2]
>>> s4.tree.unflatten(tree, [30, 10, 20])
{'a': [30], 'b': (10, 20)}
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

_REGISTRY: dict[type, tuple[Callable, Callable]] = {}


def register(cls: type, flatten_fn: Callable, unflatten_fn: Callable) -> None:
    """Make ``cls`` a node: ``flatten_fn(x) -> (children, aux)``, ``unflatten_fn(aux, children)``."""
    _REGISTRY[cls] = (flatten_fn, unflatten_fn)


class TreeDef:
    __slots__ = ("kind", "aux", "children", "_hash")

    def __init__(self, kind, aux, children):
        self.kind = kind
        self.aux = aux
        self.children = children
        self._hash = None

    def _key(self):
        return (self.kind, self.aux, self.children)

    def __eq__(self, other):
        return isinstance(other, TreeDef) and self._key() == other._key()

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    @property
    def num_leaves(self) -> int:
        if self.kind is None:
            return 1
        return sum(c.num_leaves for c in self.children)

    def __repr__(self):
        if self.kind is None:
            return "*"
        name = self.kind if isinstance(self.kind, str) else self.kind.__name__
        return f"{name}({', '.join(map(repr, self.children))})"


_LEAF = TreeDef(None, None, ())


def _node_parts(x):
    t = type(x)
    if t is tuple:
        return "tuple", None, list(x)
    if t is list:
        return "list", None, list(x)
    if t is dict:
        keys = tuple(sorted(x, key=repr))
        return "dict", keys, [x[k] for k in keys]
    if t in _REGISTRY:
        children, aux = _REGISTRY[t][0](x)
        return t, aux, list(children)
    if isinstance(x, tuple) and hasattr(x, "_fields"):   # namedtuple
        return t, None, list(x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x))
        return t, names, [getattr(x, n) for n in names]
    if x is None:
        return "none", None, []
    return None


def flatten(x, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, TreeDef]:
    """Leaves of ``x`` (depth first, dict keys sorted) and its structure."""
    leaves: list = []
    return leaves, _flatten_into(x, leaves, is_leaf)


# The recursions are module-level functions, not closures: a nested function that calls itself
# sits in a reference cycle with its cells, so the arguments it captured (a training step's
# parameters) would live until the cyclic collector ran, and buffers that CPython's reference
# counts should have freed (or let the executable reuse) would stay held.
def _flatten_into(v, leaves: list, is_leaf) -> Any:
    if is_leaf is not None and is_leaf(v):
        leaves.append(v)
        return _LEAF
    parts = _node_parts(v)
    if parts is None:
        leaves.append(v)
        return _LEAF
    kind, aux, children = parts
    return TreeDef(kind, aux, tuple(_flatten_into(c, leaves, is_leaf) for c in children))


def unflatten(treedef: TreeDef, leaves, build_node: Callable | None = None) -> Any:
    """Rebuild the structure ``treedef`` around ``leaves``.

    ``build_node(kind, aux, children)``, when given, may build a node itself (returning
    anything but ``NotImplemented``), which is how tangents map structs to TangentVectors.
    """
    it = iter(leaves)
    out = _unflatten_from(treedef, it, build_node)
    rest = list(it)
    if rest:
        raise ValueError(f"unflatten got {len(rest)} more leaves than the structure holds")
    return out


def _unflatten_from(td: TreeDef, it, build_node) -> Any:
    if td.kind is None:
        return next(it)
    children = [_unflatten_from(c, it, build_node) for c in td.children]
    k = td.kind
    if build_node is not None:
        built = build_node(k, td.aux, children)
        if built is not NotImplemented:
            return built
    if k == "tuple":
        return tuple(children)
    if k == "list":
        return children
    if k == "dict":
        return dict(zip(td.aux, children))
    if k == "none":
        return None
    if k in _REGISTRY:
        return _REGISTRY[k][1](td.aux, children)
    if hasattr(k, "_fields"):
        return k(*children)
    obj = object.__new__(k)
    for name, c in zip(td.aux, children):
        object.__setattr__(obj, name, c)
    return obj


def map_leaves(fn: Callable, x, *rest):
    """Apply ``fn`` to the leaves of ``x`` (and of same-structured ``rest``)."""
    leaves, td = flatten(x)
    others = [flatten(r)[0] for r in rest]
    return unflatten(td, [fn(*vs) for vs in zip(leaves, *others)])
