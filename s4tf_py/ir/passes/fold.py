"""Constant folding.

An equation whose operands are all *known* — results of nullary primitives (``constant``,
``iota``) or of equations folded before it — is evaluated at compile time with the primitive's
numpy ``impl`` (the reference semantics every backend matches).

Folding policy:

* **Uniform results fold.** When every element of a result is the same (bit for bit, so ``-0.0``
  and NaN are handled exactly), the equation becomes ``constant(value, dtype[, shape][, weak])``
  with the original result value (``Var``) and type. A scalar result is always uniform, so any
  constant computation that ends in a scalar folds.
* **Non-uniform results are not folded.** The registry has no primitive holding an arbitrary
  array literal and this pass adds none, so such an equation stays as it is. Its value is still
  *known* to the pass when it has at most :data:`FOLD_LIMIT` elements, so a later equation whose
  result is uniform (a reduction of an ``iota``, a comparison that comes out all-true) folds.
* **Cost is bounded.** Elementwise primitives (and shape movers: reshape, transpose,
  broadcast_to, rev, slice, and pad/concatenate of equal fills) on uniform operands are evaluated
  on one element, whatever the shapes, so ``zeros((4096, 4096)) + 1`` folds in O(1). Any other
  evaluation materializes its operands and results only when each has at most
  :data:`FOLD_LIMIT` elements.
* **Run-time errors stay at run time.** An ``impl`` that raises (``convert`` of NaN to an integer,
  ``max`` of an empty axis) leaves the equation unfolded, so the error is raised when the graph
  runs, with the user's line. Floating-point warnings are silenced while folding.
* A multiple-result equation folds only when all its results are uniform.
* Never evaluated: effectful primitives (``extra["effect"]``; none today), primitives the passes
  must not see through (``extra["no_cse"]``: ``optimization_barrier``, whose result therefore
  stays unknown), and control flow (equations with a nested Region in their params: a
  ``while_loop`` on constants could run for any time at compile time).
"""
from __future__ import annotations

import numpy as np

from ... import dtypes as dt
from ..function import Eqn, Function
from ..registry import REGISTRY
from ._util import is_opaque, rebuild, regions_in

#: most elements materialized for one operand or result while folding non-uniform values
FOLD_LIMIT = 4096

_UNIFORM_PRESERVING = frozenset({"reshape", "transpose", "broadcast_to", "rev", "slice",
                                 "reduce_max", "reduce_min"})
_ELEMENTWISE_NAMED = frozenset({"select", "convert", "stop_gradient"})


def _is_elementwise(prim) -> bool:
    return "kinds" in prim.extra or prim.name in _ELEMENTWISE_NAMED


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def uniform_scalar(a: np.ndarray):
    """The 0-d array of ``a``'s single repeated value, or None when ``a`` is not uniform."""
    a = np.asarray(a)
    if a.size == 0:
        return np.zeros((), a.dtype)
    flat = np.ascontiguousarray(a).reshape(-1)
    bits = flat.view(f"u{a.dtype.itemsize}") if a.dtype.itemsize in (1, 2, 4, 8) else None
    if bits is None:
        return None
    if a.size > 1 and not (bits == bits[0]).all():
        return None
    return flat[:1].reshape(()).copy()


def python_value(s: np.ndarray):
    """A 0-d array as the Python scalar a ``constant`` param holds (bool, int or float)."""
    d = s.dtype
    if d == dt.bool_:
        return bool(s)
    if dt.is_integer(d):
        return int(s)
    return float(s.astype(np.float64))


def constant_eqn(out, scalar: np.ndarray) -> Eqn:
    """``out = constant(...)`` filling ``out``'s type with ``scalar``."""
    aval = out.aval
    params = [("value", python_value(scalar)), ("dtype", aval.dtype)]
    if aval.shape != ():
        params.append(("shape", tuple(aval.shape)))
    if aval.weak:
        params.append(("weak", True))
    return Eqn(REGISTRY["constant"], (), tuple(params), (out,))


class _Known:
    """A value known at compile time: a uniform fill, an array, or a nullary equation."""

    __slots__ = ("scalar", "array", "eqn", "aval")

    def __init__(self, aval, scalar=None, array=None, eqn=None):
        self.aval, self.scalar, self.array, self.eqn = aval, scalar, array, eqn

    def materialize(self):
        if self.array is not None:
            return self.array
        if _size(self.aval.shape) > FOLD_LIMIT:
            return None
        if self.scalar is not None:
            self.array = np.full(self.aval.shape, self.scalar, dtype=self.aval.dtype)
        else:
            e = self.eqn
            try:
                with np.errstate(all="ignore"):
                    r = np.asarray(e.prim.impl(**dict(e.params)))
            except Exception:  # noqa: BLE001 - not foldable; the backend will run it
                return None
            if r.shape != self.aval.shape or r.dtype != self.aval.dtype:
                return None
            self.array = r
        return self.array


def _check(results, outs):
    """``results`` as arrays when each matches its result's type, else None."""
    arrs = []
    for r, o in zip(results, outs):
        r = np.asarray(r)
        if r.shape != tuple(o.aval.shape) or r.dtype != o.aval.dtype:
            return None
        arrs.append(r)
    return arrs


def _evaluate(e, ins: list[_Known]):
    """A list with one ``_Known`` per result of ``e``, or None when it cannot be folded."""
    prim, params, outs = e.prim, dict(e.params), e.outs
    if all(k.scalar is not None for k in ins):
        scalars = [k.scalar for k in ins]
        if _is_elementwise(prim) and len(outs) == 1:
            try:
                with np.errstate(all="ignore"):
                    r = np.asarray(prim.impl(*scalars, **params))
            except Exception:  # noqa: BLE001
                return None
            if r.size != 1 or r.dtype != outs[0].aval.dtype:
                return None
            return [_Known(outs[0].aval, scalar=r.reshape(()))]
        first = scalars[0] if scalars else None
        same = first is not None and all(
            s.dtype == first.dtype and s.tobytes() == first.tobytes() for s in scalars)
        if (prim.name in _UNIFORM_PRESERVING and len(ins) == 1 and
                (not prim.name.startswith("reduce") or _size(ins[0].aval.shape) > 0)) or \
                (prim.name in ("pad", "concatenate") and same):
            if len(outs) == 1 and outs[0].aval.dtype == first.dtype:
                return [_Known(outs[0].aval, scalar=first)]
    if any(_size(o.aval.shape) > FOLD_LIMIT for o in outs):
        return None
    arrays = [k.materialize() for k in ins]
    if any(a is None for a in arrays):
        return None
    try:
        with np.errstate(all="ignore"):
            r = prim.impl(*arrays, **params)
    except Exception:  # noqa: BLE001 - leave it to run (and fail) at run time
        return None
    results = _check(tuple(r) if prim.multiple_results else (r,), outs)
    if results is None or len(results) != len(outs):
        return None
    known = []
    for a, o in zip(results, outs):
        s = uniform_scalar(a)
        known.append(_Known(o.aval, scalar=s) if s is not None else _Known(o.aval, array=a))
    return known


def run(fn: Function) -> tuple[Function, bool]:
    known: dict = {}
    eqns = []
    changed = False
    for e in fn.eqns:
        if is_opaque(e.prim) or regions_in(e.params):
            eqns.append(e)
            continue
        if e.prim.name == "constant":
            p = dict(e.params)
            out = e.outs[0]
            try:
                s = np.full((), p["value"], dtype=out.aval.dtype)
            except Exception:  # noqa: BLE001 - an odd constant: leave it unknown
                s = None
            if s is not None:
                known[out] = _Known(out.aval, scalar=s)
            eqns.append(e)
            continue
        if not e.inputs:
            if e.prim.nullary and len(e.outs) == 1:
                known[e.outs[0]] = _Known(e.outs[0].aval, eqn=e)
            eqns.append(e)
            continue
        ins = [known.get(v) for v in e.inputs]
        if any(k is None for k in ins):
            eqns.append(e)
            continue
        res = _evaluate(e, ins)
        if res is None:
            eqns.append(e)
            continue
        for o, k in zip(e.outs, res):
            known[o] = k
        if all(k.scalar is not None for k in res):
            eqns.extend(constant_eqn(o, k.scalar) for o, k in zip(e.outs, res))
            changed = True
        else:
            eqns.append(e)
    return rebuild(fn, eqns), changed


def fold(fn: Function) -> Function:
    """``fn`` with constant computations folded (a new Function; ``fn`` is not changed)."""
    return run(fn)[0]
