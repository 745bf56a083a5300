"""Graph-to-graph passes over ``ir.Function`` and the default pipeline.

=============  ==================================================================================
pass           what it does
=============  ==================================================================================
``simplify``   algebraic rewrites: ``x*1``, ``x+0``, ``neg(neg x)``, transpose/reshape chains,
               no-op convert/broadcast/reshape/transpose, ``select`` on a constant predicate
``fold``       evaluates constant computations with the numpy ``impl``; uniform results become
               ``constant`` equations (non-uniform ones stay: see :mod:`.fold` for the policy)
``cse``        merges equations with the same primitive, params (by value and type), operands
``dce``        removes equations whose results reach no output
``scan_merge`` merges scans running the same carry recurrence over the same operands (a scan
               and the re-run its derivative makes to recover the carries)
=============  ==================================================================================

:func:`optimize` also optimizes the bodies of control-flow equations (the Regions in the params
of ``cond``, ``while_loop``, ``scan``), each with the same pipeline. Every pass returns a new
Function and never changes its input (equations and values that do
not change are shared between the two, and are never mutated). Passes keep the parameters (all
of them, in order, even unused ones), the outputs' order and types, and the function's name.

:func:`optimize` is what the executable cache runs before handing a function to a backend.
"""
from __future__ import annotations

from ..function import Eqn, Function
from . import cse as _cse_mod
from . import dce as _dce_mod
from . import fold as _fold_mod
from . import scan_merge as _scan_merge_mod
from . import simplify as _simplify_mod
from .cse import cse
from .dce import dce
from .fold import FOLD_LIMIT, fold
from .simplify import simplify
from ._util import is_opaque, regions_in

__all__ = ["optimize", "simplify", "fold", "cse", "dce", "FOLD_LIMIT", "PIPELINE",
           "MAX_ITERATIONS"]

#: the passes of one round, in order
PIPELINE = (_simplify_mod.run, _fold_mod.run, _cse_mod.run, _scan_merge_mod.run, _dce_mod.run)
#: rounds before :func:`optimize` stops even if a pass still reports a change
MAX_ITERATIONS = 8


def optimize(fn: Function, *, max_iterations: int = MAX_ITERATIONS) -> Function:
    """simplify → fold → cse → scan_merge → dce, repeated until no pass changes anything
    (bounded).

    Returns a new Function computing the same outputs as ``fn`` (``fn`` is not changed).

    >>> import s4tf_py as s4
    >>> fn = s4.trace(lambda x: (x * 1 + 0) * s4.ones((3,)), s4.ones((3,)))
    >>> print(optimize(fn))
    func @lambda(%0: f32[3]) -> (f32[3]) {
      return %0
    }
    """
    cur = _optimize_regions(Function(fn.params, fn.eqns, fn.outputs, name=fn.name),
                            max_iterations)
    for _ in range(max(1, max_iterations)):
        changed = False
        for step in PIPELINE:
            cur, c = step(cur)
            changed = changed or c
        if not changed:
            break
    return cur


def _optimize_value(v, max_iterations):
    from ..region import Region
    if isinstance(v, Region):
        new = optimize(v.fn, max_iterations=max_iterations)
        return v if new.structural_key() == v.fn.structural_key() else Region(new)
    if isinstance(v, tuple):
        items = tuple(_optimize_value(x, max_iterations) for x in v)
        return v if all(a is b for a, b in zip(items, v)) else items
    return v


def _optimize_regions(fn: Function, max_iterations: int) -> Function:
    """``fn`` with the bodies of its control-flow equations (Regions in params) optimized."""
    if not any(regions_in(e.params) for e in fn.eqns):
        return fn
    eqns = []
    for e in fn.eqns:
        if regions_in(e.params) and not is_opaque(e.prim):
            params = tuple((k, _optimize_value(v, max_iterations)) for k, v in e.params)
            if any(a is not b for (_, a), (_, b) in zip(params, e.params)):
                e = Eqn(e.prim, e.inputs, params, e.outs, e.loc)
        eqns.append(e)
    return Function(fn.params, eqns, fn.outputs, name=fn.name)
