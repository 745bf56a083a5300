"""Merge scans that run the same carry recurrence over the same operands into one scan.

A scan's reverse-mode rule first scans the body again to recover the carry entering every step
(:func:`s4tf_py.ops.control._scan_vjp`), then runs the pullbacks backwards. That second forward
scan starts from the same initial carry, reads the same ``xs`` and computes the same carries as
the forward scan it differentiates; only its per-step outputs differ. This pass gives such a
pair one scan whose body emits both sets of per-step outputs, so a training step runs the
recurrence forward once instead of twice.

Two ``scan`` equations merge when they have the same ``length``, ``reverse``, carry and ``xs``
operands (the same values, in order), the second one's captured operands are among the
first's, and, once the two bodies share their parameters and common subexpressions are merged
(:mod:`.cse`), they compute the very same carry outputs. The merged equation takes the first
one's place; the second one's carries become the first one's, and its per-step outputs come
out of the merged scan.
"""
from __future__ import annotations

from ..function import Eqn, Function
from ._util import rebuild, substitute


def run(fn: Function) -> tuple[Function, bool]:
    scans = [e for e in fn.eqns if e.prim.name == "scan"]
    if len(scans) < 2:
        return fn, False
    replaced: dict = {}                 # id(original eqn) -> merged eqn (or None: removed)
    subst: dict = {}
    for i, first in enumerate(scans):
        if id(first) in replaced:
            continue
        cur = first
        for second in scans[i + 1:]:
            if id(second) in replaced:
                continue
            merged = _merge(cur, second)
            if merged is None:
                continue
            n_carry = dict(second.params)["n_carry"]
            subst.update(zip(second.outs[:n_carry], cur.outs[:n_carry]))
            cur = merged
            replaced[id(second)] = None
        if cur is not first:
            replaced[id(first)] = cur
    if not replaced:
        return fn, False
    eqns = []
    for e in fn.eqns:
        if id(e) in replaced:
            e = replaced[id(e)]
            if e is None:
                continue
        eqns.append(substitute(e, subst))
    return rebuild(fn, eqns, subst), True


def _merge(a: Eqn, b: Eqn) -> Eqn | None:
    """One scan computing ``a``'s outputs and ``b``'s per-step outputs, or None."""
    from ..region import Region
    from .cse import run as cse_run
    from .dce import run as dce_run
    pa, pb = a.params_dict(), b.params_dict()
    if any(pa[k] != pb[k] for k in ("n_carry", "n_xs", "length", "reverse")):
        return None
    nc, nx = pa["n_carry"], pa["n_xs"]
    lead = nc + nx
    if any(u is not v for u, v in zip(a.inputs[:lead], b.inputs[:lead])):
        return None
    where = {}
    for j, v in enumerate(a.inputs[lead:]):
        where.setdefault(v, j)
    if any(v not in where for v in b.inputs[lead:]):
        return None
    fa, fb = pa["body"].fn, pb["body"].fn
    rename = dict(zip(fb.params[:lead], fa.params[:lead]))
    for p, v in zip(fb.params[lead:], b.inputs[lead:]):
        rename[p] = fa.params[lead + where[v]]
    b_outs = [rename.get(o, o) for o in fb.outputs]
    both = Function(fa.params, list(fa.eqns) + [substitute(e, rename) for e in fb.eqns],
                    list(fa.outputs) + b_outs, name=fa.name)
    both, _ = cse_run(both)
    n_a = len(fa.outputs)
    if any(u is not v for u, v in zip(both.outputs[:nc], both.outputs[n_a:n_a + nc])):
        return None                       # not the same recurrence
    body, _ = dce_run(Function(both.params, both.eqns,
                               both.outputs[:n_a] + both.outputs[n_a + nc:], name=fa.name))
    params = tuple((k, Region(body) if k == "body" else v) for k, v in a.params)
    return Eqn(a.prim, a.inputs, params, tuple(a.outs) + tuple(b.outs[nc:]), a.loc)
