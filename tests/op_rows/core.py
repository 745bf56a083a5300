"""Op-table rows for the core primitives: ops/_core.py, math.py, creation.py, shape.py,
reduction.py, contraction.py and indexing.py (see tests/optable.py for the row API).

Conventions used by tests/test_op_table.py:

* ``ref`` gets the operands with floating ones widened to float64 (so the reference is
  more accurate than the op under test). A float64 reference result stands for "the row's
  float dtype" (or float32 for a non-float row: there is never a silent float64); any other
  reference dtype (bool, int32 ...) is the exact dtype the op must return.
* ``extra["out_dtype"]``: the expected result dtype when that rule does not apply
  (a dtype name, or a callable ``row_dtype -> dtype name``).
* ``extra["xfail"]``: ``{dtype name or "*": reason}`` for a known core bug (strict xfail).
  (None at present: the bugs these documented -- non-finite predicates on floats, nextafter
  on float16/bfloat16, 0-d reduction/argmax results, 0-d contraction/gather results -- are
  fixed, and their rows now assert the fixed behaviour.)
"""
from __future__ import annotations

import numpy as np
import scipy.special as sp

import s4tf_py as s4
from s4tf_py.ops import math as _math   # polygamma is not re-exported (yet)
from optable import ALL_FLOATS, FLOATS, INTS, row

BOOL = ("bool",)
SMALL_INTS = ("int8", "int16", "uint8", "uint16", "uint32")

# operand shape sets ---------------------------------------------------------------------------
UNARY = [((3, 4),), ((2, 3, 4),), ((),), ((0, 3),), ((7,),)]
BINARY = [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((1, 3), (2, 1)), ((), (5,)), ((0, 3), (1, 3)),
          ((4, 1, 2), (3, 1))]
TERNARY = [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((4,), (3, 4), (4,)), ((0,), (0,), (0,))]


def _dt(name):
    return np.dtype(getattr(s4, name) if name == "bfloat16" else name)


def _uniform(lo, hi):
    """make: every operand uniform in [lo, hi) of the row dtype (ints: integers in [lo, hi])."""
    def make(rng, shape, dtype, i):
        if dtype.startswith(("int", "uint")):
            return rng.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
        return rng.uniform(lo, hi, size=shape).astype(_dt(dtype))
    return make


def _away_from_zero(lo=0.5, hi=2.0, which=(1,)):
    """make: operands in ``which`` are +-[lo, hi] (divisors); others uniform in [-2, 2]."""
    def make(rng, shape, dtype, i):
        if dtype.startswith(("int", "uint")):
            if i in which:
                v = rng.integers(1, 4, size=shape) * (rng.integers(0, 2, size=shape) * 2 - 1)
                if dtype.startswith("uint"):
                    v = np.abs(v)
                return v.astype(dtype)
            lo_i = 0 if dtype.startswith("uint") else -9
            return rng.integers(lo_i, 10, size=shape).astype(dtype)
        if i in which:
            v = rng.uniform(lo, hi, size=shape) * (rng.integers(0, 2, size=shape) * 2 - 1)
        else:
            v = rng.uniform(-2, 2, size=shape)
        return v.astype(_dt(dtype))
    return make


def _bool_first(rng, shape, dtype, i):
    """make: operand 0 is a bool condition, the rest of the row dtype."""
    if i == 0:
        return rng.random(shape) < 0.5
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        return rng.integers(-5, 6, size=shape).astype(dtype)
    return rng.uniform(-2, 2, size=shape).astype(_dt(dtype))



def _bind_core(name, x):
    """Record the _core primitive ``name`` on ``x`` (primitives with no public function)."""
    from s4tf_py.ops import _core
    return _core.bind_op(getattr(_core, name), [x])


# ---- _core.py: convert, constant, stop_gradient ----------------------------------------------

for target in ("float32", "float64", "float16", "bfloat16", "int32", "int64", "int8", "uint8",
               "bool"):
    row(f"astype_to_{target}", "convert", (lambda t: lambda x: s4.astype(x, t))(target),
        (lambda t: lambda x: x.astype(_dt(t)))(target), UNARY,
        dtypes=tuple(d for d in ALL_FLOATS + INTS + ("bool",) if d != target),
        make=_uniform(0, 5) if target.startswith("uint") else None,
        low=-3, high=3, extra={"out_dtype": target},
        differentiable=target in ALL_FLOATS)

row("astype_same_dtype", (), lambda x: s4.astype(x, x.dtype), lambda x: x, UNARY,
    dtypes=ALL_FLOATS + INTS + ("bool",))
row("full_constant", "constant", lambda x: s4.full(x.shape, 2.5, dtype=x.dtype),
    lambda x: np.full(x.shape, 2.5, dtype=x.dtype), UNARY, dtypes=ALL_FLOATS + INTS,
    differentiable=False)
row("full_constant_plus_x", "constant", lambda x: x + s4.full(x.shape, 2.5, dtype=x.dtype),
    lambda x: x + np.full(x.shape, 2.5).astype(x.dtype), UNARY, dtypes=ALL_FLOATS + INTS)
row("zeros_like_plus_x", "constant", lambda x: s4.zeros_like(x) * x + s4.ones_like(x),
    lambda x: np.zeros_like(x) * x + np.ones_like(x), UNARY, dtypes=ALL_FLOATS + INTS)
row("stop_gradient", "stop_gradient", lambda x: s4.stop_gradient(x), lambda x: x, UNARY,
    dtypes=ALL_FLOATS + INTS, differentiable=False,
    notes="its derivative is zero by definition (tests/test_autodiff.py checks that); finite "
          "differences see the identity")
row("identity", "identity", lambda x: _bind_core("IDENTITY", x), lambda x: x, UNARY,
    dtypes=ALL_FLOATS + INTS + ("bool",))
row("optimization_barrier", "optimization_barrier",
    lambda x: _bind_core("OPTIMIZATION_BARRIER", x), lambda x: x, UNARY,
    dtypes=ALL_FLOATS + INTS + ("bool",))
row("special_scalar_one", ("mul", "constant"), lambda x: x * 1, lambda x: x * 1, UNARY,
    dtypes=ALL_FLOATS + INTS)

# ---- math.py: unary -------------------------------------------------------------------------

_UNARY_FLOAT = [
    # name, prim, s4 fn, numpy ref, low, high
    ("exp", "exp", s4.exp, np.exp, -3, 3),
    ("log", "log", s4.log, np.log, 0.05, 4),
    ("log1p", "log1p", s4.log1p, np.log1p, -0.9, 3),
    ("expm1", "expm1", s4.expm1, np.expm1, -2, 2),
    ("sqrt", "sqrt", s4.sqrt, np.sqrt, 0.0, 4),
    ("rsqrt", "rsqrt", s4.rsqrt, lambda x: 1 / np.sqrt(x), 0.1, 4),
    ("sin", "sin", s4.sin, np.sin, -4, 4),
    ("cos", "cos", s4.cos, np.cos, -4, 4),
    ("tan", "tan", s4.tan, np.tan, -1.2, 1.2),
    ("asin", "asin", s4.asin, np.arcsin, -0.95, 0.95),
    ("acos", "acos", s4.acos, np.arccos, -0.95, 0.95),
    ("atan", "atan", s4.atan, np.arctan, -4, 4),
    ("sinh", "sinh", s4.sinh, np.sinh, -3, 3),
    ("cosh", "cosh", s4.cosh, np.cosh, -3, 3),
    ("tanh", "tanh", s4.tanh, np.tanh, -3, 3),
    ("asinh", "asinh", s4.asinh, np.arcsinh, -3, 3),
    ("acosh", "acosh", s4.acosh, np.arccosh, 1.05, 4),
    ("atanh", "atanh", s4.atanh, np.arctanh, -0.9, 0.9),
    ("sigmoid", "logistic", s4.sigmoid, sp.expit, -5, 5),
    ("erf", "erf", s4.erf, sp.erf, -2.5, 2.5),
    ("erfinv", "erf_inv", s4.erfinv, sp.erfinv, -0.9, 0.9),
    ("lgamma", "lgamma", s4.lgamma, sp.gammaln, 0.2, 5),
    ("digamma", "digamma", s4.digamma, sp.digamma, 0.3, 5),
]
for name, prim, f, ref, lo, hi in _UNARY_FLOAT:
    row(name, prim, (lambda f: lambda x: f(x))(f), ref, UNARY, dtypes=ALL_FLOATS, low=lo, high=hi,
        rtol=2e-5, atol=1e-5)

for order in (1, 2, 3):
    row(f"polygamma_{order}", "polygamma", (lambda n: lambda x: _math.polygamma(n, x))(order),
        (lambda n: lambda x: sp.polygamma(n, x))(order), UNARY, dtypes=ALL_FLOATS, low=0.3, high=4,
        rtol=2e-5, atol=1e-5)
row("polygamma_0_is_digamma", "digamma", lambda x: _math.polygamma(0, x), sp.digamma, UNARY[:2],
    dtypes=FLOATS, low=0.3, high=4, rtol=2e-5, atol=1e-5)

# float-only ops on integer input compute in the default float (float32)
row("exp_of_int", ("convert", "exp"), lambda x: s4.exp(x), np.exp, UNARY, dtypes=INTS, low=-3, high=3,
    extra={"out_dtype": "float32"})

row("negative", "neg", lambda x: s4.negative(x), np.negative, UNARY, dtypes=ALL_FLOATS + INTS)
row("neg_operator", "neg", lambda x: -x, np.negative, UNARY, dtypes=ALL_FLOATS + INTS + SMALL_INTS[:2])
row("abs", "abs", lambda x: s4.abs(x), np.abs, UNARY, dtypes=ALL_FLOATS + INTS + ("int8", "int16"))
row("sign", "sign", lambda x: s4.sign(x), np.sign, UNARY, dtypes=ALL_FLOATS + INTS, differentiable=False)
for name in ("floor", "ceil", "trunc", "round"):
    row(name, name, (lambda f: lambda x: f(x))(getattr(s4, name)),
        getattr(np, name), UNARY, dtypes=ALL_FLOATS, low=-4, high=4, differentiable=False)
row("round_half_to_even", "round", lambda x: s4.round(x), np.round, [((8,),)], dtypes=ALL_FLOATS,
    make=lambda rng, shape, dtype, i: np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49],
                                               dtype=_dt(dtype)),
    differentiable=False)

_SPECIALS = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 3.0])


def _specials(rng, shape, dtype, i):
    v = np.resize(_SPECIALS, int(np.prod(shape, dtype=np.int64))).reshape(shape)
    return v.astype(_dt(dtype))


for name, prim, ref in (("isfinite", "is_finite", np.isfinite), ("isnan", "is_nan", np.isnan),
                        ("isinf", "is_inf", np.isinf)):
    row(name, prim, (lambda f: lambda x: f(x))(getattr(s4, name)), ref, [((8,),), ((2, 4),)],
        dtypes=ALL_FLOATS, make=_specials, differentiable=False)
    row(f"{name}_of_int", (), (lambda f: lambda x: f(x))(getattr(s4, name)), ref, UNARY,
        dtypes=INTS, differentiable=False)

row("logical_not", "not", lambda x: s4.logical_not(x), np.logical_not, UNARY, dtypes=BOOL,
    differentiable=False)
row("logical_not_of_float", ("ne", "not"), lambda x: s4.logical_not(x), np.logical_not, UNARY,
    dtypes=FLOATS + INTS, make=_uniform(-1, 1.0), differentiable=False)
row("bitwise_invert", "bitwise_not", lambda x: s4.bitwise_invert(x), np.invert, UNARY,
    dtypes=INTS + BOOL + ("int8", "uint8", "uint16"), differentiable=False)
row("invert_operator", "bitwise_not", lambda x: ~x, np.invert, UNARY, dtypes=INTS + BOOL,
    differentiable=False)

# ---- math.py: binary -----------------------------------------------------------------------

row("add", "add", lambda a, b: s4.add(a, b), np.add, BINARY, dtypes=ALL_FLOATS + INTS)
row("add_small_ints", "add", lambda a, b: a + b, np.add, BINARY, dtypes=SMALL_INTS, make=_uniform(0, 20))
row("subtract", "sub", lambda a, b: s4.subtract(a, b), np.subtract, BINARY, dtypes=ALL_FLOATS + INTS)
row("multiply", "mul", lambda a, b: s4.multiply(a, b), np.multiply, BINARY, dtypes=ALL_FLOATS + INTS)
row("divide", "div", lambda a, b: s4.divide(a, b), np.divide, BINARY, dtypes=ALL_FLOATS,
    make=_away_from_zero())
row("divide_ints", ("convert", "div"), lambda a, b: a / b, np.divide, BINARY, dtypes=INTS,
    make=_away_from_zero(), extra={"out_dtype": "float32"})
row("floor_divide_int", "floor_div", lambda a, b: s4.floor_divide(a, b), np.floor_divide, BINARY,
    dtypes=INTS + ("int8", "int16"), make=_away_from_zero(), differentiable=False)
row("floor_divide_float", ("div", "floor"), lambda a, b: a // b, np.floor_divide, BINARY,
    dtypes=FLOATS, make=_away_from_zero(), differentiable=False)
row("remainder", "rem", lambda a, b: s4.remainder(a, b), np.remainder, BINARY,
    dtypes=FLOATS + INTS + ("int8",), make=_away_from_zero())
row("remainder_operator_low_precision", "rem", lambda a, b: a % b, np.remainder, BINARY,
    dtypes=("float16", "bfloat16"),
    make=lambda rng, shape, dtype, i: (rng.integers(-20, 21, size=shape) / 4.0 if i == 0 else
                                       rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 4.0], size=shape)
                                       ).astype(_dt(dtype)),
    differentiable=False,
    notes="its operands sit exactly on remainder's jumps (to test exact low-precision values); "
          "the `remainder` row checks the derivative")
row("pow", "pow", lambda a, b: s4.pow(a, b), np.power, BINARY, dtypes=ALL_FLOATS,
    make=lambda rng, shape, dtype, i: rng.uniform(0.2, 2.5, size=shape).astype(_dt(dtype)) if i == 0
    else rng.uniform(-2.0, 2.0, size=shape).astype(_dt(dtype)), rtol=2e-5)
row("pow_ints", "pow", lambda a, b: a ** b, np.power, BINARY, dtypes=INTS,
    make=lambda rng, shape, dtype, i: rng.integers(-3 if i == 0 else 0, 4, size=shape).astype(dtype))
row("maximum", "max", lambda a, b: s4.maximum(a, b), np.maximum, BINARY, dtypes=ALL_FLOATS + INTS)
row("minimum", "min", lambda a, b: s4.minimum(a, b), np.minimum, BINARY, dtypes=ALL_FLOATS + INTS)
row("atan2", "atan2", lambda a, b: s4.atan2(a, b), np.arctan2, BINARY, dtypes=ALL_FLOATS)
row("nextafter", "nextafter", lambda a, b: s4.nextafter(a, b), np.nextafter, BINARY[:4],
    dtypes=ALL_FLOATS, differentiable=False,
    extra={"ref_native": True, "exact": True})
for name, prim, ref in (("bitwise_and", "and", np.bitwise_and), ("bitwise_or", "or", np.bitwise_or),
                        ("bitwise_xor", "xor", np.bitwise_xor)):
    row(name, prim, (lambda f: lambda a, b: f(a, b))(getattr(s4, name)), ref, BINARY,
        dtypes=INTS + BOOL + ("uint8", "int16"), low=-20, high=20, differentiable=False)
row("and_operator", "and", lambda a, b: a & b, np.bitwise_and, BINARY, dtypes=INTS + BOOL,
    differentiable=False)
row("or_operator", "or", lambda a, b: a | b, np.bitwise_or, BINARY, dtypes=INTS + BOOL,
    differentiable=False)
row("xor_operator", "xor", lambda a, b: a ^ b, np.bitwise_xor, BINARY, dtypes=INTS + BOOL,
    differentiable=False)
for name, prim, ref in (("logical_and", "and", np.logical_and), ("logical_or", "or", np.logical_or),
                        ("logical_xor", "xor", np.logical_xor)):
    row(name, prim, (lambda f: lambda a, b: f(a, b))(getattr(s4, name)), ref, BINARY, dtypes=BOOL,
        differentiable=False)


def _shift_make(rng, shape, dtype, i):
    if i == 1:
        return rng.integers(0, 5, size=shape).astype(dtype)
    lo = 0 if dtype.startswith("uint") else -100
    return rng.integers(lo, 100, size=shape).astype(dtype)


row("left_shift", "shift_left", lambda a, b: s4.bitwise_left_shift(a, b), np.left_shift, BINARY,
    dtypes=INTS + ("uint8", "int16"), make=_shift_make, differentiable=False)
row("right_shift", "shift_right", lambda a, b: a >> b, np.right_shift, BINARY,
    dtypes=INTS + ("uint8", "int16"), make=_shift_make, differentiable=False)
row("lshift_operator", "shift_left", lambda a, b: a << b, np.left_shift, BINARY, dtypes=INTS,
    make=_shift_make, differentiable=False)


def _ties(rng, shape, dtype, i):
    """Small integers as the row dtype, so comparisons see many equal pairs."""
    if dtype == "bool":
        return rng.random(shape) < 0.5
    return rng.integers(-2, 3, size=shape).astype(_dt(dtype))


for name, prim, ref, op in (("equal", "eq", np.equal, "=="), ("not_equal", "ne", np.not_equal, "!="),
                            ("less", "lt", np.less, "<"), ("less_equal", "le", np.less_equal, "<="),
                            ("greater", "gt", np.greater, ">"),
                            ("greater_equal", "ge", np.greater_equal, ">=")):
    dts = ALL_FLOATS + INTS + (BOOL if prim in ("eq", "ne") else ()) + ("uint8",)
    row(name, prim, (lambda f: lambda a, b: f(a, b))(getattr(s4, name)), ref, BINARY, dtypes=dts,
        make=_ties, differentiable=False)
    row(f"{name}_operator", prim, eval(f"lambda a, b: a {op} b"), ref, BINARY[:3],
        dtypes=FLOATS + INTS, make=_ties, differentiable=False)

row("where", "select", lambda c, a, b: s4.where(c, a, b), np.where, TERNARY,
    dtypes=ALL_FLOATS + INTS + BOOL, make=_bool_first)
row("where_numeric_condition", ("ne", "select"), lambda c, a, b: s4.where(c, a, b),
    lambda c, a, b: np.where(c != 0, a, b), TERNARY[:2], dtypes=FLOATS + INTS, make=_ties,
    extra={"grad_args": (1, 2)})   # the condition only picks a branch: no derivative

# composites of math.py (no primitives of their own) ---------------------------------------------
_COMPOSITE_UNARY = [
    ("square", lambda x: s4.square(x), np.square, -3, 3),
    ("reciprocal", lambda x: s4.reciprocal(x), np.reciprocal, 0.3, 3),
    ("log2", lambda x: s4.log2(x), np.log2, 0.1, 5),
    ("log10", lambda x: s4.log10(x), np.log10, 0.1, 5),
    ("exp2", lambda x: s4.exp2(x), np.exp2, -3, 3),
    ("cbrt", lambda x: s4.cbrt(x), np.cbrt, -4, 4),
    ("relu", lambda x: s4.relu(x), lambda x: np.maximum(x, 0), -2, 2),
    ("relu6", lambda x: s4.relu6(x), lambda x: np.clip(x, 0, 6), -3, 9),
    ("leaky_relu", lambda x: s4.leaky_relu(x), lambda x: np.where(x > 0, x, 0.2 * x), -2, 2),
    ("elu", lambda x: s4.elu(x), lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))), -2, 2),
    ("selu", lambda x: s4.selu(x), lambda x: 1.0507009873554805 * np.where(
        x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0))), -2, 2),
    ("gelu", lambda x: s4.gelu(x), lambda x: 0.5 * x * (1 + sp.erf(x / np.sqrt(2))), -3, 3),
    ("gelu_tanh", lambda x: s4.gelu(x, approximate="tanh"), lambda x: 0.5 * x * (1 + np.tanh(
        np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))), -3, 3),
    ("silu", lambda x: s4.silu(x), lambda x: x * sp.expit(x), -3, 3),
    ("softplus", lambda x: s4.softplus(x), lambda x: np.logaddexp(0, x), -20, 20),
    ("mish", lambda x: s4.mish(x), lambda x: x * np.tanh(np.logaddexp(0, x)), -3, 3),
    ("softsign", lambda x: s4.softsign(x), lambda x: x / (1 + np.abs(x)), -3, 3),
    ("hard_sigmoid", lambda x: s4.hard_sigmoid(x), lambda x: np.clip(x + 3, 0, 6) / 6, -5, 5),
    ("hard_swish", lambda x: s4.hard_swish(x), lambda x: x * np.clip(x + 3, 0, 6) / 6, -5, 5),
    ("log_sigmoid", lambda x: s4.log_sigmoid(x), lambda x: -np.logaddexp(0, -x), -10, 10),
    ("clip", lambda x: s4.clip(x, -0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0), -2, 2),
    ("positive", lambda x: +x, lambda x: x, -2, 2),
    ("signbit", lambda x: s4.signbit(x), np.signbit, -2, 2),
]
for name, f, ref, lo, hi in _COMPOSITE_UNARY:
    row(name, (), f, ref, UNARY[:3], dtypes=FLOATS, low=lo, high=hi, rtol=2e-5, atol=2e-6)

row("hypot", (), lambda a, b: s4.hypot(a, b), np.hypot, BINARY[:3], dtypes=FLOATS)
row("copysign", (), lambda a, b: s4.copysign(a, b), np.copysign, BINARY[:3], dtypes=FLOATS)
row("logaddexp", (), lambda a, b: s4.logaddexp(a, b), np.logaddexp, BINARY[:3], dtypes=FLOATS)

# ---- creation.py: iota and compositions -------------------------------------------------------

row("iota_plus_x", ("iota", "add"), lambda x: s4.iota(x.shape, x.ndim - 1, dtype=x.dtype) + x,
    lambda x: np.broadcast_to(np.arange(x.shape[-1], dtype=x.dtype), x.shape) + x,
    [((3, 4),), ((2, 3, 5),), ((6,),)], dtypes=ALL_FLOATS + INTS, differentiable=False)
row("arange", "iota", lambda x: s4.arange(x.shape[0], dtype=x.dtype),
    lambda x: np.arange(x.shape[0]).astype(x.dtype), [((5,),), ((0,),)], dtypes=FLOATS + INTS,
    differentiable=False)
row("arange_step_plus_x", ("iota", "mul", "add"),
    lambda x: s4.arange(1, 1 + 3 * x.shape[0], 3, dtype=x.dtype) + x,
    lambda x: np.arange(1, 1 + 3 * x.shape[0], 3, dtype=x.dtype) + x, [((5,),), ((1,),)], dtypes=FLOATS + INTS,
    differentiable=False)
row("linspace_plus_x", ("iota",), lambda x: s4.linspace(-1.0, 2.0, x.shape[0]) + x,
    lambda x: np.linspace(-1.0, 2.0, x.shape[0]) + x, [((5,),), ((2,),), ((1,),)], dtypes=("float32",),
    differentiable=False)
row("eye_times_x", ("iota", "eq", "convert"), lambda x: s4.eye(x.shape[0], x.shape[1], k=1) * x,
    lambda x: np.eye(x.shape[0], x.shape[1], k=1) * x, [((3, 4),), ((4, 4),)], dtypes=("float32",))
row("tril", ("iota", "select"), lambda x: s4.tril(x), np.tril, [((4, 4),), ((2, 3, 5),)],
    dtypes=FLOATS + INTS)
row("triu_k1", ("iota", "select"), lambda x: s4.triu(x, k=1), lambda x: np.triu(x, k=1),
    [((4, 4),), ((3, 5),)], dtypes=FLOATS)

# ---- shape.py ---------------------------------------------------------------------------------

ALL = ALL_FLOATS + INTS + BOOL
row("reshape", "reshape", lambda x: s4.reshape(x, (x.shape[1], -1)),
    lambda x: np.reshape(x, (x.shape[1], -1)), [((3, 4),), ((2, 3, 4),), ((1, 6),)], dtypes=ALL)
row("reshape_to_scalar", "reshape", lambda x: s4.reshape(x, ()), lambda x: np.reshape(x, ()),
    [((1, 1),), ((1,),)], dtypes=FLOATS)
row("flatten_method", "reshape", lambda x: x.flatten(), lambda x: x.reshape(-1),
    [((3, 4),), ((2, 0),)], dtypes=FLOATS + INTS)
row("permute_dims", "transpose", lambda x: s4.permute_dims(x, (2, 0, 1)),
    lambda x: np.transpose(x, (2, 0, 1)), [((2, 3, 4),), ((1, 5, 2),)], dtypes=ALL)
row("transpose_T", "transpose", lambda x: x.T, lambda x: x.T, [((3, 4),), ((0, 2),)], dtypes=ALL)
row("matrix_transpose", "transpose", lambda x: s4.matrix_transpose(x), lambda x: np.swapaxes(x, -1, -2),
    [((2, 3, 4),), ((3, 5),)], dtypes=FLOATS)
row("moveaxis", "transpose", lambda x: s4.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1),
    [((2, 3, 4),)], dtypes=FLOATS)
row("swapaxes", "transpose", lambda x: s4.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2),
    [((2, 3, 4),)], dtypes=FLOATS)
row("broadcast_to", "broadcast_to", lambda x: s4.broadcast_to(x, (2,) + tuple(
    3 if d == 1 else d for d in x.shape)),
    lambda x: np.broadcast_to(x, (2,) + tuple(3 if d == 1 else d for d in x.shape)),
    [((3, 1),), ((1,),), ((),), ((4, 1, 5),)], dtypes=ALL)
row("broadcast_arrays", "broadcast_to",
    lambda a, b: tuple(s4.broadcast_arrays(a, b)), lambda a, b: tuple(np.broadcast_arrays(a, b)),
    [((3, 1), (1, 4)), ((2, 3), (3,))], dtypes=FLOATS)
row("expand_dims", "reshape", lambda x: s4.expand_dims(x, (0, -1)),
    lambda x: np.expand_dims(x, (0, -1)), [((3, 4),), ((),)], dtypes=FLOATS)
row("squeeze", "reshape", lambda x: s4.squeeze(x), lambda x: np.squeeze(x),
    [((1, 3, 1, 4),), ((1,),)], dtypes=FLOATS + INTS)
row("squeeze_axis", "reshape", lambda x: s4.squeeze(x, axis=2), lambda x: np.squeeze(x, axis=2),
    [((1, 3, 1, 4),)], dtypes=FLOATS)
row("concatenate", "concatenate", lambda a, b: s4.concatenate([a, b], axis=1),
    lambda a, b: np.concatenate([a, b], axis=1), [((2, 3), (2, 4)), ((2, 0, 3), (2, 2, 3))],
    dtypes=ALL)
row("concatenate3_neg_axis", "concatenate", lambda a, b, c: s4.concat((a, b, c), axis=-1),
    lambda a, b, c: np.concatenate([a, b, c], axis=-1), [((2, 3), (2, 1), (2, 2)), ((1,), (2,), (0,))],
    dtypes=FLOATS + INTS)
row("concatenate_axis_none", ("reshape", "concatenate"), lambda a, b: s4.concatenate([a, b], axis=None),
    lambda a, b: np.concatenate([a, b], axis=None), [((2, 3), (4,))], dtypes=FLOATS)
row("stack", ("reshape", "concatenate"), lambda a, b: s4.stack([a, b], axis=1),
    lambda a, b: np.stack([a, b], axis=1), [((2, 3), (2, 3)), ((4,), (4,))], dtypes=FLOATS + INTS)
row("slice", "slice", lambda x: s4.slice(x, (1, 0), (3, x.shape[1]), (1, 2)),
    lambda x: x[1:3, ::2], [((4, 5),), ((3, 1),)], dtypes=ALL)
row("split", "slice", lambda x: tuple(s4.split(x, 3, axis=1)), lambda x: tuple(np.split(x, 3, axis=1)),
    [((2, 6),), ((1, 3, 2),)], dtypes=FLOATS)
row("split_indices", "slice", lambda x: tuple(s4.split(x, [1, 3])), lambda x: tuple(np.split(x, [1, 3])),
    [((5, 2),), ((4,),)], dtypes=FLOATS)
row("unstack", ("slice", "reshape"), lambda x: s4.unstack(x, axis=1),
    lambda x: tuple(np.moveaxis(x, 1, 0)), [((2, 3),), ((2, 2, 4),)], dtypes=FLOATS)
row("pad_constant", "pad", lambda x: s4.pad(x, ((1, 2), (0, 3)), constant_values=1.5),
    lambda x: np.pad(x, ((1, 2), (0, 3)), constant_values=1.5), [((2, 3),), ((0, 2),)],
    dtypes=FLOATS + ("float16", "bfloat16"))
row("pad_int", "pad", lambda x: s4.pad(x, 2), lambda x: np.pad(x, 2), [((2, 3),), ((4,),)],
    dtypes=INTS)
for mode in ("reflect", "symmetric", "edge"):
    row(f"pad_{mode}", ("slice", "concatenate"), (lambda m: lambda x: s4.pad(x, ((2, 1), (1, 2)), mode=m))(mode),
        (lambda m: lambda x: np.pad(x, ((2, 1), (1, 2)), mode=m))(mode), [((4, 5),), ((3, 3),)],
        dtypes=FLOATS)
row("flip", "rev", lambda x: s4.flip(x, axis=(0, 2)), lambda x: np.flip(x, (0, 2)),
    [((2, 3, 4),), ((1, 0, 2),)], dtypes=ALL)
row("flip_all", "rev", lambda x: s4.flip(x), lambda x: np.flip(x), [((3, 4),), ((5,),)], dtypes=FLOATS)
row("roll", ("slice", "concatenate"), lambda x: s4.roll(x, 2, axis=1), lambda x: np.roll(x, 2, axis=1),
    [((3, 5),), ((2, 3),)], dtypes=FLOATS + INTS)
row("roll_flat", ("reshape", "slice", "concatenate"), lambda x: s4.roll(x, -3),
    lambda x: np.roll(x, -3), [((3, 5),)], dtypes=FLOATS)
row("roll_multi", ("slice", "concatenate"), lambda x: s4.roll(x, (1, -1), axis=(0, 1)),
    lambda x: np.roll(x, (1, -1), axis=(0, 1)), [((3, 4),)], dtypes=FLOATS)
row("tile", ("reshape", "broadcast_to"), lambda x: s4.tile(x, (2, 3)), lambda x: np.tile(x, (2, 3)),
    [((2, 3),), ((4,),)], dtypes=FLOATS + INTS)
row("repeat", ("reshape", "broadcast_to"), lambda x: s4.repeat(x, 3, axis=1),
    lambda x: np.repeat(x, 3, axis=1), [((2, 3),)], dtypes=FLOATS + INTS)
row("repeat_flat", ("reshape", "broadcast_to"), lambda x: s4.repeat(x, 2), lambda x: np.repeat(x, 2),
    [((2, 3),)], dtypes=FLOATS)
row("meshgrid_xy", ("reshape", "broadcast_to"), lambda a, b: tuple(s4.meshgrid(a, b)),
    lambda a, b: tuple(np.meshgrid(a, b)), [((3,), (4,))], dtypes=FLOATS)
row("meshgrid_ij", ("reshape", "broadcast_to"), lambda a, b, c: tuple(s4.meshgrid(a, b, c, indexing="ij")),
    lambda a, b, c: tuple(np.meshgrid(a, b, c, indexing="ij")), [((3,), (4,), (2,))], dtypes=FLOATS)

# ---- reduction.py -----------------------------------------------------------------------------

RED_SHAPES = [((3, 4, 5),), ((2, 3, 4),)]
_AXES = [None, 0, -1, (0, 2)]
for axis in _AXES:
    for keepdims in (False, True):
        sfx = f"axis{axis}".replace(" ", "").replace("(", "").replace(")", "").replace(",", "_") + \
            ("_keep" if keepdims else "")
        kw = dict(axis=axis, keepdims=keepdims)
        row(f"sum_{sfx}", "reduce_sum", (lambda kw: lambda x: s4.sum(x, **kw))(kw),
            (lambda kw: lambda x: np.sum(x, **kw).astype(x.dtype))(kw), RED_SHAPES,
            dtypes=ALL_FLOATS + INTS, rtol=2e-5, atol=1e-5)
        row(f"max_{sfx}", "reduce_max", (lambda kw: lambda x: s4.max(x, **kw))(kw),
            (lambda kw: lambda x: np.max(x, **kw))(kw), RED_SHAPES, dtypes=ALL_FLOATS + INTS)
        row(f"min_{sfx}", "reduce_min", (lambda kw: lambda x: s4.min(x, **kw))(kw),
            (lambda kw: lambda x: np.min(x, **kw))(kw), RED_SHAPES, dtypes=ALL_FLOATS + INTS)
        row(f"any_{sfx}", "reduce_or", (lambda kw: lambda x: s4.any(x, **kw))(kw),
            (lambda kw: lambda x: np.any(x, **kw))(kw), RED_SHAPES, dtypes=BOOL, differentiable=False)
        row(f"all_{sfx}", "reduce_and", (lambda kw: lambda x: s4.all(x, **kw))(kw),
            (lambda kw: lambda x: np.all(x, **kw))(kw), RED_SHAPES, dtypes=BOOL, differentiable=False)
        row(f"mean_{sfx}", ("reduce_sum", "mul"), (lambda kw: lambda x: s4.mean(x, **kw))(kw),
            (lambda kw: lambda x: np.mean(x, **kw))(kw), RED_SHAPES, dtypes=ALL_FLOATS, rtol=2e-5)
row("prod", "reduce_prod", lambda x: s4.prod(x, axis=1), lambda x: np.prod(x, axis=1).astype(x.dtype),
    RED_SHAPES + [((3, 0),)], dtypes=ALL_FLOATS + INTS, low=0.5, high=1.5, make=None)
row("prod_ints", "reduce_prod", lambda x: s4.prod(x), lambda x: np.prod(x).astype(x.dtype),
    [((2, 3),)], dtypes=INTS, low=-2, high=2)
row("sum_empty", "reduce_sum", lambda x: s4.sum(x, axis=0), lambda x: np.sum(x, axis=0),
    [((0, 3),)], dtypes=FLOATS)
row("sum_bool", ("convert", "reduce_sum"), lambda x: s4.sum(x, axis=0),
    lambda x: np.sum(x, axis=0).astype(np.int32), [((4, 3),)], dtypes=BOOL, differentiable=False)
row("sum_small_int_accumulates", ("convert", "reduce_sum"), lambda x: s4.sum(x),
    lambda x: np.sum(x.astype(np.int64)).astype(np.int32 if x.dtype.kind == "i" else np.uint32),
    [((10, 10),)], dtypes=("int8", "uint8", "int16"), make=_uniform(0, 100), differentiable=False)
row("sum_dtype_arg", ("convert", "reduce_sum"), lambda x: s4.sum(x, dtype=s4.float64),
    lambda x: np.sum(x.astype(np.float64)), [((3, 4),)], dtypes=("float32", "int32"),
    extra={"out_dtype": "float64"})
row("count_nonzero", ("ne", "reduce_sum"), lambda x: s4.count_nonzero(x, axis=1),
    lambda x: np.count_nonzero(x, axis=1).astype(np.int32), [((3, 4),)], dtypes=FLOATS + INTS,
    make=_ties, differentiable=False)
row("var", ("reduce_sum", "sub", "mul"), lambda x: s4.var(x, axis=1), lambda x: np.var(x, axis=1),
    RED_SHAPES, dtypes=FLOATS, rtol=5e-5, atol=1e-5)
row("std_correction", ("reduce_sum", "sqrt"), lambda x: s4.std(x, axis=(0, 1), correction=1),
    lambda x: np.std(x, axis=(0, 1), ddof=1), RED_SHAPES, dtypes=FLOATS, rtol=5e-5, atol=1e-5)
row("logsumexp", ("reduce_max", "exp", "reduce_sum", "log"), lambda x: s4.logsumexp(x, axis=-1),
    lambda x: sp.logsumexp(x, axis=-1), RED_SHAPES, dtypes=FLOATS)
for name, prim in (("argmax", "argmax"), ("argmin", "argmin")):
    for axis in (None, 0, -1):
        for keepdims in (False, True):
            kw = dict(axis=axis, keepdims=keepdims)
            row(f"{name}_axis{axis}{'_keep' if keepdims else ''}", prim,
                (lambda f, kw: lambda x: f(x, **kw))(getattr(s4, name), kw),
                (lambda f, kw: lambda x: f(x, **kw).astype(np.int32))(getattr(np, name), kw),
                RED_SHAPES, dtypes=ALL_FLOATS + INTS, differentiable=False)
row("argmax_ties_first", "argmax", lambda x: s4.argmax(x, axis=1),
    lambda x: np.argmax(x, axis=1).astype(np.int32), [((4, 6),)], dtypes=FLOATS + INTS, make=_ties,
    differentiable=False)
row("argmax_bool", ("convert", "argmax"), lambda x: s4.argmax(x), lambda x: np.argmax(x).astype(np.int32),
    [((7,),)], dtypes=BOOL, differentiable=False)
for name, prim, ref in (("cumsum", "cumsum", np.cumsum), ("cumprod", "cumprod", np.cumprod),
                        ("cummax", "cummax", np.maximum.accumulate),
                        ("cummin", "cummin", np.minimum.accumulate)):
    for axis in (0, 1):
        for reverse in (False, True):
            def _ref(x, ref=ref, axis=axis, reverse=reverse):
                y = np.flip(x, axis) if reverse else x
                r = ref(y, axis=axis).astype(x.dtype)
                return np.flip(r, axis) if reverse else r
            row(f"{name}_axis{axis}{'_rev' if reverse else ''}", prim,
                (lambda f, a, r: lambda x: f(x, a, reverse=r))(getattr(s4, name), axis, reverse),
                _ref, [((4, 5),), ((3, 2, 2),)], dtypes=ALL_FLOATS + INTS,
                make=_uniform(0.6, 1.4) if name == "cumprod" else None,
                low=-3, high=3, rtol=2e-5, atol=1e-5)
row("cumsum_flat", ("reshape", "cumsum"), lambda x: s4.cumsum(x), lambda x: np.cumsum(x).astype(x.dtype),
    [((3, 4),)], dtypes=FLOATS + INTS)
row("cumulative_sum_initial", ("cumsum", "concatenate"),
    lambda x: s4.cumulative_sum(x, axis=1, include_initial=True),
    lambda x: np.concatenate([np.zeros((x.shape[0], 1), x.dtype), np.cumsum(x, axis=1)], axis=1
                             ).astype(x.dtype), [((3, 4),)], dtypes=FLOATS + INTS)

# ---- contraction.py ---------------------------------------------------------------------------

MATMUL = [((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 5)), ((4,), (4, 5)),
          ((3, 4), (4,)), ((4,), (4,)), ((1, 3, 4), (2, 4, 2)), ((0, 4), (4, 3)), ((3, 0), (0, 2)),
          ((2, 1, 3, 4), (3, 4, 2))]
row("matmul", "dot_general", lambda a, b: s4.matmul(a, b), np.matmul, MATMUL,
    dtypes=ALL_FLOATS + INTS, rtol=1e-5, atol=1e-5)
row("matmul_operator", "dot_general", lambda a, b: a @ b, np.matmul, MATMUL[:3], dtypes=FLOATS)
row("tensordot", "dot_general", lambda a, b: s4.tensordot(a, b, axes=2),
    lambda a, b: np.tensordot(a, b, axes=2), [((2, 3, 4), (3, 4, 5)), ((4, 3, 4), (3, 4))],
    dtypes=FLOATS + ("bfloat16",), atol=1e-5)
row("tensordot_full_contraction", "dot_general", lambda a, b: s4.tensordot(a, b, axes=2),
    lambda a, b: np.tensordot(a, b, axes=2), [((3, 4), (3, 4))], dtypes=FLOATS, atol=1e-5)
row("tensordot_axes_lists", "dot_general", lambda a, b: s4.tensordot(a, b, axes=([0, 2], [2, 1])),
    lambda a, b: np.tensordot(a, b, axes=([0, 2], [2, 1])), [((2, 3, 4), (5, 4, 2))], dtypes=FLOATS,
    atol=1e-5)
row("outer", "dot_general", lambda a, b: s4.outer(a, b), np.outer, [((3,), (4,)), ((0,), (2,))],
    dtypes=FLOATS + INTS)
row("vecdot", ("mul", "reduce_sum"), lambda a, b: s4.vecdot(a, b), lambda a, b: np.sum(a * b, axis=-1),
    [((3, 4), (3, 4)), ((2, 3, 4), (4,))], dtypes=FLOATS, atol=1e-5)
row("dot_general_batch", "dot_general",
    lambda a, b: s4.dot_general(a, b, ((2,), (1,)), ((0,), (0,))),
    lambda a, b: np.einsum("bij,bjk->bik", a, b), [((2, 3, 4), (2, 4, 5))], dtypes=ALL_FLOATS,
    atol=1e-5)
row("dot_general_preferred", "dot_general",
    lambda a, b: s4.dot_general(a, b, ((1,), (0,)), preferred_element_type=s4.float32),
    lambda a, b: (a @ b), [((3, 4), (4, 2))], dtypes=("float16", "bfloat16"),
    extra={"out_dtype": "float32"}, rtol=1e-2, atol=1e-2)
for spec, shapes in (("ij,jk->ik", [((3, 4), (4, 5))]), ("bij,bjk->bik", [((2, 3, 4), (2, 4, 5))]),
                     ("ij->ji", [((3, 4),)]), ("ii->i", [((4, 4),)]), ("ij,ij->", [((3, 4), (3, 4))]),
                     ("i,j->ij", [((3,), (4,))]), ("...ij,...jk->...ik", [((2, 3, 4), (2, 4, 5))]),
                     ("ij,jk", [((3, 4), (4, 5))]), ("bhqd,bhkd->bhqk", [((2, 2, 3, 4), (2, 2, 5, 4))]),
                     ("ijk->k", [((2, 3, 4),)])):
    row(f"einsum_{spec}".replace("->", "_to_").replace(",", "_").replace("...", "E"),
        (), (lambda s: lambda *ops: s4.einsum(s, *ops))(spec),
        (lambda s: lambda *ops: np.einsum(s, *ops))(spec), shapes, dtypes=FLOATS, atol=1e-5)

# ---- indexing.py ------------------------------------------------------------------------------

def _np_set(x, idx, v):
    y = np.array(x, copy=True)
    y[idx] = v
    return y


def _scatter_make(unique):
    def make(rng, shape, dtype, i):
        if i == 1:
            n = 5     # operand 0 has 5 rows in every shape set below
            k = int(np.prod(shape, dtype=np.int64))
            v = rng.permutation(n)[:k] if unique else rng.integers(0, n, size=k)
            v = np.where(rng.random(k) < 0.3, v - n, v)     # some negative indices
            return v.reshape(shape).astype(np.int32)
        if dtype.startswith("int"):
            return rng.integers(-5, 6, size=shape).astype(dtype)
        return rng.uniform(-2, 2, size=shape).astype(_dt(dtype))
    return make


def _np_scatter_add(x, i, u):
    y = np.array(x, copy=True)
    np.add.at(y, i, u)
    return y



row("getitem_basic", "slice", lambda x: x[1:, ::2], lambda x: x[1:, ::2], [((4, 5),), ((2, 2, 3),)],
    dtypes=ALL)
row("getitem_negative_step", ("slice", "rev"), lambda x: x[::-2, 3:0:-1],
    lambda x: x[::-2, 3:0:-1], [((5, 5),), ((4, 6, 2),)], dtypes=FLOATS + INTS)
row("getitem_int_none_ellipsis", "slice", lambda x: x[..., None, -1],
    lambda x: x[..., None, -1], [((3, 4),), ((2, 3, 4),)], dtypes=FLOATS + INTS)
row("getitem_int_array", "gather", lambda x: x[[2, 0, -1, 0]], lambda x: x[[2, 0, -1, 0]],
    [((4, 3),), ((5,),)], dtypes=ALL)
row("getitem_two_arrays_separated", "gather", lambda x: x[[0, 1], :, [2, 0]],
    lambda x: x[[0, 1], :, [2, 0]], [((2, 3, 4),)], dtypes=FLOATS)
row("getitem_adjacent_arrays_middle", "gather", lambda x: x[:, [[0], [2]], [1, 0, 1]],
    lambda x: x[:, [[0], [2]], [1, 0, 1]], [((2, 3, 4),)], dtypes=FLOATS)
row("getitem_tensor_index", "gather", lambda x, i: x[i], lambda x, i: x[i],
    [((5, 3), (4,)), ((5,), (2, 3))], dtypes=ALL_FLOATS + INTS, make=_scatter_make(False))
row("getitem_bool_mask", "gather", lambda x, m: x[m], lambda x, m: x[m],
    [((3, 4), (3, 4)), ((5, 2), (5,))], dtypes=FLOATS + INTS,
    make=lambda rng, shape, dtype, i: (rng.random(shape) < 0.5) if i == 1 else
    rng.uniform(-2, 2, size=shape).astype(dtype))
def _take_make(rng, shape, dtype, i):
    """make: operand 1 holds indices (some negative) into axis 1 (size 5) of operand 0."""
    if i == 1:
        return rng.integers(-5, 5, size=shape).astype(np.int32)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith("int"):
        return rng.integers(-5, 6, size=shape).astype(dtype)
    return rng.uniform(-2, 2, size=shape).astype(_dt(dtype))


row("take", "gather", lambda x, i: s4.take(x, i, axis=1), lambda x, i: np.take(x, i, axis=1),
    [((3, 5), (4,)), ((2, 5, 2), (2, 3))], dtypes=ALL_FLOATS + INTS + BOOL, make=_take_make)
row("take_scalar_index", "gather", lambda x: s4.take(x, -2, axis=0), lambda x: np.take(x, -2, axis=0),
    [((5,),)], dtypes=FLOATS + INTS)
row("take_scalar_index_2d", "gather", lambda x: s4.take(x, -2, axis=0), lambda x: np.take(x, -2, axis=0),
    [((4, 3),)], dtypes=FLOATS + INTS)
row("take_flat", ("reshape", "gather"), lambda x, i: s4.take(x, i), lambda x, i: np.take(x, i),
    [((3, 4), (5,))], dtypes=FLOATS,
    make=lambda rng, shape, dtype, i: rng.integers(0, 12, size=shape).astype(np.int32) if i == 1
    else rng.uniform(-2, 2, size=shape).astype(dtype))


def _tal_make(rng, shape, dtype, i):
    if i == 1:
        return rng.integers(0, 4, size=shape).astype(np.int32)
    if dtype.startswith("int"):
        return rng.integers(-5, 6, size=shape).astype(dtype)
    return rng.uniform(-2, 2, size=shape).astype(_dt(dtype))


row("take_along_axis", "take_along_axis", lambda x, i: s4.take_along_axis(x, i, axis=1),
    lambda x, i: np.take_along_axis(x, i, axis=1), [((3, 4), (3, 6)), ((2, 4, 3), (2, 2, 3))],
    dtypes=ALL_FLOATS + INTS, make=_tal_make)
row("take_along_axis_broadcast", "take_along_axis", lambda x, i: s4.take_along_axis(x, i, axis=1),
    lambda x, i: np.take_along_axis(x, i, axis=1), [((3, 4), (1, 2))], dtypes=FLOATS, make=_tal_make)

row("setitem_basic", "update_slice",
    lambda x, v: s4.setitem(x, (slice(1, 3), slice(None, None, 2)), v),
    lambda x, v: _np_set(x, (slice(1, 3), slice(None, None, 2)), v),
    [((4, 5), (2, 3)), ((4, 5), (3,)), ((4, 5), ())], dtypes=ALL)
row("setitem_negative_step", ("update_slice", "rev"),
    lambda x, v: s4.setitem(x, (slice(None, None, -2),), v),
    lambda x, v: _np_set(x, (slice(None, None, -2),), v), [((5, 2), (3, 2)), ((4,), (2,))],
    dtypes=FLOATS + INTS)
row("setitem_int", "update_slice", lambda x, v: s4.setitem(x, (-1, 2), v),
    lambda x, v: _np_set(x, (-1, 2), v), [((3, 4), ())], dtypes=ALL_FLOATS + INTS)
row("setitem_int_array", "scatter", lambda x, v: s4.setitem(x, [3, 0, -2], v),
    lambda x, v: _np_set(x, [3, 0, -2], v), [((5, 3), (3, 3)), ((5,), ()), ((4, 2), (2,))],
    dtypes=ALL)
row("setitem_arrays_and_slice", ("scatter", "update_slice"),
    lambda x, v: s4.setitem(x, ([0, 2], slice(1, 3)), v),
    lambda x, v: _np_set(x, ([0, 2], slice(1, 3)), v), [((3, 4), (2, 2)), ((3, 4), ())],
    dtypes=FLOATS)
row("setitem_bool_mask_scalar", "select", lambda x, m: s4.setitem(x, m, 0.5),
    lambda x, m: _np_set(x, m, 0.5), [((3, 4), (3, 4)), ((3, 4), (3,))], dtypes=FLOATS,
    make=lambda rng, shape, dtype, i: (rng.random(shape) < 0.5) if i == 1 else
    rng.uniform(-2, 2, size=shape).astype(dtype))


row("scatter_add", "scatter", lambda x, i, u: s4.scatter_add(x, i, u),
    _np_scatter_add, [((5, 3), (6,), (6, 3)), ((5,), (2, 4), (2, 4)), ((5, 2), (3,), ())],
    dtypes=ALL_FLOATS + INTS, make=_scatter_make(False), rtol=1e-5, atol=1e-5)
row("index_update", "scatter", lambda x, i, u: s4.index_update(x, i, u),
    lambda x, i, u: _np_set(x, i, u), [((5, 3), (3,), (3, 3)), ((5,), (2, 2), (2, 2))],
    dtypes=ALL_FLOATS + INTS, make=_scatter_make(True))


def _distinct(rng, shape, dtype, i):
    """Values with ties only where the dtype forces them (small ints give plenty of ties)."""
    if dtype.startswith("int"):
        return rng.integers(-3, 4, size=shape).astype(dtype)
    return rng.uniform(-2, 2, size=shape).astype(_dt(dtype))


for axis in (-1, 0):
    for desc in (False, True):
        sfx = f"axis{axis}{'_desc' if desc else ''}"

        def _sort_ref(x, axis=axis, desc=desc):
            order = np.argsort(-x if desc else x, axis=axis, kind="stable")
            return np.take_along_axis(x, order, axis)

        def _argsort_ref(x, axis=axis, desc=desc):
            return np.argsort(-x if desc else x, axis=axis, kind="stable").astype(np.int32)

        row(f"sort_{sfx}", "sort", (lambda a, d: lambda x: s4.sort(x, axis=a, descending=d))(axis, desc),
            _sort_ref, [((3, 6),), ((2, 3, 4),), ((0, 3),)], dtypes=ALL_FLOATS + INTS, make=_distinct)
        row(f"argsort_{sfx}", "argsort",
            (lambda a, d: lambda x: s4.argsort(x, axis=a, descending=d))(axis, desc),
            _argsort_ref, [((3, 6),), ((2, 3, 4),)], dtypes=ALL_FLOATS + INTS, make=_distinct,
            differentiable=False)


def _top_k_ref(k):
    def ref(x):
        order = np.argsort(-x, axis=-1, kind="stable")[..., :k]
        return np.take_along_axis(x, order, -1), order.astype(np.int32)
    return ref


row("top_k", ("top_k", "get_tuple_element"), lambda x: s4.top_k(x, 3), _top_k_ref(3),
    [((2, 6),), ((5,),), ((2, 3, 4),)], dtypes=ALL_FLOATS + INTS, make=_distinct)
row("top_k_values_only", "top_k", lambda x: s4.top_k(x, 2)[0], lambda x: _top_k_ref(2)(x)[0],
    [((3, 4),)], dtypes=FLOATS)
row("one_hot", ("iota", "eq", "select"), lambda i: s4.one_hot(i, 5),
    lambda i: (i[..., None] == np.arange(5)).astype(np.float64), [((4,),), ((2, 3),)], dtypes=INTS,
    make=_uniform(-1, 5), differentiable=False, extra={"out_dtype": "float32"})
row("searchsorted", ("lt", "reduce_sum"), lambda a, v: s4.searchsorted(a, v),
    lambda a, v: np.searchsorted(a, v).astype(np.int32), [((6,), (4,)), ((5,), (2, 3))],
    dtypes=FLOATS + INTS,
    make=lambda rng, shape, dtype, i: (np.sort(rng.integers(-5, 6, size=shape)) if i == 0 else
                                       rng.integers(-6, 7, size=shape)).astype(dtype),
    differentiable=False)
row("searchsorted_right", ("le", "reduce_sum"), lambda a, v: s4.searchsorted(a, v, side="right"),
    lambda a, v: np.searchsorted(a, v, side="right").astype(np.int32), [((6,), (4,))],
    dtypes=INTS,
    make=lambda rng, shape, dtype, i: (np.sort(rng.integers(-5, 6, size=shape)) if i == 0 else
                                       rng.integers(-6, 7, size=shape)).astype(dtype),
    differentiable=False)
