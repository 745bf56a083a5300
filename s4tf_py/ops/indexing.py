"""numpy-style indexing, functional updates, gather/scatter, sorting, one_hot.

Reading: ``x[idx]`` takes ints, slices (any step), ``...``, ``None``, integer arrays (numpy's
advanced-indexing placement rules) and boolean masks. A boolean mask gives a data-dependent
shape, so it materializes the mask (the one indexing form that does).

Writing: ``x[idx] = v`` is recorded as a functional update (``update_slice`` for basic
indices, ``scatter`` for integer arrays, ``select`` for masks) and changes only the Tensor
object it is applied to. Backends run it in place when the old buffer is held by nobody else.

Out-of-range *constant* indices raise at once; indices held in tensors are clamped when the
graph runs (as XLA and JAX do), since their values are not known when the op is recorded.
"""
from __future__ import annotations

import builtins

import numpy as np

from .. import dtypes as dt
from ..errors import ShapeError, op_error
from ..ir.registry import AVal, define
from ..tensor import Tensor, wrap
from ._core import contiguous, bind_op, operand_nodes, to_tensor
from .shape import (broadcast_to, expand_dims, flip, moveaxis, normalize_axis, permute_dims,
                    reshape, slice as _slice)

# ---- primitives ---------------------------------------------------------------------------------


def _update_slice_rule(x, u, *, start, strides):
    if u.dtype != x.dtype:
        raise ShapeError(f"update_slice: update {u} must have the operand's dtype {x.dtype}")
    if u.ndim != x.ndim or len(start) != x.ndim or len(strides) != x.ndim:
        raise ShapeError(f"update_slice: update {u} does not match operand {x}")
    for s, st, n, d in zip(start, strides, u.shape, x.shape):
        if s < 0 or st < 1 or (n and s + (n - 1) * st >= d):
            raise ShapeError(f"update_slice: region out of bounds for operand {x}")
    return AVal(x.shape, x.dtype, x.weak)


def _region(start, strides, shape):
    return tuple(builtins.slice(s, s + (n - 1) * st + 1 if n else s, st)
                 for s, st, n in zip(start, strides, shape))


def _update_slice_impl(x, u, *, start, strides, inplace=False):
    y = x if inplace else x.copy()
    y[_region(start, strides, u.shape)] = u
    return y


UPDATE_SLICE = define("update_slice", _update_slice_rule, _update_slice_impl, inplace_operand=0,
                      doc="x with the strided region starting at ``start`` replaced by ``update``.")


def _gather_rule(x, idx, *, axis):
    if not dt.is_integer(idx.dtype):
        raise ShapeError(f"gather indices must be integers, got {idx}")
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"gather axis {axis} out of range for {x}")
    return AVal(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype, x.weak)


def _gather_impl(x, idx, *, axis):
    n = x.shape[axis]
    if n == 0:
        return np.zeros(x.shape[:axis] + idx.shape + x.shape[axis + 1:], x.dtype)
    return contiguous(np.take(x, np.clip(idx, 0, n - 1), axis=axis))


GATHER = define("gather", _gather_rule, _gather_impl,
                doc="np.take(x, indices, axis) with indices clamped into range.")


def _scatter_rule(x, idx, u, *, axis, combine):
    want = x.shape[:axis] + idx.shape + x.shape[axis + 1:]
    if u.shape != want or u.dtype != x.dtype:
        raise ShapeError(f"scatter: updates {u} must be {x.dtype}{list(want)}")
    if combine not in ("set", "add"):
        raise ShapeError(f"scatter: combine must be 'set' or 'add', got {combine!r}")
    return AVal(x.shape, x.dtype, x.weak)


def _scatter_impl(x, idx, u, *, axis, combine, inplace=False):
    y = x if inplace else x.copy()
    n = x.shape[axis]
    if combine == "set" and idx.ndim == 1 and idx.size <= 8:
        # a few slices (a decode step's KV-cache write): plain slice assignments
        lead = (slice(None),) * axis
        for j, i in enumerate(idx.tolist()):
            if 0 <= i < n:
                y[lead + (i,)] = u[lead + (j,)]
        return y
    k = idx.ndim
    keep = ((idx >= 0) & (idx < n)).reshape(-1)    # out-of-range updates are dropped, as in XLA
    ym = np.moveaxis(y, axis, 0)                    # (n, *rest): a view into y
    um = np.moveaxis(u, tuple(range(axis, axis + k)), tuple(range(k)))
    um = um.reshape((-1,) + ym.shape[1:])           # (len(idx), *rest)
    flat = idx.reshape(-1)[keep]
    um = um[keep]
    if combine == "add" and y.ndim == 1 and k == 1 and y.dtype.kind == "f":
        # a 1-D scatter-add (the transpose of take_along_axis): bincount sums in float64
        flat = idx.reshape(-1)
        keep = (flat >= 0) & (flat < n)
        w = u.reshape(-1).astype(np.float64)
        if not keep.all():
            flat, w = flat[keep], w[keep]
        y += np.bincount(flat, weights=w, minlength=n).astype(y.dtype)
        return y
    if combine == "add":
        if y.dtype in dt.LOW_PRECISION:
            acc = ym.astype(np.float32)
            np.add.at(acc, flat, um.astype(np.float32))
            ym[...] = acc.astype(y.dtype)
        else:
            np.add.at(ym, flat, um)
    else:
        ym[flat] = um
    return y


SCATTER = define("scatter", _scatter_rule, _scatter_impl, inplace_operand=0,
                 doc="x with slices at ``indices`` along ``axis`` set to (or added with) updates.")


def _tal_rule(x, idx, *, axis):
    if idx.ndim != x.ndim or not dt.is_integer(idx.dtype):
        raise ShapeError(f"take_along_axis: indices {idx} must be integers of rank {x.ndim}")
    for i, (a, b) in enumerate(zip(x.shape, idx.shape)):
        if i != axis and a != b and b != 1 and a != 1:
            raise ShapeError(f"take_along_axis: indices {idx} do not fit {x} outside axis {axis}")
    shape = tuple(b if i == axis else builtins.max(a, b) for i, (a, b) in enumerate(zip(x.shape, idx.shape)))
    return AVal(shape, x.dtype, x.weak)


def _tal_impl(x, idx, *, axis):
    n = x.shape[axis]
    shape = tuple(b if i == axis else builtins.max(a, b) for i, (a, b) in enumerate(zip(x.shape, idx.shape)))
    xs = list(shape)
    xs[axis] = n
    return contiguous(np.take_along_axis(np.broadcast_to(x, xs),
                                                   np.broadcast_to(np.clip(idx, 0, n - 1), shape), axis))


TAKE_ALONG_AXIS = define("take_along_axis", _tal_rule, _tal_impl)


def _sort_rule(x, *, axis, descending):
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"sort axis {axis} out of range for {x}")
    return x


def _stable_order(x, axis, descending):
    y = x.astype(np.float32) if x.dtype in dt.LOW_PRECISION else x
    if descending:
        # stable descending: sort the reversed axis ascending by negated key, keep first-seen order
        if y.dtype == np.bool_ or y.dtype in dt.UNSIGNED:
            y = y.astype(np.int64)
        return np.argsort(-y, axis=axis, kind="stable")
    return np.argsort(y, axis=axis, kind="stable")


SORT = define("sort", _sort_rule,
              lambda x, *, axis, descending: contiguous(
                  np.take_along_axis(x, _stable_order(x, axis, descending), axis)))


def _argsort_rule(x, *, axis, descending):
    _sort_rule(x, axis=axis, descending=descending)
    return AVal(x.shape, dt.default_index, False)


ARGSORT = define("argsort", _argsort_rule,
                 lambda x, *, axis, descending: _stable_order(x, axis, descending).astype(
                     dt.default_index), differentiable=False, record_location=True)


def _top_k_rule(x, *, k):
    if x.ndim < 1 or not 0 <= k <= x.shape[-1]:
        raise ShapeError(f"top_k: k={k} out of range for {x}")
    shape = x.shape[:-1] + (k,)
    return (AVal(shape, x.dtype, x.weak), AVal(shape, dt.default_index, False))


def _top_k_impl(x, *, k):
    order = _stable_order(x, x.ndim - 1, True)[..., :k]
    return (contiguous(np.take_along_axis(x, order, -1)), order.astype(dt.default_index))


TOP_K = define("top_k", _top_k_rule, _top_k_impl, multiple_results=True,
               doc="The k largest values along the last axis and their indices (ties: lowest index).")


# ---- reading -------------------------------------------------------------------------------------

def _is_int_array(i) -> bool:
    if isinstance(i, Tensor):
        return dt.is_integer(i.dtype)
    if isinstance(i, np.ndarray):
        return i.dtype.kind in "iu"
    if isinstance(i, (list, tuple)):
        a = np.asarray(i)
        return a.dtype.kind in "iu" or (a.size == 0)
    return False


def _is_bool_array(i) -> bool:
    if isinstance(i, Tensor):
        return i.dtype == dt.bool_
    if isinstance(i, np.ndarray):
        return i.dtype == np.bool_
    if isinstance(i, list):
        a = np.asarray(i)
        return a.dtype == np.bool_ and a.ndim > 0
    return False


def _expand(x, index):
    """Index as a tuple with Ellipsis expanded and boolean masks turned into integer arrays."""
    if not isinstance(index, tuple):
        index = (index,)
    out = []
    for i in index:
        if isinstance(i, (bool, np.bool_)):
            raise op_error(IndexError, "getitem", "a Python bool is not a valid index", [x])
        if _is_bool_array(i):
            m = i.numpy() if isinstance(i, Tensor) else np.asarray(i)
            out.extend(np.nonzero(m))            # data-dependent shape: the mask is materialized
            out[-m.ndim:] = [_MaskPart(a, m.shape[k]) for k, a in enumerate(out[-m.ndim:])]
        elif isinstance(i, Tensor) and i.ndim == 0 and dt.is_integer(i.dtype) is False:
            raise op_error(IndexError, "getitem", f"tensor index must be an integer, got {i.dtype}", [x])
        else:
            out.append(i)
    n_real = builtins.sum(1 for i in out if i is not None and i is not Ellipsis and
                          not isinstance(i, _MaskPart)) + builtins.sum(
        1 for i in out if isinstance(i, _MaskPart))
    if builtins.sum(1 for i in out if i is Ellipsis) > 1:
        raise op_error(IndexError, "getitem", "an index can only have a single ellipsis ('...')", [x])
    if n_real > x.ndim:
        raise op_error(IndexError, "getitem",
                       f"too many indices: {n_real} for a {x.ndim}-D tensor of shape {x.shape}", [x])
    if Ellipsis in [i for i in out if not isinstance(i, (np.ndarray, Tensor, list))]:
        k = next(j for j, i in enumerate(out) if i is Ellipsis)
        out[k:k + 1] = [builtins.slice(None)] * (x.ndim - n_real)
    else:
        out += [builtins.slice(None)] * (x.ndim - n_real)
    return [i.array if isinstance(i, _MaskPart) else i for i in out]


class _MaskPart:
    __slots__ = ("array", "size")

    def __init__(self, array, size):
        self.array, self.size = array, size


def _int_index(op, i, size, x):
    i = int(i)
    if not -size <= i < size:
        raise op_error(IndexError, op, f"index {i} is out of bounds for an axis of size {size}", [x])
    return i % size


def _index_tensor(op, i, size, x) -> Tensor:
    """An integer index array as a Tensor, range-checked when its values are known."""
    if isinstance(i, Tensor):
        if i._node.value is not None and not i._node.is_abstract and i.size:
            v = i.numpy()
            if v.min() < -size or v.max() >= size:
                raise op_error(IndexError, op, f"index {int(v.min() if v.min() < -size else v.max())} "
                               f"is out of bounds for an axis of size {size}", [x])
        t = i
    else:
        a = np.asarray(i)
        if a.size and (a.min() < -size or a.max() >= size):
            bad = a.min() if a.min() < -size else a.max()
            raise op_error(IndexError, op, f"index {int(bad)} is out of bounds for an axis of size "
                           f"{size}", [x])
        t = Tensor(np.where(a < 0, a + size, a).astype(dt.default_index) if a.size else
                   a.astype(dt.default_index), device=x.device)
        return t
    from .math import where, less
    if t.dtype != dt.default_index and t.dtype != dt.int64:
        t = t.astype(dt.default_index)
    return where(less(t, 0), t + size, t)


def _basic(x, index, op="getitem"):
    """Apply ints/slices/None. Returns (result, kept-axis map) where ints drop axes."""
    starts, limits, strides, flips, out_shape = [], [], [], [], []
    d = 0
    for i in index:
        if i is None:
            out_shape.append(1)
            continue
        size = x.shape[d]
        if isinstance(i, builtins.slice):
            s, e, st = i.indices(size)
            if st > 0:
                n = builtins.max(0, -(-(e - s) // st))
                starts.append(s); limits.append(s + (n - 1) * st + 1 if n else s); strides.append(st)
                flips.append(False)
            else:
                n = builtins.max(0, -(-(s - e) // -st))
                # the same elements in ascending order, then reversed
                lo = s + (n - 1) * st if n else 0
                starts.append(lo if n else 0); limits.append(s + 1 if n else 0); strides.append(-st)
                flips.append(n > 1)
            out_shape.append(n)
        else:
            j = _int_index(op, i, size, x)
            starts.append(j); limits.append(j + 1); strides.append(1); flips.append(False)
        d += 1
    r = _slice(x, starts, limits, strides)
    flip_axes = tuple(k for k, f in enumerate(flips) if f)
    if flip_axes:
        r = flip(r, flip_axes)
    if tuple(out_shape) != r.shape:
        r = reshape(r, tuple(out_shape))
    return r


def getitem(x, index) -> Tensor:
    """``x[index]`` with numpy semantics (see the module docstring)."""
    x = to_tensor(x)
    idx = _expand(x, index)
    adv = [k for k, i in enumerate(idx) if _is_int_array(i) or
           (isinstance(i, Tensor) and dt.is_integer(i.dtype))]
    if not adv:
        return _basic(x, idx)
    # turn Python ints into advanced (0-d) indices, as numpy does when arrays are present
    idx = [np.asarray(i) if isinstance(i, (int, np.integer)) else i for i in idx]
    adv = [k for k, i in enumerate(idx) if not isinstance(i, builtins.slice) and i is not None]
    # 1) basic part: keep advanced axes whole; None inserts size-1 axes
    basic_idx = [builtins.slice(None) if k in adv else i for k, i in enumerate(idx)]
    y = _basic(x, basic_idx)
    # positions of advanced axes in y
    pos, p = [], 0
    for k, i in enumerate(idx):
        if k in adv:
            pos.append(p)
        p += 1
    arrays = [_index_tensor("getitem", idx[k], y.shape[q], x) for k, q in zip(adv, pos)]
    from ._core import broadcast_shapes
    bshape = broadcast_shapes("getitem", *[a.shape for a in arrays], operands=arrays)
    # 2) advanced axes to the front, flattened into one, linear index, gather
    rest = [a for a in range(y.ndim) if a not in pos]
    y = permute_dims(y, pos + rest)
    sizes = [y.shape[k] for k in range(len(pos))]
    y = reshape(y, (int(np.prod(sizes, dtype=np.int64)),) + y.shape[len(pos):])
    lin = None
    stride = 1
    for a, n in zip(reversed(arrays), reversed(sizes)):
        term = broadcast_to(a, bshape) * stride if stride != 1 else broadcast_to(a, bshape)
        lin = term if lin is None else lin + term
        stride *= n
    r = bind_op(GATHER, [y, lin], (("axis", 0),))
    # 3) numpy placement: adjacent advanced indices stay in place, otherwise they go first
    adjacent = pos == list(range(pos[0], pos[0] + len(pos)))
    if adjacent and pos[0] != 0:
        nb = len(bshape)
        order = list(range(nb, nb + pos[0])) + list(range(nb)) + list(range(nb + pos[0], r.ndim))
        r = permute_dims(r, order)
    return r


def take(x, indices, /, *, axis=None) -> Tensor:
    """Elements of ``x`` at ``indices`` along ``axis`` (flattened when None)."""
    x = to_tensor(x)
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    ax = normalize_axis("take", axis, x.ndim, x)
    idx = _index_tensor("take", indices, x.shape[ax], x)
    return bind_op(GATHER, [x, idx], (("axis", ax),))


gather = take


def take_along_axis(x, indices, /, axis=-1) -> Tensor:
    x = to_tensor(x)
    ax = normalize_axis("take_along_axis", axis, x.ndim, x)
    idx = _index_tensor("take_along_axis", indices, x.shape[ax], x)
    return bind_op(TAKE_ALONG_AXIS, [x, idx], (("axis", ax),))


# ---- writing -------------------------------------------------------------------------------------

def setitem(x, index, value) -> Tensor:
    """The value ``x`` with ``x[index] = value`` applied (``x`` itself is not changed)."""
    x = to_tensor(x)
    (_, vn), dtype, _ = operand_nodes("setitem", x, value)
    v = wrap(vn)
    if v.dtype != x.dtype:
        v = v.astype(x.dtype)
    raw = index if isinstance(index, tuple) else (index,)
    if builtins.any(_is_bool_array(i) for i in raw):
        if len(raw) == 1:
            m = to_tensor(raw[0])
            if m.shape == x.shape[:m.ndim]:
                from .math import where
                mb = reshape(m, m.shape + (1,) * (x.ndim - m.ndim))
                if v.ndim == 0:
                    return where(mb, v, x)
    idx = _expand(x, index)        # boolean masks become integer arrays at their own positions
    adv = [k for k, i in enumerate(idx) if _is_int_array(i) or isinstance(i, Tensor)]
    if not adv:
        return _set_basic(x, idx, v)
    if builtins.any(i is None for i in idx):
        # None only inserts size-1 axes into the indexed region: broadcast the value to the
        # region x[index] has, then drop those axes (a reshape keeps the element order)
        region = getitem(x, tuple(idx)).shape
        v = broadcast_to(v, region)
        idx = [i for i in idx if i is not None]
        v = reshape(v, getitem(x, tuple(idx)).shape)
    return _set_advanced(x, idx, v)


def _set_basic(x, idx, v):
    starts, strides, shape, flips, vshape = [], [], [], [], []
    d = 0
    for i in idx:
        if i is None:
            vshape.append(1)
            continue
        size = x.shape[d]
        if isinstance(i, builtins.slice):
            s, e, st = i.indices(size)
            if st > 0:
                n = builtins.max(0, -(-(e - s) // st))
                starts.append(s if n else 0); strides.append(st); flips.append(False)
            else:
                n = builtins.max(0, -(-(s - e) // -st))
                starts.append(s + (n - 1) * st if n else 0); strides.append(-st); flips.append(True)
            shape.append(n); vshape.append(n)
        else:
            j = _int_index("setitem", i, size, x)
            starts.append(j); strides.append(1); shape.append(1); flips.append(False)
        d += 1
    try:
        v = broadcast_to(v, tuple(vshape))
    except ShapeError:
        raise op_error(ShapeError, "setitem", f"value of shape {v.shape} cannot be broadcast to the "
                       f"indexed region of shape {tuple(vshape)}", [x, v]) from None
    v = reshape(v, tuple(shape))
    fl = tuple(k for k, f in enumerate(flips) if f and shape[k] > 1)
    if fl:
        v = flip(v, fl)
    if builtins.any(n == 0 for n in shape):
        return x.copy()
    return bind_op(UPDATE_SLICE, [x, v], (("start", tuple(starts)), ("strides", tuple(strides))))


def _set_advanced(x, idx, v):
    idx = [np.asarray(i) if isinstance(i, (int, np.integer)) else i for i in idx]
    adv = [k for k, i in enumerate(idx) if not isinstance(i, builtins.slice)]
    if builtins.any(i != builtins.slice(None) for k, i in enumerate(idx) if k not in adv):
        # x[arr, 1:3] = v  →  update the sliced view through a gather/scatter of the whole axis
        sub = getitem(x, tuple(builtins.slice(None) if k in adv else i for k, i in enumerate(idx)))
        inner = [i if k in adv else builtins.slice(None) for k, i in enumerate(idx)]
        sub = _set_advanced(sub, inner, v)
        return _set_basic(x, [builtins.slice(None) if k in adv else i for k, i in enumerate(idx)], sub)
    arrays = [_index_tensor("setitem", idx[k], x.shape[k], x) for k in adv]
    from ._core import broadcast_shapes
    bshape = broadcast_shapes("setitem", *[a.shape for a in arrays], operands=arrays)
    rest = [a for a in range(x.ndim) if a not in adv]
    y = permute_dims(x, adv + rest)
    sizes = [x.shape[k] for k in adv]
    flat_shape = (int(np.prod(sizes, dtype=np.int64)),) + y.shape[len(adv):]
    y = reshape(y, flat_shape)
    lin, stride = None, 1
    for a, n in zip(reversed(arrays), reversed(sizes)):
        term = broadcast_to(a, bshape) * stride if stride != 1 else broadcast_to(a, bshape)
        lin = term if lin is None else lin + term
        stride *= n
    # where numpy would place the indexed dims in the value
    adjacent = adv == list(range(adv[0], adv[0] + len(adv)))
    if adjacent and adv[0] != 0:
        target = list(x.shape[:adv[0]]) + list(bshape) + list(x.shape[adv[-1] + 1:])
    else:
        target = list(bshape) + [x.shape[k] for k in rest]
    v = broadcast_to(v, tuple(target))
    if adjacent and adv[0] != 0:
        nb = len(bshape)
        v = moveaxis(v, tuple(range(adv[0], adv[0] + nb)), tuple(range(nb)))
    y = bind_op(SCATTER, [y, lin, v], (("axis", 0), ("combine", "set")))
    y = reshape(y, tuple(sizes) + tuple(x.shape[k] for k in rest))
    inv = np.argsort(adv + rest)
    return permute_dims(y, tuple(int(i) for i in inv))


def scatter_add(x, indices, updates, /, *, axis=0) -> Tensor:
    """``x`` with ``updates`` added at ``indices`` along ``axis`` (duplicates accumulate)."""
    x = to_tensor(x)
    ax = normalize_axis("scatter_add", axis, x.ndim, x)
    idx = _index_tensor("scatter_add", indices, x.shape[ax], x)
    (_, un), _, _ = operand_nodes("scatter_add", x, updates)
    u = wrap(un)
    want = x.shape[:ax] + idx.shape + x.shape[ax + 1:]
    if u.shape != want:
        u = broadcast_to(u, want)
    return bind_op(SCATTER, [x, idx, u.astype(x.dtype)], (("axis", ax), ("combine", "add")))


def index_update(x, indices, updates, /, *, axis=0) -> Tensor:
    """``x`` with the slices at ``indices`` along ``axis`` replaced by ``updates``."""
    x = to_tensor(x)
    ax = normalize_axis("index_update", axis, x.ndim, x)
    idx = _index_tensor("index_update", indices, x.shape[ax], x)
    u = to_tensor(updates).astype(x.dtype)
    want = x.shape[:ax] + idx.shape + x.shape[ax + 1:]
    if u.shape != want:
        u = broadcast_to(u, want)
    return bind_op(SCATTER, [x, idx, u], (("axis", ax), ("combine", "set")))


# ---- sorting, one_hot, searching ---------------------------------------------------------------

def sort(x, /, *, axis=-1, descending=False, stable=True) -> Tensor:
    """Sorted copy along ``axis`` (always stable)."""
    x = to_tensor(x)
    ax = normalize_axis("sort", axis, x.ndim, x)
    return bind_op(SORT, [x], (("axis", ax), ("descending", bool(descending))))


def argsort(x, /, *, axis=-1, descending=False, stable=True) -> Tensor:
    x = to_tensor(x)
    ax = normalize_axis("argsort", axis, x.ndim, x)
    return bind_op(ARGSORT, [x], (("axis", ax), ("descending", bool(descending))))


def top_k(x, k: int, /) -> tuple[Tensor, Tensor]:
    """(values, indices) of the ``k`` largest entries along the last axis."""
    x = to_tensor(x)
    if x.ndim == 0 or not 0 <= k <= x.shape[-1]:
        raise op_error(ValueError, "top_k", f"k={k} is out of range for shape {x.shape}", [x])
    return bind_op(TOP_K, [x], (("k", int(k)),))


def one_hot(indices, depth: int, /, *, dtype=None, axis=-1, on_value=1, off_value=0) -> Tensor:
    """A ``depth``-long one-hot vector per index (indices outside ``[0, depth)`` give all off)."""
    from .creation import iota
    from .math import equal, where
    idx = to_tensor(indices)
    dtype = dt.canonical(dtype or dt.default_float)
    ax = normalize_axis("one_hot", axis, idx.ndim + 1, idx)
    shape = idx.shape[:ax] + (depth,) + idx.shape[ax:]
    hot = equal(expand_dims(idx, ax), iota(shape, ax, dtype=idx.dtype, device=idx.device))
    return where(hot, on_value, off_value).astype(dtype)


def searchsorted(x1, x2, /, *, side="left", sorter=None) -> Tensor:
    """Insertion points of ``x2`` into the sorted 1-D ``x1``."""
    from .math import less, less_equal
    from .reduction import sum as _sum
    x1, x2 = to_tensor(x1), to_tensor(x2)
    if sorter is not None:
        x1 = take(x1, sorter)
    cmp = less if side == "left" else less_equal
    return _sum(cmp(x1, expand_dims(x2, -1)).astype(dt.default_index), axis=-1)


def nonzero(x, /) -> tuple[Tensor, ...]:
    """Indices of the non-zero elements (a data-dependent shape: materializes ``x``)."""
    x = to_tensor(x)
    return tuple(Tensor(a.astype(dt.default_index), device=x.device) for a in np.nonzero(x.numpy()))


def unique_values(x, /) -> Tensor:
    x = to_tensor(x)
    return Tensor(np.unique(x.numpy()), device=x.device)


def unique_counts(x, /):
    x = to_tensor(x)
    v, c = np.unique(x.numpy(), return_counts=True)
    return Tensor(v, device=x.device), Tensor(c.astype(dt.default_index), device=x.device)


def unique_inverse(x, /):
    x = to_tensor(x)
    v, inv = np.unique(x.numpy(), return_inverse=True)
    return Tensor(v, device=x.device), Tensor(inv.reshape(x.shape).astype(dt.default_index),
                                              device=x.device)


def unique_all(x, /):
    x = to_tensor(x)
    v, i, inv, c = np.unique(x.numpy().reshape(-1), return_index=True, return_inverse=True,
                             return_counts=True)
    d = x.device
    return (Tensor(v, device=d), Tensor(i.astype(dt.default_index), device=d),
            Tensor(inv.reshape(x.shape).astype(dt.default_index), device=d),
            Tensor(c.astype(dt.default_index), device=d))


_DOCS = {
    argsort: "Indices that sort ``x`` along ``axis`` (stable).",
    take_along_axis: "Pick from ``x`` with ``indices`` shaped like ``x`` (numpy's take_along_axis).",
    unique_values: "Sorted distinct values (materializes: the shape depends on the data).",
    unique_counts: "Distinct values and how often each occurs (materializes).",
    unique_inverse: "Distinct values and, per element, the index of its value (materializes).",
    unique_all: "Distinct values, first indices, inverse indices and counts (materializes).",
}
for _f, _d in _DOCS.items():
    _f.__doc__ = _d


# ---- derivatives ------------------------------------------------------------------------------

def _scatter_along(ct, idx, n, axis):
    """The transpose of take_along_axis: ``g`` with ``g[..., idx[p], ...] += ct[p]`` for every
    position ``p`` of ``idx`` (``g``'s shape is ``idx``'s with ``n`` along ``axis``). One
    scatter-add into the flattened ``g`` at ``offset(p) + idx[p] * stride``: linear in the
    number of positions (a one-hot formulation cost positions x n)."""
    from .creation import iota, zeros
    if idx.shape != ct.shape:              # indices broadcast against x's other dims
        idx = broadcast_to(idx, ct.shape)
    shape = idx.shape[:axis] + (n,) + idx.shape[axis + 1:]
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    flat = idx.astype(dt.int64) * strides[axis]
    for d in range(len(shape)):
        if d != axis and shape[d] > 1:
            flat = flat + iota(idx.shape, d, dtype=dt.int64, device=idx.device) * strides[d]
    size = 1
    for d in shape:
        size *= d
    g = bind_op(SCATTER, [zeros((size,), dtype=ct.dtype, device=ct.device),
                          reshape(flat, (-1,)), reshape(ct, (-1,))],
                (("axis", 0), ("combine", "add")))
    return reshape(g, shape)


def _derivatives():
    from ..autodiff import rules as R
    from ..ir.registry import defjvp, defvjp
    from .creation import zeros_like
    from .math import minimum, maximum

    def update_slice_vjp(ct, x, u, *, out, start, strides):
        ct_x = bind_op(UPDATE_SLICE, [ct, zeros_like(u)], (("start", start), ("strides", strides)))
        limit = tuple(s + (n - 1) * st + 1 if n else s for s, st, n in zip(start, strides, u.shape))
        return ct_x, _slice(ct, start, limit, strides)
    defvjp(UPDATE_SLICE, update_slice_vjp)
    R.linear(UPDATE_SLICE)

    def clamp(idx, n):
        return minimum(maximum(idx, 0), n - 1)

    def gather_vjp(ct, x, idx, *, out, axis):
        z = zeros_like(x)
        return bind_op(SCATTER, [z, clamp(idx, x.shape[axis]), ct],
                       (("axis", axis), ("combine", "add"))), None
    defvjp(GATHER, gather_vjp)
    R.linear(GATHER, primal_args=(1,))

    def scatter_vjp(ct, x, idx, u, *, out, axis, combine):
        ct_u = bind_op(GATHER, [ct, idx], (("axis", axis),))
        if combine == "add":
            return ct, None, ct_u
        ct_x = bind_op(SCATTER, [ct, idx, zeros_like(u)], (("axis", axis), ("combine", "set")))
        # with duplicate indices only the last write lands: only it receives a cotangent
        from .creation import full, iota
        from .math import equal, where
        flat = reshape(idx, (-1,))
        order = iota(flat.shape, 0, dtype=dt.int32, device=idx.device)
        writer = bind_op(SCATTER, [full((x.shape[axis],), -1, dtype=dt.int32, device=idx.device),
                                   flat, order], (("axis", 0), ("combine", "set")))
        won = equal(bind_op(GATHER, [writer, flat], (("axis", 0),)), order)
        won = reshape(won, (1,) * axis + idx.shape + (1,) * (x.ndim - axis - 1))
        return ct_x, None, where(won, ct_u, 0.0)
    defvjp(SCATTER, scatter_vjp)
    R.linear(SCATTER, primal_args=(1,))

    def tal_vjp(ct, x, idx, *, out, axis):
        n = x.shape[axis]
        g = _scatter_along(ct, clamp(idx, n), n, axis)
        return R.sum_to_shape(g, x.shape) if g.shape != x.shape else g, None
    defvjp(TAKE_ALONG_AXIS, tal_vjp)
    R.linear(TAKE_ALONG_AXIS, primal_args=(1,))

    def sort_vjp(ct, x, *, out, axis, descending):
        perm = argsort(x, axis=axis, descending=descending)
        inv = argsort(perm, axis=axis)
        return (take_along_axis(ct, inv, axis=axis),)

    def sort_jvp(ts, x, *, out, axis, descending):
        if ts[0] is None:
            return None
        return take_along_axis(ts[0], argsort(x, axis=axis, descending=descending), axis=axis)
    defvjp(SORT, sort_vjp)
    defjvp(SORT, sort_jvp)

    def top_k_vjp(ct, x, *, out, k):
        ct_vals = ct[0]
        return (_scatter_along(ct_vals, out[1], x.shape[-1], x.ndim - 1),)

    def top_k_jvp(ts, x, *, out, k):
        if ts[0] is None:
            return None
        return take_along_axis(ts[0], out[1], axis=-1), None
    defvjp(TOP_K, top_k_vjp)
    defjvp(TOP_K, top_k_jvp)


_derivatives()
