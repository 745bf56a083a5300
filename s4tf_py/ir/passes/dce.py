"""Dead-code elimination: drop equations none of whose results reach an output.

Parameters are never removed (the signature is what callers pass buffers to), outputs keep their
order, and equations of effectful primitives (``extra["effect"]``, none today) are kept.
"""
from __future__ import annotations

from ..function import Function
from ._util import has_effect, rebuild


def run(fn: Function) -> tuple[Function, bool]:
    live = set(fn.outputs)
    keep = []
    for e in reversed(fn.eqns):
        if has_effect(e.prim) or any(o in live for o in e.outs):
            keep.append(e)
            live.update(e.inputs)
    keep.reverse()
    return rebuild(fn, keep), len(keep) != len(fn.eqns)


def dce(fn: Function) -> Function:
    """``fn`` without its dead equations (a new Function; ``fn`` is not changed)."""
    return run(fn)[0]
