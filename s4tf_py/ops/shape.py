"""Shape ops: reshape, transpose, broadcast, concatenate, slice, pad, flip and friends.

All return new values, never views (value semantics). Primitives: ``reshape``, ``transpose``,
``broadcast_to``, ``concatenate``, ``slice``, ``pad``, ``rev``; the rest are compositions.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import dtypes as dt
from ..errors import ShapeError, op_error
from ..ir.graph import bind
from ..ir.registry import AVal, define
from ..tensor import Tensor, wrap
from ._core import contiguous, bind_op, operand_nodes, to_tensor


def normalize_axis(op: str, axis: int, ndim: int, operand=None) -> int:
    """``axis`` in ``[0, ndim)``, counting negative axes from the end; IndexError otherwise."""
    try:
        a = int(axis)
    except TypeError:
        raise op_error(TypeError, op, f"axis must be an int, got {axis!r}") from None
    if not -ndim <= a < ndim:
        raise op_error(IndexError, op, f"axis {axis} is out of range for a {ndim}-D tensor",
                       [operand] if operand is not None else ())
    return a % ndim if ndim else 0


def normalize_axes(op: str, axis, ndim: int, operand=None) -> tuple[int, ...]:
    """A sorted tuple of distinct axes; ``None`` means all of them."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (axis,)
    axes = tuple(normalize_axis(op, a, ndim, operand) for a in axis)
    if len(set(axes)) != len(axes):
        raise op_error(ValueError, op, f"repeated axis in {tuple(axis)}",
                       [operand] if operand is not None else ())
    return tuple(sorted(axes))


# ---- primitives ---------------------------------------------------------------------------------

def _reshape_rule(x, *, new_sizes):
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size:
        raise ShapeError(f"cannot reshape {x} to {new_sizes}")
    return AVal(tuple(new_sizes), x.dtype, x.weak)


RESHAPE = define("reshape", _reshape_rule,
                 lambda x, *, new_sizes: contiguous(x).reshape(new_sizes))


def _transpose_rule(x, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise ShapeError(f"permutation {permutation} does not fit a {x.ndim}-D operand")
    return AVal(tuple(x.shape[p] for p in permutation), x.dtype, x.weak)


TRANSPOSE = define("transpose", _transpose_rule,
                   lambda x, *, permutation: contiguous(np.transpose(x, permutation)))


def _broadcast_rule(x, *, shape):
    from ._core import _broadcast_shapes
    if len(shape) < x.ndim or _broadcast_shapes(x.shape, tuple(shape)) != tuple(shape):
        raise ShapeError(f"cannot broadcast {x} to {tuple(shape)}")
    return AVal(tuple(shape), x.dtype, False)


BROADCAST = define("broadcast_to", _broadcast_rule,
                   lambda x, *, shape: contiguous(np.broadcast_to(x, shape)))


def _concat_rule(*xs, axis):
    first = xs[0]
    if not 0 <= axis < first.ndim:
        raise ShapeError(f"axis {axis} is out of range for {first}")
    total = 0
    for x in xs:
        if x.ndim != first.ndim or any(a != b for i, (a, b) in enumerate(zip(x.shape, first.shape))
                                       if i != axis):
            raise ShapeError("operands " + ", ".join(map(str, xs)) +
                             f" differ outside axis {axis}")
        if x.dtype != first.dtype:
            raise ShapeError("operands must share a dtype")
        total += x.shape[axis]
    shape = list(first.shape)
    shape[axis] = total
    return AVal(tuple(shape), first.dtype, builtins.all(x.weak for x in xs))


CONCATENATE = define("concatenate", _concat_rule,
                     lambda *xs, axis: np.concatenate(xs, axis=axis))


def _slice_rule(x, *, start, limit, strides):
    if not (len(start) == len(limit) == len(strides) == x.ndim):
        raise ShapeError(f"slice of {x} needs {x.ndim} starts, limits and strides")
    shape = []
    for s, l, st, d in zip(start, limit, strides, x.shape):
        if not (0 <= s <= l <= d) or st < 1:
            raise ShapeError(f"slice [{s}:{l}:{st}] is out of range for a dimension of size {d}")
        shape.append(max(0, -(-(l - s) // st)))
    return AVal(tuple(shape), x.dtype, x.weak)


def _slice_impl(x, *, start, limit, strides):
    return np.array(x[tuple(builtins.slice(s, l, st) for s, l, st in zip(start, limit, strides))])


SLICE = define("slice", _slice_rule, _slice_impl,
               doc="x[start:limit:strides] per axis, strides positive.")


def _pad_rule(x, v, *, low, high, interior):
    if v.ndim != 0 or v.dtype != x.dtype:
        raise ShapeError(f"pad value must be a scalar of {x.dtype}, got {v}")
    if not (len(low) == len(high) == len(interior) == x.ndim):
        raise ShapeError(f"pad of {x} needs {x.ndim} (low, high, interior) entries")
    shape = []
    for d, lo, hi, it in zip(x.shape, low, high, interior):
        if it < 0:
            raise ShapeError("interior padding must be non-negative")
        n = lo + hi + d + builtins.max(0, d - 1) * it
        if n < 0:
            raise ShapeError(f"padding ({lo}, {hi}) removes more than a dimension of size {d}")
        shape.append(n)
    return AVal(tuple(shape), x.dtype, x.weak)


def _pad_impl(x, v, *, low, high, interior):
    # interior (dilation) first, then edge padding; negative edges crop
    if builtins.any(interior):
        shape = [d + builtins.max(0, d - 1) * it for d, it in zip(x.shape, interior)]
        y = np.full(shape, v, dtype=x.dtype)
        y[tuple(builtins.slice(None, None, it + 1) for it in interior)] = x
        x = y
    pads = [(builtins.max(lo, 0), builtins.max(hi, 0)) for lo, hi in zip(low, high)]
    y = np.pad(x, pads, constant_values=v)
    crop = tuple(builtins.slice(-lo if lo < 0 else None, (y.shape[i] + hi) if hi < 0 else None)
                 for i, (lo, hi) in enumerate(zip(low, high)))
    return contiguous(y[crop])


PAD = define("pad", _pad_rule, _pad_impl,
             doc="Edge padding (negative crops) and interior padding with a scalar value.")


def _rev_rule(x, *, axes):
    if builtins.any(not 0 <= a < x.ndim for a in axes):
        raise ShapeError(f"rev axes {axes} out of range for {x}")
    return x


REV = define("rev", _rev_rule, lambda x, *, axes: contiguous(np.flip(x, axes)))


# ---- user-facing functions --------------------------------------------------------------------

def reshape(x, /, shape, *, copy=None) -> Tensor:
    """``x`` with a new shape of the same size; one dimension may be -1."""
    x = to_tensor(x)
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    shape = [int(d) for d in shape]
    if shape.count(-1) > 1:
        raise op_error(ShapeError, "reshape", f"only one dimension may be -1, got {tuple(shape)}", [x])
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known == 0 or x.size % known:
            raise op_error(ShapeError, "reshape", f"cannot reshape {x.shape} to {tuple(shape)}", [x])
        shape[shape.index(-1)] = x.size // known
    shape = tuple(shape)
    if shape == x.shape:
        return x.copy()
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise op_error(ShapeError, "reshape",
                       f"cannot reshape a tensor of shape {x.shape} ({x.size} elements) to {shape}",
                       [x])
    n = x._node
    if n.prim is RESHAPE and n.value is None:          # reshape chains collapse at once
        n = n.inputs[0]
        if n.shape == shape:
            return wrap(n)
    return wrap(bind(RESHAPE, (n,), (("new_sizes", shape),), shape, n.dtype, n.weak, n.device))


def permute_dims(x, /, axes=None) -> Tensor:
    """Array API ``permute_dims`` (numpy ``transpose``); ``None`` reverses the axes."""
    x = to_tensor(x)
    nd = x.ndim
    if axes is None:
        axes = tuple(range(nd))[::-1]
    axes = tuple(normalize_axis("transpose", a, nd, x) for a in axes)
    if sorted(axes) != list(range(nd)):
        raise op_error(ValueError, "transpose", f"axes {axes} are not a permutation of {nd} axes", [x])
    if axes == tuple(range(nd)):
        return x.copy()
    return bind_op(TRANSPOSE, [x], (("permutation", axes),))


transpose = permute_dims


def matrix_transpose(x, /) -> Tensor:
    x = to_tensor(x)
    if x.ndim < 2:
        raise op_error(ShapeError, "matrix_transpose", f"needs at least 2 dimensions, got {x.shape}", [x])
    axes = list(range(x.ndim))
    axes[-1], axes[-2] = axes[-2], axes[-1]
    return permute_dims(x, axes)


def swapaxes(x, axis1, axis2) -> Tensor:
    x = to_tensor(x)
    axes = list(range(x.ndim))
    a, b = normalize_axis("swapaxes", axis1, x.ndim, x), normalize_axis("swapaxes", axis2, x.ndim, x)
    axes[a], axes[b] = axes[b], axes[a]
    return permute_dims(x, axes)


def moveaxis(x, source, destination, /) -> Tensor:
    x = to_tensor(x)
    src = [source] if isinstance(source, int) else list(source)
    dst = [destination] if isinstance(destination, int) else list(destination)
    src = [normalize_axis("moveaxis", a, x.ndim, x) for a in src]
    dst = [normalize_axis("moveaxis", a, x.ndim, x) for a in dst]
    order = [a for a in range(x.ndim) if a not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return permute_dims(x, order)


def broadcast_to(x, /, shape) -> Tensor:
    """``x`` broadcast (numpy rules) to ``shape``."""
    x = to_tensor(x)
    shape = tuple(int(d) for d in shape)
    if shape == x.shape:
        return x.copy()
    return bind_op(BROADCAST, [x], (("shape", shape),))


def broadcast_arrays(*arrays):
    from ._core import broadcast_shapes
    arrays = [to_tensor(a) for a in arrays]
    shape = broadcast_shapes("broadcast_arrays", *[a.shape for a in arrays], operands=arrays)
    return [broadcast_to(a, shape) for a in arrays]


def expand_dims(x, /, axis=0) -> Tensor:
    """Insert size-1 axes at ``axis`` (an int or a tuple of ints)."""
    x = to_tensor(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    nd = x.ndim + len(axes)
    axes = sorted(normalize_axis("expand_dims", a, nd, x) for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return reshape(x, shape)


def squeeze(x, /, axis=None) -> Tensor:
    """Remove size-1 axes (all of them, or those in ``axis``)."""
    x = to_tensor(x)
    if axis is None:
        axes = tuple(i for i, d in enumerate(x.shape) if d == 1)
    else:
        axes = normalize_axes("squeeze", axis, x.ndim, x)
        for a in axes:
            if x.shape[a] != 1:
                raise op_error(ShapeError, "squeeze",
                               f"cannot squeeze axis {a} of size {x.shape[a]}", [x])
    return reshape(x, tuple(d for i, d in enumerate(x.shape) if i not in axes))


def concatenate(arrays, /, axis=0) -> Tensor:
    """Join tensors along an existing axis (``axis=None`` flattens them first)."""
    arrays = list(arrays)
    if not arrays:
        raise op_error(ValueError, "concatenate", "needs at least one tensor")
    if axis is None:
        arrays = [reshape(a, (-1,)) for a in arrays]
        axis = 0
    nodes, dtype, weak = operand_nodes("concatenate", *arrays)
    ts = [wrap(n) for n in nodes]
    ax = normalize_axis("concatenate", axis, ts[0].ndim, ts[0]) if ts[0].ndim else None
    if ax is None:
        raise op_error(ShapeError, "concatenate", "cannot concatenate 0-d tensors", ts)
    if len(ts) == 1:
        return ts[0]
    return bind_op(CONCATENATE, ts, (("axis", ax),))


concat = concatenate


def stack(arrays, /, axis=0) -> Tensor:
    """Join tensors of one shape along a new axis."""
    arrays = [to_tensor(a) for a in arrays]
    if not arrays:
        raise op_error(ValueError, "stack", "needs at least one tensor")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise op_error(ShapeError, "stack", f"tensors must share a shape, got {sorted(shapes)}", arrays)
    ax = normalize_axis("stack", axis, arrays[0].ndim + 1, arrays[0])
    return concatenate([expand_dims(a, ax) for a in arrays], axis=ax)


def slice(x, start, limit, strides=None) -> Tensor:  # noqa: A001
    """``x[start[i]:limit[i]:strides[i]]`` on every axis (static bounds, positive strides)."""
    x = to_tensor(x)
    strides = tuple(strides) if strides is not None else (1,) * x.ndim
    start, limit = tuple(int(s) for s in start), tuple(int(l) for l in limit)
    if start == (0,) * x.ndim and limit == x.shape and strides == (1,) * x.ndim:
        return x.copy()
    return bind_op(SLICE, [x], (("start", start), ("limit", limit), ("strides", strides)))


def slice_axis(x, axis, start, stop, step=1) -> Tensor:
    x = to_tensor(x)
    st, li, sd = [0] * x.ndim, list(x.shape), [1] * x.ndim
    st[axis], li[axis], sd[axis] = start, stop, step
    return slice(x, st, li, sd)


def split(x, indices_or_sections, /, axis=0) -> list[Tensor]:
    """Split into equal sections (an int) or at the given indices (a sequence)."""
    x = to_tensor(x)
    ax = normalize_axis("split", axis, x.ndim, x)
    n = x.shape[ax]
    if isinstance(indices_or_sections, int):
        k = indices_or_sections
        if k <= 0 or n % k:
            raise op_error(ShapeError, "split",
                           f"axis {ax} of size {n} cannot be split into {k} equal sections", [x])
        bounds = [i * (n // k) for i in range(k + 1)]
    else:
        bounds = [0] + [builtins.min(builtins.max(int(i), 0), n) for i in indices_or_sections] + [n]
    return [slice_axis(x, ax, a, builtins.max(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]


def unstack(x, /, axis=0) -> tuple[Tensor, ...]:
    x = to_tensor(x)
    ax = normalize_axis("unstack", axis, x.ndim, x)
    return tuple(squeeze(slice_axis(x, ax, i, i + 1), ax) for i in range(x.shape[ax]))


def flip(x, /, axis=None) -> Tensor:
    x = to_tensor(x)
    axes = normalize_axes("flip", axis, x.ndim, x)
    if not axes:
        return x.copy()
    return bind_op(REV, [x], (("axes", axes),))


def roll(x, /, shift, axis=None) -> Tensor:
    """Shift elements cyclically along ``axis`` (flattened when None)."""
    x = to_tensor(x)
    if axis is None:
        return reshape(roll(reshape(x, (-1,)), shift, 0), x.shape)
    shifts = (shift,) if isinstance(shift, int) else tuple(shift)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if len(shifts) != len(axes):
        raise op_error(ValueError, "roll", "shift and axis must have the same length", [x])
    for s, a in zip(shifts, axes):
        a = normalize_axis("roll", a, x.ndim, x)
        n = x.shape[a]
        if n == 0:
            continue
        s %= n
        if s:
            x = concatenate([slice_axis(x, a, n - s, n), slice_axis(x, a, 0, n - s)], axis=a)
    return x


def tile(x, /, repetitions) -> Tensor:
    x = to_tensor(x)
    reps = (repetitions,) if isinstance(repetitions, int) else tuple(repetitions)
    nd = builtins.max(x.ndim, len(reps))
    reps = (1,) * (nd - len(reps)) + reps
    x = reshape(x, (1,) * (nd - x.ndim) + x.shape)
    inter = []
    for r, d in zip(reps, x.shape):
        inter += [1, d]
    y = broadcast_to(reshape(x, tuple(inter)),
                     tuple(v for r, d in zip(reps, x.shape) for v in (r, d)))
    return reshape(y, tuple(r * d for r, d in zip(reps, x.shape)))


def repeat(x, repeats: int, /, axis=None) -> Tensor:
    x = to_tensor(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    ax = normalize_axis("repeat", axis, x.ndim, x)
    y = expand_dims(x, ax + 1)
    shape = list(y.shape)
    shape[ax + 1] = repeats
    y = broadcast_to(y, shape)
    out = list(x.shape)
    out[ax] *= repeats
    return reshape(y, out)


def pad(x, /, pad_width, mode="constant", constant_values=0) -> Tensor:
    """numpy-style ``pad``: ``pad_width`` is ``[(before, after), ...]`` (or one pair, or an int).

    Modes: ``"constant"``, ``"reflect"``, ``"symmetric"``, ``"edge"``.
    """
    x = to_tensor(x)
    pw = np.broadcast_to(np.asarray(pad_width, dtype=np.int64).reshape(-1, 2)
                         if np.ndim(pad_width) else np.full((1, 2), pad_width), (x.ndim, 2))
    if mode == "constant":
        nodes, dtype, weak = operand_nodes("pad", x, constant_values)
        lo = tuple(int(p) for p in pw[:, 0])
        hi = tuple(int(p) for p in pw[:, 1])
        if builtins.any(p < 0 for p in lo + hi):
            raise op_error(ValueError, "pad", "pad widths must be non-negative", [x])
        return bind_op(PAD, [wrap(nodes[0]), wrap(nodes[1])],
                       (("low", lo), ("high", hi), ("interior", (0,) * x.ndim)))
    if mode not in ("reflect", "symmetric", "edge"):
        raise op_error(ValueError, "pad", f"unknown mode {mode!r}", [x])
    for ax in range(x.ndim):
        before, after = int(pw[ax, 0]), int(pw[ax, 1])
        n = x.shape[ax]
        if mode == "edge":
            parts = [slice_axis(x, ax, 0, 1)] * before + [x] + [slice_axis(x, ax, n - 1, n)] * after
        else:
            off = 1 if mode == "reflect" else 0
            if before + off > n or after + off > n:
                raise op_error(ValueError, "pad", f"{mode} padding wider than the axis ({n})", [x])
            left = flip(slice_axis(x, ax, off, off + before), ax) if before else None
            right = flip(slice_axis(x, ax, n - after - off, n - off), ax) if after else None
            parts = [p for p in (left, x, right) if p is not None]
        if len(parts) > 1:
            x = concatenate(parts, axis=ax)
    return x


def atleast_1d(x):
    x = to_tensor(x)
    return reshape(x, (1,)) if x.ndim == 0 else x


_DOCS = {
    matrix_transpose: "Swap the last two axes.",
    swapaxes: "Exchange two axes.",
    moveaxis: "Move axes to new positions, keeping the order of the others.",
    broadcast_arrays: "Broadcast tensors against each other (numpy rules).",
    flip: "Reverse the order of elements along ``axis`` (all axes when None).",
    tile: "Repeat the whole tensor ``repetitions`` times along each axis.",
    repeat: "Repeat each element ``repeats`` times along ``axis`` (flattened when None).",
    unstack: "Split along ``axis`` into a tuple of tensors with that axis removed.",
    atleast_1d: "A 0-d tensor as shape (1,), anything else unchanged.",
}
for _f, _d in _DOCS.items():
    _f.__doc__ = _d


# ---- derivatives ------------------------------------------------------------------------------

def _derivatives():
    from ..autodiff import rules as R
    from ..ir.registry import defvjp
    defvjp(RESHAPE, lambda ct, x, *, out, new_sizes: (reshape(ct, x.shape),))
    R.linear(RESHAPE)

    def transpose_vjp(ct, x, *, out, permutation):
        inv = [0] * len(permutation)
        for i, p in enumerate(permutation):
            inv[p] = i
        return (permute_dims(ct, inv),)
    defvjp(TRANSPOSE, transpose_vjp)
    R.linear(TRANSPOSE)
    defvjp(BROADCAST, lambda ct, x, *, out, shape: (R.sum_to_shape(ct, x.shape),))
    R.linear(BROADCAST)

    def concat_vjp(ct, *xs, out, axis):
        res, start = [], 0
        for x in xs:
            n = x.shape[axis]
            res.append(slice_axis(ct, axis, start, start + n))
            start += n
        return tuple(res)
    defvjp(CONCATENATE, concat_vjp)
    R.linear(CONCATENATE)

    def slice_vjp(ct, x, *, out, start, limit, strides):
        from .creation import zeros
        z = zeros((), dtype=ct.dtype, device=ct.device)
        high = []
        for s, st, n, d in zip(start, strides, ct.shape, x.shape):
            end = s + (n - 1) * st + 1 if n else s
            high.append(d - end)
        return (bind_op(PAD, [ct, z], (("low", tuple(start)), ("high", tuple(high)),
                                       ("interior", tuple(st - 1 for st in strides)))),)
    defvjp(SLICE, slice_vjp)
    R.linear(SLICE)

    def pad_vjp(ct, x, v, *, out, low, high, interior):
        from .creation import zeros
        from .reduction import sum as _sum
        z = zeros((), dtype=ct.dtype, device=ct.device)
        unpadded = bind_op(PAD, [ct, z], (("low", tuple(-l for l in low)),
                                          ("high", tuple(-h for h in high)),
                                          ("interior", (0,) * ct.ndim)))
        ct_x = slice(unpadded, (0,) * ct.ndim, unpadded.shape, tuple(i + 1 for i in interior))
        return ct_x, _sum(ct) - _sum(ct_x)
    defvjp(PAD, pad_vjp)
    R.linear(PAD)
    defvjp(REV, lambda ct, x, *, out, axes: (flip(ct, axes),))
    R.linear(REV)


_derivatives()
