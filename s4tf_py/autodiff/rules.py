"""Helpers for writing derivative rules beside their primitives (the extension surface).

Rules are written with ordinary s4tf_py ops, so the derivative of a program is again a program
in the IR: it is optimized, compiled and can itself be differentiated.

* :func:`unary` — an elementwise primitive from its derivative ``d(x, out)``: VJP ``ct * d``,
  JVP ``t * d``.
* :func:`binary` — an elementwise binary primitive from its two partial derivatives.
* :func:`linear` — a primitive linear in its (non-index) operands: the JVP applies the same
  primitive to the tangents.
* :func:`zero_derivative` — piecewise-constant functions (floor, sign ...): zero cotangents.

Build masks with ``s4.where(mask, 1.0, 0.0)``, not ``mask.astype(float)``: a float cast of a
bool or integer that depends on the differentiation inputs is what the reverse pass diagnoses
as "not differentiable" (argmax, comparisons and integer casts in user code).

Broadcasting is *not* handled by rules: the reverse pass sums every cotangent back to its
operand's shape once, centrally (:func:`sum_to_shape`).
"""
from __future__ import annotations

from ..ir.registry import Primitive, defjvp, defvjp


def _ops():
    from .. import ops
    return ops


def sum_to_shape(ct, shape):
    """Sum ``ct`` over the axes that numpy broadcasting added to reach ``ct.shape``."""
    if ct.shape == tuple(shape):
        return ct
    o = _ops()
    nd = ct.ndim - len(shape)
    axes = tuple(range(nd)) + tuple(nd + k for k, d in enumerate(shape)
                                    if d == 1 and ct.shape[nd + k] != 1)
    if axes:
        ct = o.sum(ct, axis=axes)
    return o.reshape(ct, tuple(shape)) if ct.shape != tuple(shape) else ct


def unary(prim: Primitive, d):
    """Rules of an elementwise function whose derivative is ``d(x, out)`` (a Tensor)."""
    defvjp(prim, lambda ct, x, *, out, **p: (ct * d(x, out),))
    defjvp(prim, lambda ts, x, *, out, **p: None if ts[0] is None else ts[0] * d(x, out))


def binary(prim: Primitive, da, db):
    """Rules of an elementwise binary function with partials ``da(a, b, out)``, ``db(a, b, out)``."""
    def vjp(ct, a, b, *, out, **p):
        return (ct * da(a, b, out) if da is not None else None,
                ct * db(a, b, out) if db is not None else None)

    def jvp(ts, a, b, *, out, **p):
        ta, tb = ts
        r = None
        if ta is not None and da is not None:
            r = ta * da(a, b, out)
        if tb is not None and db is not None:
            r = tb * db(a, b, out) if r is None else r + tb * db(a, b, out)
        return r
    defvjp(prim, vjp)
    defjvp(prim, jvp)


def zero_derivative(prim: Primitive):
    """Piecewise-constant functions: the derivative is zero almost everywhere."""
    defvjp(prim, lambda ct, *xs, out, **p: (None,) * len(xs))
    defjvp(prim, lambda ts, *xs, out, **p: None)


def rebind(prim: Primitive, operands, params: dict):
    """Apply ``prim`` with ``params`` to Tensors (typed by its shape rule)."""
    from ..ops._core import bind_op
    return bind_op(prim, list(operands), tuple(params.items()))


def linear(prim: Primitive, primal_args=()):
    """JVP of a primitive linear in its operands except ``primal_args`` (indices, predicates)."""
    def jvp(ts, *xs, out, **p):
        if all(t is None for i, t in enumerate(ts) if i not in primal_args):
            return None
        o = _ops()
        operands = [x if i in primal_args else (t if t is not None else o.zeros_like(x))
                    for i, (x, t) in enumerate(zip(xs, ts))]
        return rebind(prim, operands, p)
    defjvp(prim, jvp)
