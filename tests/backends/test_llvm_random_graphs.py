"""Random programs, compiled by the LLVM backend, against the reference interpreter.

Hypothesis draws a small straight-line program in a tiny DSL: input tensors (float32 and
int32, of broadcast-compatible shapes such as ``(3, 1, 4)`` and ``(4,)``), then instructions
``vK = op(vI, vJ, ...)`` whose operands index the growing list of values:

* elementwise: unary math (``tanh``, ``exp``, ``log(abs(x) + 0.5)``...), binary math
  (``add``, ``mul``, ``x / (abs(y) + 0.5)``...), ops with a Python constant, comparisons
  feeding ``where`` or ``astype``, and dtype casts (``astype`` float32 <-> int32);
* broadcasting: binary operands of different (compatible) shapes, and ``s4.broadcast_to``;
* reductions: ``sum``/``max``/``min``/``mean`` over random axes (non-trailing ones too, and
  ``axis=None``), with ``keepdims`` true and false;
* layout: ``reshape`` (to any factorization of the size, sometimes with ``-1``) and
  ``transpose`` (any permutation).

The program's function is compiled with ``s4.compile`` on ``s4.Device("llvm")`` and run as
plain code on ``s4.Device("reference")``; results must agree: integers exactly, floats within
``rtol=1e-5, atol=1e-5`` plus a forward error bound propagated through the program (see
``_Val``): each op adds its own rounding (for transcendental functions the documented
``mathlib.ERROR_BOUNDS`` plus a few ulps for numpy's own result) and passes its operands'
errors on through its Lipschitz constant on the domain. Inputs stay in safe domains by
construction (``log``/``sqrt`` of ``abs(x) + 0.5``, division by ``abs(y) + 0.5``, ``exp`` only of
bounded values, magnitudes capped), so every program is well defined on both backends; NaN and
inf positions must still match exactly.

A failing example shrinks (Hypothesis) to a small program, printed as ``vK = op(...)`` lines;
the message shows the slice of it that the wrong value depends on, and the input arrays.

A regression test keeps the minimal reproduction of a planner bug these tests found.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s4tf_py as s4
from s4tf_py.backends.llvm.mathlib import ERROR_BOUNDS

LLVM = s4.Device("llvm")
REF = s4.Device("reference")

U = 2.0 ** -24                      # float32 unit roundoff
NUMPY_ULPS = 6e-7                   # numpy's own float32 transcendental error, generously
CAP = 1e6                           # static bound on |value| (floats and int32 alike)
MAX_RATIO = 1e-3                    # error bound / magnitude bound above which an op is refused
RTOL, ATOL = 1e-5, 1e-5
GRAD_RTOL = 1e-5                    # gradients: also |diff| <= 2 GRAD_RTOL max|gradient|

F32, I32 = "float32", "int32"
SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])


# ---- values: shape, dtype and static bounds ---------------------------------------------------

class _Val:
    """What the generator knows of a value: shape, dtype, ``|v| <= m`` and ``|err| <= e``.

    ``e`` bounds the absolute difference a correct float32 backend may show against another
    correct one (rounding and approximation error, propagated); it is 0 for int32 values."""
    __slots__ = ("shape", "dtype", "m", "e")

    def __init__(self, shape, dtype, m, e=0.0):
        self.shape, self.dtype, self.m, self.e = tuple(shape), dtype, float(m), float(e)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))


def _ok(m, e, dtype=F32):
    """Whether a result with these bounds keeps the program well defined and testable."""
    if not (m <= CAP):
        return False
    return dtype == I32 or e <= MAX_RATIO * max(m, 1.0)


def _trans(name):
    return ERROR_BOUNDS[name][0] + NUMPY_ULPS


def _bshape(*shapes):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        return None


# ---- the DSL: instruction tables ----------------------------------------------------------------
# Each unary entry: (display format, function, bounds(m, e) -> (m, e) or None, keeps int dtype).

def _lip(f, lip, err_name=None):
    """Bounds for an op with |result| <= f(m) and Lipschitz constant lip(m) on |x| <= m."""
    def bounds(m, e):
        mo = f(m)
        rnd = _trans(err_name) if err_name else 2 * U
        return mo, lip(m) * e + rnd * mo
    return bounds


UNARY = {
    "neg": ("-{0}", lambda x: -x, lambda m, e: (m, e), True),
    "abs": ("abs({0})", s4.abs, lambda m, e: (m, e), True),
    "square": ("square({0})", s4.square, lambda m, e: (m * m, 2 * m * e + 2 * U * m * m), True),
    "tanh": ("tanh({0})", s4.tanh, _lip(lambda m: min(m, 1.0), lambda m: 1.0, "tanh"), False),
    "sigmoid": ("sigmoid({0})", s4.sigmoid, _lip(lambda m: 1.0, lambda m: 0.25, "logistic"), False),
    "sin": ("sin({0})", s4.sin, _lip(lambda m: 1.0, lambda m: 1.0, "sin"), False),
    "cos": ("cos({0})", s4.cos, _lip(lambda m: 1.0, lambda m: 1.0, "cos"), False),
    "atan": ("atan({0})", s4.atan, _lip(lambda m: math.pi / 2, lambda m: 1.0, "atan"), False),
    "erf": ("erf({0})", s4.erf, _lip(lambda m: 1.0, lambda m: 1.13, "erf"), False),
    "exp": ("exp({0})", s4.exp,
            lambda m, e: None if m > 12 else (math.exp(m), math.exp(m) * (e + _trans("exp"))),
            False),
    "expm1": ("expm1({0})", s4.expm1,
              lambda m, e: None if m > 12 else (math.exp(m), math.exp(m) * (e + _trans("expm1"))),
              False),
    "log": ("log(abs({0}) + 0.5)", lambda x: s4.log(s4.abs(x) + 0.5),
            _lip(lambda m: max(math.log(2.0), math.log(m + 0.5)), lambda m: 2.0, "log"), False),
    "log1p": ("log1p(abs({0}))", lambda x: s4.log1p(s4.abs(x)),
              _lip(lambda m: math.log1p(m), lambda m: 1.0, "log1p"), False),
    "sqrt": ("sqrt(abs({0}) + 0.5)", lambda x: s4.sqrt(s4.abs(x) + 0.5),
             _lip(lambda m: math.sqrt(m + 0.5), lambda m: 0.71, "sqrt"), False),
    "rsqrt": ("rsqrt(abs({0}) + 0.5)", lambda x: s4.rsqrt(s4.abs(x) + 0.5),
              _lip(lambda m: math.sqrt(2.0), lambda m: 1.42, "rsqrt"), False),
}


def _pow_bounds(a, b):
    if a.m > 20 or b.m > 3:
        return None
    base_hi = a.m + 0.5
    mo = max(base_hi ** b.m, 0.5 ** -b.m)
    e = (mo * math.log(max(base_hi, 2.0)) * b.e      # d/dy x**y = x**y log x
         + b.m * mo / 0.5 * a.e                      # d/dx x**y = y x**(y-1), x >= 0.5
         + _trans("pow") * mo + 2 * U * mo)
    return mo, e


# binary entries: (display format, function, bounds(a, b) -> (m, e) or None, int-only)
BINARY = {
    "add": ("{0} + {1}", lambda x, y: x + y,
            lambda a, b: (a.m + b.m, a.e + b.e + 2 * U * (a.m + b.m)), False),
    "sub": ("{0} - {1}", lambda x, y: x - y,
            lambda a, b: (a.m + b.m, a.e + b.e + 2 * U * (a.m + b.m)), False),
    "mul": ("{0} * {1}", lambda x, y: x * y,
            lambda a, b: (a.m * b.m, a.m * b.e + b.m * a.e + a.e * b.e + 2 * U * a.m * b.m),
            False),
    "div": ("{0} / (abs({1}) + 0.5)", lambda x, y: x / (s4.abs(y) + 0.5),
            lambda a, b: (2 * a.m, 2 * a.e + 4 * a.m * b.e + 6 * U * 2 * a.m), False),
    "maximum": ("maximum({0}, {1})", s4.maximum, lambda a, b: (max(a.m, b.m), max(a.e, b.e)),
                False),
    "minimum": ("minimum({0}, {1})", s4.minimum, lambda a, b: (max(a.m, b.m), max(a.e, b.e)),
                False),
    "pow": ("pow(abs({0}) + 0.5, {1})", lambda x, y: s4.pow(s4.abs(x) + 0.5, y), _pow_bounds,
            False),
    "floor_divide": ("floor_divide({0}, abs({1}) + 1)",
                     lambda x, y: s4.floor_divide(x, s4.abs(y) + 1), lambda a, b: (a.m, 0.0), True),
    "remainder": ("remainder({0}, abs({1}) + 1)",
                  lambda x, y: s4.remainder(x, s4.abs(y) + 1), lambda a, b: (b.m, 0.0), True),
}

CONSTANTS = (2, -1, 0.5, 1.5, -3.0)
CONST_OPS = {"add": BINARY["add"], "mul": BINARY["mul"], "sub": BINARY["sub"]}

COMPARISONS = {
    "<": lambda x, y: x < y, "<=": lambda x, y: x <= y, ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y, "==": lambda x, y: x == y, "!=": lambda x, y: x != y,
}
REDUCTIONS = {"sum": s4.sum, "max": s4.max, "min": s4.min, "mean": s4.mean}
DTYPES = {F32: s4.float32, I32: s4.int32}


class Instr:
    """One instruction ``(kind, *args)``; operands are indices into the value list."""

    def __init__(self, kind, *args):
        self.kind, self.args = kind, args

    def operands(self):
        k, a = self.kind, self.args
        if k in ("astype", "broadcast_to", "reshape", "transpose"):
            return [a[0]]
        if k in ("unary", "const", "reduce"):
            return [a[1]]
        if k in ("binary", "cmp_cast"):
            return [a[1], a[2]]
        assert k == "where", k
        return [a[1], a[2], a[3]] + ([a[4]] if isinstance(a[4], int) else [])

    def format(self, out):
        k, a = self.kind, self.args
        v = lambda i: f"v{i}"                                      # noqa: E731
        if k == "unary":
            rhs = UNARY[a[0]][0].format(v(a[1]))
        elif k == "binary":
            rhs = BINARY[a[0]][0].format(v(a[1]), v(a[2]))
        elif k == "const":
            rhs = CONST_OPS[a[0]][0].format(v(a[1]), repr(a[2]))
        elif k == "where":
            other = repr(a[4]) if isinstance(a[4], float) else v(a[4])
            rhs = f"where({v(a[1])} {a[0]} {v(a[2])}, {v(a[3])}, {other})"
        elif k == "cmp_cast":
            rhs = f"astype({v(a[1])} {a[0]} {v(a[2])}, {a[3]})"
        elif k == "astype":
            rhs = f"astype({v(a[0])}, {a[1]})"
        elif k == "broadcast_to":
            rhs = f"broadcast_to({v(a[0])}, {a[1]})"
        elif k == "reduce":
            rhs = f"{a[0]}({v(a[1])}, axis={a[2]}, keepdims={a[3]})"
        elif k == "reshape":
            rhs = f"reshape({v(a[0])}, {a[1]})"
        elif k == "transpose":
            rhs = f"transpose({v(a[0])}, {a[1]})"
        else:
            raise AssertionError(k)
        return f"v{out} = {rhs}"

    def apply(self, vals):
        k, a = self.kind, self.args
        if k == "unary":
            return UNARY[a[0]][1](vals[a[1]])
        if k == "binary":
            return BINARY[a[0]][1](vals[a[1]], vals[a[2]])
        if k == "const":
            return CONST_OPS[a[0]][1](vals[a[1]], a[2])
        if k == "where":
            other = a[4] if isinstance(a[4], float) else vals[a[4]]
            return s4.where(COMPARISONS[a[0]](vals[a[1]], vals[a[2]]), vals[a[3]], other)
        if k == "cmp_cast":
            return s4.astype(COMPARISONS[a[0]](vals[a[1]], vals[a[2]]), DTYPES[a[3]])
        if k == "astype":
            return s4.astype(vals[a[0]], DTYPES[a[1]])
        if k == "broadcast_to":
            return s4.broadcast_to(vals[a[0]], a[1])
        if k == "reduce":
            return REDUCTIONS[a[0]](vals[a[1]], axis=a[2], keepdims=a[3])
        if k == "reshape":
            return s4.reshape(vals[a[0]], a[1])
        if k == "transpose":
            return s4.transpose(vals[a[0]], a[1])
        raise AssertionError(k)


class Program:
    def __init__(self, inputs, instrs, vals, outputs, seed):
        self.inputs = inputs          # [(shape, dtype)]
        self.instrs = instrs
        self.vals = vals              # _Val per value (inputs first)
        self.outputs = outputs        # value indices returned
        self.seed = seed

    def __repr__(self):
        lines = ["program(seed=%d):" % self.seed]
        lines += [f"  v{i}: {d}{list(s)}" for i, (s, d) in enumerate(self.inputs)]
        n = len(self.inputs)
        lines += ["  " + ins.format(n + k) for k, ins in enumerate(self.instrs)]
        lines.append("  return " + ", ".join(f"v{i}" for i in self.outputs))
        return "\n".join(lines)

    def slice(self, out):
        """The program cut down to what value ``out`` depends on (for failure messages)."""
        n = len(self.inputs)
        need, stack = set(), [out]
        while stack:
            i = stack.pop()
            if i not in need:
                need.add(i)
                if i >= n:
                    stack.extend(self.instrs[i - n].operands())
        lines = [f"  v{i}: {d}{list(s)}" for i, (s, d) in enumerate(self.inputs) if i in need]
        lines += ["  " + ins.format(n + k) for k, ins in enumerate(self.instrs) if n + k in need]
        return "\n".join(lines + [f"  return v{out}"])

    def fn(self, *xs):
        vals = list(xs)
        for ins in self.instrs:
            vals.append(ins.apply(vals))
        return tuple(vals[i] for i in self.outputs)

    def arrays(self):
        rng = np.random.default_rng(self.seed)
        out = []
        for shape, dtype in self.inputs:
            if dtype == F32:
                out.append(rng.uniform(-3.0, 3.0, size=shape).astype(np.float32))
            else:
                out.append(rng.integers(-5, 6, size=shape).astype(np.int32))
        return out


# ---- the generator ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _factorizations(n, max_rank=4):
    """Every shape of rank <= max_rank with ``n`` elements (at most two unit dims), simplest
    first."""
    out = set()

    def rec(rest, prefix):
        if len(prefix) > max_rank:
            return
        if rest == 1:
            for ones in range(0, 3):
                for pos in itertools.combinations(range(len(prefix) + ones), ones):
                    s, it = [], iter(prefix)
                    for k in range(len(prefix) + ones):
                        s.append(1 if k in pos else next(it))
                    if len(s) <= max_rank:
                        out.add(tuple(s))
            return
        for d in range(2, rest + 1):
            if rest % d == 0:
                rec(rest // d, prefix + (d,))

    rec(n, ())
    return sorted(out, key=lambda s: (len(s), s))


def _compatible(vals, shapes, max_size):
    """Indices of values whose shape broadcasts with all of ``shapes`` within max_size."""
    out = []
    for j, v in enumerate(vals):
        s = _bshape(*shapes, v.shape)
        if s is not None and int(np.prod(s, dtype=np.int64)) <= max_size:
            out.append(j)
    return out


ALL_KINDS = ("unary", "binary", "const", "where", "cmp_cast", "astype", "broadcast_to", "reduce",
             "reshape", "transpose")


@st.composite
def programs(draw, kinds=ALL_KINDS, max_ops=8, dims=(2, 3, 4, 5, 1), max_rank=3, max_size=512,
             int_weight=1, float_outputs=False, base_shapes=None):
    """A Program over inputs whose shapes are broadcast-compatible pieces of one base shape
    (``base_shapes``, a strategy, or ``dims`` up to ``max_rank``); ``int_weight`` (0-4): how
    often an input is int32 (in fourths; the first input stays float32 unless it is 4)."""
    if base_shapes is not None:
        base = tuple(draw(base_shapes))
    else:
        base = tuple(draw(st.sampled_from(dims)) for _ in range(draw(st.integers(1, max_rank))))
    rank = len(base)
    n_in = draw(st.integers(1, 3))
    inputs, vals = [], []
    for k in range(n_in):
        shape = base                                             # the first input: all of it
        if k > 0 and rank > 1 and draw(st.integers(0, 5)) == 0:
            shape = base[::-1]                                   # a transposed layout
        elif k > 0:                                              # others: a suffix, mostly
            keep = rank                                          # all of it, some dims 1
            if draw(st.integers(0, 2)) == 0:
                keep -= draw(st.integers(1, rank))
            shape = tuple(1 if draw(st.integers(0, 3)) == 0 else d for d in base[rank - keep:])
        dtype = I32 if (int_weight >= 4 or k > 0 and draw(st.integers(0, 3)) < int_weight) else F32
        inputs.append((shape, dtype))
        vals.append(_Val(shape, dtype, 3.0 if dtype == F32 else 5.0))
    n_ops = draw(st.integers(1, max_ops))
    instrs = []
    for _ in range(n_ops):
        instr, val = _draw_instr(draw, kinds, vals, max_size)
        instrs.append(instr)
        vals.append(val)
    if float_outputs and vals[-1].dtype != F32:
        instrs.append(Instr("astype", len(vals) - 1, F32))
        v = vals[-1]
        vals.append(_Val(v.shape, F32, v.m, 0.0))
    # results: every value no instruction reads (so no instruction is dead code), and some
    # intermediate ones (a fused value that is also stored)
    read = {i for ins in instrs for i in ins.operands()}
    last = len(vals) - 1
    outputs = [i for i in range(n_in, last)
               if (not float_outputs or vals[i].dtype == F32) and
               (i not in read or draw(st.integers(0, 3)) == 0)]
    outputs.append(last)
    seed = draw(st.integers(0, 2 ** 16))
    return Program(inputs, instrs, vals, outputs, seed)


def _draw_instr(draw, kinds, vals, max_size):
    ranked = [i for i, v in enumerate(vals) if len(v.shape) >= 2]
    avail = [k for k in kinds if k != "transpose" or ranked]
    kind = draw(st.sampled_from(avail))
    idx = lambda cands: cands[draw(st.integers(0, len(cands) - 1))]   # noqa: E731
    if kind == "transpose":
        i = idx(ranked)
        perm = tuple(draw(st.permutations(range(len(vals[i].shape)))))
        v = vals[i]
        return Instr("transpose", i, perm), _Val(tuple(v.shape[p] for p in perm), v.dtype, v.m, v.e)
    i = idx(list(range(len(vals))))
    v = vals[i]
    if kind == "unary":
        names = [n for n, (_, _, b, keeps) in UNARY.items()
                 if (r := b(v.m, v.e)) is not None and _ok(*r, F32 if not keeps else v.dtype)]
        name = draw(st.sampled_from(names))
        m, e = UNARY[name][2](v.m, v.e)
        dtype = v.dtype if UNARY[name][3] else F32
        return Instr("unary", name, i), _Val(v.shape, dtype, m, e if dtype == F32 else 0.0)
    if kind == "binary":
        j = idx(_compatible(vals, [v.shape], max_size))
        w = vals[j]
        both_int = v.dtype == I32 and w.dtype == I32
        names = []
        for n, (_, _, b, int_only) in BINARY.items():
            if int_only and not both_int:
                continue
            r = b(v, w)
            dtype = I32 if both_int and n not in ("div", "pow") else F32
            if r is not None and _ok(*r, dtype):
                names.append(n)
        name = draw(st.sampled_from(names))
        m, e = BINARY[name][2](v, w)
        dtype = I32 if both_int and name not in ("div", "pow") else F32
        return (Instr("binary", name, i, j),
                _Val(_bshape(v.shape, w.shape), dtype, m, e if dtype == F32 else 0.0))
    if kind == "const":
        c = draw(st.sampled_from(CONSTANTS))
        cv = _Val((), I32 if isinstance(c, int) else F32, abs(c))
        names = [n for n, (_, _, b, _) in CONST_OPS.items() if _ok(*b(v, cv))]
        if not names:
            c, cv, names = -1, _Val((), I32, 1), ["mul"]
        name = draw(st.sampled_from(names))
        m, e = CONST_OPS[name][2](v, cv)
        dtype = I32 if v.dtype == I32 and isinstance(c, int) else F32
        return Instr("const", name, i, c), _Val(v.shape, dtype, m, e if dtype == F32 else 0.0)
    if kind in ("where", "cmp_cast"):
        cmp = draw(st.sampled_from(sorted(COMPARISONS)))
        j = idx(_compatible(vals, [v.shape], max_size))
        shapes = [v.shape, vals[j].shape]
        if kind == "cmp_cast":
            dtype = draw(st.sampled_from([F32, I32]))
            return Instr("cmp_cast", cmp, i, j, dtype), _Val(_bshape(*shapes), dtype, 1.0)
        k = idx(_compatible(vals, shapes, max_size))
        shapes.append(vals[k].shape)
        if draw(st.booleans()):
            other, ov = 0.0, _Val((), F32, 0.0)
        else:
            other = idx(_compatible(vals, shapes, max_size))
            ov = vals[other]
            shapes.append(ov.shape)
        a, b = vals[k], ov
        dtype = I32 if a.dtype == I32 and b.dtype == I32 else F32
        return (Instr("where", cmp, i, j, k, other),
                _Val(_bshape(*shapes), dtype, max(a.m, b.m), max(a.e, b.e)))
    if kind == "astype":
        if v.dtype == F32:
            return Instr("astype", i, I32), _Val(v.shape, I32, math.floor(v.m))
        return Instr("astype", i, F32), _Val(v.shape, F32, v.m, 0.0)
    if kind == "broadcast_to":
        shape = list(v.shape)
        size = v.size
        for d in range(len(shape)):
            if shape[d] == 1:
                n = draw(st.integers(1, 3))
                if size * n <= max_size:
                    shape[d], size = n, size * n
        for _ in range(draw(st.integers(0, max(0, 4 - len(shape))))):
            n = draw(st.integers(1, 3))
            if size * n <= max_size:
                shape.insert(0, n)
                size *= n
        return Instr("broadcast_to", i, tuple(shape)), _Val(shape, v.dtype, v.m, v.e)
    if kind == "reduce":
        nd = len(v.shape)
        picked = [d for d in range(nd) if draw(st.booleans())]
        if not picked or len(picked) == nd and draw(st.booleans()):
            axis, reduced = None, list(range(nd))
        else:
            neg = draw(st.booleans())
            axes = tuple(d - nd if neg else d for d in picked)
            axis, reduced = (axes[0] if len(axes) == 1 and draw(st.booleans()) else axes), picked
        n = int(np.prod([v.shape[d] for d in reduced], dtype=np.int64))
        keepdims = draw(st.booleans())
        shape = tuple(1 if d in reduced else s for d, s in enumerate(v.shape) if keepdims or
                      d not in reduced)
        choices = {"max": (v.m, v.e), "min": (v.m, v.e)}
        sum_m = n * v.m
        sum_e = n * v.e + n * U * sum_m * 2           # recursive-summation worst case
        if _ok(sum_m, sum_e, v.dtype):
            choices["sum"] = (sum_m, sum_e)
        if n > 0:
            choices["mean"] = (v.m, sum_e / n + 4 * U * v.m)
        kind_ = draw(st.sampled_from(sorted(choices)))
        m, e = choices[kind_]
        dtype = F32 if kind_ == "mean" else v.dtype
        return (Instr("reduce", kind_, i, axis, keepdims),
                _Val(shape, dtype, m, e if dtype == F32 else 0.0))
    if kind == "reshape":
        # half the time to the shape of another value of this size: the reshape then feeds
        # elementwise ops with it (in a fusion group: a reinterpreted load)
        others = sorted({w.shape for w in vals if w.size == v.size and w.shape != v.shape})
        if others and draw(st.booleans()):
            shape = draw(st.sampled_from(others))
        else:
            cands = _factorizations(v.size)
            shape = cands[draw(st.integers(0, len(cands) - 1))]
        spec = shape
        if shape and draw(st.integers(0, 3)) == 0:
            pos = draw(st.integers(0, len(shape) - 1))
            spec = shape[:pos] + (-1,) + shape[pos + 1:]
        return Instr("reshape", i, spec), _Val(shape, v.dtype, v.m, v.e)
    raise AssertionError(kind)


# ---- running and comparing ----------------------------------------------------------------------

def _as_tuple(out):
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _run_reference(prog, arrays):
    with s4.default_device(REF):
        outs = prog.fn(*[s4.Tensor(a) for a in arrays])
        return [np.asarray(o.numpy()) for o in outs]


def _run_llvm(prog, arrays):
    with s4.default_device(LLVM):
        f = s4.compile(prog.fn)
        outs = _as_tuple(f(*[s4.Tensor(a) for a in arrays]))
        for o in outs:
            assert o.device == LLVM, (o.device, prog)
        return [np.asarray(o.numpy()) for o in outs]


def _compare(got, want, err_bound, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind != "f":
        bad = got != want
        if bad.any():
            raise AssertionError(
                f"{what}: {int(bad.sum())} of {bad.size} elements differ; first at "
                f"{np.argwhere(bad)[0].tolist()}: llvm {got[bad][0]} vs reference {want[bad][0]}"
                f"\nllvm:\n{got}\nreference:\n{want}")
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    for test in (np.isnan, np.isposinf, np.isneginf):
        if (test(g) != test(w)).any():
            raise AssertionError(f"{what}: {test.__name__} positions differ\nllvm:\n{got}\n"
                                 f"reference:\n{want}")
    fin = np.isfinite(w)
    diff = np.abs(g - w)[fin]
    tol = (RTOL * np.abs(w) + ATOL + 2 * err_bound)[fin]
    bad = diff > tol
    if bad.any():
        k = int(np.argmax(diff - tol))
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ beyond tolerance "
            f"(propagated error bound {err_bound:.3g}); worst: llvm {g[fin][k]!r} vs reference "
            f"{w[fin][k]!r} (|diff| {diff[k]:.3g} > tol {tol[k]:.3g})\nllvm:\n{got}\n"
            f"reference:\n{want}")


def _check_forward(prog):
    arrays = prog.arrays()
    want = _run_reference(prog, arrays)
    got = _run_llvm(prog, arrays)
    assert len(got) == len(want)
    shown = "".join(f"v{i} = {a!r}\n" for i, a in enumerate(arrays) if a.size <= 64)
    for out_index, g, w in zip(prog.outputs, got, want):
        v = prog.vals[out_index]
        _compare(g, w, v.e, f"v{out_index} on llvm vs reference; what it depends on:\n"
                            f"{prog.slice(out_index)}\n(seed={prog.seed}) {shown}")


# ---- the tests ----------------------------------------------------------------------------------

@settings(max_examples=250, **SETTINGS)
@given(programs())
def test_random_graphs_match_reference(prog):
    """Everything mixed: elementwise, broadcasts, casts, reductions, reshapes, transposes."""
    _check_forward(prog)


@settings(max_examples=120, **SETTINGS)
@given(programs(kinds=("unary", "binary", "const", "where", "cmp_cast", "astype", "broadcast_to"),
                max_ops=10))
def test_random_elementwise_broadcast_graphs_match_reference(prog):
    """Long fusible chains: one kernel over broadcast operands, many intermediate outputs."""
    _check_forward(prog)


@settings(max_examples=150, **SETTINGS)
@given(programs(kinds=("unary", "binary", "reduce", "reshape", "transpose", "broadcast_to"),
                max_ops=6, dims=(2, 3, 5, 1)))
def test_random_reduction_and_layout_graphs_match_reference(prog):
    """Reductions over any axes (non-trailing ones go to the host) around reshapes/transposes."""
    _check_forward(prog)


@settings(max_examples=100, **SETTINGS)
@given(programs(kinds=("binary", "const", "where", "cmp_cast", "astype", "broadcast_to", "reduce",
                       "reshape", "transpose", "unary"), int_weight=4))
def test_random_integer_graphs_match_reference(prog):
    """All inputs int32: integer results must agree exactly (floats appear through casts,
    ``where`` with a float constant, division and the float-only math)."""
    _check_forward(prog)


@settings(max_examples=15, **SETTINGS)
@given(programs(max_ops=5, max_size=200_000, base_shapes=st.sampled_from(
    [(160, 257), (3, 97, 131), (40000,), (2, 17, 1031), (1, 333, 100)])))
def test_random_large_graphs_match_reference(prog):
    """Shapes big enough for the thread pool (>= 32768 elements) and vector remainders."""
    _check_forward(prog)


def test_regression_moved_small_op_reads_a_value_of_the_group():
    """Found by these tests: the planner moved ``exp(-y)`` (read by no full-shape value) out of
    the fusion group over ``x``'s shape and ran it *before* that group, which computed ``-y``
    (``executable._split_group``); the executable then failed with ``KeyError: Var(f32[])``."""
    x, y = np.arange(3, dtype=np.float32), np.float32(0.5)
    prog = Program([((3,), F32), ((), F32)],
                   [Instr("unary", "neg", 0), Instr("unary", "neg", 1),
                    Instr("binary", "add", 0, 3), Instr("unary", "exp", 3)],
                   [], [2, 4, 5], 0)
    prog.vals = [_Val((3,), F32, 3), _Val((), F32, 3), _Val((3,), F32, 3), _Val((), F32, 3),
                 _Val((3,), F32, 6, 1e-6), _Val((), F32, 25, 1e-5)]
    prog.arrays = lambda: [x, y]
    _check_forward(prog)


# -- gradients --

GRAD_KINDS = ("unary", "binary", "const", "where", "broadcast_to", "reduce", "reshape",
              "transpose")


def _grad_results(prog, arrays, device, compiled):
    float_pos = [k for k, (_, d) in enumerate(prog.inputs) if d == F32]
    rng = np.random.default_rng(prog.seed + 1)
    weights = [rng.uniform(-1.0, 1.0, size=prog.vals[i].shape).astype(np.float32)
               for i in prog.outputs]
    with s4.default_device(device):
        ts = [s4.Tensor(a) for a in arrays]
        ws = [s4.Tensor(w) for w in weights]

        def loss(*xs):
            full = list(ts)
            for p, x in zip(float_pos, xs):
                full[p] = x
            total = None
            for o, w in zip(prog.fn(*full), ws):
                t = s4.sum(o * w)
                total = t if total is None else total + t
            return total

        def value_and_grad(*xs):
            v, g = s4.value_with_gradient(xs if len(xs) > 1 else xs[0], loss)
            return v, _as_tuple(g)

        run = s4.compile(value_and_grad) if compiled else value_and_grad
        v, g = run(*[ts[p] for p in float_pos])
        return np.asarray(v.numpy()), [np.asarray(x.numpy()) for x in g]


@pytest.mark.filterwarnings("ignore:gradient. the result does not depend")
@settings(max_examples=100, **SETTINGS)
@given(programs(kinds=GRAD_KINDS, max_ops=6, float_outputs=True, int_weight=0))
def test_random_graph_gradients_match_reference(prog):
    """``value_with_gradient`` of ``sum(output * w)`` (a fixed random w) w.r.t. the float
    inputs, compiled on LLVM vs run on the reference backend."""
    arrays = prog.arrays()
    want_v, want_g = _grad_results(prog, arrays, REF, compiled=False)
    got_v, got_g = _grad_results(prog, arrays, LLVM, compiled=True)
    shown = "".join(f"v{i} = {a!r}\n" for i, a in enumerate(arrays) if a.size <= 64)
    # the loss sums |w| <= 1 weighted outputs: their error bounds plus the sum's rounding
    bound = sum((prog.vals[i].e + 2 * U * prog.vals[i].size * prog.vals[i].m) * prog.vals[i].size
                for i in prog.outputs)
    _compare(got_v, want_v, bound, f"loss on llvm vs reference in\n{prog}\n{shown}")
    for k, (g, w) in enumerate(zip(got_g, want_g)):
        scale = float(np.max(np.abs(w))) if w.size else 0.0
        _compare(g, w, GRAD_RTOL * max(scale, 1.0),
                 f"gradient {k} (w.r.t. the float inputs in order) on llvm vs reference in\n"
                 f"{prog}\n{shown}")


