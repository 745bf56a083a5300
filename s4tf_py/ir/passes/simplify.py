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


def run(fn: Function) -> tuple[Function, bool]:
    subst: dict = {}
    producer: dict = {}
    eqns = []
    changed = False
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
