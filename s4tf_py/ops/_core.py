"""Shared machinery for defining ops: operand conversion, promotion, broadcasting, binding.

Op families (``math.py``, ``reduction.py``, ...) define their primitives with the factories
here and expose user-facing functions that convert operands and call :func:`bind_op`.
"""
from __future__ import annotations

import functools
import math as _math

import numpy as np

from .. import dtypes as dt
from ..device import get_default_device
from ..errors import DTypeError, ShapeError, op_error
from ..ir import graph
from ..ir.graph import Node, bind, bind_checked
from ..ir.registry import AVal, define
from ..tensor import Tensor, wrap

def contiguous(x) -> np.ndarray:
    """``x`` as a C-contiguous array, keeping 0-d arrays 0-d (np.ascontiguousarray does not)."""
    return np.asarray(x, order="C")


# ---- operand conversion -----------------------------------------------------------------------

#: Python scalars equal to one of these are baked into graphs as constants (so x*1 and x+0
#: simplify); every other Python scalar is a graph *input*, so changing it (a learning rate)
#: never recompiles. PyTorch/XLA calls these "special scalars".
SPECIAL_SCALARS = (0, 1)


def _scalar_leaf(value: float, dtype, device) -> Node:
    """scalar_node for a Python float meeting a floating tensor (the hot case: x * 0.5)."""
    if value == 0.0 or value == 1.0:
        return scalar_node(value, dtype, device)
    return Node(None, (), (), (), dtype, True, device, np.array(value, dtype=dtype))


def scalar_node(value, dtype, device) -> Node:
    """A weakly typed scalar of ``dtype`` holding the Python number ``value``."""
    if value in SPECIAL_SCALARS:
        value = bool(value) if dtype == dt.bool_ else (
            float(value) if dt.is_floating(dtype) else int(value))
        return bind(CONSTANT, (), (("value", value), ("dtype", dtype), ("weak", True)), (), dtype,
                    True, device)
    if dt.is_integer(dtype):
        info = np.iinfo(dtype)
        if isinstance(value, float):
            if not _math.isfinite(value):
                raise op_error(DTypeError, "convert", f"cannot represent {value} as {dtype}")
            value = int(value)
        if not info.min <= value <= info.max:
            raise op_error(DTypeError, "convert",
                           f"Python integer {value} is out of range for {dtype}")
    return graph.leaf(np.asarray(value, dtype=dtype), (), dtype, True, device)


def to_tensor(x, dtype=None, device=None) -> Tensor:
    """Anything array-like as a Tensor (Tensors pass through unless a cast is asked for)."""
    if isinstance(x, Tensor):
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    return Tensor(x, dtype=dtype, device=device)


def operand_nodes(op: str, *args) -> tuple[list[Node], np.dtype, bool]:
    """Nodes for ``args`` converted to their common (promoted) dtype.

    Python scalars become weak scalars of the common type; tensors of another dtype get a
    ``convert`` node. Returns ``(nodes, dtype, weak)``.
    """
    nodes: list = []
    dtype, weak = None, True
    device = None
    for a in args:
        if isinstance(a, Tensor):
            n = a._node
        elif isinstance(a, (bool, int, float)):
            nodes.append(a)
            d, w = dt.python_scalar_dtype(a), True
            dtype, weak = (d, w) if dtype is None else dt.promote(dtype, weak, d, w)
            continue
        elif isinstance(a, (np.ndarray, np.generic, list, tuple)):
            n = Tensor(a)._node
        else:
            raise op_error(DTypeError, op, f"cannot use a {type(a).__name__} as an operand")
        nodes.append(n)
        if device is None:
            device = n.device
        elif n.device != device:
            raise op_error(ValueError, op, f"operands live on different devices ({device} and "
                           f"{n.device}); move them with t.to(device)",
                           [x for x in args if isinstance(x, Tensor)])
        dtype, weak = (n.dtype, n.weak) if dtype is None else dt.promote(dtype, weak, n.dtype, n.weak)
    if device is None:
        device = get_default_device()
    for i, n in enumerate(nodes):
        if not isinstance(n, Node):
            nodes[i] = scalar_node(n, dtype, device)
        elif n.dtype != dtype:
            nodes[i] = bind(CONVERT, (n,), (("dtype", dtype),), n.shape, dtype, weak, n.device)
    return nodes, dtype, weak


_FLOATS = frozenset(dt.FLOATING)


# ---- broadcasting --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _broadcast_shapes(a: tuple, b: tuple):
    if len(a) < len(b):
        a = (1,) * (len(b) - len(a)) + a
    elif len(b) < len(a):
        b = (1,) * (len(a) - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            return None
    return tuple(out)


def broadcast_shapes(op: str, *shapes, operands=()) -> tuple:
    """numpy broadcasting of ``shapes``; a ShapeError naming ``op`` when they do not fit."""
    out = shapes[0]
    for s in shapes[1:]:
        if s != out:
            r = _broadcast_shapes(out, s)
            if r is None:
                raise op_error(ShapeError, op, "shapes " + " and ".join(
                    str(tuple(x)) for x in shapes) + " cannot be broadcast together", operands)
            out = r
    return out


# ---- elementwise primitives --------------------------------------------------------------------

def _elementwise_rule(*avals, **params):
    shape = avals[0].shape
    for a in avals[1:]:
        if a.shape != shape:
            shape = _broadcast_shapes(shape, a.shape)
            if shape is None:
                raise ShapeError("operands cannot be broadcast: "
                                 + ", ".join(str(a) for a in avals))
    dtypes = {a.dtype for a in avals}
    if len(dtypes) != 1:
        raise DTypeError("elementwise operands must share a dtype, got "
                         + ", ".join(str(a) for a in avals))
    return AVal(shape, avals[0].dtype, all(a.weak for a in avals))


def _compare_rule(*avals, **params):
    a = _elementwise_rule(*avals)
    return AVal(a.shape, dt.bool_, False)


def _low_precision_safe(fn):
    """Run a numpy function in float32 for float16/bfloat16 inputs, as kernels do."""
    def impl(*xs, **params):
        d = xs[0].dtype
        if d in dt.LOW_PRECISION:
            return np.asarray(fn(*[x.astype(np.float32) for x in xs], **params)).astype(d)
        return np.asarray(fn(*xs, **params), dtype=d)
    impl.__name__ = getattr(fn, "__name__", "impl")
    return impl


_KIND_CHECK = {
    "float": dt.is_floating,
    "numeric": lambda d: d != dt.bool_,
    "int": dt.is_integer,
    "int_or_bool": lambda d: d == dt.bool_ or dt.is_integer(d),
    "bool": lambda d: d == dt.bool_,
    "any": lambda d: True,
}


def unary_primitive(name, fn, *, kinds="float", differentiable=True, doc="", **slots):
    """An elementwise one-operand primitive. ``kinds``: which dtypes it accepts."""
    impl = _low_precision_safe(fn) if kinds != "bool" else (lambda x: np.asarray(fn(x)))
    prim = define(name, _elementwise_rule, impl, differentiable=differentiable, doc=doc, **slots)
    _set_kinds(prim, kinds)
    return prim


def binary_primitive(name, fn, *, kinds="numeric", compare=False, differentiable=True, doc="",
                     native_low_precision=False, **slots):
    if native_low_precision:
        impl = lambda a, b: np.asarray(fn(a, b), dtype=a.dtype)  # noqa: E731
        rule = _elementwise_rule
    elif compare:
        impl = lambda a, b: np.asarray(fn(a, b))  # noqa: E731
        rule = _compare_rule
    else:
        impl = _low_precision_safe(fn)
        rule = _elementwise_rule
    prim = define(name, rule, impl, differentiable=differentiable and not compare, doc=doc,
                  **slots)
    _set_kinds(prim, kinds)
    return prim


def _set_kinds(prim, kinds):
    prim.extra["kinds"] = kinds
    prim.extra["accepts"] = frozenset(d for d in dt.ALL_DTYPES if _KIND_CHECK[kinds](d))




def apply_unary(prim, x, *, promote_int=True):
    """Record ``prim(x)``; integer inputs of a float-only op promote to the default float."""
    if not isinstance(x, Tensor):
        x = to_tensor(x)
    n = x._node
    kinds = prim.extra["kinds"]
    if kinds == "float" and not dt.is_floating(n.dtype):
        if promote_int and n.dtype != dt.bool_:
            n = bind(CONVERT, (n,), (("dtype", dt.default_float),), n.shape, dt.default_float,
                     n.weak, n.device)
        else:
            raise op_error(DTypeError, prim.name, f"expects a floating-point operand, got {n.dtype}",
                           [x])
    elif not _KIND_CHECK[kinds](n.dtype):
        raise op_error(DTypeError, prim.name, f"does not accept {n.dtype} operands", [x])
    return wrap(bind(prim, (n,), (), n.shape, n.dtype, n.weak, n.device))


def apply_binary(prim, a, b):
    """Record ``prim(a, b)`` with promotion and numpy broadcasting."""
    # fast paths for the common cases; everything else goes through operand_nodes
    ta, tb = type(a), type(b)
    if ta is Tensor:
        na = a._node
        if tb is Tensor:
            nb = b._node
            fast = (na.dtype is nb.dtype and na.weak is nb.weak and na.shape == nb.shape
                    and na.device is nb.device)
        elif tb is float and na.dtype in _FLOATS:
            nb = _scalar_leaf(b, na.dtype, na.device)
            fast = True
        else:
            fast = False
    elif ta is float and tb is Tensor and b._node.dtype in _FLOATS:
        nb = b._node
        na = _scalar_leaf(a, nb.dtype, nb.device)
        fast = True
    else:
        fast = False
    if fast and na.dtype in prim.extra["accepts"]:
        return _bind_binary(prim, a, b, na, nb, na.dtype, na.weak and nb.weak)
    (na, nb), dtype, weak = operand_nodes(prim.name, a, b)
    kinds = prim.extra["kinds"]
    if not _KIND_CHECK[kinds](dtype):
        if kinds == "float" and dtype != dt.bool_:
            na, nb = (bind(CONVERT, (n,), (("dtype", dt.default_float),), n.shape,
                           dt.default_float, weak, n.device) for n in (na, nb))
            dtype = dt.default_float
        else:
            raise op_error(DTypeError, prim.name, f"does not accept {dtype} operands",
                           [x for x in (a, b)])
    return _bind_binary(prim, a, b, na, nb, dtype, weak)


def _bind_binary(prim, a, b, na, nb, dtype, weak):
    """Record ``prim(na, nb)`` (operands of one dtype) with numpy broadcasting."""
    shape = na.shape
    if nb.shape != shape:
        shape = _broadcast_shapes(shape, nb.shape)
        if shape is None:
            raise op_error(ShapeError, prim.name,
                           f"shapes {na.shape} and {nb.shape} cannot be broadcast together",
                           [a, b])
    if prim.shape_rule is _compare_rule:
        dtype, weak = dt.bool_, False
    return wrap(bind(prim, (na, nb), (), shape, dtype, weak, na.device))


def bind_op(prim, operands, params=(), *, device=None):
    """Record ``prim`` on Tensors, typing the result with the shape rule.

    Shape-rule errors are re-raised naming the op, the operands and the user's line.
    """
    nodes = tuple(t._node for t in operands)
    if device is None:
        device = nodes[0].device if nodes else get_default_device()
    try:
        node = bind_checked(prim, nodes, tuple(params), device)
    except (ShapeError, DTypeError, ValueError, TypeError) as e:
        cls = ShapeError if isinstance(e, ValueError) else DTypeError
        raise op_error(cls, prim.name, str(e), list(operands)) from None
    if prim.multiple_results:
        return tuple(wrap(bind(GET_TUPLE_ELEMENT, (node,), (("index", i),), a.shape, a.dtype,
                               a.weak, device)) for i, a in enumerate(node.avals))
    return wrap(node)


# ---- primitives every family needs -------------------------------------------------------------

def _convert_rule(x, *, dtype):
    return AVal(x.shape, dtype, x.weak)


def _convert_impl(x, *, dtype):
    if dt.is_integer(dtype) and dt.is_floating(x.dtype):
        xf = x.astype(np.float64) if x.dtype in dt.LOW_PRECISION else x
        if not np.all(np.isfinite(xf)):
            raise ValueError(f"cannot convert non-finite values (NaN or Inf) of {x.dtype} to {dtype}")
    return x.astype(dtype)


CONVERT = define("convert", _convert_rule, _convert_impl, record_location=True,
                 doc="Cast to another dtype (differentiable between float types only).")


def _constant_rule(*, value, dtype, shape=(), weak=False, negative_zero=False):
    return AVal(tuple(shape), dtype, weak)


def _constant_impl(*, value, dtype, shape=(), weak=False, negative_zero=False):
    return np.full(shape, value, dtype=dtype)


CONSTANT = define("constant", _constant_rule, _constant_impl, nullary=True,
                  doc="A value baked into the graph: fill ``shape`` with the scalar ``value``.")


def _gte_rule(t, *, index):
    raise TypeError("get_tuple_element is typed by its producer")


GET_TUPLE_ELEMENT = define("get_tuple_element", _gte_rule, lambda t, *, index: t[index],
                           doc="Select one result of a multiple-result primitive.")


STOP_GRADIENT = define("stop_gradient", lambda x: x, lambda x: x,
                       doc="Identity whose derivative is zero (S4TF's withoutDerivative(at:)).")


def stop_gradient(x):
    """``x`` with its derivative cut: gradients do not flow through it."""
    x = to_tensor(x)
    n = x._node
    return wrap(bind(STOP_GRADIENT, (n,), (), n.shape, n.dtype, n.weak, n.device))


IDENTITY = define("identity", lambda x: x, lambda x: x,
                  doc="A fresh name for a value: differentiation inputs and optimization barriers.")
OPTIMIZATION_BARRIER = define(
    "optimization_barrier", lambda x: x, lambda x: x,
    doc="Identity that passes must not see through (no CSE or folding across it), as "
        "stablehlo.optimization_barrier; rematerialization uses it.")
OPTIMIZATION_BARRIER.extra["no_cse"] = True


def _derivatives():
    from ..ir.registry import defjvp, defvjp
    defvjp(STOP_GRADIENT, lambda ct, x, *, out: (None,))
    defjvp(STOP_GRADIENT, lambda ts, x, *, out: None)
    for p in (IDENTITY, OPTIMIZATION_BARRIER):
        defvjp(p, lambda ct, x, *, out: (ct,))
        defjvp(p, lambda ts, x, *, out: ts[0])


_derivatives()
