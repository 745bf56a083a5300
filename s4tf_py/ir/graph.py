"""The lazy graph: immutable, typed, hash-consed nodes.

Every op on a Tensor calls :func:`bind`, which records a :class:`Node` and runs nothing. A node
is either

* a **leaf** holding a concrete backend buffer (``value`` set, ``prim`` None),
* an **abstract leaf** (``prim`` None, ``value`` None): a placeholder while tracing a function,
* an **op node** (``prim`` set) whose value is computed when someone reads it.

Nodes are immutable, which is what makes Tensor copies O(1): two Tensors may share a node and
neither can change it. Op nodes are hash-consed: binding the same primitive with the same params
to the same input nodes returns the existing node, so repeated subexpressions are recorded once.
When a node is materialized it keeps its value, drops its inputs (freeing the graph above it)
and leaves the hash-cons table (its key named input ids that may now be reused).
"""
from __future__ import annotations

import weakref

import numpy as np

from .registry import AVal, Primitive

# key -> weakref to node. Weak so a node lives only as long as a Tensor or another node needs
# it; a dying node removes its own entry (Node.__del__), cheaper than WeakValueDictionary.
_TABLE: dict = {}
_ref = weakref.ref


class Node:
    __slots__ = ("prim", "inputs", "params", "shape", "dtype", "weak", "value", "key",
                 "device", "loc", "avals", "aux", "keep", "__weakref__")

    def __init__(self, prim, inputs, params, shape, dtype, weak, device, value=None):
        self.prim: Primitive | None = prim
        self.inputs: tuple[Node, ...] = inputs
        self.params: tuple = params          # tuple of (name, value) pairs, hashable
        self.shape: tuple[int, ...] = shape
        self.dtype: np.dtype = dtype
        self.weak: bool = weak
        self.value = value
        self.key = None
        self.device = device
        self.loc = None
        self.avals = None                     # tuple of AVal for multiple-result nodes
        self.aux = None                       # non-structural data (custom pullbacks, hooks)
        self.keep = False                     # keep inputs after materializing (autodiff needs them)

    def __del__(self):
        if self.key is not None:
            _TABLE.pop(self.key, None)

    @property
    def aval(self) -> AVal:
        return AVal(self.shape, self.dtype, self.weak)

    @property
    def is_leaf(self) -> bool:
        return self.prim is None or self.value is not None

    @property
    def is_abstract(self) -> bool:
        return self.prim is None and self.value is None

    def params_dict(self) -> dict:
        return dict(self.params)

    def __repr__(self):
        what = "leaf" if self.prim is None else self.prim.name
        return f"<Node {what} {self.aval}{' materialized' if self.value is not None else ''}>"


def leaf(value, shape, dtype, weak, device) -> Node:
    """A node for a concrete buffer."""
    return Node(None, (), (), shape, dtype, weak, device, value)


def abstract_leaf(shape, dtype, weak, device) -> Node:
    """A placeholder standing for a function input while tracing."""
    return Node(None, (), (), shape, dtype, weak, device, None)


def bind(prim: Primitive, inputs: tuple, params: tuple, shape, dtype, weak, device) -> Node:
    """Record (or find) the node ``prim(*inputs, **params)`` whose type is already known.

    Callers compute the result type themselves (ops know it cheaply); :func:`bind_checked`
    runs the registry's shape rule instead.
    """
    # nodes without inputs (constants, iotas) are told apart by their device too
    key = (prim, params, *map(id, inputs)) if inputs else (prim, params, device)
    r = _TABLE.get(key)
    if r is not None:
        node = r()
        if node is not None and node.value is None:
            return node
    node = Node(prim, inputs, params, shape, dtype, weak, device)
    node.key = key
    _TABLE[key] = _ref(node)
    if prim.record_location:
        from ..errors import user_location
        node.loc = user_location(2)
    return node


def bind_checked(prim: Primitive, inputs: tuple, params: tuple, device) -> Node:
    """Record ``prim(*inputs, **params)``, typing the result with the primitive's shape rule."""
    out = prim.shape_rule(*[n.aval for n in inputs], **dict(params))
    if prim.multiple_results:
        key = (prim, params, *map(id, inputs))
        r = _TABLE.get(key)
        node = r() if r is not None else None
        if node is not None and node.value is None:
            return node
        node = Node(prim, inputs, params, (), None, False, device)
        node.avals = tuple(out)
        node.key = key
        _TABLE[key] = _ref(node)
        if prim.record_location:
            from ..errors import user_location
            node.loc = user_location(2)
        return node
    return bind(prim, inputs, params, out.shape, out.dtype, out.weak, device)


#: while > 0 (a function is being differentiated) materialized nodes keep their inputs, so a
#: read inside the function (Python control flow on a value) does not cut the graph
keep_inputs = [0]


def forget(node: Node) -> None:
    """Drop a materialized node's inputs (unless autodiff needs them) and hash-cons entry."""
    if node.key is not None:
        r = _TABLE.get(node.key)
        if r is not None and r() is node:
            del _TABLE[node.key]
        node.key = None
    if not node.keep and not keep_inputs[0]:
        node.inputs = ()


def bind_unique(prim: Primitive, inputs: tuple, params: tuple, shape, dtype, weak, device,
                aux=None) -> Node:
    """Record a node that is never merged with another (it carries ``aux`` data or identity)."""
    node = Node(prim, inputs, params, shape, dtype, weak, device)
    node.aux = aux
    if prim.record_location:
        from ..errors import user_location
        node.loc = user_location(2)
    return node


def pending_nodes() -> list[Node]:
    """All live op nodes that have not been computed yet."""
    nodes = [r() for r in list(_TABLE.values())]
    return [n for n in nodes if n is not None and n.value is None]
