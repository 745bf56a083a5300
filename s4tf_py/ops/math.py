"""Elementwise math: arithmetic, comparisons, unary functions, activations, casts.

Every elementwise primitive broadcasts its operands numpy-style and requires them to share a
dtype (the user-facing functions promote first). Activations that are compositions of
primitives (gelu, silu, softplus ...) are plain functions: they fuse in the compiling backends.
"""
from __future__ import annotations

import math as _m

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, op_error
from ..ir.graph import bind
from ..tensor import Tensor, wrap
from ..ir.registry import AVal, define
from ._core import (CONVERT, _elementwise_rule, apply_binary, bind_op, apply_unary, binary_primitive, to_tensor,
                    unary_primitive)

# ---- primitives (one row each) ------------------------------------------------------------------

NEG = unary_primitive("neg", np.negative, kinds="numeric")
EXP = unary_primitive("exp", np.exp)
LOG = unary_primitive("log", np.log)
LOG1P = unary_primitive("log1p", np.log1p)
EXPM1 = unary_primitive("expm1", np.expm1)
SQRT = unary_primitive("sqrt", np.sqrt)
RSQRT = unary_primitive("rsqrt", lambda x: 1 / np.sqrt(x))
SIN = unary_primitive("sin", np.sin)
COS = unary_primitive("cos", np.cos)
TAN = unary_primitive("tan", np.tan)
ASIN = unary_primitive("asin", np.arcsin)
ACOS = unary_primitive("acos", np.arccos)
ATAN = unary_primitive("atan", np.arctan)
SINH = unary_primitive("sinh", np.sinh)
COSH = unary_primitive("cosh", np.cosh)
TANH = unary_primitive("tanh", np.tanh)
ASINH = unary_primitive("asinh", np.arcsinh)
ACOSH = unary_primitive("acosh", np.arccosh)
ATANH = unary_primitive("atanh", np.arctanh)
class _LazySpecial:
    """``scipy.special``'s ufuncs, imported on first use (the import costs ~0.2 s)."""

    def __getattr__(self, name):
        import scipy.special
        return getattr(scipy.special, name)


_sp = _LazySpecial()


def _special(name):
    def impl(*args, **kwargs):
        return getattr(_sp, name)(*args, **kwargs)
    impl.__name__ = name
    return impl


LOGISTIC = unary_primitive("logistic", _special("expit"))
ERF = unary_primitive("erf", _special("erf"))
ERF_INV = unary_primitive("erf_inv", _special("erfinv"))
LGAMMA = unary_primitive("lgamma", _special("gammaln"))
DIGAMMA = unary_primitive("digamma", _special("digamma"))


def _polygamma_impl(x, *, order):
    d = x.dtype
    y = x.astype(np.float32) if d in dt.LOW_PRECISION else x
    return np.asarray(_sp.polygamma(order, y)).astype(d)


POLYGAMMA = define("polygamma", _elementwise_rule, _polygamma_impl,
                   doc="The ``order``-th derivative of digamma.")
ABS = unary_primitive("abs", np.abs, kinds="numeric")
SIGN = unary_primitive("sign", np.sign, kinds="numeric")
FLOOR = unary_primitive("floor", np.floor)
CEIL = unary_primitive("ceil", np.ceil)
ROUND = unary_primitive("round", np.round)   # half to even, as numpy
TRUNC = unary_primitive("trunc", np.trunc)
def _float_test_rule(x):
    if not dt.is_floating(x.dtype):
        raise DTypeError(f"expects a floating-point operand, got {x}")
    return AVal(x.shape, dt.bool_, False)


def _float_test(fn):
    return lambda x: np.asarray(fn(x.astype(np.float32) if x.dtype == dt.bfloat16 else x))


IS_FINITE = define("is_finite", _float_test_rule, _float_test(np.isfinite), differentiable=False)
IS_NAN = define("is_nan", _float_test_rule, _float_test(np.isnan), differentiable=False)
IS_INF = define("is_inf", _float_test_rule, _float_test(np.isinf), differentiable=False)
NOT = unary_primitive("not", np.invert, kinds="bool", differentiable=False)

ADD = binary_primitive("add", np.add)
SUB = binary_primitive("sub", np.subtract)
MUL = binary_primitive("mul", np.multiply)
DIV = binary_primitive("div", np.divide, kinds="float")
INT_DIV = binary_primitive("floor_div", np.floor_divide, differentiable=False)
REM = binary_primitive("rem", np.remainder)           # numpy / Python sign convention
POW = binary_primitive("pow", np.power)
MAX = binary_primitive("max", np.maximum)
MIN = binary_primitive("min", np.minimum)
ATAN2 = binary_primitive("atan2", np.arctan2, kinds="float")
NEXTAFTER = binary_primitive("nextafter", np.nextafter, kinds="float", differentiable=False,
                             native_low_precision=True)   # float32 would round back: no step

AND = binary_primitive("and", np.bitwise_and, kinds="int_or_bool", differentiable=False)
OR = binary_primitive("or", np.bitwise_or, kinds="int_or_bool", differentiable=False)
XOR = binary_primitive("xor", np.bitwise_xor, kinds="int_or_bool", differentiable=False)
SHL = binary_primitive("shift_left", np.left_shift, kinds="int", differentiable=False)
SHR = binary_primitive("shift_right", np.right_shift, kinds="int", differentiable=False)
EQ = binary_primitive("eq", np.equal, kinds="any", compare=True, record_location=True)
NE = binary_primitive("ne", np.not_equal, kinds="any", compare=True, record_location=True)
LT = binary_primitive("lt", np.less, kinds="numeric", compare=True, record_location=True)
LE = binary_primitive("le", np.less_equal, kinds="numeric", compare=True, record_location=True)
GT = binary_primitive("gt", np.greater, kinds="numeric", compare=True, record_location=True)
GE = binary_primitive("ge", np.greater_equal, kinds="numeric", compare=True, record_location=True)


def _bitwise_not_impl(x):
    return np.invert(x)


INVERT = unary_primitive("bitwise_not", _bitwise_not_impl, kinds="int_or_bool",
                         differentiable=False)


# ---- select: where(pred, a, b) ------------------------------------------------------------------

def _select_rule(p, a, b):
    if p.dtype != dt.bool_:
        raise DTypeError(f"select: the condition must be bool, got {p.dtype}")
    r = _elementwise_rule(AVal(p.shape, a.dtype), a, b)
    return AVal(r.shape, a.dtype, a.weak and b.weak)


SELECT = define(
    "select", _select_rule, lambda p, a, b: np.where(p, a, b).astype(a.dtype),
    doc="where(pred, on_true, on_false), broadcasting all three.")


# ---- arithmetic -------------------------------------------------------------------------------

def add(x1, x2, /):
    """Elementwise ``x1 + x2`` with broadcasting and promotion."""
    return apply_binary(ADD, x1, x2)


def subtract(x1, x2, /):
    return apply_binary(SUB, x1, x2)


def multiply(x1, x2, /):
    return apply_binary(MUL, x1, x2)


def divide(x1, x2, /):
    """True division; integer operands give the default float (float32)."""
    return apply_binary(DIV, x1, x2)


def floor_divide(x1, x2, /):
    """Division rounded toward -inf (numpy and Python semantics)."""
    from ._core import operand_nodes
    (na, nb), dtype, _ = operand_nodes("floor_divide", x1, x2)
    if dt.is_floating(dtype):
        return floor(divide(wrap(na), wrap(nb)))
    return apply_binary(INT_DIV, wrap(na), wrap(nb))


def remainder(x1, x2, /):
    return apply_binary(REM, x1, x2)


def pow(x1, x2, /):  # noqa: A001
    return apply_binary(POW, x1, x2)


power = pow


def maximum(x1, x2, /):
    return apply_binary(MAX, x1, x2)


def minimum(x1, x2, /):
    return apply_binary(MIN, x1, x2)


def atan2(x1, x2, /):
    return apply_binary(ATAN2, x1, x2)


arctan2 = atan2


def nextafter(x1, x2, /):
    return apply_binary(NEXTAFTER, x1, x2)


def hypot(x1, x2, /):
    return sqrt(x1 * x1 + x2 * x2)


def copysign(x1, x2, /):
    x1 = to_tensor(x1)
    return where(signbit(x2), -abs(x1), abs(x1))


def signbit(x, /):
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        return less(x, 0)
    # -0.0 has its sign bit set: 1/-0 = -inf
    return logical_or(less(x, 0), logical_and(equal(x, 0), less(1.0 / x, 0)))


def logaddexp(x1, x2, /):
    m = maximum(x1, x2)
    m_safe = where(is_finite(m), m, 0.0)
    return m_safe + log(exp(x1 - m_safe) + exp(x2 - m_safe))


def negative(x, /):
    return apply_unary(NEG, x)


def positive(x, /):
    return to_tensor(x).copy()


def square(x, /):
    x = to_tensor(x)
    return multiply(x, x)


def reciprocal(x, /):
    return divide(1.0, x)


# ---- comparisons and logic --------------------------------------------------------------------

def equal(x1, x2, /):
    return apply_binary(EQ, x1, x2)


def not_equal(x1, x2, /):
    return apply_binary(NE, x1, x2)


def less(x1, x2, /):
    return apply_binary(LT, x1, x2)


def less_equal(x1, x2, /):
    return apply_binary(LE, x1, x2)


def greater(x1, x2, /):
    return apply_binary(GT, x1, x2)


def greater_equal(x1, x2, /):
    return apply_binary(GE, x1, x2)


def _as_bool(x):
    x = to_tensor(x)
    return x if x.dtype == dt.bool_ else not_equal(x, 0)


def logical_and(x1, x2, /):
    return apply_binary(AND, _as_bool(x1), _as_bool(x2))


def logical_or(x1, x2, /):
    return apply_binary(OR, _as_bool(x1), _as_bool(x2))


def logical_xor(x1, x2, /):
    return apply_binary(XOR, _as_bool(x1), _as_bool(x2))


def logical_not(x, /):
    return apply_unary(NOT, _as_bool(x))


def bitwise_and(x1, x2, /):
    return apply_binary(AND, x1, x2)


def bitwise_or(x1, x2, /):
    return apply_binary(OR, x1, x2)


def bitwise_xor(x1, x2, /):
    return apply_binary(XOR, x1, x2)


def bitwise_invert(x, /):
    return apply_unary(INVERT, x)


def bitwise_left_shift(x1, x2, /):
    return apply_binary(SHL, x1, x2)


def bitwise_right_shift(x1, x2, /):
    return apply_binary(SHR, x1, x2)


def isfinite(x, /):
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        return full_like_bool(x, True)
    return bind_op(IS_FINITE, [x])


is_finite = isfinite


def isnan(x, /):
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        return full_like_bool(x, False)
    return bind_op(IS_NAN, [x])


def isinf(x, /):
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        return full_like_bool(x, False)
    return bind_op(IS_INF, [x])


def full_like_bool(x, value):
    from .creation import full
    return full(x.shape, value, dtype=dt.bool_, device=x.device)


def where(condition, x1, x2, /):
    """Elements of ``x1`` where ``condition`` holds, else of ``x2`` (all three broadcast)."""
    from ._core import operand_nodes, broadcast_shapes
    c = _as_bool(condition)
    (na, nb), dtype, weak = operand_nodes("where", x1, x2)
    shape = broadcast_shapes("where", c.shape, na.shape, nb.shape, operands=[c, x1, x2])
    return wrap(bind(SELECT, (c._node, na, nb), (), shape, dtype, weak, na.device))


def clip(x, /, min=None, max=None):  # noqa: A002
    """Limit values to ``[min, max]`` (either may be None)."""
    x = to_tensor(x)
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


# ---- unary math -----------------------------------------------------------------------------

def _u(prim, doc=""):
    def f(x, /):
        return apply_unary(prim, x)
    f.__doc__ = doc or f"Elementwise {prim.name}."
    return f


exp = _u(EXP)
log = _u(LOG, "Natural logarithm.")
log1p = _u(LOG1P, "log(1 + x), accurate for small x.")
expm1 = _u(EXPM1, "exp(x) - 1, accurate for small x.")
sqrt = _u(SQRT)
rsqrt = _u(RSQRT, "1 / sqrt(x).")
sin = _u(SIN)
cos = _u(COS)
tan = _u(TAN)
asin = arcsin = _u(ASIN)
acos = arccos = _u(ACOS)
atan = arctan = _u(ATAN)
sinh = _u(SINH)
cosh = _u(COSH)
tanh = _u(TANH)
asinh = arcsinh = _u(ASINH)
acosh = arccosh = _u(ACOSH)
atanh = arctanh = _u(ATANH)
erf = _u(ERF, "The error function.")
erfinv = erf_inv = _u(ERF_INV, "Inverse of the error function.")
lgamma = _u(LGAMMA, "log |Γ(x)|.")
digamma = _u(DIGAMMA, "d/dx log Γ(x).")


def polygamma(n: int, x, /):
    """The ``n``-th derivative of digamma (``n`` a non-negative Python int)."""
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    if n == 0:
        return digamma(x)
    from ._core import bind_op
    return bind_op(POLYGAMMA, [x], (("order", int(n)),))
sigmoid = _u(LOGISTIC, "The logistic function 1 / (1 + exp(-x)).")


def abs(x, /):  # noqa: A001
    x = to_tensor(x)
    if x.dtype == dt.bool_ or x.dtype in dt.UNSIGNED:
        return x.copy()
    return apply_unary(ABS, x)


def sign(x, /):
    x = to_tensor(x)
    if x.dtype == dt.bool_:
        return x.copy()
    return apply_unary(SIGN, x)


def _rounding(prim):
    def f(x, /):
        x = to_tensor(x)
        if not dt.is_floating(x.dtype):
            return x.copy()     # integers are already whole (array API)
        return apply_unary(prim, x)
    f.__doc__ = f"Elementwise {prim.name}; integer input is returned unchanged."
    return f


floor = _rounding(FLOOR)
ceil = _rounding(CEIL)
trunc = _rounding(TRUNC)
_round = _rounding(ROUND)


def round(x, /, decimals=0):  # noqa: A001
    """Round half to even (as numpy), optionally to ``decimals`` places."""
    if decimals == 0:
        return _round(x)
    s = 10.0 ** decimals
    return _round(x * s) / s


def log2(x, /):
    return log(x) * (1.0 / _m.log(2.0))


def log10(x, /):
    return log(x) * (1.0 / _m.log(10.0))


def exp2(x, /):
    return exp(to_tensor(x) * _m.log(2.0))


def cbrt(x, /):
    x = to_tensor(x)
    return sign(x) * pow(abs(x), 1.0 / 3.0)


# ---- casts ----------------------------------------------------------------------------------

def astype(x, dtype, /, *, copy=True, device=None):
    """``x`` converted to ``dtype``. A float→int cast of NaN or Inf raises when it runs."""
    x = to_tensor(x)
    try:
        dtype = dt.canonical(dtype)
    except DTypeError as e:
        raise op_error(DTypeError, "astype", str(e), [x]) from None
    n = x._node
    if n.dtype == dtype:
        return wrap(n)
    return wrap(bind(CONVERT, (n,), (("dtype", dtype),), n.shape, dtype, False, n.device))


# ---- activations (compositions that fuse) ----------------------------------------------------

def relu(x, /):
    """max(x, 0)."""
    return maximum(x, 0.0 if dt.is_floating(to_tensor(x).dtype) else 0)


def relu6(x, /):
    return clip(x, 0.0, 6.0)


def leaky_relu(x, /, alpha=0.2):
    """x if x > 0 else alpha * x (S4TF's default alpha 0.2)."""
    x = to_tensor(x)
    return where(greater(x, 0), x, x * alpha)


def elu(x, /, alpha=1.0):
    x = to_tensor(x)
    return where(greater(x, 0), x, alpha * expm1(minimum(x, 0.0)))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x, /):
    x = to_tensor(x)
    return _SELU_SCALE * where(greater(x, 0), x, _SELU_ALPHA * expm1(minimum(x, 0.0)))


def gelu(x, /, approximate="none"):
    """Gaussian error linear unit; ``approximate="tanh"`` is the tanh form Gemma uses."""
    x = to_tensor(x)
    if approximate in (True, "tanh"):
        c = _m.sqrt(2.0 / _m.pi)
        return 0.5 * x * (1.0 + tanh(c * (x + 0.044715 * x * x * x)))
    if approximate not in (False, "none"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1.0 + erf(x * (1.0 / _m.sqrt(2.0))))


def silu(x, /):
    """x * sigmoid(x)."""
    x = to_tensor(x)
    return x * sigmoid(x)


swish = silu


def softplus(x, /):
    """log(1 + exp(x)), computed stably."""
    x = to_tensor(x)
    return maximum(x, 0.0) + log1p(exp(-abs(x)))


def mish(x, /):
    x = to_tensor(x)
    return x * tanh(softplus(x))


def softsign(x, /):
    x = to_tensor(x)
    return x / (1.0 + abs(x))


def hard_sigmoid(x, /):
    """relu6(x + 3) / 6."""
    return relu6(to_tensor(x) + 3.0) * (1.0 / 6.0)


def hard_swish(x, /):
    x = to_tensor(x)
    return x * hard_sigmoid(x)


def log_sigmoid(x, /):
    return -softplus(-to_tensor(x))


# one-line docstrings of the simple elementwise functions (numpy's meaning in each case)
_DOCS = {
    subtract: "Elementwise ``x1 - x2`` with broadcasting and promotion.",
    multiply: "Elementwise ``x1 * x2`` with broadcasting and promotion.",
    remainder: "Elementwise remainder with the sign of the divisor (numpy and Python's ``%``).",
    pow: "Elementwise ``x1 ** x2``.",
    maximum: "Elementwise maximum (NaN propagates).",
    minimum: "Elementwise minimum (NaN propagates).",
    atan2: "Elementwise arc tangent of ``x1 / x2`` choosing the quadrant.",
    nextafter: "The next representable float after ``x1`` towards ``x2``.",
    hypot: "sqrt(x1² + x2²).",
    copysign: "``|x1|`` with the sign of ``x2``.",
    signbit: "True where the sign bit is set (including -0.0).",
    logaddexp: "log(exp(x1) + exp(x2)) computed stably.",
    negative: "Elementwise ``-x``.",
    positive: "Elementwise ``+x`` (a new value equal to ``x``).",
    square: "Elementwise ``x * x``.",
    reciprocal: "Elementwise ``1 / x``.",
    equal: "Elementwise ``x1 == x2`` (bool).",
    not_equal: "Elementwise ``x1 != x2`` (bool).",
    less: "Elementwise ``x1 < x2`` (bool).",
    less_equal: "Elementwise ``x1 <= x2`` (bool).",
    greater: "Elementwise ``x1 > x2`` (bool).",
    greater_equal: "Elementwise ``x1 >= x2`` (bool).",
    logical_and: "Elementwise logical and (non-bool operands are compared with zero).",
    logical_or: "Elementwise logical or.",
    logical_xor: "Elementwise logical exclusive or.",
    logical_not: "Elementwise logical not.",
    bitwise_and: "Elementwise bitwise and of integer or bool tensors.",
    bitwise_or: "Elementwise bitwise or of integer or bool tensors.",
    bitwise_xor: "Elementwise bitwise xor of integer or bool tensors.",
    bitwise_invert: "Elementwise bitwise not (``~x``).",
    bitwise_left_shift: "Elementwise ``x1 << x2`` on integers.",
    bitwise_right_shift: "Elementwise ``x1 >> x2`` on integers (arithmetic for signed types).",
    isfinite: "True where the value is neither infinite nor NaN.",
    isinf: "True where the value is +inf or -inf.",
    isnan: "True where the value is NaN.",
    abs: "Elementwise absolute value.",
    sign: "-1, 0 or 1 by the sign of each element.",
    log2: "Base-2 logarithm.",
    log10: "Base-10 logarithm.",
    exp2: "2 ** x.",
    cbrt: "Real cube root.",
    relu6: "min(max(x, 0), 6).",
    elu: "x if x > 0 else alpha * (exp(x) - 1).",
    selu: "Scaled ELU with the self-normalizing constants of Klambauer et al.",
    mish: "x * tanh(softplus(x)).",
    softsign: "x / (1 + |x|).",
    hard_swish: "x * hard_sigmoid(x).",
    log_sigmoid: "log(sigmoid(x)) computed stably.",
}
for _f, _d in _DOCS.items():
    _f.__doc__ = _d


# ---- derivatives (each beside its primitive's row, by the same names) -------------------------

def _derivatives():
    from ..autodiff import rules as R
    from ._core import CONVERT as _CONVERT
    from ..ir.registry import defjvp, defvjp
    sq = lambda v: v * v  # noqa: E731
    defvjp(NEG, lambda ct, x, *, out: (-ct,))
    defjvp(NEG, lambda ts, x, *, out: None if ts[0] is None else -ts[0])
    R.unary(EXP, lambda x, y: y)
    R.unary(LOG, lambda x, y: 1.0 / x)
    R.unary(LOG1P, lambda x, y: 1.0 / (1.0 + x))
    R.unary(EXPM1, lambda x, y: y + 1.0)
    R.unary(SQRT, lambda x, y: 0.5 / y)
    R.unary(RSQRT, lambda x, y: -0.5 * y / x)
    R.unary(SIN, lambda x, y: cos(x))
    R.unary(COS, lambda x, y: -sin(x))
    R.unary(TAN, lambda x, y: 1.0 + sq(y))
    R.unary(ASIN, lambda x, y: rsqrt(1.0 - sq(x)))
    R.unary(ACOS, lambda x, y: -rsqrt(1.0 - sq(x)))
    R.unary(ATAN, lambda x, y: 1.0 / (1.0 + sq(x)))
    R.unary(SINH, lambda x, y: cosh(x))
    R.unary(COSH, lambda x, y: sinh(x))
    R.unary(TANH, lambda x, y: 1.0 - sq(y))
    R.unary(ASINH, lambda x, y: rsqrt(sq(x) + 1.0))
    R.unary(ACOSH, lambda x, y: rsqrt(sq(x) - 1.0))
    R.unary(ATANH, lambda x, y: 1.0 / (1.0 - sq(x)))
    R.unary(LOGISTIC, lambda x, y: y * (1.0 - y))
    R.unary(ERF, lambda x, y: (2.0 / _m.sqrt(_m.pi)) * exp(-sq(x)))
    R.unary(ERF_INV, lambda x, y: (_m.sqrt(_m.pi) / 2.0) * exp(sq(y)))
    R.unary(LGAMMA, lambda x, y: digamma(x))
    R.unary(DIGAMMA, lambda x, y: polygamma(1, x))
    defvjp(POLYGAMMA, lambda ct, x, *, out, order: (ct * polygamma(order + 1, x),))
    defjvp(POLYGAMMA, lambda ts, x, *, out, order:
           None if ts[0] is None else ts[0] * polygamma(order + 1, x))
    R.unary(ABS, lambda x, y: sign(x))
    for p in (SIGN, FLOOR, CEIL, ROUND, TRUNC):
        R.zero_derivative(p)
    R.linear(ADD)
    defvjp(ADD, lambda ct, a, b, *, out: (ct, ct))
    R.linear(SUB)
    defvjp(SUB, lambda ct, a, b, *, out: (ct, -ct))
    R.binary(MUL, lambda a, b, y: b, lambda a, b, y: a)
    R.binary(DIV, lambda a, b, y: 1.0 / b, lambda a, b, y: -y / b)
    R.binary(REM, lambda a, b, y: ones_like_(a), lambda a, b, y: -floor(a / b))
    R.binary(POW,
             lambda a, b, y: where(equal(b, 0), 0.0, b * pow(a, b - 1.0)),
             lambda a, b, y: where(equal(a, 0), 0.0, y * log(where(equal(a, 0), 1.0, a))))
    R.binary(MAX, lambda a, b, y: _tie_mask(greater(a, b), equal(a, b), a),
             lambda a, b, y: _tie_mask(less(a, b), equal(a, b), a))
    R.binary(MIN, lambda a, b, y: _tie_mask(less(a, b), equal(a, b), a),
             lambda a, b, y: _tie_mask(greater(a, b), equal(a, b), a))
    R.binary(ATAN2, lambda a, b, y: b / (sq(a) + sq(b)), lambda a, b, y: -a / (sq(a) + sq(b)))

    def select_vjp(ct, p, a, b, *, out):
        z = zeros_like_(ct)
        return None, where(p, ct, z), where(p, z, ct)
    defvjp(SELECT, select_vjp)
    R.linear(SELECT, primal_args=(0,))

    def convert_vjp(ct, x, *, out, dtype):
        if not dt.is_floating(x.dtype):
            return (None,)
        return (ct.astype(x.dtype),)
    defvjp(_CONVERT, convert_vjp)
    defjvp(_CONVERT, lambda ts, x, *, out, dtype:
           None if ts[0] is None or not dt.is_floating(dtype) else ts[0].astype(dtype))


def _tie_mask(wins, ties, like):
    """1 where this operand wins, 0.5 on ties (the derivative is split), 0 elsewhere."""
    return where(wins, 1.0, where(ties, 0.5, 0.0)).astype(like.dtype)   # masks via where, not
    # astype: a float cast of an input-dependent bool is diagnosed as non-differentiable


def ones_like_(x):
    from .creation import ones_like
    return ones_like(x)


def zeros_like_(x):
    from .creation import zeros_like
    return zeros_like(x)


_derivatives()
