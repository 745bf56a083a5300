"""Scalar types and the type-promotion table.

Dtypes are plain :class:`numpy.dtype` objects (``s4.float32 == np.float32`` holds), with
``bfloat16`` from ml_dtypes. Promotion follows the Python array API standard where it speaks
(same-kind promotion) and JAX's lattice where it is silent (mixed int/float):

* bool < uint8 < uint16 < uint32 < uint64; bool < int8 < int16 < int32 < int64;
  unsigned + signed → the smallest signed type holding both (uint64 + signed → float32, as
  there is none, matching JAX).
* any integer or bool + a float → that float; float16 + bfloat16 → float32.
* **Python scalars are weakly typed**: ``x_f16 * 2.0`` stays float16, ``x_i8 + 1`` stays int8.
  A Python float meeting an integer tensor gives the default float (float32). There is never a
  silent float64: only float64 operands produce float64.

Example:
    >>> import s4tf_py as s4
    >>> s4.result_type(s4.int8, s4.uint8)
    dtype('int16')
    >>> s4.result_type(s4.float16, s4.bfloat16)
    dtype('float32')
"""
from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np

bool_ = np.dtype(np.bool_)
int8 = np.dtype(np.int8)
int16 = np.dtype(np.int16)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
uint8 = np.dtype(np.uint8)
uint16 = np.dtype(np.uint16)
uint32 = np.dtype(np.uint32)
uint64 = np.dtype(np.uint64)
float16 = np.dtype(np.float16)
bfloat16 = np.dtype(ml_dtypes.bfloat16)
float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)

ALL_DTYPES = (bool_, int8, int16, int32, int64, uint8, uint16, uint32, uint64,
              float16, bfloat16, float32, float64)
SIGNED = (int8, int16, int32, int64)
UNSIGNED = (uint8, uint16, uint32, uint64)
INTEGER = SIGNED + UNSIGNED
FLOATING = (float16, bfloat16, float32, float64)
LOW_PRECISION = (float16, bfloat16)   # computed in float32 inside kernels

default_float = float32
default_int = int32                   # as JAX and TensorFlow; numpy's int64 is never silent
default_index = int32

#: Short names used by the IR printer and parser.
SHORT_NAME = {bool_: "i1", int8: "i8", int16: "i16", int32: "i32", int64: "i64",
              uint8: "u8", uint16: "u16", uint32: "u32", uint64: "u64",
              float16: "f16", bfloat16: "bf16", float32: "f32", float64: "f64"}
FROM_SHORT_NAME = {v: k for k, v in SHORT_NAME.items()}
_BY_NAME = {str(d): d for d in ALL_DTYPES}
_BY_NAME.update({"bool": bool_, "bool_": bool_})


def is_floating(dt: np.dtype) -> bool:
    return dt in FLOATING


def is_integer(dt: np.dtype) -> bool:
    return dt in INTEGER


def is_differentiable(dt: np.dtype) -> bool:
    """Only floating-point values carry derivatives."""
    return dt in FLOATING


def canonical(dtype) -> np.dtype:
    """Turn anything dtype-like (``"float32"``, ``np.float32``, ``s4.float32``) into a supported dtype.

    >>> canonical("bfloat16")
    dtype(bfloat16)
    """
    if isinstance(dtype, np.dtype) and dtype in SHORT_NAME:
        return dtype
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in SHORT_NAME:
        from .errors import DTypeError
        supported = ", ".join(sorted(_BY_NAME))
        raise DTypeError(f"unsupported dtype {dtype!r}; s4tf_py supports {supported}")
    return dt


# ---- promotion -------------------------------------------------------------------------------

def _promote_pair(a: np.dtype, b: np.dtype) -> np.dtype:
    if a == b:
        return a
    if a == bool_:
        return b
    if b == bool_:
        return a
    fa, fb = a in FLOATING, b in FLOATING
    if fa and fb:
        if {a, b} == {float16, bfloat16}:
            return float32
        return a if a.itemsize > b.itemsize else b
    if fa:
        return a
    if fb:
        return b
    # both integers
    sa, sb = a in SIGNED, b in SIGNED
    if sa == sb:
        return a if a.itemsize >= b.itemsize else b
    signed, unsigned = (a, b) if sa else (b, a)
    if unsigned.itemsize < signed.itemsize:
        return signed
    if unsigned == uint64:
        return float32
    return np.dtype(f"int{unsigned.itemsize * 16}")


PROMOTION_TABLE: dict[tuple[np.dtype, np.dtype], np.dtype] = {
    (a, b): _promote_pair(a, b) for a, b in itertools.product(ALL_DTYPES, ALL_DTYPES)
}


def promote(a: np.dtype, a_weak: bool, b: np.dtype, b_weak: bool) -> tuple[np.dtype, bool]:
    """Result dtype and weakness of combining two typed values (weak = came from a Python scalar)."""
    if a_weak == b_weak:
        r = PROMOTION_TABLE[a, b]
        if r in FLOATING and a not in FLOATING and b not in FLOATING:
            # signed + uint64 has no integer type: JAX's lattice joins them at the *weak*
            # default float, which keeps promotion associative ((i8 + u64) + f16 is f16)
            return r, True
        return r, a_weak
    strong, weak = (b, a) if a_weak else (a, b)
    # A weak scalar adopts the strong operand's type unless its kind is "higher"; then the
    # result is the *weak* default of that kind (JAX's lattice), which keeps promotion
    # associative: (i32 * 0.5) + f16 is float16 whichever way it is grouped.
    if weak in FLOATING and strong not in FLOATING:
        return default_float, True
    if weak in INTEGER and strong == bool_:
        return default_int, True
    return strong, False


def result_type(*args) -> np.dtype:
    """The dtype that combining ``args`` (dtypes, Tensors or Python scalars) produces."""
    from .tensor import Tensor
    dt, weak = None, True
    for a in args:
        if isinstance(a, Tensor):
            d, w = a.dtype, a._node.weak
        elif isinstance(a, (bool, int, float)):
            d, w = python_scalar_dtype(a), True
        else:
            d, w = canonical(a), False
        dt, weak = (d, w) if dt is None else promote(dt, weak, d, w)
    if dt is None:
        raise ValueError("result_type needs at least one argument")
    return dt


def python_scalar_dtype(v) -> np.dtype:
    if isinstance(v, bool):
        return bool_
    if isinstance(v, int):
        return default_int
    if isinstance(v, float):
        return default_float
    if isinstance(v, complex):
        raise TypeError("complex numbers are not supported by s4tf_py")
    raise TypeError(f"expected a Python scalar, got {type(v).__name__}")


def can_cast(from_, to) -> bool:
    """True if ``from_`` promotes to ``to`` without loss by the promotion table."""
    f, t = canonical(from_), canonical(to)
    return PROMOTION_TABLE[f, t] == t


class finfo:
    """Machine limits for a floating dtype (array API ``finfo``)."""

    def __init__(self, dtype):
        dt = canonical(dtype)
        if dt not in FLOATING:
            raise TypeError(f"finfo needs a floating dtype, got {dt}")
        info = ml_dtypes.finfo(dt)
        self.dtype = dt
        self.bits = int(info.bits)
        self.eps = float(info.eps)
        self.max = float(info.max)
        self.min = float(info.min)
        self.smallest_normal = float(info.smallest_normal)

    def __repr__(self):
        return f"finfo(dtype={self.dtype}, eps={self.eps}, max={self.max})"


class iinfo:
    """Machine limits for an integer dtype (array API ``iinfo``)."""

    def __init__(self, dtype):
        dt = canonical(dtype)
        if dt not in INTEGER:
            raise TypeError(f"iinfo needs an integer dtype, got {dt}")
        info = np.iinfo(dt)
        self.dtype, self.bits, self.max, self.min = dt, int(info.bits), int(info.max), int(info.min)

    def __repr__(self):
        return f"iinfo(dtype={self.dtype}, min={self.min}, max={self.max})"


_KINDS = {
    "bool": (bool_,), "signed integer": SIGNED, "unsigned integer": UNSIGNED,
    "integral": INTEGER, "real floating": FLOATING, "complex floating": (),
    "numeric": INTEGER + FLOATING,
}


def isdtype(dtype, kind) -> bool:
    """Array API ``isdtype``: does ``dtype`` belong to ``kind`` (a name, a dtype, or a tuple)?"""
    dt = canonical(dtype)
    if isinstance(kind, tuple):
        return any(isdtype(dt, k) for k in kind)
    if isinstance(kind, str):
        if kind not in _KINDS:
            raise ValueError(f"unknown dtype kind {kind!r}; expected one of {sorted(_KINDS)}")
        return dt in _KINDS[kind]
    return dt == canonical(kind)
