"""``ir.Function``: a typed SSA function, the unit that passes transform and backends compile.

A function has typed parameters, a list of equations in topological order and a list of
outputs. Each equation applies one registry primitive to earlier values::

    func @f(%0: f32[2,2]) -> (f32[]) {
      %1 = mul(%0, %0) : f32[2,2]
      %2 = reduce_sum(%1) {axes=(0, 1)} : f32[]
      return %2
    }

``str(fn)`` prints this text and :func:`s4tf_py.ir.parse` reads it back to an equal function.
"""
from __future__ import annotations

import itertools
import sys

from .registry import AVal, Primitive, type_str

_counter = itertools.count()


class Var:
    """An SSA value: a parameter or the result of an equation."""

    __slots__ = ("aval", "uid")

    def __init__(self, aval: AVal):
        self.aval = aval
        self.uid = next(_counter)

    def __repr__(self):
        return f"Var({self.aval})"

    def __reduce__(self):
        return Var, (self.aval,)          # a fresh id in the process that loads it


class Eqn:
    """``outs = prim(*inputs, **params)``. ``loc`` is the user's (file, line, function)."""

    __slots__ = ("prim", "inputs", "params", "outs", "loc")

    def __init__(self, prim: Primitive, inputs, params, outs, loc=None):
        self.prim = prim
        self.inputs: tuple[Var, ...] = tuple(inputs)
        self.params: tuple = tuple(params)
        self.outs: tuple[Var, ...] = tuple(outs)
        self.loc = loc

    @property
    def out(self) -> Var:
        return self.outs[0]

    def params_dict(self) -> dict:
        return dict(self.params)

    def __repr__(self):
        return f"Eqn({self.prim.name})"


class Function:
    """A typed SSA function: ``params``, ``eqns`` (topologically ordered), ``outputs``."""

    def __init__(self, params, eqns, outputs, name: str = "main"):
        self.params: list[Var] = list(params)
        self.eqns: list[Eqn] = list(eqns)
        self.outputs: list[Var] = list(outputs)
        self.name = name

    @property
    def in_avals(self) -> list[AVal]:
        return [v.aval for v in self.params]

    @property
    def out_avals(self) -> list[AVal]:
        return [v.aval for v in self.outputs]

    def __str__(self):
        from .printer import print_function
        return print_function(self)

    def __repr__(self):
        return (f"<ir.Function @{self.name}: {len(self.params)} params, {len(self.eqns)} eqns, "
                f"{len(self.outputs)} outputs>")

    def structural_key(self) -> tuple:
        """A hashable key equal for structurally identical functions (names ignored)."""
        index = {v: i for i, v in enumerate(self.params)}
        key: list = [tuple((a.shape, a.dtype, a.weak) for a in self.in_avals)]
        n = len(self.params)
        for e in self.eqns:
            key.append((e.prim.name, e.params, tuple(index[v] for v in e.inputs)))
            for o in e.outs:
                index[o] = n
                n += 1
        key.append(tuple(index[v] for v in self.outputs))
        return tuple(key)

    def __eq__(self, other):
        return isinstance(other, Function) and self.structural_key() == other.structural_key()

    __hash__ = None

    def uses(self) -> dict[Var, int]:
        """How many times each value is read (by equations and as an output)."""
        count: dict[Var, int] = {}
        for e in self.eqns:
            for v in e.inputs:
                count[v] = count.get(v, 0) + 1
        for v in self.outputs:
            count[v] = count.get(v, 0) + 1
        return count


# ---- from the lazy graph --------------------------------------------------------------------

class GraphSlice:
    """The part of the lazy graph that computing some target nodes needs.

    ``leaves`` are the concrete (or abstract) inputs, ``ops`` the op nodes in topological order,
    ``key`` the structural cache key, and ``consumers[i]`` how many op nodes read ``ops``/leaf i.
    """

    __slots__ = ("leaves", "ops", "key", "outputs", "slot")

    def __init__(self, leaves, ops, key, outputs, slot):
        self.leaves = leaves
        self.ops = ops
        self.key = key
        self.outputs = outputs
        self.slot = slot


def collect(targets, stop_at_values: bool = True) -> tuple[list, list, dict]:
    """Leaves and op nodes reachable from ``targets``, ops in topological order.

    Returns ``(leaves, ops, slot)`` where ``slot`` maps ``id(node)`` to its position (leaves
    first, then ops), the numbering the structural key and the Function use.
    """
    seen: dict[int, int] = {}
    leaves: list = []
    ops: list = []
    for t in targets:
        if id(t) in seen:
            continue
        _resolve_selection(t)
        stack = [(t, iter(t.inputs if not (stop_at_values and t.value is not None) else ()))]
        seen[id(t)] = -1
        while stack:
            node, it = stack[-1]
            advanced = False
            for child in it:
                if id(child) not in seen:
                    seen[id(child)] = -1
                    if child.value is None and child.inputs:
                        _resolve_selection(child)
                    inputs = () if (child.prim is None or (stop_at_values and child.value is not None)) \
                        else child.inputs
                    stack.append((child, iter(inputs)))
                    advanced = True
                    break
            if not advanced:
                stack.pop()
                if node.prim is None or (stop_at_values and node.value is not None):
                    leaves.append(node)
                else:
                    ops.append(node)
    slot: dict[int, int] = {}
    for i, n in enumerate(leaves):
        slot[id(n)] = i
    base = len(leaves)
    for i, n in enumerate(ops):
        slot[id(n)] = base + i
    return leaves, ops, slot


_GTE = []


def _resolve_selection(node) -> None:
    """A result of a multiple-result node that was computed already becomes a leaf."""
    if not _GTE:
        from ..ops._core import GET_TUPLE_ELEMENT
        _GTE.append(GET_TUPLE_ELEMENT)
    if node.prim is _GTE[0] and node.value is None:
        parent = node.inputs[0]
        if parent.value is not None:
            node.value = parent.value[node.params[0][1]]
            from .graph import forget
            forget(node)


def structural_key(leaves, ops, slot, outputs) -> tuple:
    """The cache key of a graph slice: structure, shapes and dtypes, never identities."""
    key = [tuple((n.shape, n.dtype, n.weak) for n in leaves)]
    for n in ops:
        key.append((n.prim, n.params, tuple([slot[id(i)] for i in n.inputs])))
    key.append(tuple([slot[id(o)] for o in outputs]))
    return tuple(key)


def function_from_graph(leaves, ops, slot, outputs, name="main") -> Function:
    """Build the ``ir.Function`` of a graph slice (on a cache miss only: it costs more)."""
    from ..ops._core import GET_TUPLE_ELEMENT
    vars_: list = [Var(n.aval) for n in leaves]
    eqns = []
    for n in ops:
        ins = tuple(vars_[slot[id(i)]] for i in n.inputs)
        if n.prim is GET_TUPLE_ELEMENT:
            producer_outs = ins[0]
            vars_.append(producer_outs[dict(n.params)["index"]])
            continue
        if n.prim.multiple_results:
            outs = tuple(Var(a) for a in n.avals)
            eqns.append(Eqn(n.prim, ins, n.params, outs, n.loc))
            vars_.append(outs)          # a GET_TUPLE_ELEMENT picks one
            continue
        out = Var(n.aval)
        eqns.append(Eqn(n.prim, ins, n.params, (out,), n.loc))
        vars_.append(out)
    outs = []
    for o in outputs:
        v = vars_[slot[id(o)]]
        outs.extend(v) if isinstance(v, tuple) else outs.append(v)   # all results of a tuple
    return Function(vars_[:len(leaves)], eqns, outs, name=name)


def refcount(obj) -> int:
    return sys.getrefcount(obj)
