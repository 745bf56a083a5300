"""Kernel generation: a fusion group becomes one loop nest in LLVM IR.

Every kernel has the signature of the runtime's parallel loops,
``void kernel(i8** buffers, i64 begin, i64 end)``: ``buffers`` holds the addresses of the
group's inputs then outputs, and ``[begin, end)`` is the range of the outermost loop this call
runs (the thread pool splits it across cores).

Loops run over the group's iteration shape in row-major order. Adjacent dimensions that every
operand treats alike (all full, or broadcast) are merged, so a bias add over ``(N, M) + (M,)``
is a 2-D nest and a same-shape chain a 1-D loop; in the innermost loop every operand's stride
is the constant 0 or 1, which is what lets the loop vectorizer emit AVX-512 code.

Reduction kernels reduce trailing axes: the outer loops run over the kept axes and the inner
loop accumulates (floating sums in float64, so float32 sums of long rows stay accurate).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from ... import dtypes as dt
from . import lowering as L

I8P = ir.IntType(8).as_pointer()
I64 = ir.IntType(64)
KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [I8P.as_pointer(), I64, I64])


@dataclass
class Operand:
    """A value a kernel reads from memory: its shape (broadcast into the loop) and dtype.

    ``strides``, when given, are explicit element strides per iteration dimension (a transposed
    read of a buffer: the loop runs over the permuted shape); otherwise the operand is a
    row-major buffer of ``shape`` broadcast into the iteration shape."""
    shape: tuple
    dtype: np.dtype
    strides: tuple | None = None


class Strided(tuple):
    """Explicit element strides of an operand over the iteration dimensions (for _collapse)."""


@dataclass
class Reduction:
    kind: str                 # "sum", "max", "min", "prod", "and", "or"
    value: int                # index of the reduced value in the group's value list
    dtype: np.dtype           # result dtype


@dataclass
class KernelSpec:
    """What to compute: ``ops`` over values (inputs first), stored ``outputs``, ``reductions``.

    ``ops`` entries are ``(emit, [value indices], in_dtypes, out_dtype, params)``; value ``i``
    for ``i < len(inputs)`` is an input, ``("const", value, dtype)`` entries are constants.
    """
    name: str
    shape: tuple                              # iteration shape (for reductions: kept + reduced)
    inputs: list                              # Operand per input
    values: list = field(default_factory=list)   # per value: dtype
    ops: list = field(default_factory=list)      # (value index, emit, args, in_dtypes, params)
    outputs: list = field(default_factory=list)  # value indices stored at full shape
    reductions: list = field(default_factory=list)
    reduce_ndim: int = 0                      # trailing axes reduced
    #: output position -> input index whose buffer it is written into (a donated input read
    #: at the same index, for the last time): the store goes through the input's own pointer,
    #: so no two ``noalias`` pointers ever address the same memory
    inplace: dict = field(default_factory=dict)


def _strides(shape):
    s, out = 1, []
    for d in reversed(shape):
        out.append(s)
        s *= d
    return tuple(reversed(out))


def _collapse(shape, operand_shapes, keep_split=None):
    """Merge adjacent loop dims wherever every operand can walk them as one; returns (dims,
    per-operand strides over the merged dims, split). ``operand_shapes`` holds shapes (row-major
    buffers broadcast into ``shape``) or :class:`Strided` explicit strides. ``keep_split``:
    never merge across this boundary (kept | reduced axes)."""
    nd = len(shape)
    per = []
    for s in operand_shapes:
        if isinstance(s, Strided):
            per.append(list(s))
            continue
        s = (1,) * (nd - len(s)) + tuple(s)
        full = [d if (a == d and d != 1) else 1 for a, d in zip(s, shape)]
        rm = _strides(tuple(full))
        per.append([rm[i] if (s[i] == shape[i] and shape[i] != 1) else 0 for i in range(nd)])
    dims = []      # (size, original axes)
    for d in range(nd):
        if shape[d] == 1:
            continue
        if dims and not (keep_split is not None and dims[-1][1][-1] < keep_split <= d) and \
                all(st[dims[-1][1][-1]] == st[d] * shape[d] for st in per):
            size, axes = dims[-1]
            dims[-1] = (size * shape[d], axes + [d])
        else:
            dims.append((shape[d], [d]))
    sizes = [d[0] for d in dims]
    strides = [[st[dm[1][-1]] for dm in dims] for st in per]
    split = None
    if keep_split is not None:
        split = sum(1 for dm in dims if dm[1][-1] < keep_split)
    return sizes, strides, split


def emit_loop(b: ir.IRBuilder, lo, hi, body) -> None:
    """``for i in [lo, hi): body(i)`` (i64 values, or python ints); ``b`` ends after the loop.
    Every kernel generator (loop nests, gemm and convolution kernels) writes its loops so."""
    lo = I64(lo) if isinstance(lo, int) else lo
    hi = I64(hi) if isinstance(hi, int) else hi
    pre = b.block
    head = b.append_basic_block("head")
    bod = b.append_basic_block("body")
    after = b.append_basic_block("after")
    b.branch(head)
    b.position_at_end(head)
    i = b.phi(I64)
    i.add_incoming(lo, pre)
    b.cbranch(b.icmp_signed("<", i, hi), bod, after)
    b.position_at_end(bod)
    body(i)
    i.add_incoming(b.add(i, I64(1), flags=["nsw"]), b.block)
    b.branch(head)
    b.position_at_end(after)


def build_kernel(module: ir.Module, spec: KernelSpec) -> str:
    """Emit ``spec`` as a function in ``module``; returns its name."""
    n_in = len(spec.inputs)
    n_out = len(spec.outputs) + len(spec.reductions)
    ptr_types = []
    for k in range(n_in + n_out):
        if k < n_in:
            d = spec.inputs[k].dtype
        elif k - n_in < len(spec.outputs):
            d = spec.values[spec.outputs[k - n_in]]
        else:
            d = spec.reductions[k - n_in - len(spec.outputs)].dtype
        ptr_types.append(L.storage_type(d).as_pointer())
    # The entry point unpacks the buffer table and calls the loop nest, an always-inlined
    # function whose pointer arguments are ``noalias``: inlining turns that into alias scopes,
    # so the vectorizer needs no runtime overlap checks (LLVM gives up on those beyond a few
    # pointer pairs, which left kernels with many operands scalar).
    # the buffer table holds every operand except outputs written in place of an input
    phys = [k for k in range(n_in + n_out) if k < n_in or (k - n_in) not in spec.inplace]
    body = ir.Function(module, ir.FunctionType(ir.VoidType(),
                                               [ptr_types[k] for k in phys] + [I64, I64]),
                       spec.name + "_body")
    body.linkage = "internal"
    body.attributes.add("alwaysinline")
    for a in body.args[:len(phys)]:
        a.add_attribute("noalias")
    fn = ir.Function(module, KERNEL_TYPE, spec.name)
    fn.args[0].add_attribute("noalias")
    wb = ir.IRBuilder(fn.append_basic_block("entry"))
    bufs = fn.args[0]
    raw = [wb.bitcast(wb.load(wb.gep(bufs, [I64(i)], inbounds=True)), ptr_types[k])
           for i, k in enumerate(phys)]
    wb.call(body, raw + [fn.args[1], fn.args[2]])
    wb.ret_void()

    fn = body
    entry = fn.append_basic_block("entry")
    b = ir.IRBuilder(entry)
    ptrs = [None] * (n_in + n_out)
    for a, k in zip(fn.args, phys):
        ptrs[k] = a
    for j, src in spec.inplace.items():
        ptrs[n_in + j] = ptrs[src]
    begin, end = fn.args[len(phys):]
    # accumulators first, at the top of the entry block (SROA turns them into registers)
    acc_slots = [b.alloca(_acc_type(r)) for r in spec.reductions]

    shape = tuple(spec.shape)
    nd = len(shape)
    red = spec.reduce_ndim
    kept_shape = shape[:nd - red]
    out_shapes = [shape] * len(spec.outputs)
    operand_shapes = [Strided(op.strides) if op.strides is not None else op.shape
                      for op in spec.inputs] + out_shapes + \
        [kept_shape + (1,) * red] * len(spec.reductions)
    sizes, strides, split = _collapse(shape, operand_shapes, keep_split=nd - red if red else None)
    if split is None:
        split = len(sizes)
    if not sizes:
        sizes, strides = [1], [[0] for _ in strides]
        split = 1 if not red else 0
    outer = sizes[:split]
    inner = sizes[split:]

    exit_block = fn.append_basic_block("exit")

    def loop(b, n, lo, body):
        """for i in [lo, n): body(b, i); returns the builder after the loop."""
        emit_loop(b, lo, n, lambda i: body(b, i))
        return b

    def offsets(b, idx, dims_range):
        """Per operand, the element offset contributed by loop indices ``idx``."""
        offs = []
        for st in strides:
            o = None
            for k, i in zip(dims_range, idx):
                if st[k]:
                    t = b.mul(i, I64(st[k]), flags=["nsw"]) if st[k] != 1 else i
                    o = t if o is None else b.add(o, t, flags=["nsw"])
            offs.append(o)
        return offs

    def add_off(b, a, c):
        if a is None:
            return c
        if c is None:
            return a
        return b.add(a, c, flags=["nsw"])

    # Loop-invariant values (inputs read at stride 0 everywhere, constants, and ops on only
    # those, e.g. Adam's bias corrections ``1 - b1**t``) are computed once, here in the entry
    # block, instead of per element: a per-element ``pow`` costs more than the whole loop body.
    invariant = {}
    for k, op in enumerate(spec.inputs):
        if not any(strides[k]):
            invariant[k] = L.load(b, ptrs[k], op.dtype)
    for j, entry_ in enumerate(spec.ops):
        v = n_in + j
        if entry_[0] == "const":
            invariant[v] = L.constant(entry_[2], entry_[1])
        elif all(a in invariant for a in entry_[1]):
            emit, args, in_dtypes, out_dtype, params = entry_
            invariant[v] = emit(b, [invariant[a] for a in args], in_dtypes, out_dtype, params)

    # reciprocals of loop-invariant floating divisors, for the divisions below
    reciprocal = {}
    for entry_ in spec.ops:
        if entry_[0] != "const" and entry_[0] is L.LOWERINGS["div"] and len(entry_[1]) == 2:
            c = entry_[1][1]
            if c in invariant and c not in reciprocal and dt.is_floating(entry_[3]) and \
                    isinstance(invariant[c].type, (ir.FloatType, ir.DoubleType)):
                one = ir.Constant(invariant[c].type, 1.0)
                reciprocal[c] = b.fdiv(one, invariant[c])

    def compute(b, off):
        """Values of one element: loads, then the ops in order (invariants computed above)."""
        vals = []
        for k, op in enumerate(spec.inputs):
            if k in invariant:
                vals.append(invariant[k])
                continue
            p = ptrs[k]
            addr = b.gep(p, [off[k] if off[k] is not None else I64(0)], inbounds=True)
            vals.append(L.load(b, addr, op.dtype))
        for j, entry_ in enumerate(spec.ops):
            if n_in + j in invariant:
                vals.append(invariant[n_in + j])
                continue
            emit, args, in_dtypes, out_dtype, params = entry_
            if args[1:] and args[1] in reciprocal and emit is L.LOWERINGS["div"]:
                # x / c with c loop-invariant: x * (1/c), 1/c computed once (<= 1.5 ulp from
                # the quotient; a division per element cost more than Adam's whole update)
                vals.append(b.fmul(vals[args[0]], reciprocal[args[1]]))
                continue
            vals.append(emit(b, [vals[a] for a in args], in_dtypes, out_dtype, params))
        return vals

    def store_outputs(b, vals, off):
        for j, v in enumerate(spec.outputs):
            k = n_in + j
            addr = b.gep(ptrs[k], [off[k] if off[k] is not None else I64(0)], inbounds=True)
            L.store(b, vals[v], addr, spec.values[v])

    def nest(b, depth, dims, lo_hi, idx, leaf):
        """Loops over ``dims`` (the first from lo_hi[0] to lo_hi[1]); leaf(b, idx) inside."""
        if depth == len(dims):
            leaf(b, idx)
            return b
        if depth == 0 and lo_hi is not None:
            lo, hi = lo_hi
        else:
            lo, hi = I64(0), I64(dims[depth])
        return loop(b, hi, lo, lambda b, i: nest(b, depth + 1, dims, lo_hi, idx + [i], leaf))

    if not red:
        def leaf(b, idx):
            off = offsets(b, idx, range(len(idx)))
            vals = compute(b, off)
            store_outputs(b, vals, off)
        b = nest(b, 0, outer, (begin, end), [], leaf)
        b.branch(exit_block)
    else:
        acc_types = [_acc_type(r) for r in spec.reductions]

        def outer_leaf(b, oidx):
            ooff = offsets(b, oidx, range(len(oidx)))
            accs = acc_slots
            for r, t, slot in zip(spec.reductions, acc_types, accs):
                b.store(_identity(r.kind, t), slot)

            def inner_leaf(b, iidx):
                ioff = offsets(b, iidx, range(len(oidx), len(oidx) + len(iidx)))
                off = [add_off(b, x, y) for x, y in zip(ooff, ioff)]
                vals = compute(b, off)
                store_outputs(b, vals, off)
                for r, t, slot in zip(spec.reductions, acc_types, accs):
                    v = _to_acc(b, vals[r.value], spec.values[r.value], t)
                    b.store(_combine(b, r.kind, b.load(slot), v, t), slot)
            b = nest(b, 0, inner, None, [], inner_leaf)
            for j, (r, t, slot) in enumerate(zip(spec.reductions, acc_types, accs)):
                k = n_in + len(spec.outputs) + j
                res = _from_acc(b, b.load(slot), t, r.dtype)
                addr = b.gep(ptrs[k], [ooff[k] if ooff[k] is not None else I64(0)], inbounds=True)
                L.store(b, res, addr, r.dtype)
        if outer:
            b = nest(b, 0, outer, (begin, end), [], outer_leaf)
        else:
            outer_leaf(b, [])
        b.branch(exit_block)
    b.position_at_end(exit_block)
    b.ret_void()
    return spec.name


def _acc_type(r: Reduction):
    d = r.dtype
    if dt.is_floating(d):
        return L.F64                    # accumulate floats in double: accurate long sums
    return L.compute_type(d)


def _identity(kind, t):
    if isinstance(t, (ir.FloatType, ir.DoubleType)):
        return ir.Constant(t, {"sum": 0.0, "prod": 1.0, "max": float("-inf"),
                               "min": float("inf")}[kind])
    if t == L.I1:
        return ir.Constant(t, 1 if kind == "and" else 0)
    bits = t.width
    return ir.Constant(t, {"sum": 0, "prod": 1, "max": -(1 << (bits - 1)),
                           "min": (1 << (bits - 1)) - 1}[kind])


_FAST = ("reassoc", "nsz", "contract")


def _combine(b, kind, acc, v, t):
    if isinstance(t, (ir.FloatType, ir.DoubleType)):
        if kind == "sum":
            return b.fadd(acc, v, flags=_FAST)
        if kind == "prod":
            return b.fmul(acc, v, flags=_FAST)
        nan = b.fcmp_unordered("uno", v, v)
        better = b.fcmp_ordered(">" if kind == "max" else "<", v, acc)
        return b.select(b.or_(better, nan), v, acc)
    if kind == "and":
        return b.and_(acc, v)
    if kind == "or":
        return b.or_(acc, v)
    if kind == "sum":
        return b.add(acc, v)
    if kind == "prod":
        return b.mul(acc, v)
    return b.select(b.icmp_signed(">" if kind == "max" else "<", v, acc), v, acc)


def _to_acc(b, v, d, t):
    if isinstance(t, ir.DoubleType) and v.type != t:
        return b.fpext(v, t)
    return v


def _from_acc(b, v, t, d):
    ct = L.compute_type(d)
    if isinstance(t, ir.DoubleType) and ct != t:
        return b.fptrunc(v, ct)
    return v
