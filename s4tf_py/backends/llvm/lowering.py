"""Scalar LLVM lowerings of the elementwise primitives (their registry rows' ``llvm`` slot).

A kernel computes one element at a time in straight-line code that the loop vectorizer widens;
each elementwise primitive's ``llvm`` slot is ``emit(b, args, in_dtypes, out_dtype, params)``
working on *compute* values: float16/bfloat16 are computed in float32, bools as i1, integers
natively (signedness from the dtype). Transcendental functions come from :mod:`.mathlib`
(inline, vectorizable approximations with tested error bounds).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir

from ... import dtypes as dt
from ...ir.registry import REGISTRY

F32, F64 = ir.FloatType(), ir.DoubleType()
I1, I8, I16, I32, I64 = (ir.IntType(n) for n in (1, 8, 16, 32, 64))


def compute_type(d: np.dtype) -> ir.Type:
    """The LLVM type a value of dtype ``d`` is computed in."""
    if d == dt.float64:
        return F64
    if d in dt.FLOATING:
        return F32
    if d == dt.bool_:
        return I1
    return ir.IntType(d.itemsize * 8)


def storage_type(d: np.dtype) -> ir.Type:
    """The LLVM type of one element in memory."""
    if d == dt.float64:
        return F64
    if d == dt.float32:
        return F32
    if d == dt.float16:
        return ir.HalfType()
    if d == dt.bfloat16:
        return I16
    if d == dt.bool_:
        return I8
    return ir.IntType(d.itemsize * 8)


def load(b: ir.IRBuilder, ptr, d: np.dtype):
    """Load one element and widen it to its compute type."""
    v = b.load(ptr)
    if d == dt.float16:
        return b.fpext(v, F32)
    if d == dt.bfloat16:
        return b.bitcast(b.shl(b.zext(v, I32), I32(16)), F32)
    if d == dt.bool_:
        return b.icmp_unsigned("!=", v, I8(0))
    return v


def store(b: ir.IRBuilder, v, ptr, d: np.dtype):
    """Narrow a compute value to dtype ``d`` and store it."""
    if d == dt.float16:
        v = b.fptrunc(v, ir.HalfType())
    elif d == dt.bfloat16:
        # round to nearest even; NaNs stay (quiet) NaNs
        bits = b.bitcast(v, I32)
        lsb = b.and_(b.lshr(bits, I32(16)), I32(1))
        rounded = b.lshr(b.add(bits, b.add(I32(0x7FFF), lsb)), I32(16))
        isnan = b.fcmp_unordered("uno", v, v)
        nan_bits = b.or_(b.lshr(bits, I32(16)), I32(0x40))
        v = b.trunc(b.select(isnan, nan_bits, rounded), I16)
    elif d == dt.bool_:
        v = b.zext(v, I8)
    b.store(v, ptr)


def constant(d: np.dtype, value) -> ir.Constant:
    t = compute_type(d)
    if isinstance(t, (ir.FloatType, ir.DoubleType)):
        return ir.Constant(t, float(value))
    if t == I1:
        return ir.Constant(I1, int(bool(value)))
    return ir.Constant(t, int(value))


def convert(b: ir.IRBuilder, v, src: np.dtype, dst: np.dtype):
    """Convert a compute value of dtype ``src`` to dtype ``dst``'s compute type."""
    ts, td = compute_type(src), compute_type(dst)
    fs, fd = dt.is_floating(src), dt.is_floating(dst)
    if src == dst or (ts == td and fs == fd and (src in dt.UNSIGNED) == (dst in dt.UNSIGNED)
                      and src != dt.bool_ and dst != dt.bool_):
        return v
    if dst == dt.bool_:
        return b.fcmp_unordered("une", v, ir.Constant(ts, 0.0)) if fs else \
            b.icmp_unsigned("!=", v, ir.Constant(ts, 0))
    if fs and fd:
        if ts == td:
            return v
        return b.fpext(v, td) if ts == F32 else b.fptrunc(v, td)
    if fs:
        return b.fptoui(v, td) if dst in dt.UNSIGNED else b.fptosi(v, td)
    if fd:
        if src == dt.bool_ or src in dt.UNSIGNED:
            return b.uitofp(v, td)
        return b.sitofp(v, td)
    # int -> int
    if ts.width == td.width:
        return v
    if ts.width > td.width:
        return b.trunc(v, td)
    return b.zext(v, td) if (src in dt.UNSIGNED or src == dt.bool_) else b.sext(v, td)


def _intrinsic(b: ir.IRBuilder, name: str, args, ty=None):
    """Call the overloaded intrinsic ``llvm.<name>.<type>`` (declared on first use)."""
    ty = ty or args[0].type
    suffix = "f32" if ty == F32 else "f64" if ty == F64 else f"i{ty.width}"
    fname = f"llvm.{name}.{suffix}"
    fn = b.module.globals.get(fname)
    if fn is None:
        fn = ir.Function(b.module, ir.FunctionType(ty, [a.type for a in args]), fname)
    return b.call(fn, list(args))


def math(b: ir.IRBuilder, name: str, args):
    """A transcendental function: the inline approximation from mathlib when it has one."""
    try:
        from . import mathlib
        return mathlib.emit(b, name, list(args))
    except (ImportError, KeyError, NotImplementedError, AttributeError):
        return _intrinsic_math(b, name, args)


_INTRINSIC_NAMES = {"exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "pow": "pow"}


def _intrinsic_math(b, name, args):
    """Scalar libm calls (slow: the x86 backend does not vectorize them) as a fallback."""
    x = args[0]
    one = ir.Constant(x.type, 1.0)
    if name in _INTRINSIC_NAMES:
        return _intrinsic(b, _INTRINSIC_NAMES[name], args)
    if name == "logistic":
        return b.fdiv(one, b.fadd(one, _intrinsic(b, "exp", [b.fneg(x)])))
    if name == "tanh":
        e = _intrinsic(b, "exp", [b.fmul(x, ir.Constant(x.type, -2.0))])
        return b.fdiv(b.fsub(one, e), b.fadd(one, e))
    if name == "expm1":
        return b.fsub(_intrinsic(b, "exp", [x]), one)
    if name == "log1p":
        return _intrinsic(b, "log", [b.fadd(one, x)])
    # the rest through libm by name
    fname = {F32: name + "f", F64: name}[x.type]
    fnty = ir.FunctionType(x.type, [a.type for a in args])
    fn = b.module.globals.get(fname) or ir.Function(b.module, fnty, fname)
    return b.call(fn, list(args))


# ---- the table -------------------------------------------------------------------------------

def _float(d):
    return dt.is_floating(d)


def _signed(d):
    return d in dt.SIGNED


def _unary(fn):
    return lambda b, a, ins, out, p: fn(b, a[0], ins[0])


def _neg(b, x, d):
    return b.fneg(x) if _float(d) else b.neg(x)


def _abs(b, x, d):
    if _float(d):
        return _intrinsic(b, "fabs", [x])
    zero = ir.Constant(x.type, 0)
    return b.select(b.icmp_signed("<", x, zero), b.neg(x), x)


def _sign(b, x, d):
    if _float(d):
        zero, one = ir.Constant(x.type, 0.0), ir.Constant(x.type, 1.0)
        pos = b.uitofp(b.fcmp_ordered(">", x, zero), x.type)
        neg = b.uitofp(b.fcmp_ordered("<", x, zero), x.type)
        r = b.fsub(pos, neg)
        return b.select(b.fcmp_unordered("uno", x, x), x, r)     # nan stays nan
    zero = ir.Constant(x.type, 0)
    pos = b.zext(b.icmp_signed(">", x, zero) if _signed(d) else b.icmp_unsigned(">", x, zero), x.type)
    if not _signed(d):
        return pos
    return b.sub(pos, b.zext(b.icmp_signed("<", x, zero), x.type))


def _round_half_even(b, x, d):
    return _intrinsic(b, "rint", [x])


def _cmp(op_f, op_i):
    def emit(b, a, ins, out, p):
        x, y = a
        d = ins[0]
        if _float(d):
            if op_f == "!=":
                return b.fcmp_unordered("!=", x, y)
            return b.fcmp_ordered(op_f, x, y)
        if d == dt.bool_ or d in dt.UNSIGNED:
            return b.icmp_unsigned(op_i, x, y)
        return b.icmp_signed(op_i, x, y)
    return emit


def _max(b, a, ins, out, p, is_max=True):
    x, y = a
    d = ins[0]
    if _float(d):
        # numpy's maximum propagates NaN
        c = b.fcmp_ordered(">" if is_max else "<", x, y)
        r = b.select(c, x, y)
        return b.select(b.fcmp_unordered("uno", x, x), x, r)
    if d in dt.UNSIGNED or d == dt.bool_:
        c = b.icmp_unsigned(">" if is_max else "<", x, y)
    else:
        c = b.icmp_signed(">" if is_max else "<", x, y)
    return b.select(c, x, y)


def _div(b, a, ins, out, p):
    return b.fdiv(*a)


def _rem(b, a, ins, out, p):
    x, y = a
    d = ins[0]
    if _float(d):
        r = b.frem(x, y)
        zero = ir.Constant(x.type, 0.0)
        # numpy/Python: the result takes the divisor's sign
        fix = b.and_(b.fcmp_ordered("!=", r, zero),
                     b.xor(b.fcmp_ordered("<", r, zero), b.fcmp_ordered("<", y, zero)))
        return b.select(fix, b.fadd(r, y), r)
    if d in dt.UNSIGNED:
        return b.urem(x, y)
    zero = ir.Constant(x.type, 0)
    safe = b.select(b.icmp_signed("==", y, zero), ir.Constant(x.type, 1), y)
    r = b.srem(x, safe)
    fix = b.and_(b.icmp_signed("!=", r, zero),
                 b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", safe, zero)))
    r = b.select(fix, b.add(r, safe), r)
    return b.select(b.icmp_signed("==", y, zero), zero, r)


def _floor_div(b, a, ins, out, p):
    x, y = a
    d = ins[0]
    zero = ir.Constant(x.type, 0)
    safe = b.select(b.icmp_unsigned("==", y, zero), ir.Constant(x.type, 1), y)
    if d in dt.UNSIGNED or d == dt.bool_:
        q = b.udiv(x, safe)
    else:
        q = b.sdiv(x, safe)
        r = b.srem(x, safe)
        fix = b.and_(b.icmp_signed("!=", r, zero),
                     b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", safe, zero)))
        q = b.select(fix, b.sub(q, ir.Constant(x.type, 1)), q)
    return b.select(b.icmp_unsigned("==", y, zero), zero, q)


def _pow(b, a, ins, out, p):
    x, y = a
    d = ins[0]
    if _float(d):
        return math(b, "pow", [x, y])
    # integer power by squaring, as a loop over the exponent's bits (an unrolled chain of 64
    # steps sends LLVM's optimizer into a very long compile). numpy refuses negative integer
    # exponents; here they give 1 (the loop does not run).
    t = x.type
    fn = b.function
    head = fn.append_basic_block("ipow_head")
    body = fn.append_basic_block("ipow_body")
    done = fn.append_basic_block("ipow_done")
    pre = b.block
    b.branch(head)
    b.position_at_end(head)
    acc = b.phi(t)
    base = b.phi(t)
    e = b.phi(t)
    acc.add_incoming(ir.Constant(t, 1), pre)
    base.add_incoming(x, pre)
    e.add_incoming(y, pre)
    positive = b.icmp_signed(">", e, ir.Constant(t, 0)) if d in dt.SIGNED else \
        b.icmp_unsigned(">", e, ir.Constant(t, 0))
    b.cbranch(positive, body, done)
    b.position_at_end(body)
    bit = b.trunc(b.and_(e, ir.Constant(t, 1)), I1)
    acc2 = b.select(bit, b.mul(acc, base), acc)
    base2 = b.mul(base, base)
    e2 = b.lshr(e, ir.Constant(t, 1))
    acc.add_incoming(acc2, body)
    base.add_incoming(base2, body)
    e.add_incoming(e2, body)
    b.branch(head)
    b.position_at_end(done)
    return acc


def _shift(left):
    def emit(b, a, ins, out, p):
        x, y = a
        w = ir.Constant(x.type, x.type.width)
        big = b.icmp_unsigned(">=", y, w)
        if left:
            return b.select(big, ir.Constant(x.type, 0), b.shl(x, y))
        if ins[0] in dt.UNSIGNED:
            return b.select(big, ir.Constant(x.type, 0), b.lshr(x, y))
        neg = b.icmp_signed("<", x, ir.Constant(x.type, 0))
        return b.select(big, b.select(neg, ir.Constant(x.type, -1), ir.Constant(x.type, 0)),
                        b.ashr(x, y))
    return emit


def _float_test(kind):
    def emit(b, a, ins, out, p):
        x = a[0]
        if kind == "nan":
            return b.fcmp_unordered("uno", x, x)
        ax = _intrinsic(b, "fabs", [x])
        inf = ir.Constant(x.type, float("inf"))
        if kind == "inf":
            return b.fcmp_ordered("==", ax, inf)
        return b.fcmp_ordered("<", ax, inf)
    return emit


def _select(b, a, ins, out, p):
    return b.select(*a)


def _identity(b, a, ins, out, p):
    return a[0]


def _math1(name):
    return lambda b, a, ins, out, p: math(b, name, [a[0]])


def _rsqrt(b, a, ins, out, p):
    x = a[0]
    return b.fdiv(ir.Constant(x.type, 1.0), _intrinsic(b, "sqrt", [x]))


def _intr1(name):
    return lambda b, a, ins, out, p: _intrinsic(b, name, [a[0]])


def _bitwise(op):
    def emit(b, a, ins, out, p):
        return getattr(b, op)(*a)
    return emit


def _int_or_float(fop, iop):
    def emit(b, a, ins, out, p):
        return getattr(b, fop if _float(ins[0]) else iop)(*a)
    return emit


def _convert(b, a, ins, out, p):
    return convert(b, a[0], ins[0], out)


LOWERINGS = {
    "add": _int_or_float("fadd", "add"),
    "sub": _int_or_float("fsub", "sub"),
    "mul": _int_or_float("fmul", "mul"),
    "div": _div,
    "rem": _rem,
    "floor_div": _floor_div,
    "pow": _pow,
    "max": lambda b, a, i, o, p: _max(b, a, i, o, p, True),
    "min": lambda b, a, i, o, p: _max(b, a, i, o, p, False),
    "atan2": lambda b, a, i, o, p: math(b, "atan2", list(a)),
    "neg": _unary(_neg),
    "abs": _unary(_abs),
    "sign": _unary(_sign),
    "floor": _intr1("floor"),
    "ceil": _intr1("ceil"),
    "trunc": _intr1("trunc"),
    "round": _unary(_round_half_even),
    "sqrt": _intr1("sqrt"),
    "rsqrt": _rsqrt,
    "eq": _cmp("==", "=="), "ne": _cmp("!=", "!="), "lt": _cmp("<", "<"),
    "le": _cmp("<=", "<="), "gt": _cmp(">", ">"), "ge": _cmp(">=", ">="),
    "and": _bitwise("and_"), "or": _bitwise("or_"), "xor": _bitwise("xor"),
    "not": lambda b, a, i, o, p: b.not_(a[0]),
    "bitwise_not": lambda b, a, i, o, p: b.not_(a[0]),
    "shift_left": _shift(True), "shift_right": _shift(False),
    "is_nan": _float_test("nan"), "is_inf": _float_test("inf"), "is_finite": _float_test("finite"),
    "select": _select,
    "convert": _convert,
    "identity": _identity, "stop_gradient": _identity, "optimization_barrier": _identity,
    "with_derivative": _identity,
}
#: transcendental functions with a libm fallback (mathlib's inline versions are preferred)
LIBM_FUNCTIONS = ("exp", "log", "log1p", "expm1", "sin", "cos", "tan", "asin", "acos", "atan",
                  "sinh", "cosh", "tanh", "asinh", "acosh", "atanh", "logistic", "erf")
for _name in LIBM_FUNCTIONS:
    LOWERINGS[_name] = _math1(_name)


#: lowerings costing tens of instructions an element (worth storing rather than recomputing)
EXPENSIVE = frozenset(LOWERINGS[n] for n in LIBM_FUNCTIONS + ("pow", "atan2"))


def _mathlib_has(name) -> bool:
    try:
        from . import mathlib
    except ImportError:
        return False
    return name in getattr(mathlib, "FUNCTIONS", ())


def install() -> None:
    """Fill the ``llvm`` slot of every primitive lowered here."""
    if _mathlib_has("erf_inv"):
        LOWERINGS["erf_inv"] = _math1("erf_inv")   # no libm equivalent: only when inline
    for name, fn in LOWERINGS.items():
        if name in REGISTRY:
            REGISTRY[name].llvm = fn


install()
