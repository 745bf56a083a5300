"""Accuracy, special values and vectorization of the LLVM backend's inline math library.

Each function is JIT-compiled into a real loop ``out[i] = f(x[i])`` with the backend's O3
vectorizing pipeline (``mathlib.build_unary_kernel``) and compared with numpy/scipy computed in
float64 over the whole float32 domain: every k-th uint32 bit pattern (all exponents, both
signs, subnormals, inf and NaN patterns included), a dense sample of [-10, 10], a log-spaced
sample near 0 and the special values. The tolerance is the function's documented
``ERROR_BOUNDS`` entry (see the mathlib module docstring for its exact meaning).
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import llvmlite  # noqa: E402,F401 - an install requirement
import scipy.special as sp  # noqa: E402

from s4tf_py.backends.llvm import mathlib as M  # noqa: E402

F32 = np.float32
F64 = np.float64


def _rsqrt(x):
    with np.errstate(divide="ignore"):
        return 1.0 / np.sqrt(x)


def _expit(x):
    # scipy's expit underflows to 0 once exp(-x) overflows; e^x/(1+e^x) keeps the subnormal tail
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def _erfinv(x):
    # scipy returns +0 for erfinv(-0); erf_inv is odd and keeps the sign of zero. (Only the
    # in-domain arguments go to scipy, which is slow on the NaN-producing rest.)
    out = np.full(x.shape, np.nan)
    m = np.abs(x) <= 1
    out[m] = sp.erfinv(x[m])
    return np.where(x == 0, x, out)


REF = {
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log1p": np.log1p, "tanh": np.tanh,
    "logistic": _expit, "erf": sp.erf, "erf_inv": _erfinv, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "atan": np.arctan, "asin": np.arcsin, "acos": np.arccos, "sinh": np.sinh,
    "cosh": np.cosh, "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "sqrt": np.sqrt, "rsqrt": _rsqrt, "atan2": np.arctan2, "pow": np.power,
}

# numpy's float64 reference is itself off by up to ~1 ulp; float64 bounds are checked with
# that reference (and the documented bounds include it).
_SPECIALS32 = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0, 0.5, -0.5,
                        2.0, -2.0, np.finfo(F32).max, -np.finfo(F32).max, np.finfo(F32).tiny,
                        -np.finfo(F32).tiny, np.finfo(F32).smallest_subnormal,
                        -np.finfo(F32).smallest_subnormal, 1e-40, -1e-40, 1e-30, -1e-30,
                        np.pi, -np.pi, np.pi / 2, -np.pi / 2, 88.72284, -88.72284, 89.5, -104.0,
                        -87.5, 1 - 2 ** -24, -1 + 2 ** -24, 1 + 2 ** -23, 0.9999, 1e30, -1e30,
                        3.4e38, 1.7e38], dtype=F32)


def _sample32():
    step = 1531                                   # ~2.8 million bit patterns over all of uint32
    pats = np.arange(0, 2 ** 32, step, dtype=np.uint64).astype(np.uint32)
    bits = pats.view(F32)
    dense = np.linspace(-10, 10, 400001, dtype=F64).astype(F32)
    near0 = np.logspace(-45, 0, 40000).astype(F32)
    near1 = (1 + np.linspace(-1e-3, 1e-3, 20001)).astype(F32)
    return np.concatenate([bits, dense, near0, -near0, near1, -near1, _SPECIALS32])


def _sample64():
    rng = np.random.default_rng(1234)
    pats = rng.integers(0, 2 ** 64 - 1, 400000, dtype=np.uint64, endpoint=True)
    bits = pats.view(F64)
    dense = np.linspace(-10, 10, 200001)
    near0 = np.logspace(-320, 0, 20000)
    near1 = 1 + np.linspace(-1e-6, 1e-6, 20001)
    spec = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, np.finfo(F64).max,
                     -np.finfo(F64).max, np.finfo(F64).tiny, -np.finfo(F64).tiny, 5e-324, -5e-324,
                     709.78, 709.8, -745.1, -745.2, 710.4, 1e300, -1e300, 2.0 ** 60, 1e22,
                     np.pi, -np.pi, np.pi / 2, 1 - 2 ** -53, 1 + 2 ** -52, -1 + 2 ** -53])
    return np.concatenate([bits, dense, near0, -near0, near1, -near1, spec])


_CACHE: dict = {}


def sample(dtype):
    key = np.dtype(dtype).str
    if key not in _CACHE:
        _CACHE[key] = _sample32() if dtype == F32 else _sample64()
    return _CACHE[key]


def check(name, dtype, got, ref, *, bounds=None):
    """Assert the documented accuracy contract; returns the measured max relative error
    (over results whose reference is a normal number)."""
    dtype = np.dtype(dtype)
    rel_b, abs_b = (bounds or (M.ERROR_BOUNDS if dtype == F32 else M.ERROR_BOUNDS_F64))[name]
    fi = np.finfo(dtype)
    sub_ulp = float(fi.smallest_subnormal)
    with np.errstate(invalid="ignore"):          # signalling-NaN bit patterns
        got = got.astype(F64)
    ref = np.asarray(ref, F64)
    nan_ref, nan_got = np.isnan(ref), np.isnan(got)
    assert np.array_equal(nan_ref, nan_got), (
        f"{name}: NaN mismatch ({np.count_nonzero(nan_ref & ~nan_got)} missing, "
        f"{np.count_nonzero(nan_got & ~nan_ref)} spurious)")
    ok = ~nan_ref
    ref, got = ref[ok], got[ok]
    with np.errstate(over="ignore"):
        expected = ref.astype(dtype).astype(F64)      # the correctly rounded result
    # infinities: where the rounded reference overflows the result must be that inf (and
    # results within the relative bound of the format's max may overflow too)
    inf_exp = np.isinf(expected)
    near_max = np.abs(ref) >= float(fi.max) * (1 - 4 * rel_b)
    bad_inf = inf_exp & (got != expected)
    assert not bad_inf.any(), f"{name}: expected inf, got {got[bad_inf][:5]}"
    bad = np.isinf(got) & ~inf_exp & ~(near_max & (np.sign(got) == np.sign(ref)))
    assert not bad.any(), f"{name}: spurious inf at ref {ref[bad][:5]}"
    # signed zeros where the reference is an exact zero
    z = ref == 0
    badz = z & ((got != 0) | (np.signbit(got) != np.signbit(ref)))
    assert not badz.any(), f"{name}: zero sign/value mismatch: got {got[badz][:5]}"
    fin = np.isfinite(got) & np.isfinite(ref) & ~z
    err = np.abs(got[fin] - ref[fin])
    tol = np.maximum(rel_b * np.abs(ref[fin]), abs_b) + sub_ulp
    worst = np.argmax(err - tol) if err.size else None
    assert err.size == 0 or (err <= tol).all(), (
        f"{name} {dtype}: error {err[worst]:.3g} > {tol[worst]:.3g} at ref={ref[fin][worst]!r}, "
        f"got={got[fin][worst]!r} ({np.count_nonzero(err > tol)} failures)")
    normal = np.abs(ref[fin]) >= float(fi.tiny)
    return float((err[normal] / np.abs(ref[fin][normal])).max()) if normal.any() else 0.0


def _ref(name, *xs):
    with np.errstate(all="ignore"):
        return REF[name](*[np.asarray(x, F64) for x in xs])


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", M.UNARY)
def test_unary_float32_whole_domain(name):
    x = sample(F32)
    got = M.build_unary_kernel(name, F32)(x)
    assert got.dtype == F32
    check(name, F32, got, _ref(name, x))


@pytest.mark.parametrize("name", M.UNARY)
def test_unary_float64(name):
    x = sample(F64)
    got = M.build_unary_kernel(name, F64)(x)
    assert got.dtype == F64
    check(name, F64, got, _ref(name, x))


def _binary_sample(name, dtype, n):
    rng = np.random.default_rng(7)
    ity = np.uint32 if dtype == F32 else np.uint64
    top = 2 ** 32 - 1 if dtype == F32 else 2 ** 64 - 1
    bx = rng.integers(0, top, n, dtype=ity, endpoint=True).view(dtype)
    by = rng.integers(0, top, n, dtype=ity, endpoint=True).view(dtype)
    mx = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))).astype(dtype)
    if name == "pow":
        my = rng.uniform(-40, 40, n).astype(dtype)
        my[: n // 4] = np.round(my[: n // 4])               # integer exponents, negative bases
        mx2 = np.exp(rng.uniform(-3, 3, n)).astype(dtype) * rng.choice([-1, 1], n).astype(dtype)
        iy = rng.integers(-12, 13, n).astype(dtype)
        xs = np.concatenate([bx, mx, mx2, bx])
        ys = np.concatenate([by, my, iy, my])
    else:
        my = (rng.standard_normal(n) * np.exp(rng.uniform(-20, 20, n))).astype(dtype)
        xs = np.concatenate([bx, mx, mx])
        ys = np.concatenate([by, my, -my[::-1]])
    return xs, ys


_BIN_SPECIALS = [0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 2.5, -2.5, np.inf,
                 -np.inf, np.nan, 1e-40, -1e-40]


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", M.BINARY)
def test_binary(name, dtype):
    k = M.build_binary_kernel(name, dtype)
    n = 1_000_000 if dtype == F32 else 200_000
    x, y = _binary_sample(name, dtype, n)
    # kernel argument order is the numpy order: atan2(y, x), pow(x, y)
    check(name, dtype, k(x, y), _ref(name, x, y))
    s = np.array(_BIN_SPECIALS, dtype)
    a, b = (g.ravel() for g in np.meshgrid(s, s))
    got = k(a, b).astype(F64)
    ref = _ref(name, a, b)
    check(name, dtype, k(a, b), ref)
    # values numpy defines exactly (0, inf, nan, and the exact constants of the IEEE rules)
    with np.errstate(over="ignore"):
        want = ref.astype(dtype).astype(F64)
    exact = np.isnan(want) | np.isinf(want) | (want == 0) | np.isin(np.abs(want), [1.0, 0.25])
    exact |= np.isinf(a) | np.isinf(b) | (a == 0) | (b == 0)
    same = (got == want) & (np.signbit(got) == np.signbit(want)) | (np.isnan(got) & np.isnan(want))
    bad = exact & ~same
    assert not bad.any(), [(a[i], b[i], got[i], want[i]) for i in np.nonzero(bad)[0][:8]]


def test_pow_integer_exponents_exact():
    """Representable integer powers (negative bases included) are exact, like numpy's."""
    from fractions import Fraction
    for dtype in (F32, F64):
        k = M.build_binary_kernel("pow", dtype)
        xs, ys = [], []
        for base in (2, 3, 5, 7, 10, -2, -3, -5, 1.5, -1.5, 0.5, -0.25, 11, -13, 1.25, -0.75, 100):
            for e in range(-40, 128):
                v = Fraction(base) ** e
                if v != 0 and abs(v) < float(np.finfo(dtype).max):
                    fv = dtype(float(v))
                    if Fraction(float(fv)) == v and abs(fv) >= np.finfo(dtype).tiny:
                        xs.append(base)
                        ys.append(e)
        x, y = np.array(xs, dtype), np.array(ys, dtype)
        got = k(x, y)
        want = np.array([float(Fraction(int(b) if float(b).is_integer() else Fraction(float(b)))
                               ** int(e)) for b, e in zip(x, y)], dtype)
        assert np.array_equal(got, want), list(zip(x[got != want], y[got != want]))[:8]
        assert len(xs) > 200


@pytest.mark.parametrize("name", ["exp", "tanh", "logistic", "log"])
def test_float32_loop_vectorizes(name):
    k = M.build_unary_kernel(name, F32)
    assert re.search(r"<(8|16) x float>", k.optimized_ir), "loop did not vectorize"


@pytest.mark.parametrize("dtype", [F32, F64])
def test_no_library_calls(dtype):
    """Only intrinsics that lower to single vector instructions: no libm, no llvm.exp etc."""
    forbidden = {"exp", "exp2", "exp10", "log", "log2", "log10", "sin", "cos", "tan", "asin",
                 "acos", "atan", "atan2", "sinh", "cosh", "tanh", "pow", "powi", "sincos",
                 "ldexp", "frexp", "modf"}
    for name in M.FUNCTIONS:
        k = (M.build_binary_kernel if name in M.BINARY else M.build_unary_kernel)(name, dtype)
        callees = set(re.findall(r"call [^@]*@([\w.$]+)\(", k.optimized_ir))
        for c in callees:
            assert c.startswith("llvm."), f"{name}: calls {c}"
            assert c.split(".")[1] not in forbidden, f"{name}: uses intrinsic {c}"


def test_emit_interface():
    from llvmlite import ir
    mod = ir.Module()
    fn = ir.Function(mod, ir.FunctionType(ir.FloatType(), [ir.FloatType()]), name="f")
    b = ir.IRBuilder(fn.append_basic_block())
    v = M.emit(b, "sigmoid", [fn.args[0]])          # alias
    assert v.type == ir.FloatType()
    with pytest.raises(KeyError):
        M.emit(b, "gamma", [fn.args[0]])
    with pytest.raises(TypeError):
        M.emit(b, "pow", [fn.args[0]])
    assert set(M.ERROR_BOUNDS) == set(M.FUNCTIONS) == set(M.ERROR_BOUNDS_F64)


def test_kernel_out_and_broadcast():
    k = M.build_binary_kernel("pow", F32)
    x = np.arange(1, 7, dtype=F32).reshape(2, 3)
    np.testing.assert_array_equal(k(x, np.float32(2.0)), x * x)
    out = np.empty_like(x)
    assert M.build_unary_kernel("sqrt", F32)(x * x, out=out) is out
    np.testing.assert_array_equal(out, x)
