"""Common-subexpression elimination.

Two equations are merged when they apply the same primitive with the same params to the same
operands and give results of the same types; later uses of the second one's results read the
first one's. Params compare by value *and* Python type (``1`` is not ``1.0`` nor ``True``,
``0.0`` is not ``-0.0``, ``nan`` equals ``nan``), so equations with different params are never
merged. Effectful primitives (``extra["effect"]``; none today, random numbers are stateless) are
never merged, nor are primitives marked ``extra["no_cse"]`` (``optimization_barrier``). Equal
constants merge too (``constant`` is an ordinary nullary primitive), and so do equal control-flow
equations (their bodies compare by structure).
"""
from __future__ import annotations

from ..function import Function
from ._util import canon_params, is_opaque, rebuild, substitute


def run(fn: Function) -> tuple[Function, bool]:
    subst: dict = {}
    table: dict = {}
    eqns = []
    for e in fn.eqns:
        e = substitute(e, subst)
        if not is_opaque(e.prim):
            key = (e.prim.name, canon_params(e.params), tuple(map(id, e.inputs)),
                   tuple(o.aval for o in e.outs))
            try:
                prev = table.get(key)
            except TypeError:            # an unhashable param: leave the equation alone
                prev, key = None, None
            if prev is not None:
                for o, p in zip(e.outs, prev.outs):
                    subst[o] = p
                continue
            if key is not None:
                table[key] = e
        eqns.append(e)
    return rebuild(fn, eqns, subst), bool(subst)


def cse(fn: Function) -> Function:
    """``fn`` with repeated computations merged (a new Function; ``fn`` is not changed)."""
    return run(fn)[0]
