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
class KernelSpec:
    """What to compute: ``ops`` over values (inputs first), stored ``outputs`` and
    ``row_outputs``, reductions over the ``reduce_ndim`` trailing axes of ``shape``.

    ``ops`` entries are ``(emit, [value indices], in_dtypes, out_dtype, params)``; value ``i``
    for ``i < len(inputs)`` is an input; ``("const", value, dtype)`` entries are constants and
    ``("reduce", kind, value index, dtype)`` entries reductions ("sum", "max", "min", "prod",
    "and", "or") of a value over the reduced axes: per-row values. ``outputs`` are stored at
    the full shape, ``row_outputs`` (per-row values) once per row.
    """
    name: str
    shape: tuple                              # iteration shape (for reductions: kept + reduced)
    inputs: list                              # Operand per input
    values: list = field(default_factory=list)   # per value: dtype
    ops: list = field(default_factory=list)
    outputs: list = field(default_factory=list)      # value indices stored at full shape
    row_outputs: list = field(default_factory=list)  # value indices stored per row
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
    """Emit ``spec`` as a function in ``module``; returns its name.

    Without reductions the kernel is one loop nest computing every value per element. With
    reductions it is a *row kernel*: the outer loops run over the kept axes and, per row, the
    values are computed in stages. Stage ``s`` is an inner loop over the row that accumulates
    the reductions whose input needs the results of ``s`` earlier reductions (and stores the
    full-shape outputs of that stage); between stages the per-row values (reduction results
    and ops on them) are computed once. A row is small enough to stay in cache, so softmax's
    three stages (max, sum of exp, exp / sum) read memory about once; full-shape values an
    earlier stage computed are recomputed rather than stored."""
    n_in = len(spec.inputs)
    out_values = list(spec.outputs) + list(spec.row_outputs)
    n_out = len(out_values)
    ptr_types = [L.storage_type(op.dtype).as_pointer() for op in spec.inputs] + \
        [L.storage_type(spec.values[v]).as_pointer() for v in out_values]
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
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ptrs = [None] * (n_in + n_out)
    for a, k in zip(fn.args, phys):
        ptrs[k] = a
    for j, src in spec.inplace.items():
        ptrs[n_in + j] = ptrs[src]
    begin, end = fn.args[len(phys):]

    shape = tuple(spec.shape)
    nd = len(shape)
    red = spec.reduce_ndim
    kept_shape = shape[:nd - red]
    operand_shapes = [Strided(op.strides) if op.strides is not None else op.shape
                      for op in spec.inputs] + [shape] * len(spec.outputs) + \
        [kept_shape + (1,) * red] * len(spec.row_outputs)
    sizes, strides, split = _collapse(shape, operand_shapes, keep_split=nd - red if red else None)
    if split is None:
        split = len(sizes)
    if not sizes:
        sizes, strides = [1], [[0] for _ in strides]
        split = 1 if not red else 0
    outer, inner = sizes[:split], sizes[split:]

    def offsets(b, idx, first_dim):
        """Per operand, the element offset contributed by loop indices ``idx`` (dims from
        ``first_dim``), or None when they contribute nothing."""
        offs = []
        for st in strides:
            o = None
            for k, i in enumerate(idx, first_dim):
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

    def addr(b, k, off):
        return b.gep(ptrs[k], [off[k] if off[k] is not None else I64(0)], inbounds=True)

    # Loop-invariant values (inputs read at stride 0 everywhere, constants, and ops on only
    # those, e.g. Adam's bias corrections ``1 - b1**t``) are computed once, here in the entry
    # block, instead of per element: a per-element ``pow`` costs more than the whole loop body.
    invariant = {}
    for k, op in enumerate(spec.inputs):
        if not any(strides[k]):
            invariant[k] = L.load(b, ptrs[k], op.dtype)
    for j, op in enumerate(spec.ops):
        v = n_in + j
        if op[0] == "const":
            invariant[v] = L.constant(op[2], op[1])
        elif op[0] != "reduce" and all(a in invariant for a in op[1]):
            invariant[v] = op[0](b, [invariant[a] for a in op[1]], op[2], op[3], op[4])

    # floating divisors that do not vary along the loop a division runs in: the division is a
    # multiplication by the reciprocal, computed once (<= 1.5 ulp from the quotient; a division
    # per element cost more than Adam's whole update)
    divisors = {op[1][1] for op in spec.ops if op[0] is L.LOWERINGS["div"] and
                len(op[1]) == 2 and dt.is_floating(op[3])}
    reciprocal = {}

    def note_divisor(b, v, value):
        if v in divisors and isinstance(value.type, (ir.FloatType, ir.DoubleType)):
            reciprocal[v] = b.fdiv(ir.Constant(value.type, 1.0), value)
    for v, value in list(invariant.items()):
        note_divisor(b, v, value)

    def emit_value(b, v, vals, off):
        """Value ``v`` of one element (or row), its arguments already in ``vals``."""
        if v < n_in:
            return L.load(b, addr(b, v, off), spec.inputs[v].dtype)
        emit, args, in_dtypes, out_dtype, params = spec.ops[v - n_in]
        if emit is L.LOWERINGS["div"] and args[1] in reciprocal and args[1] != v:
            return b.fmul(vals[args[0]], reciprocal[args[1]])
        return emit(b, [vals[a] for a in args], in_dtypes, out_dtype, params)

    def store_outputs(b, vals, off, which):
        for j, v in enumerate(spec.outputs):
            if j in which:
                L.store(b, vals[v], addr(b, n_in + j, off), spec.values[v])

    exit_block = fn.append_basic_block("exit")

    def nest(b, depth, dims, lo_hi, idx, leaf):
        """Loops over ``dims`` (the first from lo_hi[0] to lo_hi[1]); leaf(b, idx) inside."""
        if depth == len(dims):
            leaf(b, idx)
            return
        lo, hi = lo_hi if depth == 0 and lo_hi is not None else (I64(0), I64(dims[depth]))
        emit_loop(b, lo, hi, lambda i: nest(b, depth + 1, dims, lo_hi, idx + [i], leaf))

    if not red:
        todo = [v for v in range(n_in + len(spec.ops)) if v not in invariant]

        def leaf(b, idx):
            off = offsets(b, idx, 0)
            vals = dict(invariant)
            for v in todo:
                vals[v] = emit_value(b, v, vals, off)
            store_outputs(b, vals, off, range(len(spec.outputs)))
        nest(b, 0, outer, (begin, end), [], leaf)
    else:
        _row_kernel(b, spec, n_in, invariant, strides, split, inner, outer, (begin, end),
                    offsets, add_off, addr, emit_value, note_divisor, store_outputs, nest)
    b.branch(exit_block)
    b.position_at_end(exit_block)
    b.ret_void()
    return spec.name


def _row_kernel(b, spec, n_in, invariant, strides, split, inner, outer, lo_hi,
                offsets, add_off, addr, emit_value, note_divisor, store_outputs, nest):
    """The staged loops of a kernel with reductions (see :func:`build_kernel`)."""
    ops = spec.ops
    n_vals = n_in + len(ops)
    # level of each value: "inv" (loop-invariant), "row" (one per row), "elem" (per element);
    # stage: how many reduction stages must finish before it can be computed
    level, stage = {}, {}
    for v in range(n_vals):
        if v in invariant:
            level[v], stage[v] = "inv", 0
        elif v < n_in:
            level[v] = "elem" if any(strides[v][split:]) else "row"
            stage[v] = 0
        elif ops[v - n_in][0] == "reduce":
            level[v], stage[v] = "row", stage[ops[v - n_in][2]] + 1
        else:
            args = ops[v - n_in][1]
            level[v] = "elem" if any(level[a] == "elem" for a in args) else "row"
            stage[v] = max([stage[a] for a in args], default=0)
    def _costly(v):
        return ops[v - n_in][0] in L.EXPENSIVE

    reductions = [v for v in range(n_in, n_vals) if ops[v - n_in][0] == "reduce"]
    out_stage = [stage[v] for v in spec.outputs]
    n_stages = 1 + max([stage[ops[r - n_in][2]] for r in reductions] + out_stage, default=0)
    # each reduction accumulates a chunk of the innermost axis in ``chunk_t`` (vectorized:
    # float32 sums 16 lanes wide), then adds the chunk's result into ``row_t`` (float64 for
    # float sums and products, so long float32 sums stay accurate)
    chunk_t = {r: _chunk_type(ops[r - n_in][1], ops[r - n_in][3]) for r in reductions}
    row_t = {r: _acc_type(ops[r - n_in][1], ops[r - n_in][3]) for r in reductions}
    row_slot = {r: b.alloca(row_t[r]) for r in reductions}    # SROA makes them registers
    chunk_slot = {r: b.alloca(chunk_t[r]) for r in reductions}

    def needed(targets, given=()):
        """The per-element values computing ``targets`` takes, in order (``given`` ones are
        loaded, not computed: their arguments are not needed for them)."""
        want, stack = set(), [t for t in targets if level[t] == "elem"]
        while stack:
            v = stack.pop()
            if v in want:
                continue
            want.add(v)
            if v >= n_in and v not in given:
                stack.extend(a for a in ops[v - n_in][1] if level[a] == "elem")
        return sorted(want)

    # A costly per-element value that a later stage needs again (softmax's exp(x - max),
    # needed for the sum and again for the quotient) is stashed in the buffer of a full-shape
    # output that only the later stage writes: it is loaded back (from cache: the row was
    # just written) instead of recomputed. Only for outputs stored exactly (float32/64).
    stash = {}                                     # value -> output position
    for j, o in enumerate(spec.outputs):
        d = spec.values[o]
        if j in spec.inplace or d not in (np.dtype(np.float32), np.dtype(np.float64)):
            continue
        early = [v for v in needed([o]) if v >= n_in and stage[v] < out_stage[j] and
                 spec.values[v] == d and v not in stash and _costly(v)]
        if early:
            stash[max(early, key=lambda v: len(needed([v])))] = j

    stashed_at = {v: None for v in stash}    # the stage whose loop stores a stashed value

    def row_leaf(b, oidx):
        ooff = offsets(b, oidx, 0)
        vals = dict(invariant)

        def compute_row_values(s):
            for v in range(n_vals):
                if level[v] == "row" and stage[v] == s and v not in vals and (
                        v < n_in or ops[v - n_in][0] != "reduce"):
                    vals[v] = emit_value(b, v, vals, ooff)
                    note_divisor(b, v, vals[v])
        compute_row_values(0)
        for s in range(n_stages):
            reds = [r for r in reductions if stage[ops[r - n_in][2]] == s]
            outs = {j for j, st in enumerate(out_stage) if st == s}
            if reds or outs:
                for r in reds:
                    b.store(_identity(ops[r - n_in][1], row_t[r]), row_slot[r])
                targets = [ops[r - n_in][2] for r in reds] + [spec.outputs[j] for j in outs]
                # stashed values an earlier stage stored are loaded; this stage stores those
                # it is the first to compute
                loaded = {v: j for v, j in stash.items()
                          if stage[v] < s <= out_stage[j] and stashed_at[v] is not None}
                todo = needed(targets, given=loaded)
                for v in stash:
                    if stashed_at[v] is None and v in todo and stage[v] == s and \
                            out_stage[stash[v]] > s:
                        stashed_at[v] = s

                def element(b, iidx, reds=reds, outs=outs, todo=todo, loaded=loaded, s=s):
                    ioff = offsets(b, iidx, len(oidx))
                    off = [add_off(b, x, y) for x, y in zip(ooff, ioff)]
                    ev = dict(vals)
                    for v in todo:
                        if v in loaded:
                            ev[v] = L.load(b, addr(b, n_in + loaded[v], off), spec.values[v])
                            continue
                        ev[v] = emit_value(b, v, ev, off)
                        if stashed_at.get(v) == s:
                            j = stash[v]
                            L.store(b, ev[v], addr(b, n_in + j, off), spec.values[v])
                    store_outputs(b, ev, off, outs)
                    for r in reds:
                        _, kind, src, d = ops[r - n_in]
                        x = _to_acc(b, ev[src], chunk_t[r])
                        b.store(_combine(b, kind, b.load(chunk_slot[r]), x, chunk_t[r]),
                                chunk_slot[r])

                def chunk(b, lo, hi, idx, reds=reds, element=element):
                    for r in reds:
                        b.store(_identity(ops[r - n_in][1], chunk_t[r]), chunk_slot[r])
                    if lo is None:
                        element(b, idx)           # no reduced axis left (all of size 1)
                    else:
                        emit_loop(b, lo, hi, lambda i: element(b, idx + [i]))
                    for r in reds:
                        kind, t = ops[r - n_in][1], row_t[r]
                        x = _to_acc(b, b.load(chunk_slot[r]), t)
                        b.store(_combine(b, kind, b.load(row_slot[r]), x, t), row_slot[r])

                def blocks(b, idx, chunk=chunk):
                    n = inner[-1] if inner else 1
                    if n <= REDUCE_CHUNK:
                        chunk(b, I64(0), I64(n), idx)
                        return

                    def block(k):
                        lo = b.mul(k, I64(REDUCE_CHUNK), flags=["nsw"])
                        hi = b.add(lo, I64(REDUCE_CHUNK), flags=["nsw"])
                        hi = b.select(b.icmp_signed("<", hi, I64(n)), hi, I64(n))
                        chunk(b, lo, hi, idx)
                    emit_loop(b, 0, -(-n // REDUCE_CHUNK), block)
                if inner:
                    nest(b, 0, inner[:-1], None, [], blocks)
                else:
                    chunk(b, None, None, [])
                for r in reds:
                    vals[r] = _from_acc(b, b.load(row_slot[r]), row_t[r], ops[r - n_in][3])
                    note_divisor(b, r, vals[r])
            compute_row_values(s + 1)
        for j, v in enumerate(spec.row_outputs):
            k = n_in + len(spec.outputs) + j
            L.store(b, vals[v], addr(b, k, ooff), spec.values[v])
    if outer:
        nest(b, 0, outer, lo_hi, [], row_leaf)
    else:
        row_leaf(b, [])


#: elements of the innermost reduced axis accumulated in the input's own precision before
#: joining the row's float64 total (numpy's pairwise summation works on blocks of 128)
REDUCE_CHUNK = 256


def _acc_type(kind, d):
    """The type a row's total is kept in: float64 for floating sums and products."""
    if dt.is_floating(d) and kind in ("sum", "prod"):
        return L.F64
    return L.compute_type(d)


def _chunk_type(kind, d):
    """The type a chunk accumulates in: the compute type (vector lanes), except products."""
    if dt.is_floating(d) and kind == "prod":
        return L.F64
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
        # NaN-propagating max/min, which the loop vectorizer reduces in vector lanes
        return L._intrinsic(b, "maximum" if kind == "max" else "minimum", [acc, v])
    if kind == "and":
        return b.and_(acc, v)
    if kind == "or":
        return b.or_(acc, v)
    if kind == "sum":
        return b.add(acc, v)
    if kind == "prod":
        return b.mul(acc, v)
    return b.select(b.icmp_signed(">" if kind == "max" else "<", v, acc), v, acc)


def _to_acc(b, v, t):
    if isinstance(t, ir.DoubleType) and v.type != t:
        return b.fpext(v, t)
    return v


def _from_acc(b, v, t, d):
    ct = L.compute_type(d)
    if isinstance(t, ir.DoubleType) and ct != t:
        return b.fptrunc(v, ct)
    return v
