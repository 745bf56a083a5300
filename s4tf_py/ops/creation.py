"""Creating tensors: zeros, ones, full, arange, linspace, eye, ``*_like``, asarray.

Filled and counting tensors are recorded as nullary primitives (``constant``, ``iota``) rather
than as buffers, so the compiling backends fold or fuse them instead of reading memory.
"""
from __future__ import annotations

import math as _m

import numpy as np

from .. import dtypes as dt
from ..device import get_default_device
from ..errors import ShapeError, op_error
from ..ir.graph import bind
from ..ir.registry import AVal, define
from ..tensor import Tensor, wrap
from ._core import CONSTANT


def _dtype(op, dtype):
    """``dt.canonical`` with the error naming the op and the user's line."""
    try:
        return dt.canonical(dtype)
    except TypeError as e:
        raise op_error(type(e), op, str(e)) from None


def _norm_shape(op, shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise op_error(TypeError, op, f"shape must be an int or a sequence of ints, got {shape!r}") \
            from None
    if any(d < 0 for d in shape):
        raise op_error(ShapeError, op, f"negative dimension in shape {shape}")
    return shape


def _iota_rule(*, shape, dtype, dimension):
    return AVal(tuple(shape), dtype, False)


def _iota_impl(*, shape, dtype, dimension):
    r = np.arange(shape[dimension], dtype=np.float64 if dt.is_floating(dtype) else np.int64)
    r = r.reshape([-1 if i == dimension else 1 for i in range(len(shape))])
    return np.broadcast_to(r, shape).astype(dtype)


IOTA = define("iota", _iota_rule, _iota_impl, nullary=True,
              differentiable=False, doc="0, 1, 2, ... along ``dimension``, broadcast to ``shape``.")


_NAN = _m.nan   # one NaN object (the parser uses it too): params compare by identity first


def _fill_value(value, dtype):
    if isinstance(value, Tensor):
        value = value.item()
    if dtype == dt.bool_:
        return bool(value)
    if dt.is_integer(dtype):
        if isinstance(value, float) and not _m.isfinite(value):
            raise op_error(ValueError, "full", f"cannot fill an {dtype} tensor with {value}")
        return int(value)
    value = float(value)
    return _NAN if value != value else value


def full(shape, fill_value, *, dtype=None, device=None) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value``."""
    shape = _norm_shape("full", shape)
    if dtype is None:
        dtype = dt.python_scalar_dtype(fill_value) if isinstance(fill_value, (bool, int, float)) \
            else dt.default_float
    dtype = _dtype("full", dtype)
    value = _fill_value(fill_value, dtype)
    params = (("value", value), ("dtype", dtype), ("shape", shape))
    if value == 0 and isinstance(value, float) and _m.copysign(1.0, value) < 0:
        # -0.0 == 0.0 in Python, so a key of (value,) alone would merge them: mark the sign
        params += (("negative_zero", True),)
    return wrap(bind(CONSTANT, (), params, shape, dtype, False, device or get_default_device()))


def zeros(shape, *, dtype=None, device=None) -> Tensor:
    """A tensor of zeros (float32 unless ``dtype`` says otherwise)."""
    return full(shape, 0, dtype=dtype or dt.default_float, device=device)


def ones(shape, *, dtype=None, device=None) -> Tensor:
    return full(shape, 1, dtype=dtype or dt.default_float, device=device)


def empty(shape, *, dtype=None, device=None) -> Tensor:
    """Array API ``empty``: with value semantics there is no uninitialized memory, so zeros."""
    return zeros(shape, dtype=dtype, device=device)


def zeros_like(x, /, *, dtype=None, device=None) -> Tensor:
    return full(x.shape, 0, dtype=dtype or x.dtype, device=device or x.device)


def ones_like(x, /, *, dtype=None, device=None) -> Tensor:
    return full(x.shape, 1, dtype=dtype or x.dtype, device=device or x.device)


def empty_like(x, /, *, dtype=None, device=None) -> Tensor:
    return zeros_like(x, dtype=dtype, device=device)


def full_like(x, /, fill_value, *, dtype=None, device=None) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device)


def iota(shape, dimension=0, *, dtype=None, device=None) -> Tensor:
    shape = _norm_shape("iota", shape)
    dtype = _dtype("iota", dtype or dt.default_int)
    if not 0 <= dimension < len(shape):
        raise op_error(ValueError, "iota", f"dimension {dimension} is out of range for shape {shape}")
    return wrap(bind(IOTA, (), (("shape", shape), ("dtype", dtype), ("dimension", dimension)),
                     shape, dtype, False, device or get_default_device()))


def arange(start, /, stop=None, step=1, *, dtype=None, device=None) -> Tensor:
    """``start, start+step, ...`` below ``stop`` (numpy's ``arange``)."""
    if stop is None:
        start, stop = 0, start
    if step == 0:
        raise op_error(ValueError, "arange", "step must not be zero")
    n = max(0, _m.ceil((stop - start) / step))
    if dtype is None:
        dtype = dt.default_float if any(isinstance(v, float) for v in (start, stop, step)) \
            else dt.default_int
    dtype = _dtype("arange", dtype)
    r = iota((n,), 0, dtype=dtype, device=device)
    if step != 1:
        r = r * step
    if start != 0:
        r = r + start
    return r


def linspace(start, stop, /, num, *, dtype=None, device=None, endpoint=True) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop``."""
    dtype = _dtype("linspace", dtype or dt.default_float)
    if num < 0:
        raise op_error(ValueError, "linspace", f"num must be non-negative, got {num}")
    div = (num - 1) if endpoint else num
    step = (stop - start) / div if div > 0 else 0.0
    r = iota((num,), 0, dtype=dtype, device=device) * step + start
    if endpoint and num > 1:
        from .indexing import setitem
        r = setitem(r, num - 1, float(stop))
    return r


def eye(n_rows, n_cols=None, /, *, k=0, dtype=None, device=None) -> Tensor:
    """Ones on the ``k``-th diagonal, zeros elsewhere."""
    n_cols = n_rows if n_cols is None else n_cols
    dtype = _dtype("eye", dtype or dt.default_float)
    r = iota((n_rows, n_cols), 0, dtype=dt.int32, device=device)
    c = iota((n_rows, n_cols), 1, dtype=dt.int32, device=device)
    from .math import astype, equal
    return astype(equal(c - r, k) if k else equal(c, r), dtype)


def tril(x, /, *, k=0) -> Tensor:
    """Zero the elements above the ``k``-th diagonal of the last two axes."""
    from .math import where, greater
    n, m = x.shape[-2:]
    r = iota((n, m), 0, device=x.device)
    c = iota((n, m), 1, device=x.device)
    return where(greater(c - r, k), zeros_like(x), x)


def triu(x, /, *, k=0) -> Tensor:
    from .math import where, less
    n, m = x.shape[-2:]
    r = iota((n, m), 0, device=x.device)
    c = iota((n, m), 1, device=x.device)
    return where(less(c - r, k), zeros_like(x), x)


def asarray(obj, /, *, dtype=None, device=None, copy=None) -> Tensor:
    """Array API ``asarray``: a Tensor from anything array-like (Tensors are not copied: O(1))."""
    if dtype is not None:
        dtype = _dtype("asarray", dtype)
    if isinstance(obj, Tensor):
        t = obj if dtype is None else obj.astype(dtype)
        return t.to(device) if device is not None else t.copy()
    return Tensor(obj, dtype=dtype, device=device)


def from_dlpack(x, /, *, device=None, copy=None) -> Tensor:
    return Tensor(np.from_dlpack(x), device=device)


def meshgrid(*arrays, indexing="xy") -> list[Tensor]:
    if indexing not in ("xy", "ij"):
        raise ValueError(f"meshgrid: indexing must be 'xy' or 'ij', got {indexing!r}")
    from .shape import broadcast_to, reshape
    n = len(arrays)
    shape = [a.shape[0] for a in arrays]
    if indexing == "xy" and n >= 2:
        shape[0], shape[1] = shape[1], shape[0]
    out = []
    for i, a in enumerate(arrays):
        axis = i
        if indexing == "xy" and n >= 2 and i < 2:
            axis = 1 - i
        s = [1] * n
        s[axis] = a.shape[0]
        out.append(broadcast_to(reshape(a, tuple(s)), tuple(shape)))
    return out


_DOCS = {
    ones: "A tensor of ones (float32 unless ``dtype`` says otherwise).",
    zeros_like: "Zeros with ``x``'s shape (and dtype unless given).",
    ones_like: "Ones with ``x``'s shape (and dtype unless given).",
    empty_like: "Array API ``empty_like``: zeros, as there is no uninitialized memory.",
    full_like: "``fill_value`` with ``x``'s shape (and dtype unless given).",
    iota: "0, 1, 2, ... along ``dimension`` of a tensor of ``shape``.",
    triu: "Zero the elements below the ``k``-th diagonal of the last two axes.",
    from_dlpack: "A Tensor holding a copy of a DLPack-exporting array's values.",
    meshgrid: "Coordinate grids from 1-D tensors (``indexing='xy'`` or ``'ij'``).",
}
for _f, _d in _DOCS.items():
    _f.__doc__ = _d
