"""Reverse and forward mode as transformations of the lazy graph.

The lazy graph *is* the tape: differentiating ``f`` at ``x`` gives each differentiation input a
fresh ``identity`` node (a *mark*), runs ``f`` (recording its graph), and then walks the nodes
between the marks and the result:

* reverse mode visits them in reverse topological order and applies each primitive's VJP rule,
  which records new nodes; the cotangents reaching the marks are the gradient;
* forward mode visits them in topological order and applies the JVP rules.

Both produce ordinary lazy tensors, so the derivative is again a program in the IR: it is
optimized and compiled like any other, runs fused with the forward pass when read, and can be
differentiated again (gradients of gradients, Hessian-vector products).

While ``f`` runs, materialized nodes keep their inputs (``graph.keep_inputs``), so Python
control flow on a value inside ``f`` does not cut the graph; afterwards the nodes a pullback
needs are flagged ``keep``.
"""
from __future__ import annotations

import warnings

from .. import dtypes as dt
from ..errors import S4TFError, format_location, user_location
from ..ir import graph
from ..ir.graph import Node
from ..tensor import Tensor, wrap


class DifferentiationError(S4TFError, TypeError):
    """A derivative was asked for something that has none (with the place and the fix)."""


def mark(t: Tensor) -> Tensor:
    """A fresh node standing for ``t`` as a differentiation input."""
    from ..ops._core import IDENTITY
    n = t._node
    return wrap(graph.bind_unique(IDENTITY, (n,), (), n.shape, n.dtype, n.weak, n.device))


_STOP: list = [None]     # the stop_gradient primitive: nothing behind it depends on the marks


def _subgraph(outputs: list[Node], mark_ids: set[int]):
    """Nodes between the marks and ``outputs`` in topological order, and which depend on a mark."""
    if _STOP[0] is None:
        from ..ops._core import STOP_GRADIENT
        _STOP[0] = STOP_GRADIENT
    order: list[Node] = []
    depends: dict[int, bool] = {}
    for out in outputs:
        if id(out) in depends:
            continue
        stack = [(out, iter(out.inputs if id(out) not in mark_ids else ()))]
        depends[id(out)] = False
        while stack:
            node, it = stack[-1]
            pushed = False
            for child in it:
                if id(child) not in depends:
                    depends[id(child)] = False
                    stack.append((child, iter(child.inputs if id(child) not in mark_ids else ())))
                    pushed = True
                    break
            if not pushed:
                stack.pop()
                d = id(node) in mark_ids or (node.prim is not _STOP[0] and
                                             any(depends[id(i)] for i in node.inputs))
                depends[id(node)] = d
                if d:
                    order.append(node)
    return order, depends


def keep_graph(outputs: list[Node], mark_ids: set[int]) -> None:
    """Flag the nodes a pullback will walk, so materializing them keeps their inputs."""
    order, _ = _subgraph(outputs, mark_ids)
    for n in order:
        n.keep = True
        for i in n.inputs:        # constants the rules will read again must not be donated
            i.keep = True


def _producer(node: Node) -> Node:
    """The op that turned floating values into the integer/bool ``node`` (walks int-only ops)."""
    seen = set()
    while node.prim is not None and id(node) not in seen:
        seen.add(id(node))
        if node.prim.record_location or any(dt.is_floating(i.dtype) for i in node.inputs if
                                            i.dtype is not None):
            return node
        ints = [i for i in node.inputs if i.dtype is not None]
        if not ints:
            return node
        node = ints[0]
    return node


def _not_differentiable(int_node: Node, consumer: Node) -> DifferentiationError:
    p = _producer(int_node)
    name = p.prim.name if p.prim is not None else "an integer input"
    where = format_location(p.loc) if p.loc else format_location(consumer.loc or user_location(3))
    return DifferentiationError(
        f"{name} is not differentiable: its {int_node.dtype} result depends on the "
        f"differentiation inputs and flows back into a floating-point value that the result "
        f"depends on.\n  at {where}\n  If that is intended, wrap it in "
        f"s4.without_derivative(...) so the derivative treats it as a constant.")


def _not_a_derivative(n: Node) -> DifferentiationError:
    where = format_location(n.loc) if n.loc else format_location(user_location(3))
    return DifferentiationError(
        f"{n.prim.name} is not differentiable, and the result depends on the differentiation "
        f"inputs through it.\n  at {where}\n  If that is intended, wrap it in "
        "s4.without_derivative(...) so the derivative treats it as a constant.")


def _zeros(aval_node_or_tensor):
    from ..ops.creation import zeros
    n = aval_node_or_tensor
    return zeros(n.shape, dtype=n.dtype, device=n.device)


def _accumulate(cts: dict, node: Node, c: Tensor) -> None:
    prev = cts.get(id(node))
    cts[id(node)] = c if prev is None else prev + c


def backward(outputs: list[Node], out_cts: list[Tensor], marks: list[Node]) -> list:
    """Cotangents of ``marks`` given cotangents of ``outputs`` (None where zero)."""
    from ..ops._core import CONVERT, GET_TUPLE_ELEMENT
    from .rules import sum_to_shape
    mark_ids = {id(m) for m in marks}
    order, depends = _subgraph(outputs, mark_ids)
    cts: dict[int, object] = {}
    for o, c in zip(outputs, out_cts):
        if c is not None and depends.get(id(o)):
            _accumulate(cts, o, c)
    for n in reversed(order):
        if id(n) in mark_ids:
            continue
        ct = cts.pop(id(n), None)
        if ct is None:
            continue
        prim = n.prim
        if prim is GET_TUPLE_ELEMENT:
            parent = n.inputs[0]
            slots = cts.setdefault(id(parent), [None] * len(parent.avals))
            i = dict(n.params)["index"]
            slots[i] = ct if slots[i] is None else slots[i] + ct
            continue
        if prim.multiple_results:
            from ..ops.creation import zeros
            ct = tuple(c if c is not None else zeros(a.shape, dtype=a.dtype, device=n.device)
                       for c, a in zip(ct, n.avals))
        if prim is CONVERT and not dt.is_floating(n.inputs[0].dtype) and \
                depends.get(id(n.inputs[0])):
            raise _not_differentiable(n.inputs[0], n)
        if not prim.differentiable:
            raise _not_a_derivative(n)
        if prim.vjp is None:
            where = format_location(n.loc) if n.loc else "an op recorded by the function"
            raise DifferentiationError(
                f"{prim.name} has no derivative rule (reverse mode), needed for {where}; wrap "
                "its result in s4.without_derivative(...) or define one with s4.derivative")
        params = dict(n.params)
        if n.aux is not None:
            params["aux"] = n.aux
        inputs = [wrap(i) for i in n.inputs]
        out = _outputs_of(n)
        in_cts = prim.vjp(ct, *inputs, out=out, **params)
        for i, c in zip(n.inputs, in_cts):
            if c is None or not depends.get(id(i)):
                continue
            if not dt.is_floating(i.dtype):
                continue          # an index or predicate: no derivative flows there
            if c.shape != i.shape:
                c = sum_to_shape(c, i.shape)
            if c.dtype != i.dtype:
                c = c.astype(i.dtype)
            _accumulate(cts, i, c)
    return [cts.get(id(m)) for m in marks]


def _outputs_of(n: Node):
    from ..ops._core import GET_TUPLE_ELEMENT
    if not n.prim.multiple_results:
        return wrap(n)
    return tuple(wrap(graph.bind(GET_TUPLE_ELEMENT, (n,), (("index", i),), a.shape, a.dtype,
                                 a.weak, n.device)) for i, a in enumerate(n.avals))


def forward(outputs: list[Node], marks: list[Node], tangents: list) -> list:
    """Tangents of ``outputs`` given tangents of ``marks`` (None where zero)."""
    from ..ops._core import GET_TUPLE_ELEMENT
    mark_ids = {id(m) for m in marks}
    order, depends = _subgraph(outputs, mark_ids)
    tan: dict[int, object] = {id(m): t for m, t in zip(marks, tangents) if t is not None}
    for n in order:
        if id(n) in mark_ids:
            continue
        prim = n.prim
        if prim is GET_TUPLE_ELEMENT:
            t = tan.get(id(n.inputs[0]))
            if t is not None and t[dict(n.params)["index"]] is not None:
                tan[id(n)] = t[dict(n.params)["index"]]
            continue
        ts = [tan.get(id(i)) if dt.is_floating(i.dtype) or i.dtype is None else None
              for i in n.inputs]
        if all(t is None for t in ts):
            continue
        float_out = any(dt.is_floating(a.dtype) for a in n.avals) if prim.multiple_results \
            else dt.is_floating(n.dtype)
        if not float_out:
            continue              # integer/bool results (comparisons, argmax): no tangent
        if not prim.differentiable:
            raise _not_a_derivative(n)
        if prim.jvp is None:
            where = format_location(n.loc) if n.loc else "an op recorded by the function"
            raise DifferentiationError(
                f"{prim.name} has no derivative rule (forward mode), needed for {where}")
        params = dict(n.params)
        if n.aux is not None:
            params["aux"] = n.aux
        t = prim.jvp(ts, *[wrap(i) for i in n.inputs], out=_outputs_of(n), **params)
        if t is None:
            continue
        if not prim.multiple_results and n.dtype is not None and not dt.is_floating(n.dtype):
            continue
        if not prim.multiple_results:
            if t.shape != n.shape:
                from ..ops.shape import broadcast_to
                t = broadcast_to(t, n.shape)
            if t.dtype != n.dtype:
                t = t.astype(n.dtype)
        tan[id(n)] = t
    return [tan.get(id(o)) for o in outputs]


def warn_if_constant(result_nodes: list[Node], marks: list[Node], what: str) -> bool:
    """Warn (S4TF's diagnostic) when the result does not depend on the differentiation inputs."""
    _, depends = _subgraph(result_nodes, {id(m) for m in marks})
    if any(depends.get(id(o)) for o in result_nodes):
        return False
    warnings.warn(
        f"{what}: the result does not depend on the differentiation arguments; its derivative "
        f"is always zero (at {format_location(user_location(3))})", UserWarning, stacklevel=4)
    return True
