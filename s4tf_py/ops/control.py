"""Structured control flow as IR primitives: ``cond``, ``while_loop``, ``scan``.

Python ``if``/``for``/``while`` simply trace the path taken. These primitives are for loops that
must not unroll (a long recurrence compiles to one loop) and for branches on traced values
inside ``s4.compile``. Their bodies are traced once into :class:`~s4tf_py.ir.region.Region`\\ s.

* ``s4.cond(pred, true_fn, false_fn, *operands)`` — differentiable (both modes).
* ``s4.while_loop(cond_fn, body_fn, init)`` — forward only, as in JAX.
* ``s4.scan(f, init, xs, length=None, reverse=False)`` — ``f(carry, x) -> (carry, y)``;
  differentiable in both modes, to any order (the derivative is again a scan).

>>> import s4tf_py as s4
>>> total, partial = s4.scan(lambda c, x: (c + x, c * x), s4.Tensor(0.0), s4.arange(4.0))
>>> total.item(), partial.tolist()
(6.0, [0.0, 0.0, 2.0, 9.0])
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from .. import tree
from ..device import get_default_device
from ..errors import DTypeError, ShapeError, op_error
from ..ir import graph
from ..ir.registry import AVal, defjvp, defvjp, define
from ..ir.region import call_function, trace_region
from ..tensor import Tensor, wrap
from ._core import GET_TUPLE_ELEMENT, to_tensor


def _is_t(v):
    return isinstance(v, Tensor)


def _bind_multi(prim, operands, params, avals):
    device = operands[0]._node.device if operands else get_default_device()
    node = graph.bind_unique(prim, tuple(o._node for o in operands), tuple(params), (), None,
                             False, device)
    node.avals = tuple(avals)
    if prim.record_location:
        from ..errors import user_location
        node.loc = user_location(3)
    return [wrap(graph.bind(GET_TUPLE_ELEMENT, (node,), (("index", i),), a.shape, a.dtype, a.weak,
                            device)) for i, a in enumerate(avals)]


def _avals(ts):
    return [AVal(t.shape, t.dtype, t._node.weak) for t in ts]


# ---- cond ---------------------------------------------------------------------------------------

def _cond_rule(pred, *ops, branches, n_operands, n_captured):
    if pred.dtype != dt.bool_ or pred.shape != ():
        raise DTypeError(f"cond: the predicate must be a bool scalar, got {pred}")
    return tuple(v.aval for v in branches[0].fn.outputs)


def _cond_impl(pred, *ops, branches, n_operands, n_captured):
    operands = ops[:n_operands]
    cap_false = ops[n_operands:n_operands + n_captured[0]]
    cap_true = ops[n_operands + n_captured[0]:]
    if bool(pred):
        return tuple(branches[1].run(*operands, *cap_true))
    return tuple(branches[0].run(*operands, *cap_false))


COND = define("cond", _cond_rule, _cond_impl, multiple_results=True,
              doc="Run branches[1] if pred else branches[0] on the operands.")


def cond(pred, true_fn, false_fn, *operands):
    """``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``; both must return the same
    structure of tensors. A concrete ``pred`` just calls the branch; a traced one records a
    ``cond`` primitive with both branches."""
    pred = to_tensor(pred)
    if pred.shape != () or pred.dtype != dt.bool_:
        if pred.shape == () and pred.dtype != dt.bool_:
            from .math import not_equal
            pred = not_equal(pred, 0)
        else:
            raise op_error(ShapeError, "cond", f"the predicate must be a scalar, got shape "
                           f"{pred.shape}", [pred])
    ops = [to_tensor(o) for o in operands]
    device = pred.device
    rf, cap_f, tree_f = trace_region(lambda *a: false_fn(*a), _avals(ops), device, "false_branch")
    rt, cap_t, tree_t = trace_region(lambda *a: true_fn(*a), _avals(ops), device, "true_branch")
    if tree_f != tree_t or [v.aval for v in rf.fn.outputs] != [v.aval for v in rt.fn.outputs]:
        raise op_error(ShapeError, "cond", "the branches return different structures or types: "
                       f"{[v.aval for v in rt.fn.outputs]} vs {[v.aval for v in rf.fn.outputs]}",
                       [pred])
    outs = _bind_multi(COND, [pred] + ops + [wrap(n) for n in cap_f + cap_t],
                       (("branches", (rf, rt)), ("n_operands", len(ops)),
                        ("n_captured", (len(cap_f), len(cap_t)))),
                       [v.aval for v in rf.fn.outputs])
    return tree.unflatten(tree_f, outs)


def _split_cond(ops, n_operands, n_captured):
    operands = list(ops[:n_operands])
    cap_f = list(ops[n_operands:n_operands + n_captured[0]])
    cap_t = list(ops[n_operands + n_captured[0]:])
    return operands, cap_f, cap_t


def _cond_vjp(ct, pred, *ops, out, branches, n_operands, n_captured):
    from ..autodiff.api import value_with_pullback
    operands, cap_f, cap_t = _split_cond(ops, n_operands, n_captured)
    diff = [dt.is_floating(o.dtype) for o in ops]

    def branch_bwd(region, caps_slice):
        def bwd(*args):
            xs, cts = list(args[:len(ops)]), list(args[len(ops):])
            d_idx = [i for i in range(len(ops)) if diff[i]]

            def f(*d):
                full = list(xs)
                for i, v in zip(d_idx, d):
                    full[i] = v
                inputs = full[:n_operands] + full[caps_slice]
                return tuple(call_function(region.fn, inputs))
            at = tuple(xs[i] for i in d_idx)
            _, pb = value_with_pullback(at, f)
            g = pb(tuple(cts))
            return tuple(g)
        return bwd
    nf = n_operands + n_captured[0]
    bwd_f = branch_bwd(branches[0], slice(n_operands, nf))
    bwd_t = branch_bwd(branches[1], slice(nf, len(ops)))
    res = cond(pred, bwd_t, bwd_f, *ops, *ct)
    it = iter(res)
    return (None,) + tuple(next(it) if d else None for d in diff)


def _cond_jvp(ts, pred, *ops, out, branches, n_operands, n_captured):
    from ..autodiff.api import value_with_differential
    from .creation import zeros_like
    tangents = [t if t is not None else zeros_like(o) for t, o in zip(ts[1:], ops)]
    diff = [dt.is_floating(o.dtype) for o in ops]
    nf = n_operands + n_captured[0]

    def branch_fwd(region, caps_slice):
        def fwd(*args):
            xs, tv = list(args[:len(ops)]), list(args[len(ops):])
            d_idx = [i for i in range(len(ops)) if diff[i]]

            def f(*d):
                full = list(xs)
                for i, v in zip(d_idx, d):
                    full[i] = v
                return tuple(call_function(region.fn, full[:n_operands] + full[caps_slice]))
            _, dfn = value_with_differential(tuple(xs[i] for i in d_idx), f)
            return tuple(dfn(tuple(tv[i] for i in d_idx)))
        return fwd
    return tuple(cond(pred, branch_fwd(branches[1], slice(nf, len(ops))),
                      branch_fwd(branches[0], slice(n_operands, nf)), *ops, *tangents))


defvjp(COND, _cond_vjp)
defjvp(COND, _cond_jvp)


# ---- while_loop ------------------------------------------------------------------------------

def _while_rule(*ops, cond_fn, body, n_carry, n_cond_captured):
    return tuple(v.aval for v in body.fn.outputs)


def _while_impl(*ops, cond_fn, body, n_carry, n_cond_captured):
    carry = list(ops[:n_carry])
    cap_c = ops[n_carry:n_carry + n_cond_captured]
    cap_b = ops[n_carry + n_cond_captured:]
    while bool(cond_fn.run(*carry, *cap_c)[0]):
        carry = body.run(*carry, *cap_b)
    return tuple(carry)


WHILE = define("while_loop", _while_rule, _while_impl, multiple_results=True,
               differentiable=False,
               doc="Repeat body while cond holds (forward only, as JAX's while_loop).")


def while_loop(cond_fn, body_fn, init_val):
    """Repeat ``body_fn`` on the carry while ``cond_fn(carry)`` is true. Not differentiable
    (use :func:`scan` with a fixed length for that), as in JAX."""
    leaves, td = tree.flatten(init_val, is_leaf=_is_t)
    init = [to_tensor(v) for v in leaves]
    device = init[0].device if init else get_default_device()

    def flat_call(fn):
        return lambda *xs: fn(tree.unflatten(td, list(xs)))
    rc, cap_c, _ = trace_region(flat_call(cond_fn), _avals(init), device, "cond")
    outs_c = rc.fn.outputs
    if len(outs_c) != 1 or outs_c[0].aval.shape != () or outs_c[0].aval.dtype != dt.bool_:
        raise op_error(DTypeError, "while_loop", "cond_fn must return a bool scalar", init)
    rb, cap_b, tree_b = trace_region(flat_call(body_fn), _avals(init), device, "body")
    if [v.aval for v in rb.fn.outputs] != _avals(init):
        raise op_error(ShapeError, "while_loop", "body_fn must return the carry's structure and "
                       f"types {_avals(init)}, got {[v.aval for v in rb.fn.outputs]}", init)
    outs = _bind_multi(WHILE, init + [wrap(n) for n in cap_c + cap_b],
                       (("cond_fn", rc), ("body", rb), ("n_carry", len(init)),
                        ("n_cond_captured", len(cap_c))), _avals(init))
    return tree.unflatten(td, outs)


# ---- scan ---------------------------------------------------------------------------------------

def _scan_rule(*ops, body, n_carry, n_xs, length, reverse):
    outs = body.fn.outputs
    carry = tuple(v.aval for v in outs[:n_carry])
    ys = tuple(AVal((length,) + v.aval.shape, v.aval.dtype, False) for v in outs[n_carry:])
    return carry + ys


def _scan_impl(*ops, body, n_carry, n_xs, length, reverse):
    carry = list(ops[:n_carry])
    xs = ops[n_carry:n_carry + n_xs]
    captured = ops[n_carry + n_xs:]
    ys = None
    steps = range(length - 1, -1, -1) if reverse else range(length)
    for i in steps:
        out = body.run(*carry, *[x[i] for x in xs], *captured)
        carry = out[:n_carry]
        if ys is None:
            ys = [np.empty((length,) + np.shape(y), dtype=np.asarray(y).dtype) for y in out[n_carry:]]
        for buf, y in zip(ys, out[n_carry:]):
            buf[i] = y
    if ys is None:
        ys = [np.zeros((0,) + v.aval.shape, dtype=v.aval.dtype) for v in body.fn.outputs[n_carry:]]
    return tuple(carry) + tuple(ys)


SCAN = define("scan", _scan_rule, _scan_impl, multiple_results=True,
              doc="carry, ys = scan(body, init, xs): one body trace, `length` iterations.")


def scan(f, init, xs=None, length=None, reverse=False):
    """``f(carry, x) -> (carry, y)`` over the leading axis of ``xs``; returns ``(carry, ys)``.

    The body is traced once: a loop of any length is one primitive, not an unrolled graph.
    ``xs`` may be None (then ``length`` is required) or any structure of tensors.
    """
    c_leaves, c_tree = tree.flatten(init, is_leaf=_is_t)
    carry = [to_tensor(v) for v in c_leaves]
    x_leaves, x_tree = tree.flatten(xs, is_leaf=_is_t) if xs is not None else ([], None)
    xs_t = [to_tensor(v) for v in x_leaves]
    lengths = {x.shape[0] for x in xs_t if x.ndim}
    if any(x.ndim == 0 for x in xs_t):
        raise op_error(ShapeError, "scan", "every xs leaf needs a leading axis to scan over", xs_t)
    if length is None:
        if len(lengths) != 1:
            raise op_error(ShapeError, "scan", f"xs leaves disagree on the length ({sorted(lengths)})"
                           if lengths else "length is required when xs is None", xs_t)
        length = lengths.pop()
    elif lengths and lengths != {length}:
        raise op_error(ShapeError, "scan", f"length={length} but xs have lengths {sorted(lengths)}",
                       xs_t)
    device = (carry + xs_t)[0].device if carry + xs_t else get_default_device()
    x_avals = [AVal(x.shape[1:], x.dtype, False) for x in xs_t]
    y_tree_box = []

    def body(*flat):
        c = tree.unflatten(c_tree, list(flat[:len(carry)]))
        x = tree.unflatten(x_tree, list(flat[len(carry):])) if x_tree is not None else None
        new_c, y = f(c, x)
        nc_leaves, nc_tree = tree.flatten(new_c, is_leaf=_is_t)
        if nc_tree != c_tree:
            raise op_error(ShapeError, "scan", f"the body must return the carry's structure "
                           f"{c_tree}, got {nc_tree}")
        y_leaves, y_tree = tree.flatten(y, is_leaf=_is_t)
        y_tree_box.append(y_tree)
        return tuple(nc_leaves) + tuple(to_tensor(v) for v in y_leaves)
    region, captured, _ = trace_region(body, _avals(carry) + x_avals, device, "scan_body")
    outs = region.fn.outputs
    if [v.aval.shape for v in outs[:len(carry)]] != [c.shape for c in carry] or \
            [v.aval.dtype for v in outs[:len(carry)]] != [c.dtype for c in carry]:
        raise op_error(ShapeError, "scan", "the body changes the carry's shapes or dtypes: "
                       f"{_avals(carry)} -> {[v.aval for v in outs[:len(carry)]]}", carry)
    res = _bind_multi(SCAN, carry + xs_t + [wrap(n) for n in captured],
                      (("body", region), ("n_carry", len(carry)), ("n_xs", len(xs_t)),
                       ("length", int(length)), ("reverse", bool(reverse))),
                      _scan_rule(body=region, n_carry=len(carry), n_xs=len(xs_t),
                                 length=int(length), reverse=bool(reverse)))
    new_carry = tree.unflatten(c_tree, res[:len(carry)])
    ys = tree.unflatten(y_tree_box[-1], res[len(carry):])
    return new_carry, ys


def _scan_vjp(ct, *ops, out, body, n_carry, n_xs, length, reverse):
    """Reverse scan over the body's pullbacks, from the carries the forward scan saw."""
    from ..autodiff.api import value_with_pullback
    from .creation import zeros_like
    from .shape import concatenate, expand_dims, slice_axis
    carry0 = list(ops[:n_carry])
    xs = list(ops[n_carry:n_carry + n_xs])
    captured = list(ops[n_carry + n_xs:])
    ct_carry = list(ct[:n_carry])
    ct_ys = list(ct[n_carry:])

    # 1) the carry entering every step: scan again, emitting the incoming carry
    def fwd(c, x):
        outs = call_function(body.fn, list(c) + list(x) + captured)
        return tuple(outs[:n_carry]), tuple(c)
    _, cs = scan(fwd, tuple(carry0), tuple(xs), length=length, reverse=reverse)
    cs = list(cs)
    diff_c = [dt.is_floating(c.dtype) for c in carry0]
    diff_x = [dt.is_floating(x.dtype) for x in xs]
    diff_k = [dt.is_floating(k.dtype) for k in captured]

    # 2) backwards: carry (ct_carry, ct_captured accumulators), per step (c_i, x_i, ct_y_i)
    def bwd(acc, per_step):
        ct_c, ct_k = acc
        c_i, x_i, cty_i = per_step

        def step(*d):
            it = iter(d)
            cc = [next(it) if f else v for v, f in zip(c_i, diff_c)]
            xx = [next(it) if f else v for v, f in zip(x_i, diff_x)]
            kk = [next(it) if f else v for v, f in zip(captured, diff_k)]
            return tuple(call_function(body.fn, cc + xx + kk))
        at = tuple([v for v, f in zip(c_i, diff_c) if f] + [v for v, f in zip(x_i, diff_x) if f] +
                   [v for v, f in zip(captured, diff_k) if f])
        _, pb = value_with_pullback(at, step)
        cts_out = tuple(ct_c) + tuple(cty_i)
        g = list(pb(cts_out))
        it = iter(g)
        new_ct_c = tuple(next(it) if f else zeros_like(v) for v, f in zip(c_i, diff_c))
        ct_x_i = tuple(next(it) if f else zeros_like(v) for v, f in zip(x_i, diff_x))
        new_ct_k = tuple(a + next(it) if f else a for a, f in zip(ct_k, diff_k))
        return (new_ct_c, new_ct_k), ct_x_i
    init_k = tuple(zeros_like(k) for k in captured)
    (ct_c0, ct_k), ct_xs = scan(bwd, (tuple(ct_carry), init_k), (tuple(cs), tuple(xs), tuple(ct_ys)),
                                length=length, reverse=not reverse)
    res = [c if f else None for c, f in zip(ct_c0, diff_c)]
    res += [c if f else None for c, f in zip(ct_xs, diff_x)]
    res += [c if f else None for c, f in zip(ct_k, diff_k)]
    return tuple(res)


def _scan_jvp(ts, *ops, out, body, n_carry, n_xs, length, reverse):
    from ..autodiff.api import value_with_differential
    from .creation import zeros_like
    tangents = [t if t is not None else zeros_like(o) for t, o in zip(ts, ops)]
    carry0, xs = list(ops[:n_carry]), list(ops[n_carry:n_carry + n_xs])
    captured = list(ops[n_carry + n_xs:])
    t_c0 = tangents[:n_carry]
    t_xs = tangents[n_carry:n_carry + n_xs]
    t_k = tangents[n_carry + n_xs:]
    fl = [dt.is_floating(o.dtype) for o in ops]

    def step(carry, x):
        c, tc = carry
        xv, tx = x
        vals = list(c) + list(xv) + captured
        tans = list(tc) + list(tx) + t_k
        d_idx = [i for i in range(len(vals)) if fl[i]]

        def f(*d):
            full = list(vals)
            for i, v in zip(d_idx, d):
                full[i] = v
            return tuple(call_function(body.fn, full))
        outs, dfn = value_with_differential(tuple(vals[i] for i in d_idx), f)
        touts = dfn(tuple(tans[i] for i in d_idx))
        return ((tuple(outs[:n_carry]), tuple(touts[:n_carry])),
                (tuple(outs[n_carry:]), tuple(touts[n_carry:])))
    (c, tc), (ys, tys) = scan(step, (tuple(carry0), tuple(t_c0)), (tuple(xs), tuple(t_xs)),
                              length=length, reverse=reverse)
    return tuple(tc) + tuple(tys)


defvjp(SCAN, _scan_vjp)
defjvp(SCAN, _scan_jvp)
