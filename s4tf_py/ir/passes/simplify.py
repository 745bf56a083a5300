"""Algebraic simplification.

Rewrites (each applies only when the replacement has exactly the replaced value's type — shape,
dtype and weakness — so outputs keep their types and a broadcasting ``x * 1`` where the ``1``
is bigger than ``x`` stays):

====================================  ==========================================================
``x * 1``, ``1 * x``, ``x / 1``       ``x``  (``1`` is a ``constant`` eqn of value 1)
``x + 0``, ``0 + x``, ``x - 0``       ``x``  (as XLA does; ``-0.0 + 0`` would give ``+0.0``)
``neg(neg(x))``                       ``x``
``transpose(x, identity)``            ``x``
``transpose(transpose(x, p), q)``     ``transpose(x, p∘q)``, or ``x`` when that is the identity
``reshape(x, x.shape)``               ``x``
``reshape(reshape(x, s), t)``         ``reshape(x, t)``, or ``x`` when ``t`` is ``x``'s shape
``rev(rev(x, a), a)``                 ``x``
``convert(x, x.dtype)``               ``x``
``broadcast_to(x, x.shape)``          ``x``
``select(c, a, b)``, c constant       ``a`` or ``b`` (or ``broadcast_to`` of it when only the
                                      shape differs and the result is strong)
``select(p, a, a)``                   ``a``
``identity(x)``                       ``x``  (an autodiff mark; a copy when executed)
``dot_general(transpose(x), y)``      ``dot_general(x, y)`` with the dimension numbers mapped
                                      through the permutation (and the same for ``y``), when
                                      the free dimensions keep their order: BLAS takes
                                      transposed operands for free, a transpose is a copy
``transpose(dot_general(a, b))``      ``dot_general(b, a)`` when the permutation only swaps
                                      the two operands' free blocks and the product has no
                                      other use (a VJP's ``(x^T g)^T`` becomes ``g^T x``)
``custom_vjp(v..., args...)``         ``v...``  (forward it is the identity on its values)
====================================  ==========================================================

``stop_gradient`` and ``with_derivative`` stay (they mean something to a later
differentiation), and nothing is rewritten through ``optimization_barrier``.

The pass never changes an equation's result ``Var``: a rewritten equation keeps its result, a
removed one has its uses (and any output) renamed to the replacement.
"""
from __future__ import annotations

from ..function import Eqn, Function
from ..registry import REGISTRY
from ._util import is_opaque, rebuild, same_type, substitute


def _const_value(v, producer):
    e = producer.get(v)
    if e is None or e.prim.name != "constant":
        return None
    return dict(e.params).get("value")


def _is(value, target) -> bool:
    return value is not None and not isinstance(value, bool) and \
        isinstance(value, (int, float)) and value == target


def _params_with(e, name, value) -> tuple:
    return tuple((k, value if k == name else v) for k, v in e.params)


def _rewrite(e: Eqn, producer: dict):
    """A Var that replaces ``e``'s single result, a new Eqn for it, or None."""
    name = e.prim.name
    out = e.outs[0]
    ins = e.inputs
    p = dict(e.params)

    def same(v):
        return v if same_type(out, v) else None

    def by(v):
        return producer.get(v)

    if name == "identity" and len(ins) == 1:
        return same(ins[0])
    if name == "mul" and len(ins) == 2:
        a, b = ins
        if _is(_const_value(b, producer), 1) and same(a):
            return a
        if _is(_const_value(a, producer), 1) and same(b):
            return b
    elif name == "add" and len(ins) == 2:
        a, b = ins
        if _is(_const_value(b, producer), 0) and same(a):
            return a
        if _is(_const_value(a, producer), 0) and same(b):
            return b
    elif name == "sub" and len(ins) == 2:
        if _is(_const_value(ins[1], producer), 0) and same(ins[0]):
            return ins[0]
    elif name == "div" and len(ins) == 2:
        if _is(_const_value(ins[1], producer), 1) and same(ins[0]):
            return ins[0]
    elif name == "neg" and len(ins) == 1:
        inner = by(ins[0])
        if inner is not None and inner.prim.name == "neg" and same(inner.inputs[0]):
            return inner.inputs[0]
    elif name == "transpose" and len(ins) == 1:
        perm = tuple(p["permutation"])
        if perm == tuple(range(len(perm))):
            return same(ins[0])
        inner = by(ins[0])
        if inner is not None and inner.prim.name == "transpose":
            first = tuple(dict(inner.params)["permutation"])
            composed = tuple(first[i] for i in perm)
            x = inner.inputs[0]
            if composed == tuple(range(len(composed))):
                return same(x)
            return Eqn(e.prim, (x,), _params_with(e, "permutation", composed), e.outs, e.loc)
    elif name == "reshape" and len(ins) == 1:
        sizes = tuple(p["new_sizes"])
        if sizes == tuple(ins[0].aval.shape):
            return same(ins[0])
        inner = by(ins[0])
        if inner is not None and inner.prim.name == "reshape":
            x = inner.inputs[0]
            if sizes == tuple(x.aval.shape):
                return same(x)
            return Eqn(e.prim, (x,), e.params, e.outs, e.loc)
    elif name == "rev" and len(ins) == 1:
        inner = by(ins[0])
        if inner is not None and inner.prim.name == "rev" and \
                sorted(dict(inner.params)["axes"]) == sorted(p["axes"]):
            return same(inner.inputs[0])
        if not tuple(p["axes"]):
            return same(ins[0])
    elif name == "convert" and len(ins) == 1:
        if p.get("dtype") == ins[0].aval.dtype:
            return same(ins[0])
    elif name == "dot_general" and len(ins) == 2:
        return _dot_through_transpose(e, producer)
    elif name == "broadcast_to" and len(ins) == 1:
        if tuple(p["shape"]) == tuple(ins[0].aval.shape):
            return same(ins[0])
    elif name == "select" and len(ins) == 3:
        c, a, b = ins
        cv = _const_value(c, producer)
        chosen = None
        if isinstance(cv, bool):
            chosen = a if cv else b
        elif a is b:
            chosen = a
        if chosen is not None:
            if same(chosen):
                return chosen
            bc = REGISTRY.get("broadcast_to")
            if (bc is not None and not out.aval.weak and chosen.aval.dtype == out.aval.dtype
                    and chosen.aval.shape != out.aval.shape):
                try:
                    want = bc.shape_rule(chosen.aval, shape=tuple(out.aval.shape))
                except Exception:  # noqa: BLE001
                    want = None
                if want == out.aval:
                    return Eqn(bc, (chosen,), (("shape", tuple(out.aval.shape)),), e.outs, e.loc)
    return None


def _dot_through_transpose(e: Eqn, producer: dict):
    """``dot_general`` reading an operand's transpose reads the operand itself instead."""
    p = dict(e.params)
    ins = list(e.inputs)
    changed = False
    for side, (c_key, b_key) in enumerate((("lhs_contract", "lhs_batch"),
                                           ("rhs_contract", "rhs_batch"))):
        t = producer.get(ins[side])
        if t is None or t.prim.name != "transpose":
            continue
        perm = tuple(dict(t.params)["permutation"])
        used = set(p[c_key]) | set(p[b_key])
        free = [perm[i] for i in range(len(perm)) if i not in used]
        if free != sorted(free):
            continue                      # the result's free dimensions would come out permuted
        p[c_key] = tuple(perm[i] for i in p[c_key])
        p[b_key] = tuple(perm[i] for i in p[b_key])
        ins[side] = t.inputs[0]
        changed = True
    if not changed:
        return None
    return Eqn(e.prim, tuple(ins), tuple((k, p[k]) for k, _ in e.params), e.outs, e.loc)


def _transposed_dot(e: Eqn, producer: dict, uses: dict):
    """``transpose(dot_general(a, b), perm)`` as ``dot_general(b, a)`` when ``perm`` swaps the
    free blocks (and nothing else reads the product)."""
    d = producer.get(e.inputs[0])
    if d is None or d.prim.name != "dot_general" or uses.get(e.inputs[0], 0) != 1:
        return None
    p = dict(d.params)
    a, b = d.inputs
    nb = len(p["lhs_batch"])
    na = a.aval.ndim - nb - len(p["lhs_contract"])
    nf = b.aval.ndim - nb - len(p["rhs_contract"])
    want = tuple(range(nb)) + tuple(range(nb + na, nb + na + nf)) + tuple(range(nb, nb + na))
    if tuple(dict(e.params)["permutation"]) != want:
        return None
    swapped = {"lhs_contract": p["rhs_contract"], "rhs_contract": p["lhs_contract"],
               "lhs_batch": p["rhs_batch"], "rhs_batch": p["lhs_batch"]}
    params = tuple((k, swapped.get(k, v)) for k, v in d.params)
    return Eqn(d.prim, (b, a), params, e.outs, e.loc)


def run(fn: Function) -> tuple[Function, bool]:
    subst: dict = {}
    producer: dict = {}
    eqns = []
    changed = False
    uses: dict = {}
    for e in fn.eqns:
        for v in e.inputs:
            uses[v] = uses.get(v, 0) + 1
    for v in fn.outputs:
        uses[v] = uses.get(v, 0) + 1
    for e in fn.eqns:
        e = substitute(e, subst)
        if is_opaque(e.prim):
            pass
        elif e.prim.name == "custom_vjp":
            # forward, the identity on its first n_out operands (the rest feed its pullback)
            n_out = dict(e.params).get("n_out", 0)
            fwd = [(o, v) for o, v in zip(e.outs[:n_out], e.inputs[:n_out]) if same_type(o, v)]
            if len(fwd) == len(e.outs):
                for o, v in fwd:
                    subst[o] = v
                changed = True
                continue
        elif len(e.outs) == 1:
            r = _rewrite(e, producer)
            if r is None and e.prim.name == "transpose":
                r = _transposed_dot(e, producer, uses)
            if r is not None:
                changed = True
                if isinstance(r, Eqn):
                    e = r
                else:
                    subst[e.outs[0]] = r
                    continue
        for o in e.outs:
            producer[o] = e
        eqns.append(e)
    return rebuild(fn, eqns, subst), changed


def simplify(fn: Function) -> Function:
    """``fn`` with the rewrites above applied (a new Function; ``fn`` is not changed)."""
    return run(fn)[0]
