"""Reductions (sum, max, argmax, ...) and scans (cumsum, cumprod, ...) with ``axis``/``keepdims``.

Primitives reduce over a sorted tuple of axes and drop them; ``keepdims`` is a reshape after.
Float16/bfloat16 reductions accumulate in float32, as the compiling backends do.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, op_error
from ..ir.registry import AVal, define
from ..tensor import Tensor
from ._core import contiguous, bind_op, to_tensor
from .shape import normalize_axes, normalize_axis, reshape


def _reduce_rule(x, *, axes):
    if builtins.any(not 0 <= a < x.ndim for a in axes) or list(axes) != sorted(set(axes)):
        raise ShapeError(f"bad reduction axes {axes} for {x}")
    return AVal(tuple(d for i, d in enumerate(x.shape) if i not in axes), x.dtype, x.weak)


def _accumulating(fn, identity_check=None):
    def impl(x, *, axes):
        d = x.dtype
        if d in dt.LOW_PRECISION:
            return np.asarray(fn(x.astype(np.float32), axis=axes)).astype(d)
        return np.asarray(fn(x, axis=axes), dtype=d)
    return impl


def _nonempty(fn, name):
    def impl(x, *, axes):
        if builtins.any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"{name} of an empty axis has no identity")
        return _accumulating(fn)(x, axes=axes)
    return impl


REDUCE_SUM = define("reduce_sum", _reduce_rule, _accumulating(np.sum))
REDUCE_PROD = define("reduce_prod", _reduce_rule, _accumulating(np.prod))
REDUCE_MAX = define("reduce_max", _reduce_rule, _nonempty(np.max, "max"), record_location=True)
REDUCE_MIN = define("reduce_min", _reduce_rule, _nonempty(np.min, "min"), record_location=True)
REDUCE_AND = define("reduce_and", _reduce_rule, lambda x, *, axes: np.asarray(np.all(x, axis=axes)),
                    differentiable=False)
REDUCE_OR = define("reduce_or", _reduce_rule, lambda x, *, axes: np.asarray(np.any(x, axis=axes)),
                   differentiable=False)


def _arg_rule(x, *, axis, index_dtype):
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"axis {axis} out of range for {x}")
    return AVal(tuple(d for i, d in enumerate(x.shape) if i != axis), index_dtype, False)


def _argfn(fn, name):
    def impl(x, *, axis, index_dtype):
        if x.shape[axis] == 0:
            raise ValueError(f"{name} of an empty axis")
        if x.dtype in dt.LOW_PRECISION:
            x = x.astype(np.float32)
        return np.asarray(fn(x, axis=axis)).astype(index_dtype)
    return impl


ARGMAX = define("argmax", _arg_rule, _argfn(np.argmax, "argmax"), differentiable=False,
                record_location=True, doc="Index of the first maximum along ``axis``.")
ARGMIN = define("argmin", _arg_rule, _argfn(np.argmin, "argmin"), differentiable=False,
                record_location=True)


def _scan_rule(x, *, axis, reverse):
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"axis {axis} out of range for {x}")
    return x


def _scanfn(fn):
    def impl(x, *, axis, reverse):
        d = x.dtype
        y = x.astype(np.float32) if d in dt.LOW_PRECISION else x
        if reverse:
            y = np.flip(y, axis)
        r = fn(y, axis=axis)
        if reverse:
            r = np.flip(r, axis)
        return contiguous(r.astype(d))
    return impl


CUMSUM = define("cumsum", _scan_rule, _scanfn(np.cumsum))
CUMPROD = define("cumprod", _scan_rule, _scanfn(np.cumprod))
CUMMAX = define("cummax", _scan_rule, _scanfn(np.maximum.accumulate))
CUMMIN = define("cummin", _scan_rule, _scanfn(np.minimum.accumulate))


# ---- user-facing ------------------------------------------------------------------------------

def _reduce(prim, op, x, axis, keepdims, dtype=None, kind="numeric"):
    x = to_tensor(x)
    if dtype is not None:
        from .creation import _dtype
        x = x.astype(_dtype(op, dtype))
    elif kind == "numeric" and x.dtype == dt.bool_ and prim in (REDUCE_SUM, REDUCE_PROD):
        x = x.astype(dt.default_int)
    elif kind == "numeric" and x.dtype in dt.INTEGER and x.dtype.itemsize < 4 and \
            prim in (REDUCE_SUM, REDUCE_PROD):
        # array API: sum/prod of small ints accumulate in the default integer type
        x = x.astype(dt.default_int if x.dtype in dt.SIGNED else dt.uint32)
    axes = normalize_axes(op, axis, x.ndim, x)
    if not axes:
        return x.copy()
    r = bind_op(prim, [x], (("axes", axes),))
    if keepdims:
        r = reshape(r, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return r


def sum(x, /, *, axis=None, dtype=None, keepdims=False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes when None)."""
    return _reduce(REDUCE_SUM, "sum", x, axis, keepdims, dtype)


def prod(x, /, *, axis=None, dtype=None, keepdims=False) -> Tensor:
    return _reduce(REDUCE_PROD, "prod", x, axis, keepdims, dtype)


def max(x, /, *, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    x = to_tensor(x)
    _check_nonempty("max", x, axis)
    return _reduce(REDUCE_MAX, "max", x, axis, keepdims)


def min(x, /, *, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    x = to_tensor(x)
    _check_nonempty("min", x, axis)
    return _reduce(REDUCE_MIN, "min", x, axis, keepdims)


def _check_nonempty(op, x, axis):
    axes = normalize_axes(op, axis, x.ndim, x)
    if builtins.any(x.shape[a] == 0 for a in axes):
        raise op_error(ValueError, op, "reduction over an empty axis has no identity", [x])


amax, amin = max, min


def any(x, /, *, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    from .math import _as_bool
    return _reduce(REDUCE_OR, "any", _as_bool(x), axis, keepdims, kind="bool")


def all(x, /, *, axis=None, keepdims=False) -> Tensor:  # noqa: A001
    from .math import _as_bool
    return _reduce(REDUCE_AND, "all", _as_bool(x), axis, keepdims, kind="bool")


def _float(x):
    x = to_tensor(x)
    return x if dt.is_floating(x.dtype) else x.astype(dt.default_float)


def mean(x, /, *, axis=None, keepdims=False) -> Tensor:
    """Arithmetic mean over ``axis``; integers give the default float."""
    x = _float(x)
    axes = normalize_axes("mean", axis, x.ndim, x)
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    return sum(x, axis=axes, keepdims=keepdims) * (1.0 / n if n else float("nan"))


def var(x, /, *, axis=None, correction=0.0, keepdims=False) -> Tensor:
    """Variance with ``correction`` degrees of freedom removed (0: population, 1: sample)."""
    x = _float(x)
    axes = normalize_axes("var", axis, x.ndim, x)
    n = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    d = x - mean(x, axis=axes, keepdims=True)
    denom = n - correction
    return sum(d * d, axis=axes, keepdims=keepdims) * (1.0 / denom if denom > 0 else float("nan"))


def std(x, /, *, axis=None, correction=0.0, keepdims=False) -> Tensor:
    from .math import sqrt
    return sqrt(var(x, axis=axis, correction=correction, keepdims=keepdims))


def logsumexp(x, /, *, axis=None, keepdims=False) -> Tensor:
    """log(sum(exp(x))) computed stably (the maximum is subtracted first)."""
    from .math import exp, is_finite, log, where
    from ._core import stop_gradient
    x = _float(x)
    m = max(x, axis=axis, keepdims=True)
    m = stop_gradient(where(is_finite(m), m, 0.0))
    r = log(sum(exp(x - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        axes = normalize_axes("logsumexp", axis, x.ndim, x)
        r = reshape(r, tuple(d for i, d in enumerate(r.shape) if i not in axes))
    return r


def _arg(prim, op, x, axis, keepdims):
    x = to_tensor(x)
    if x.dtype == dt.bool_:
        x = x.astype(dt.int32)
    if axis is None:
        flat = reshape(x, (-1,))
        r = bind_op(prim, [flat], (("axis", 0), ("index_dtype", dt.default_index)))
        return reshape(r, (1,) * x.ndim) if keepdims else r
    ax = normalize_axis(op, axis, x.ndim, x)
    if x.shape[ax] == 0:
        raise op_error(ValueError, op, f"axis {ax} is empty", [x])
    r = bind_op(prim, [x], (("axis", ax), ("index_dtype", dt.default_index)))
    if keepdims:
        r = reshape(r, tuple(1 if i == ax else d for i, d in enumerate(x.shape)))
    return r


def argmax(x, /, *, axis=None, keepdims=False) -> Tensor:
    """Index of the (first) maximum; over the flattened tensor when ``axis`` is None."""
    return _arg(ARGMAX, "argmax", x, axis, keepdims)


def argmin(x, /, *, axis=None, keepdims=False) -> Tensor:
    return _arg(ARGMIN, "argmin", x, axis, keepdims)


def _scan(prim, op, x, axis, reverse=False, dtype=None):
    x = to_tensor(x)
    if dtype is not None:
        x = x.astype(dtype)
    elif x.dtype == dt.bool_:
        x = x.astype(dt.default_int)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    ax = normalize_axis(op, axis, x.ndim, x)
    return bind_op(prim, [x], (("axis", ax), ("reverse", bool(reverse))))


def cumsum(x, /, axis=None, *, reverse=False, dtype=None) -> Tensor:
    """Running sum along ``axis`` (flattened when None); ``reverse`` sums from the end."""
    return _scan(CUMSUM, "cumsum", x, axis, reverse, dtype)


def cumprod(x, /, axis=None, *, reverse=False, dtype=None) -> Tensor:
    return _scan(CUMPROD, "cumprod", x, axis, reverse, dtype)


def cummax(x, /, axis=None, *, reverse=False) -> Tensor:
    return _scan(CUMMAX, "cummax", x, axis, reverse)


def cummin(x, /, axis=None, *, reverse=False) -> Tensor:
    return _scan(CUMMIN, "cummin", x, axis, reverse)


def cumulative_sum(x, /, *, axis=None, dtype=None, include_initial=False) -> Tensor:
    """Array API ``cumulative_sum``."""
    x = to_tensor(x)
    if axis is None:
        if x.ndim > 1:
            raise op_error(ValueError, "cumulative_sum", "axis is required for >1-D input", [x])
        axis = 0
    r = cumsum(x, axis, dtype=dtype)
    if include_initial:
        from .shape import concatenate
        from .creation import zeros
        ax = normalize_axis("cumulative_sum", axis, x.ndim, x)
        shape = list(r.shape)
        shape[ax] = 1
        r = concatenate([zeros(shape, dtype=r.dtype, device=r.device), r], axis=ax)
    return r


def count_nonzero(x, /, *, axis=None, keepdims=False) -> Tensor:
    from .math import not_equal
    return sum(not_equal(to_tensor(x), 0).astype(dt.default_int), axis=axis, keepdims=keepdims)


_DOCS = {
    prod: "Product over ``axis`` (all axes when None).",
    max: "Maximum over ``axis`` (all axes when None); an empty axis is an error.",
    min: "Minimum over ``axis`` (all axes when None); an empty axis is an error.",
    any: "True if any element along ``axis`` is true (non-zero).",
    all: "True if every element along ``axis`` is true (non-zero).",
    std: "Standard deviation with ``correction`` degrees of freedom removed.",
    argmin: "Index of the (first) minimum; over the flattened tensor when ``axis`` is None.",
    cumprod: "Running product along ``axis`` (flattened when None).",
    cummax: "Running maximum along ``axis``.",
    cummin: "Running minimum along ``axis``.",
    count_nonzero: "Number of non-zero elements along ``axis``.",
}
for _f, _d in _DOCS.items():
    _f.__doc__ = _d


# ---- derivatives ------------------------------------------------------------------------------

def _kept(ct, x, axes):
    """``ct`` (reduced over ``axes``) reshaped to keepdims form and broadcast back to ``x``."""
    from .shape import broadcast_to
    kept = reshape(ct, tuple(1 if i in axes else d for i, d in enumerate(x.shape)))
    return broadcast_to(kept, x.shape)


def _derivatives():
    from ..autodiff import rules as R
    from ..ir.registry import defjvp, defvjp
    from .math import equal, where
    defvjp(REDUCE_SUM, lambda ct, x, *, out, axes: (_kept(ct, x, axes),))
    R.linear(REDUCE_SUM)

    def extremum_vjp(ct, x, *, out, axes):
        hit = where(equal(x, _kept(out, x, axes)), 1.0, 0.0).astype(x.dtype)
        count = sum(hit, axis=axes)
        return (_kept(ct / count, x, axes) * hit,)

    def extremum_jvp(ts, x, *, out, axes):
        if ts[0] is None:
            return None
        hit = where(equal(x, _kept(out, x, axes)), 1.0, 0.0).astype(x.dtype)
        return sum(ts[0] * hit, axis=axes) / sum(hit, axis=axes)
    for p in (REDUCE_MAX, REDUCE_MIN):
        defvjp(p, extremum_vjp)
        defjvp(p, extremum_jvp)

    def prod_others(x, axes):
        """For every element, the product of the other elements of its reduction group
        (exclusive products from both sides: exact with zeros, no division)."""
        from .shape import moveaxis, concatenate, slice_axis
        from .creation import ones
        from .creation import zeros_like
        if x.size == 0:
            return zeros_like(x)
        rest = [i for i in range(x.ndim) if i not in axes]
        xt = moveaxis(x, tuple(axes), tuple(range(x.ndim - len(axes), x.ndim)))
        lead = xt.shape[:len(rest)]
        n = 1
        for a in axes:
            n *= x.shape[a]
        flat = reshape(xt, lead + (n,))
        one = ones(lead + (1,), dtype=x.dtype, device=x.device)
        left = concatenate([one, slice_axis(cumprod(flat, -1), -1, 0, n - 1)], axis=-1)
        right = concatenate([slice_axis(cumprod(flat, -1, reverse=True), -1, 1, n), one], axis=-1)
        others = reshape(left * right, xt.shape)
        return moveaxis(others, tuple(range(x.ndim - len(axes), x.ndim)), tuple(axes))

    defvjp(REDUCE_PROD, lambda ct, x, *, out, axes: (_kept(ct, x, axes) * prod_others(x, axes),))
    defjvp(REDUCE_PROD, lambda ts, x, *, out, axes:
           None if ts[0] is None else sum(ts[0] * prod_others(x, axes), axis=axes))

    defvjp(CUMSUM, lambda ct, x, *, out, axis, reverse:
           (cumsum(ct, axis, reverse=not reverse),))
    R.linear(CUMSUM)

    def cumprod_vjp(ct, x, *, out, axis, reverse):
        # as TensorFlow: reverse-cumsum(ct * out) / x (inputs must be non-zero)
        return (cumsum(ct * out, axis, reverse=not reverse) / x,)
    defvjp(CUMPROD, cumprod_vjp)
    defjvp(CUMPROD, lambda ts, x, *, out, axis, reverse:
           None if ts[0] is None else out * cumsum(ts[0] / x, axis, reverse=reverse))

    def cumext_jvp_mask(x, out, axis, reverse):
        """M[..., i, j] = 1 where x_i is the element that out_j took (first such i)."""
        from .shape import moveaxis, expand_dims
        from .creation import iota
        from .math import logical_and, less_equal, greater_equal
        from .indexing import one_hot
        xm = moveaxis(x, axis, -1)
        om = moveaxis(out, axis, -1)
        n = xm.shape[-1]
        i = iota((n, n), 0, device=x.device)
        j = iota((n, n), 1, device=x.device)
        order = less_equal(i, j) if not reverse else greater_equal(i, j)
        m = logical_and(equal(expand_dims(xm, -1), expand_dims(om, -2)), order)
        first = argmax(m, axis=-2) if not reverse else (n - 1) - argmax(m[..., ::-1, :], axis=-2)
        return where(one_hot(first, n, dtype=dt.bool_, axis=-2), 1.0, 0.0).astype(x.dtype)

    def cumext_vjp(ct, x, *, out, axis, reverse):
        from .shape import moveaxis, expand_dims
        m = cumext_jvp_mask(x, out, axis, reverse)
        g = sum(m * expand_dims(moveaxis(ct, axis, -1), -2), axis=-1)
        return (moveaxis(g, -1, axis),)

    def cumext_jvp(ts, x, *, out, axis, reverse):
        if ts[0] is None:
            return None
        from .shape import moveaxis, expand_dims
        m = cumext_jvp_mask(x, out, axis, reverse)
        t = sum(m * expand_dims(moveaxis(ts[0], axis, -1), -1), axis=-2)
        return moveaxis(t, -1, axis)
    for p in (CUMMAX, CUMMIN):
        defvjp(p, cumext_vjp)
        defjvp(p, cumext_jvp)


_derivatives()
