"""Regions: IR functions nested inside a primitive's params (bodies of cond, while, scan).

A :class:`Region` wraps an ``ir.Function`` so it can sit in a node's params: it is hashable and
compares by the function's structure, so two traces of the same loop body share cache entries.

:func:`trace_region` runs a Python function on abstract inputs and *closure-converts* it: every
value the body uses that does not depend on its inputs (a captured weight, an outer traced
value) becomes an extra explicit input, returned as ``captured`` so the caller passes it as an
operand. :func:`call_function` replays a function's equations on Tensors, which is how
derivative rules of control flow differentiate a region: they simply call it.
"""
from __future__ import annotations

from .. import tree
from .function import Function, function_from_graph
from .graph import abstract_leaf


class Region:
    __slots__ = ("fn", "_key", "_hash", "_exe")

    def __init__(self, fn: Function):
        self.fn = fn
        self._key = fn.structural_key()
        self._hash = hash(self._key)
        self._exe = None

    def __hash__(self):
        return self._hash

    def __eq__(self, other):
        return isinstance(other, Region) and self._key == other._key

    def __repr__(self):
        return f"<region @{self.fn.name}: {len(self.fn.eqns)} eqns>"

    def __reduce__(self):
        return Region, (self.fn,)         # saved without the interpreter built for it

    def run(self, *arrays):
        """Run with the reference interpreter (the primitives' numpy implementations)."""
        if self._exe is None:
            from ..backends.reference.interpreter import ReferenceExecutable
            self._exe = ReferenceExecutable(self.fn)
        return self._exe(list(arrays))


def _closure_convert(out_nodes, params):
    """Ops that depend on ``params`` (topological) and the outside values they read."""
    param_ids = {id(p) for p in params}
    dep: dict[int, bool] = {}
    order = []
    for out in out_nodes:
        stack = [(out, False)]
        while stack:
            n, expanded = stack.pop()
            if id(n) in dep and not expanded:
                continue
            if id(n) in param_ids:
                dep[id(n)] = True
                continue
            if n.prim is None or n.value is not None:
                dep[id(n)] = False
                continue
            if n.prim.nullary:
                # constants and iotas are recreated inside the body (so passes can fold them)
                dep[id(n)] = True
                order.append(n)
                continue
            if not expanded:
                stack.append((n, True))
                for i in n.inputs:
                    if id(i) not in dep:
                        stack.append((i, False))
                continue
            d = any(dep[id(i)] for i in n.inputs)
            dep[id(n)] = d
            if d:
                order.append(n)
    captured, seen = [], set()
    for n in order:
        for i in n.inputs:
            if not dep[id(i)] and id(i) not in seen:
                seen.add(id(i))
                captured.append(i)
    for o in out_nodes:
        if not dep[id(o)] and id(o) not in seen:
            seen.add(id(o))
            captured.append(o)
    return order, captured


def trace_region(fn, avals, device, name="region", flatten_output=True):
    """Trace ``fn`` on abstract inputs of ``avals``; returns (Region, captured nodes, out tree)."""
    from ..lazy.compile import _trace_depth
    from ..tensor import Tensor, wrap
    params = [abstract_leaf(a.shape, a.dtype, a.weak, device) for a in avals]
    _trace_depth[0] += 1
    try:
        result = fn(*[wrap(p) for p in params])
    finally:
        _trace_depth[0] -= 1
    out_flat, out_tree = tree.flatten(result, is_leaf=lambda v: isinstance(v, Tensor))
    for o in out_flat:
        if not isinstance(o, Tensor):
            raise TypeError(f"{name}: the function must return Tensors (or structures of them), "
                            f"got {type(o).__name__}")
    out_nodes = [o._node for o in out_flat]
    ops, captured = _closure_convert(out_nodes, params)
    inputs = params + captured
    slot = {id(n): i for i, n in enumerate(inputs)}
    for k, n in enumerate(ops):
        slot[id(n)] = len(inputs) + k
    fn_ir = function_from_graph(inputs, ops, slot, out_nodes, name=name)
    return Region(fn_ir), captured, out_tree


def call_function(fn: Function, args):
    """Replay ``fn``'s equations on Tensors ``args`` (records ordinary lazy nodes)."""
    from ..ops._core import bind_op
    env = {v: a for v, a in zip(fn.params, args)}
    for e in fn.eqns:
        r = bind_op(e.prim, [env[v] for v in e.inputs], e.params)
        if e.prim.multiple_results:
            for o, t in zip(e.outs, r):
                env[o] = t
        else:
            env[e.outs[0]] = r
    return [env[v] for v in fn.outputs]
