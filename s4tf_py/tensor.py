"""The Tensor: an n-dimensional array with value semantics, computed lazily.

A Tensor is a handle on an immutable graph node (:mod:`s4tf_py.ir.graph`). Because nodes never
change, ``t.copy()`` is O(1) (the copy shares the node), and no two Tensor objects can ever see
each other's writes:

* ``t[i] = v`` records a functional update and points *this* object at the new node; every other
  Tensor keeps the node it had. When the graph runs and the old buffer is held by nobody else,
  the update is done in place, without a copy.
* ``t += x`` is ``t = t + x`` (Python's rule when ``__iadd__`` is absent, and S4TF's): it
  rebinds the name, so ``b = a; b += 1`` leaves ``a`` alone.
* slicing, reshape and transpose return new values, never views.

Nothing is computed until a value is read (``.numpy()``, ``.item()``, ``print``, ``bool()``)
or :func:`s4tf_py.barrier` is called.

Example:
    >>> import s4tf_py as s4
    >>> x = s4.Tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> y = x.copy()
    >>> y[0, 0] = 9.0
    >>> x.tolist(), y.tolist()
    ([[1.0, 2.0], [3.0, 4.0]], [[9.0, 2.0], [3.0, 4.0]])
"""
from __future__ import annotations

import numpy as np

from . import dtypes as dt
from .device import Device, get_default_device
from .errors import ConcretizationError, DTypeError, ShapeError, op_error, user_location
from .ir import graph
from .ir.graph import Node

_ops = None  # s4tf_py.ops, imported lazily (it imports this module)


def _o():
    global _ops
    if _ops is None:
        from . import ops as _m
        _ops = _m
    return _ops


def _infer_from_python(value):
    """(numpy array) for a Python scalar or a (possibly nested) list, with s4tf_py's defaults."""
    if isinstance(value, bool):
        return np.asarray(value, dtype=dt.bool_)
    if isinstance(value, int):
        return np.asarray(value, dtype=dt.default_int if -2**31 <= value < 2**31 else dt.int64)
    if isinstance(value, float):
        return np.asarray(value, dtype=dt.default_float)
    # nested lists / tuples: find the shape, refuse ragged input with the path of the problem
    flat: list = []
    shape: list[int] = []

    def walk(v, depth, path):
        if isinstance(v, (list, tuple)):
            if len(shape) == depth and len(flat) == 0:
                shape.append(len(v))
            elif len(shape) <= depth or shape[depth] != len(v):
                want = "a scalar" if len(shape) <= depth else f"length {shape[depth]}"
                raise ValueError(f"ragged nested sequence: element {path or '[]'} has length "
                                 f"{len(v)}, but its siblings have {want}")
            for i, e in enumerate(v):
                walk(e, depth + 1, f"{path}[{i}]")
        else:
            if len(shape) != depth:
                raise ValueError(f"ragged nested sequence: element {path} is a scalar at depth "
                                 f"{depth}, but other elements are nested {len(shape)} deep")
            flat.append(v.item() if isinstance(v, (Tensor, np.generic)) else v)

    walk(value, 0, "")
    if not flat:
        return np.zeros(shape, dtype=dt.default_float)
    bad = next((v for v in flat if not isinstance(v, (bool, int, float))), None)
    if bad is not None:
        raise TypeError(f"cannot make a Tensor from a {type(bad).__name__} element ({bad!r})")
    if all(isinstance(v, bool) for v in flat):
        d = dt.bool_
    elif all(isinstance(v, int) for v in flat):
        d = dt.default_int if all(-2**31 <= v < 2**31 for v in flat) else dt.int64
    else:
        d = dt.default_float
    return np.asarray(flat, dtype=d).reshape(shape)


def _from_numpy(arr: np.ndarray, dtype) -> np.ndarray:
    if arr.dtype == object:
        return _infer_from_python(arr.tolist()) if dtype is None else np.asarray(
            arr.tolist(), dtype=dtype)
    if dtype is None:
        if arr.dtype not in dt.SHORT_NAME:
            raise TypeError(f"unsupported numpy dtype {arr.dtype}")
        return np.array(arr, copy=True, order="C")   # value semantics: never alias the user's array
    return _checked_cast(arr, dtype)


def _checked_cast(arr: np.ndarray, dtype) -> np.ndarray:
    if dt.is_integer(dtype) and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"cannot convert non-finite values (NaN or Inf) to {dtype}")
    return np.array(arr, dtype=dtype, copy=True, order="C")


class Tensor:
    """An n-dimensional array with value semantics (see the module docstring).

    ``Tensor(value, dtype=None, device=None)`` takes a Python scalar, a nested list or tuple,
    a numpy array or another Tensor. Python floats default to float32, Python ints to int32.
    """

    __slots__ = ("_node", "__weakref__")
    __array_priority__ = 100   # numpy defers to our reflected operators

    def __init__(self, value=None, dtype=None, device: Device | None = None):
        if dtype is not None:
            try:
                dtype = dt.canonical(dtype)
            except TypeError as e:
                raise op_error(type(e), "Tensor", str(e)) from None
        if isinstance(value, Tensor):
            node = value._node
            if dtype is not None and dtype != node.dtype:
                node = value.astype(dtype)._node
            if device is not None and device != node.device:
                node = value.to(device)._node
            self._node = node
            return
        if value is None:
            raise TypeError("Tensor() needs a value: a scalar, a nested list or a numpy array")
        try:
            if isinstance(value, np.ndarray):
                arr = _from_numpy(value, dtype)
            elif isinstance(value, np.generic):
                arr = _from_numpy(np.asarray(value), dtype)
            elif hasattr(value, "__array__") or hasattr(value, "__dlpack__"):
                arr = _from_numpy(np.asarray(value), dtype)
            else:
                arr = _infer_from_python(value)
                if dtype is not None and arr.dtype != dtype:
                    # cast from the Python values, not from the default-dtype array: a float64
                    # request must not round through float32
                    src = np.asarray(value, dtype=np.float64) if arr.dtype.kind == "f" else arr
                    arr = _checked_cast(src, dtype)
        except (ValueError, TypeError, OverflowError) as e:
            raise op_error(type(e) if type(e) is not OverflowError else ValueError,
                           "Tensor", str(e)) from None
        self._node = graph.leaf(arr, arr.shape, arr.dtype, False, device or get_default_device())

    # ---- basic properties ----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._node.shape

    @property
    def dtype(self) -> np.dtype:
        return self._node.dtype

    @property
    def device(self) -> Device:
        return self._node.device

    @property
    def ndim(self) -> int:
        return len(self._node.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self._node.shape:
            n *= d
        return n

    def __len__(self) -> int:
        if not self._node.shape:
            raise TypeError("len() of a 0-d tensor")
        return self._node.shape[0]

    # ---- value semantics -----------------------------------------------------------------------
    def copy(self) -> "Tensor":
        """An independent value, in O(1): storage is shared until one side is written."""
        return wrap(self._node)

    __copy__ = copy

    def __deepcopy__(self, memo):
        return wrap(self._node)

    def to(self, device: Device) -> "Tensor":
        """This value on ``device`` (materializes it, then copies the buffer across)."""
        if not isinstance(device, Device):
            raise TypeError(f"to() expects an s4.Device, got {type(device).__name__}")
        if device == self._node.device:
            return wrap(self._node)
        from .lazy import transfer
        return wrap(transfer(self._node, device))

    # ---- reading values (materializes) ---------------------------------------------------------
    def _value(self) -> np.ndarray:
        node = self._node
        if node.value is None:
            from .lazy import materialize
            materialize([node])
        from .lazy import to_host
        return to_host(node)

    def numpy(self) -> np.ndarray:
        """The value as a read-only numpy array (``np.array(t)`` gives a writable copy)."""
        v = self._value().view()
        v.flags.writeable = False
        return v

    def __array__(self, dtype=None, copy=None):
        v = self._value()
        if dtype is not None and np.dtype(dtype) != v.dtype:
            return v.astype(dtype)
        if copy:
            return v.copy()
        v = v.view()
        v.flags.writeable = False
        return v

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """Export a *copy* of the value: DLPack consumers (torch) may write into what they get,
        which must never change this Tensor (value semantics)."""
        if copy is False:
            raise BufferError("s4tf_py tensors export only copies through DLPack (a consumer "
                              "could otherwise write into a value); pass copy=None or True")
        kw = {} if max_version is None else {"max_version": max_version}
        return self._value().copy().__dlpack__(**kw)

    def __dlpack_device__(self):
        return (1, 0)  # kDLCPU

    def item(self):
        """The value of a one-element tensor as a Python scalar."""
        if self.size != 1:
            raise op_error(ValueError, "item", f"needs a tensor with one element, got shape {self.shape}",
                           [self])
        return self._value().reshape(()).item()

    def tolist(self):
        return self._value().tolist()

    def __bool__(self):
        if self.size != 1:
            raise op_error(ValueError, "bool",
                           f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                           "use s4.any(t) or s4.all(t)", [self])
        return bool(self.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if not dt.is_integer(self.dtype):
            raise TypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self.item())

    def __complex__(self):
        return complex(self.item())

    def __repr__(self):
        if self._node.is_abstract:
            return f"Tensor(<traced {describe(self)}>)"
        v = self._value()
        if v.dtype in dt.LOW_PRECISION:
            v = v.astype(np.float32)     # numpy prints bfloat16 poorly
        body = np.array2string(v, separator=", ", prefix="Tensor(")
        extra = ""
        if self.dtype not in (dt.float32, dt.int32, dt.bool_):
            extra = f", dtype={self.dtype}"
        return f"Tensor({body}{extra})"

    def __str__(self):
        if self._node.is_abstract:
            return repr(self)
        return str(self._value())

    def __format__(self, spec):
        if self.size == 1 and spec:
            return format(self.item(), spec)
        return str(self)

    def __iter__(self):
        if not self.shape:
            raise TypeError("iteration over a 0-d tensor")
        return iter(_o().unstack(self, axis=0))

    __hash__ = None   # == is elementwise, as in numpy

    # ---- array API ----------------------------------------------------------------------------
    def __array_namespace__(self, *, api_version=None):
        if api_version not in (None, "2021.12", "2022.12", "2023.12"):
            raise ValueError(f"unsupported array API version {api_version!r}")
        import s4tf_py
        return s4tf_py

    @property
    def T(self):
        if self.ndim != 2:
            raise op_error(ShapeError, "T", f"needs a 2-D tensor (use s4.permute_dims), got shape {self.shape}",
                           [self])
        return _o().permute_dims(self, (1, 0))

    @property
    def mT(self):
        return _o().matrix_transpose(self)

    def to_device(self, device, /, *, stream=None):
        return self.to(device)

    # ---- methods mirroring the functional API ---------------------------------------------------
    def astype(self, dtype, copy=True):
        return _o().astype(self, dtype)

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _o().reshape(self, shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _o().permute_dims(self, axes if axes else None)

    def flatten(self):
        return _o().reshape(self, (-1,))

    def squeeze(self, axis=None):
        return _o().squeeze(self, axis)

    def expand_dims(self, axis):
        return _o().expand_dims(self, axis)

    def broadcast_to(self, shape):
        return _o().broadcast_to(self, shape)

    def sum(self, axis=None, keepdims=False, dtype=None):
        return _o().sum(self, axis=axis, keepdims=keepdims, dtype=dtype)

    def mean(self, axis=None, keepdims=False):
        return _o().mean(self, axis=axis, keepdims=keepdims)

    def prod(self, axis=None, keepdims=False, dtype=None):
        return _o().prod(self, axis=axis, keepdims=keepdims, dtype=dtype)

    def max(self, axis=None, keepdims=False):
        return _o().max(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False):
        return _o().min(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False):
        return _o().argmax(self, axis=axis, keepdims=keepdims)

    def argmin(self, axis=None, keepdims=False):
        return _o().argmin(self, axis=axis, keepdims=keepdims)

    def var(self, axis=None, keepdims=False, correction=0.0):
        return _o().var(self, axis=axis, keepdims=keepdims, correction=correction)

    def std(self, axis=None, keepdims=False, correction=0.0):
        return _o().std(self, axis=axis, keepdims=keepdims, correction=correction)

    def any(self, axis=None, keepdims=False):
        return _o().any(self, axis=axis, keepdims=keepdims)

    def all(self, axis=None, keepdims=False):
        return _o().all(self, axis=axis, keepdims=keepdims)

    def clip(self, min=None, max=None):
        return _o().clip(self, min, max)

    # ---- operators ---------------------------------------------------------------------------
    # No __iadd__ & co.: Python then evaluates `t += x` as `t = t + x`, S4TF's rebinding rule.
    def __add__(self, o): return _o().add(self, o)
    def __radd__(self, o): return _o().add(o, self)
    def __sub__(self, o): return _o().subtract(self, o)
    def __rsub__(self, o): return _o().subtract(o, self)
    def __mul__(self, o): return _o().multiply(self, o)
    def __rmul__(self, o): return _o().multiply(o, self)
    def __truediv__(self, o): return _o().divide(self, o)
    def __rtruediv__(self, o): return _o().divide(o, self)
    def __floordiv__(self, o): return _o().floor_divide(self, o)
    def __rfloordiv__(self, o): return _o().floor_divide(o, self)
    def __mod__(self, o): return _o().remainder(self, o)
    def __rmod__(self, o): return _o().remainder(o, self)
    def __pow__(self, o): return _o().pow(self, o)
    def __rpow__(self, o): return _o().pow(o, self)
    def __matmul__(self, o): return _o().matmul(self, o)
    def __rmatmul__(self, o): return _o().matmul(o, self)
    def __neg__(self): return _o().negative(self)
    def __pos__(self): return wrap(self._node)
    def __abs__(self): return _o().abs(self)
    def __invert__(self): return _o().bitwise_invert(self)
    def __and__(self, o): return _o().bitwise_and(self, o)
    def __rand__(self, o): return _o().bitwise_and(o, self)
    def __or__(self, o): return _o().bitwise_or(self, o)
    def __ror__(self, o): return _o().bitwise_or(o, self)
    def __xor__(self, o): return _o().bitwise_xor(self, o)
    def __rxor__(self, o): return _o().bitwise_xor(o, self)
    def __lshift__(self, o): return _o().bitwise_left_shift(self, o)
    def __rlshift__(self, o): return _o().bitwise_left_shift(o, self)
    def __rshift__(self, o): return _o().bitwise_right_shift(self, o)
    def __rrshift__(self, o): return _o().bitwise_right_shift(o, self)
    def __eq__(self, o): return _o().equal(self, o)
    def __ne__(self, o): return _o().not_equal(self, o)
    def __lt__(self, o): return _o().less(self, o)
    def __le__(self, o): return _o().less_equal(self, o)
    def __gt__(self, o): return _o().greater(self, o)
    def __ge__(self, o): return _o().greater_equal(self, o)

    def __getitem__(self, index):
        return _o().getitem(self, index)

    def __setitem__(self, index, value):
        """Functional update of *this* object only; in place when its buffer is not shared."""
        self._node = _o().setitem(self, index, value)._node


def wrap(node: Node) -> Tensor:
    """A Tensor object for ``node`` (internal constructor, no checks)."""
    t = object.__new__(Tensor)
    t._node = node
    return t


def describe(x) -> str:
    """``Tensor(f32[2,3])`` style description used in error messages."""
    if isinstance(x, Tensor):
        n = x._node
        from .ir.registry import type_str
        return f"Tensor({type_str(n.aval)})"
    if isinstance(x, (bool, int, float)):
        return f"{type(x).__name__} {x!r}"
    if isinstance(x, np.ndarray):
        return f"ndarray({x.dtype}{list(x.shape)})"
    return type(x).__name__
