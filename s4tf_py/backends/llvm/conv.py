"""Convolutions on the CPU: ``conv_general`` as a generated LLVM kernel (direct convolution).

The numpy implementation (im2col, then one GEMM) spends its time copying patches and in
BLAS calls shaped badly for small CNNs (a 6-channel output is a 6-column product). Here the
convolution is a loop nest over the channels-last buffers with register-blocked micro-kernels
written directly as LLVM vector code:

* ``outer`` (the general case): a tile of output pixels times a block of output channels lives
  in vector registers; each reduction step (a filter row ``w[kd, kh, kw, ci, :]``) loads the
  channel vector(s) once and does one FMA per pixel with the pixel's input value broadcast.
  Output channels are contiguous in both the HWIO filter and the NHWC output; a channel count
  that is not a multiple of the vector width uses masked loads and stores. The reduction runs
  over ``(kd, kh, kw*Cin)`` where ``kw*Cin`` is one contiguous run of the input row (without
  rhs dilation). Tiles are rectangles of output rows x columns, so every pixel's input is at a
  constant offset from one pointer; a long reduction with a tiny output (a weight gradient)
  gets one tile for the whole output image, so the (large) filter streams through once.
* ``pixels`` (one input channel, unit column stride, few output channels: a first layer over
  grayscale images): vectors run over consecutive output columns, the input row is the vector
  load, the filter taps are broadcast; the channel vectors are interleaved into NHWC on store.
* few output channels (``outer`` with ``group`` > 1): a vector holds ``group`` consecutive
  reduction steps of every channel (lane ``f * group + j``), so 6 channels fill 12 of 16
  lanes instead of 6 of 8; the input is a broadcast of ``group`` consecutive values, the filter
  rows (``group * Cout`` contiguous values) are permuted once per step, and the lanes of a
  channel are summed at the end. One output channel is a vectorized dot product this way.

With more than one block of channel vectors (over 64 float32 output channels), each block
reads a slice of every filter row: a strided stream that thrashes the caches once rows are
long. Such kernels first copy the filter into one contiguous panel per block (per call, in a
buffer from the runtime's allocator).

The kernel has the signature of every other kernel, ``void name(i8** bufs, i64 begin, i64
end)``: ``bufs`` = (padded input, filter, output), all C-contiguous, and ``[begin, end)`` a
range of :attr:`ConvSpec.iterations` (blocks of output rows of one image, or column groups of
such a block when there are few rows). Padding and lhs
(input) dilation are NOT done by the kernel: :func:`pad_input` makes the buffer it reads.
1-D and 2-D problems are run as 3-D ones with unit leading spatial dimensions.
"""
from __future__ import annotations

import builtins
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from . import codegen

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8P = I8.as_pointer()
KERNEL_TYPE = ir.FunctionType(ir.VoidType(), [I8P.as_pointer(), I64, I64])

#: below this many multiply-adds a convolution runs on the calling thread
PARALLEL_FLOPS = 1 << 18

_FAST = ("reassoc", "nsz", "contract")
_TYPES = {np.dtype(np.float32): (ir.FloatType(), "f32"),
          np.dtype(np.float64): (ir.DoubleType(), "f64")}


# ---- the host's vector registers ---------------------------------------------------------------

_host: dict = {}


def _vector_info() -> tuple[int, int]:
    """(vector register bytes, number of vector registers) of the JIT's target CPU."""
    if not _host:
        try:
            from . import jit
            feats = jit._init()["features"]
        except Exception:  # noqa: BLE001 - no LLVM: any plan is fine, nothing will run
            feats = ""
        if "+avx512f" in feats:
            _host["v"] = (64, 32)
        elif "+avx" in feats:
            _host["v"] = (32, 16)
        else:
            _host["v"] = (16, 16)
    return _host["v"]


# ---- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvSpec:
    """A convolution over a padded, lhs-dilated input buffer.

    Shapes are the buffers' (N-D): ``in_shape`` (N, *spatial, Cin) is the PADDED input,
    ``filter_shape`` (*kernel, Cin, Cout), ``out_shape`` (N, *out_spatial, Cout). The rest is
    the schedule: ``scheme`` ("outer" or "pixels"), vector lanes ``vl``, channel vectors per
    tile ``nr``, tile rows ``th`` and columns ``tw``, column groups per row block
    ``col_groups``, and ``group``: with few output channels, that many consecutive reduction
    steps share one vector (lane ``f * group + j`` holds channel ``f`` of step ``j``).
    ``pack``: with several channel blocks, each call first copies the filter into contiguous
    zero-padded panels, one per block (see :func:`build_conv_kernel`).

    With ``feature_groups`` (G) > 1 the filter is (*kernel, Cin/G, Cout) and output channel
    ``o`` reads input channels ``[g*Cg, (g+1)*Cg)``, ``g = o // (Cout/G)``. Schemes:
    "depthwise" (G == Cin == Cout: one input channel per output channel, vectors over the
    channels, a tile of ``tw`` output pixels of one row times ``nr`` channel vectors) and
    "grouped" (any G: a plain loop nest, one output value at a time)."""

    name: str
    dtype: np.dtype
    in_shape: tuple
    filter_shape: tuple
    out_shape: tuple
    window_strides: tuple
    rhs_dilation: tuple
    scheme: str
    vl: int
    nr: int
    th: int
    tw: int
    col_groups: int
    group: int = 1          # "outer": reduction steps packed side by side in one vector
    pack: bool = False      # "outer": copy the filter into per-channel-block panels first
    feature_groups: int = 1  # "depthwise" / "grouped": XLA's feature_group_count

    @property
    def panel_elems(self) -> int:
        """Elements of the packed filter (0 without ``pack``)."""
        if not self.pack:
            return 0
        f = self.filter_shape[-1]
        red = int(np.prod(self.filter_shape[:-1], dtype=np.int64))
        return red * -(-f // self.vl) * self.vl

    # canonical 3-D view: (D, H, W) spatial dims, leading ones of size 1 for 1-D/2-D
    @property
    def dims(self):
        nsp = len(self.in_shape) - 2
        pad = (1,) * (3 - nsp)
        return dict(
            n=self.in_shape[0], c=self.in_shape[-1], f=self.filter_shape[-1],
            p=pad + tuple(self.in_shape[1:-1]), k=pad + tuple(self.filter_shape[:nsp]),
            o=pad + tuple(self.out_shape[1:-1]), s=pad + tuple(self.window_strides),
            r=pad + tuple(self.rhs_dilation))

    @property
    def row_tiles(self) -> int:
        return -(-self.dims["o"][1] // self.th)

    @property
    def col_tiles(self) -> int:
        return -(-self.dims["o"][2] // self.tw)

    @property
    def iterations(self) -> int:
        d = self.dims
        return d["n"] * d["o"][0] * self.row_tiles * self.col_groups

    @property
    def macs(self) -> int:
        return int(np.prod(self.out_shape, dtype=np.int64)) * \
            int(np.prod(self.filter_shape[:-1], dtype=np.int64))

    @property
    def parallel(self) -> bool:
        return self.macs >= PARALLEL_FLOPS and self.iterations > 1


def supported(eqn) -> bool:
    """Whether ``eqn`` (a ``conv_general``) runs as a generated kernel (else numpy runs it)."""
    a, w = eqn.inputs
    p = eqn.params_dict()
    dtype = a.aval.dtype
    if dtype not in _TYPES or w.aval.dtype != dtype or eqn.outs[0].aval.dtype != dtype:
        return False
    if not 3 <= len(a.aval.shape) <= 5:
        return False
    g = p["feature_group_count"]
    if g != 1:
        cg, cout = w.aval.shape[-2], w.aval.shape[-1]
        og = cout // g if g else 0
        red = int(np.prod(w.aval.shape[:-2], dtype=np.int64)) * cg
        # depthwise (multiplier 1) is vectorized over channels; other groupings run a plain
        # loop that is only worth it for small per-group products (a depthwise conv's filter
        # gradient, a reduction over the whole image and batch, stays on numpy's matmul)
        if not (cg == 1 and og == 1) and (cg * og > 16 or red > 4096):
            return False
    shapes = (a.aval.shape, w.aval.shape, eqn.outs[0].aval.shape)
    if builtins.any(d == 0 for s in shapes for d in s):
        return False
    return builtins.max(int(np.prod(s, dtype=np.int64)) for s in
                        shapes + (padded_shape(a.aval.shape, p),)) < 2 ** 31


def padded_shape(shape, params) -> tuple:
    """The shape of :func:`pad_input`'s result for an input of ``shape``."""
    out = [shape[0]]
    for i, (n, d, (lo, hi)) in enumerate(zip(shape[1:-1], params["lhs_dilation"],
                                              params["padding"])):
        dn = (n - 1) * d + 1 if n else 0
        out.append(dn + lo + hi)
    out.append(shape[-1])
    return tuple(out)


def pad_input(x: np.ndarray, eqn, out: np.ndarray | None = None) -> np.ndarray:
    """The input the kernel reads: ``x`` lhs-dilated and padded (negative padding crops), as a
    C-contiguous array (``x`` itself when there is nothing to do). ``eqn``: the
    ``conv_general`` equation, or its params dict."""
    p = eqn.params_dict() if not isinstance(eqn, dict) else eqn
    return _pad(x, p["lhs_dilation"], p["padding"], out)


def _pad(x, lhs_dilation, padding, out=None):
    nsp = x.ndim - 2
    if all(d == 1 for d in lhs_dilation) and all(lo == 0 and hi == 0 for lo, hi in padding):
        return np.ascontiguousarray(x)
    if builtins.any(lo < 0 or hi < 0 for lo, hi in padding):
        from ...ops.nn import _dilate_pad
        return np.ascontiguousarray(_dilate_pad(x, range(1, nsp + 1), lhs_dilation, padding))
    shape = padded_shape(x.shape, dict(lhs_dilation=lhs_dilation, padding=padding))
    if out is None or out.shape != tuple(shape) or out.dtype != x.dtype:
        out = np.empty(shape, dtype=x.dtype)
    if all(d == 1 for d in lhs_dilation):
        # only the border needs zeros: zero its slabs, copy x into the rest
        for i, (lo, hi) in enumerate(padding):
            ax = 1 + i
            if lo:
                out[(builtins.slice(None),) * ax + (builtins.slice(0, lo),)] = 0
            if hi:
                out[(builtins.slice(None),) * ax + (builtins.slice(shape[ax] - hi, None),)] = 0
    else:
        # zeros (the holes between dilated elements), then one strided copy of x into place
        # (np.pad is several times slower)
        out.fill(0)
    sl = [builtins.slice(None)]
    for n, d, (lo, _) in zip(x.shape[1:-1], lhs_dilation, padding):
        sl.append(builtins.slice(lo, lo + (n - 1) * d + 1, d))
    sl.append(builtins.slice(None))
    out[tuple(sl)] = x
    return out


def make_spec(eqn, name: str, threads: int) -> ConvSpec:
    """The plan for ``eqn`` (which :func:`supported` accepted); kernel symbol ``name``."""
    a, w = eqn.inputs
    p = eqn.params_dict()
    return spec_for(padded_shape(a.aval.shape, p), w.aval.shape, eqn.outs[0].aval.shape,
                    p["window_strides"], p["rhs_dilation"], a.aval.dtype, name, threads,
                    groups=p["feature_group_count"])


def spec_for(in_shape, filter_shape, out_shape, window_strides, rhs_dilation, dtype, name,
             threads: int = 1, scheme: str | None = None, groups: int = 1) -> ConvSpec:
    """The plan for a padded input of ``in_shape``; ``scheme`` forces a micro-kernel;
    ``groups``: the feature group count."""
    dtype = np.dtype(dtype)
    vbytes, nregs = _vector_info()
    width = vbytes // dtype.itemsize                 # lanes of one vector register
    nsp = len(in_shape) - 2
    pad = (1,) * (3 - nsp)
    c, f = in_shape[-1], filter_shape[-1]
    o = pad + tuple(out_shape[1:-1])
    s = pad + tuple(window_strides)
    r = pad + tuple(rhs_dilation)
    k = pad + tuple(filter_shape[:nsp])
    n = in_shape[0]
    red = int(np.prod(k, dtype=np.int64)) * c        # reduction length per output value
    budget = nregs - 4                               # vector registers for accumulators
    threads = builtins.max(1, threads)
    common = (name, dtype, tuple(in_shape), tuple(filter_shape), tuple(out_shape),
              tuple(window_strides), tuple(rhs_dilation))

    if groups != 1:
        if c % groups or f % groups or filter_shape[-2] * groups != c:
            raise ValueError(f"{groups} feature groups do not fit {in_shape} and {filter_shape}")
        depthwise = groups == c == f
        if scheme is None:
            scheme = "depthwise" if depthwise else "grouped"
        if scheme == "depthwise":
            if not depthwise:
                raise ValueError("the depthwise scheme needs groups == Cin == Cout")
            vl = width
            while vl > 4 and vl >= 2 * f:
                vl //= 2
            nr = builtins.min(-(-f // vl), 4)
            tw = builtins.max(1, builtins.min(o[2], budget // nr))
            tw = -(-o[2] // -(-o[2] // tw))            # even tiles (tw and tw - 1 columns)
            return ConvSpec(*common, "depthwise", vl, nr, 1, tw, 1, feature_groups=groups)
        if scheme != "grouped":
            raise ValueError(f"scheme {scheme!r} does not run feature groups")
        return ConvSpec(*common, "grouped", 1, 1, 1, 1, 1, feature_groups=groups)
    if scheme in ("depthwise", "grouped"):
        raise ValueError(f"the {scheme} scheme needs feature groups")

    if scheme is None:
        scheme = "pixels" if c == 1 and s[2] == 1 and f <= 8 and o[2] >= 4 else "outer"

    if scheme == "pixels":
        vl = builtins.min(width, 16)
        while vl > 4 and vl > o[2]:
            vl //= 2
        if vl > o[2] or c != 1 or s[2] != 1:
            raise ValueError("the pixels scheme needs one input channel, unit column stride "
                             "and at least 4 output columns")
        nct = -(-o[2] // vl)

        def tile(rows):
            # FMAs (the taps are broadcast memory operands), loads, accumulator latency
            return red * builtins.max(rows * f / 2, rows * (f + 1) / 3, 4) + 3 * rows * f + 30

        best = None
        for th in _sizes(o[1], builtins.max(1, (budget - f) // f)):
            period = [nct * tile(h) + 40 for h in _split(o[1], th)]
            key = (_makespan(period, n * o[0], threads), -th)
            if best is None or key < best[0]:
                best = (key, th)
        return ConvSpec(*common, "pixels", vl, f, best[1], vl, 1)

    # outer: vectors over output channels; with few channels, over (channel, reduction step)
    run = k[2] * c if r[2] == 1 else c            # the contiguous reduction run
    group = 1
    while 2 * group * f <= width and 2 * group <= run:
        group *= 2
    vl = 4
    while vl < width and vl < f * group:
        vl *= 2
    vl = builtins.min(vl, width)
    nv = -(-f // vl)                              # channel vectors in all
    nr = builtins.min(nv, 4)                      # channel vectors per tile
    blocks = -(-nv // nr)
    mr_max = builtins.max(1, (budget if nr == 1 else budget + 2 - nr) // nr)
    steps = (red // run) * (run // group + (1 if run % group else 0))
    # several channel blocks: each reads a slice of every filter row, a strided stream that
    # thrashes the caches once rows are long (512 channels: 5x slower); the kernel packs them
    pack = blocks > 1
    # a channel block's filter columns stream through once per tile: from L2 when they fit,
    # else from further away
    bw = 48.0 if red * nr * vl * dtype.itemsize <= (1 << 20) else 16.0
    stream = nr * vl * dtype.itemsize / bw
    shuffle = 1 if group > 1 else 0

    def tile(mr):
        compute = builtins.max((mr * nr + shuffle) / 2, (mr + nr) / 3, 4, stream)
        return steps * blocks * compute + blocks * mr * nr * (2 + 2 * group) + 30

    best = None
    for tw in _sizes(o[2], mr_max):
        nct = -(-o[2] // tw)
        for th in _sizes(o[1], builtins.max(1, mr_max // tw)):
            rows = _split(o[1], th)
            # column groups (no empty ones): more iterations when rows are few
            for groups in sorted({-(-nct // -(-nct // builtins.min(nct, g)))
                                  for g in (1, threads, 2 * threads, 8 * threads)}):
                by_rows = {h: _group_sums(o[2], tw, groups, lambda w, h=h: tile(h * w))
                           for h in set(rows)}
                period = [c + 40 for h in rows for c in by_rows[h]]
                key = (_makespan(period, n * o[0], threads), -th * tw, groups)
                if best is None or key < best[0]:
                    best = (key, th, tw, groups)
    _, th, tw, groups = best
    return ConvSpec(*common, "outer", vl, nr, th, tw, groups, group, pack)


def _sizes(extent, most):
    """Tile sizes worth trying for ``extent`` positions, at most ``most``: the sizes
    ``ceil(extent / tiles)`` (a tile count cuts ``extent`` into tiles of them and one less)."""
    return sorted({-(-extent // -(-extent // t)) for t in range(1, builtins.min(most, extent) + 1)})


def _group_sums(extent, size, groups, cost):
    """Per column group: the summed ``cost`` of its tiles (see :func:`_split`)."""
    tiles = -(-extent // size)
    big = extent - tiles * (size - 1)
    per = -(-tiles // groups)
    out = []
    for g in range(groups):
        lo, hi = g * per, builtins.min((g + 1) * per, tiles)
        nbig = builtins.max(0, builtins.min(hi, big) - lo)
        out.append(nbig * cost(size) + (hi - lo - nbig) * (cost(size - 1) if size > 1 else 0))
    return out


def _split(extent, size):
    """Tile sizes when ``extent`` is cut into ``ceil(extent / size)`` tiles of ``size`` or
    ``size - 1`` (the larger first), as the kernel does."""
    tiles = -(-extent // size)
    big = extent - tiles * (size - 1)
    return [size] * big + [size - 1] * (tiles - big)


def _makespan(period, repeats, threads):
    """Cycles until the last thread is done: iterations cost ``period`` repeated ``repeats``
    times, split into contiguous parts as the runtime's ``parallel_for`` does."""
    iters = len(period) * repeats
    parts = builtins.min(threads, iters)
    prefix = np.concatenate([[0.0], np.cumsum(period)])
    total = prefix[-1]

    def upto(i):
        q, rem = divmod(i, len(period))
        return q * total + prefix[rem]
    q, rem = divmod(iters, parts)
    worst, b = 0.0, 0
    for p in range(parts):
        e = b + q + (1 if p < rem else 0)
        worst = builtins.max(worst, upto(e) - upto(b))
        b = e
    return worst


# ---- code generation ---------------------------------------------------------------------------

def build_conv_kernel(module: ir.Module, spec: ConvSpec) -> str:
    """Emit ``spec`` as ``void name(i8** bufs, i64 begin, i64 end)`` in ``module``.

    With ``spec.pack`` the kernel allocates a buffer (the runtime's ``s4tf_aligned_alloc``)
    per call, copies the filter into it as one ``(kernel..., Cin, block)`` panel per channel
    block, zero-padded to whole vectors, runs on that, and frees it. Each thread of a
    ``parallel_for`` packs for itself (a copy of the filter: small next to the convolution);
    should the allocation fail, the kernel runs on the unpacked filter."""
    ft, _ = _TYPES[np.dtype(spec.dtype)]
    fp = ft.as_pointer()

    def body_function(suffix, packed):
        # as in codegen.build_kernel: an always-inlined body with noalias pointer arguments
        body = ir.Function(module, ir.FunctionType(ir.VoidType(), [fp, fp, fp, I64, I64]),
                           spec.name + suffix)
        body.linkage = "internal"
        body.attributes.add("alwaysinline")
        for a in body.args[:3]:
            a.add_attribute("noalias")
        _Emitter(module, body, spec, ft, packed).emit()
        return body

    fn = ir.Function(module, KERNEL_TYPE, spec.name)
    fn.args[0].add_attribute("noalias")
    wb = ir.IRBuilder(fn.append_basic_block("entry"))
    x, w, o = [wb.bitcast(wb.load(wb.gep(fn.args[0], [I64(k)], inbounds=True)), fp)
               for k in range(3)]
    begin, end = fn.args[1], fn.args[2]
    plain = body_function("_body", False)
    if not spec.pack:
        wb.call(plain, [x, w, o, begin, end])
        wb.ret_void()
        return spec.name
    alloc = module.globals.get("s4tf_aligned_alloc") or ir.Function(
        module, ir.FunctionType(I8P, [I64]), "s4tf_aligned_alloc")
    free = module.globals.get("s4tf_aligned_free") or ir.Function(
        module, ir.FunctionType(ir.VoidType(), [I8P]), "s4tf_aligned_free")
    packer = ir.Function(module, ir.FunctionType(ir.VoidType(), [fp, fp]),
                         spec.name + "_pack")
    packer.linkage = "internal"
    packer.attributes.add("alwaysinline")
    for a in packer.args:
        a.add_attribute("noalias")
    _Emitter(module, packer, spec, ft, True).emit_pack()
    packed = body_function("_body_packed", True)
    raw = wb.call(alloc, [I64(spec.panel_elems * np.dtype(spec.dtype).itemsize)])
    with wb.if_else(wb.icmp_unsigned("==", raw, ir.Constant(I8P, None))) as (failed, ok):
        with failed:
            wb.call(plain, [x, w, o, begin, end])
        with ok:
            panels = wb.bitcast(raw, fp)
            wb.call(packer, [w, panels])
            wb.call(packed, [x, panels, o, begin, end])
            wb.call(free, [raw])
    wb.ret_void()
    return spec.name


class _Emitter:
    def __init__(self, module, fn, spec, ft, packed=False):
        self.module, self.fn, self.spec, self.ft = module, fn, spec, ft
        self.packed = packed            # the filter argument holds the packed panels
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        if len(fn.args) == 5:
            self.x, self.w, self.o, self.begin, self.end = fn.args
        d = spec.dims
        self.d = d
        self.N, self.C, self.F = d["n"], d["c"], d["f"]
        self.P, self.K, self.O, self.S, self.R = d["p"], d["k"], d["o"], d["s"], d["r"]
        C, F = self.C, self.F
        P, K, O = self.P, self.K, self.O
        # element strides of the buffers
        self.xs = (P[0] * P[1] * P[2] * C, P[1] * P[2] * C, P[2] * C, C)      # n, d, h, w
        self.os = (O[0] * O[1] * O[2] * F, O[1] * O[2] * F, O[2] * F, F)
        self.red = K[0] * K[1] * K[2] * C                                      # filter rows
        self.esize = np.dtype(spec.dtype).itemsize
        self.vl = spec.vl
        self.vt = ir.VectorType(ft, spec.vl)
        self.zero = ir.Constant(self.vt, None)

    # -- small helpers --
    def gep(self, p, off):
        if isinstance(off, int):
            if off == 0:
                return p
            off = I64(off)
        return self.b.gep(p, [off], inbounds=True)

    def loop(self, lo, hi, body):
        """``for i in [lo, hi): body(i)`` (lo/hi: python ints or i64 values)."""
        codegen.emit_loop(self.b, lo, hi, body)

    def loop_const(self, n, body):
        """A loop of ``n`` (python int) iterations, or a direct call with 0 when ``n == 1``."""
        if n == 1:
            body(I64(0))
        else:
            self.loop(0, n, body)

    def scaled(self, i, k):
        if k == 0:
            return I64(0)
        if isinstance(i, ir.Constant) and i.constant == 0:
            return I64(0)
        return i if k == 1 else self.b.mul(i, I64(k), flags=["nsw"])

    def add(self, *vals):
        out = None
        for v in vals:
            if isinstance(v, ir.Constant) and v.constant == 0:
                continue
            out = v if out is None else self.b.add(out, v, flags=["nsw"])
        return out if out is not None else I64(0)

    def if_else(self, cond, then, otherwise):
        with self.b.if_else(cond) as (t, e):
            with t:
                then()
            with e:
                otherwise()

    def load_scalar(self, p):
        return self.b.load(p, align=self.esize)

    def broadcast(self, s, vt=None):
        vt = vt or self.vt
        v = self.b.insert_element(ir.Constant(vt, ir.Undefined), s, I32(0))
        return self.b.shuffle_vector(v, ir.Constant(vt, ir.Undefined),
                                     ir.Constant(ir.VectorType(I32, vt.count), [0] * vt.count))

    def _mask(self, lanes):
        return ir.Constant(ir.VectorType(I1, self.vl), [1] * lanes + [0] * (self.vl - lanes))

    def _intrinsic(self, kind):
        _, tag = _TYPES[np.dtype(self.spec.dtype)]
        vp = self.vt.as_pointer()
        mt = ir.VectorType(I1, self.vl)
        # the form with an explicit alignment argument (newer LLVMs upgrade it on parsing);
        # the pointer is mangled ``p0`` once pointers are opaque (LLVM 17), else typed
        import llvmlite.binding as llvm
        ptr = "p0" if llvm.llvm_version_info[0] >= 17 else f"p0v{self.vl}{tag}"
        name = f"llvm.masked.{kind}.v{self.vl}{tag}.{ptr}"
        if name in self.module.globals:
            return self.module.globals[name]
        if kind == "load":
            ty = ir.FunctionType(self.vt, [vp, I32, mt, self.vt])
        else:
            ty = ir.FunctionType(ir.VoidType(), [self.vt, vp, I32, mt])
        return ir.Function(self.module, ty, name)

    def load_vec(self, p, lanes=None):
        vp = self.b.bitcast(p, self.vt.as_pointer())
        if lanes is None or lanes == self.vl:
            return self.b.load(vp, align=self.esize)
        return self.b.call(self._intrinsic("load"),
                           [vp, I32(self.esize), self._mask(lanes), self.zero])

    def store_vec(self, v, p, lanes=None):
        vp = self.b.bitcast(p, self.vt.as_pointer())
        if lanes is None or lanes == self.vl:
            self.b.store(v, vp, align=self.esize)
        else:
            self.b.call(self._intrinsic("store"), [v, vp, I32(self.esize), self._mask(lanes)])

    def fma(self, acc, a, c):
        return self.b.fadd(acc, self.b.fmul(a, c, flags=_FAST), flags=_FAST)

    def reduce_loops(self, xt, wt, body, group=1, wrow=None):
        """Loops over the reduction (kd, kh, kw, ci) calling ``body(xk, wk, g)`` with pointers
        to the input and filter elements of ``g`` consecutive steps (``g`` is ``group``, or
        less for the rest of a run), ``xt``/``wt`` at the origin. ``kw`` and ``ci`` are one loop
        over the contiguous run ``kw*Cin`` without rhs dilation. ``wrow``: elements between
        filter rows (``Cout``, or a packed panel's width)."""
        K, R, C = self.K, self.R, self.C
        F = self.F if wrow is None else wrow
        xs = self.xs
        ws = (K[1] * K[2] * C * F, K[2] * C * F, C * F)

        def run(xr, wr, length):
            full, rest = divmod(length, group)
            if full:
                self.loop_const(full, lambda j: body(
                    self.gep(xr, self.scaled(j, group)), self.gep(wr, self.scaled(j, group * F)),
                    group))
            if rest:
                body(self.gep(xr, full * group), self.gep(wr, full * group * F), rest)

        def at_kd(kd):
            xd = self.gep(xt, self.scaled(kd, R[0] * xs[1]))
            wd = self.gep(wt, self.scaled(kd, ws[0]))

            def at_kh(kh):
                xh = self.gep(xd, self.scaled(kh, R[1] * xs[2]))
                wh = self.gep(wd, self.scaled(kh, ws[1]))
                if R[2] == 1 or K[2] == 1:
                    run(xh, wh, K[2] * C)
                    return

                def at_kw(kw):
                    run(self.gep(xh, self.scaled(kw, R[2] * xs[3])),
                        self.gep(wh, self.scaled(kw, ws[2])), C)
                self.loop_const(K[2], at_kw)
            self.loop_const(K[1], at_kh)
        self.loop_const(K[0], at_kd)

    # -- the packed filter --
    def emit_pack(self):
        """``panels[block][row][0:width]`` = ``w[row][block channels]`` (zeros past Cout)."""
        b, vl, F, spec = self.b, self.vl, self.F, self.spec
        w, panels = self.fn.args
        nr, red = spec.nr, self.red
        full = F // (nr * vl)
        tail = F - full * nr * vl
        nvec_t = -(-tail // vl)

        def row(k):
            src = self.gep(w, self.scaled(k, F))

            def block(cb):
                s0 = self.gep(src, self.scaled(cb, nr * vl))
                d0 = self.gep(panels, self.add(self.scaled(cb, red * nr * vl),
                                               self.scaled(k, nr * vl)))
                for v in range(nr):
                    self.store_vec(self.load_vec(self.gep(s0, v * vl)), self.gep(d0, v * vl))
            if full:
                self.loop_const(full, block)
            if tail:
                s0 = self.gep(src, full * nr * vl)
                d0 = self.gep(panels, self.add(I64(full * red * nr * vl),
                                               self.scaled(k, nvec_t * vl)))
                for v in range(nvec_t):
                    lanes = tail - v * vl if v == nvec_t - 1 else None
                    self.store_vec(self.load_vec(self.gep(s0, v * vl), lanes),
                                   self.gep(d0, v * vl))
        self.loop(0, red, row)
        b.ret_void()

    # -- the kernel --
    def emit(self):
        spec, b = self.spec, self.b
        scheme = spec.scheme
        # accumulators: allocas in the entry block (SROA makes them registers)
        if scheme in ("outer", "depthwise"):
            nacc = spec.th * spec.tw * spec.nr
            self.accs = [b.alloca(self.vt) for _ in range(nacc)]
        elif scheme == "grouped":
            self.accs = [b.alloca(self.ft)]
        else:
            self.accs = [b.alloca(self.vt) for _ in range(spec.th * self.F)]
        O, S = self.O, self.S
        nrt, groups = spec.row_tiles, spec.col_groups
        th = spec.th

        def iteration(i):
            cg = b.urem(i, I64(groups)) if groups > 1 else I64(0)
            t = b.udiv(i, I64(groups)) if groups > 1 else i
            rt = b.urem(t, I64(nrt)) if nrt > 1 else I64(0)
            t = b.udiv(t, I64(nrt)) if nrt > 1 else t
            od = b.urem(t, I64(O[0])) if O[0] > 1 else I64(0)
            n = b.udiv(t, I64(O[0])) if O[0] > 1 else t
            xs, os_ = self.xs, self.os
            oh0, big = self.tile_start(rt, th, O[1])
            xrow = self.gep(self.x, self.add(self.scaled(n, xs[0]),
                                             self.scaled(od, S[0] * xs[1]),
                                             self.scaled(oh0, S[1] * xs[2])))
            orow = self.gep(self.o, self.add(self.scaled(n, os_[0]), self.scaled(od, os_[1]),
                                             self.scaled(oh0, os_[2])))
            if big is not None:
                self.if_else(big, lambda: self.row_block(xrow, orow, cg, th),
                             lambda: self.row_block(xrow, orow, cg, th - 1))
            else:
                self.row_block(xrow, orow, cg, th)
        self.loop(self.begin, self.end, iteration)
        b.ret_void()

    def tile_start(self, t, size, extent):
        """(first position, i1 "this tile has ``size`` positions" or None when all do) of tile
        ``t`` when ``extent`` is cut into tiles of ``size`` and ``size - 1`` (see _split)."""
        b = self.b
        tiles = -(-extent // size)
        big = extent - tiles * (size - 1)
        if big == tiles:
            return self.scaled(t, size), None
        is_big = b.icmp_signed("<", t, I64(big))
        # t*size for the big tiles, then t*(size - 1) + big
        start = b.select(is_big, self.scaled(t, size),
                         self.add(self.scaled(t, size - 1), I64(big)))
        return start, is_big

    def row_block(self, xrow, orow, cg, th):
        spec, b = self.spec, self.b
        O, S, C, F = self.O, self.S, self.C, self.F
        if spec.scheme == "depthwise":
            self.depthwise_row(xrow, orow)
            return
        if spec.scheme == "grouped":
            self.grouped_row(xrow, orow)
            return
        if spec.scheme == "pixels":
            vl = spec.vl
            nct = -(-O[2] // vl)

            def col(ct):
                # the last tile overlaps the one before rather than running past the row
                ow0 = b.mul(ct, I64(vl), flags=["nsw"]) if nct > 1 else I64(0)
                if O[2] % vl:
                    last = I64(O[2] - vl)
                    ow0 = b.select(b.icmp_signed(">", ow0, last), last, ow0)
                self.pixels_tile(self.gep(xrow, ow0), self.gep(orow, self.scaled(ow0, F)), th)
            self.loop_const(nct, col)
            return
        tw, nct, groups = spec.tw, spec.col_tiles, spec.col_groups
        per = -(-nct // groups)
        if groups > 1:
            lo = b.mul(cg, I64(per), flags=["nsw"])
            hi = b.add(lo, I64(per), flags=["nsw"])
            hi = b.select(b.icmp_signed(">", hi, I64(nct)), I64(nct), hi)
        else:
            lo, hi = I64(0), I64(nct)

        def columns(wt, oc, nvec, lanes):
            # every column tile of this row block (or column group) for one channel block:
            # the block's filter columns stay in cache across the tiles
            def col(ct):
                ow0, big = self.tile_start(ct, tw, O[2])
                xt = self.gep(xrow, self.scaled(ow0, S[2] * C))
                ot = self.gep(orow, self.add(self.scaled(ow0, F), oc))
                if big is not None:
                    self.if_else(big, lambda: self.outer_tile(xt, wt, ot, th, tw, nvec, lanes),
                                 lambda: self.outer_tile(xt, wt, ot, th, tw - 1, nvec, lanes))
                else:
                    self.outer_tile(xt, wt, ot, th, tw, nvec, lanes)
            if groups == 1 and nct == 1:
                col(I64(0))
            else:
                self.loop(lo, hi, col)

        vl, nr = self.vl, spec.nr
        full = F // (nr * vl)                 # blocks of nr full channel vectors
        tail = F - full * nr * vl

        panel = self.red * nr * vl            # a packed block's elements

        def block(cb):
            off = self.scaled(cb, nr * vl)
            wt = self.gep(self.w, self.scaled(cb, panel) if self.packed else off)
            columns(wt, off, nr, vl)
        if full:
            self.loop_const(full, block)
        if tail:
            nvec = -(-tail // vl)
            wt = self.gep(self.w, full * panel if self.packed else full * nr * vl)
            columns(wt, I64(full * nr * vl), nvec, tail - (nvec - 1) * vl)

    def outer_tile(self, xt, wt, ot, th, tw, nvec, lanes):
        """th x tw pixels times nvec channel vectors (the last with ``lanes`` lanes)."""
        b, vl, F, G = self.b, self.vl, self.F, self.spec.group
        S, xs, os_ = self.S, self.xs, self.os
        accs = [[[self.accs[(r * tw + c) * nvec + v] for v in range(nvec)]
                 for c in range(tw)] for r in range(th)]
        for r in range(th):
            for c in range(tw):
                for a in accs[r][c]:
                    b.store(self.zero, a)
        pix = [[r * S[1] * xs[2] + c * S[2] * xs[3] for c in range(tw)] for r in range(th)]
        i32v = lambda idx: ir.Constant(ir.VectorType(I32, len(idx)), idx)  # noqa: E731

        def step(xk, wk, g):
            if G == 1:
                # (packed panels are zero-padded to whole vectors: no masks)
                wv = [self.load_vec(self.gep(wk, v * vl),
                                    lanes if v == nvec - 1 and not self.packed else None)
                      for v in range(nvec)]
            else:
                # g steps' channels, lane f*G + j <- w[j, f] (natural order: j*F + f)
                nat = self.load_vec(wk, g * F)
                zero_lane = g * F if g * F < vl else None
                idx = []
                for lane in range(vl):
                    f, j = divmod(lane, G)
                    if f < F and j < g:
                        idx.append(j * F + f)
                    else:
                        idx.append(zero_lane if zero_lane is not None else 0)
                wv = [b.shuffle_vector(nat, nat, i32v(idx))]
            for r in range(th):
                for c in range(tw):
                    p = self.gep(xk, pix[r][c])
                    if G == 1:
                        xv = self.broadcast(self.load_scalar(p))
                    else:
                        # the g inputs repeated across the vector: x[j] in lane f*G + j,
                        # zero in the lanes of missing steps (0 * inf would be NaN)
                        gt = ir.VectorType(self.ft, g)
                        xg = b.load(b.bitcast(p, gt.as_pointer()), align=self.esize)
                        xv = b.shuffle_vector(xg, ir.Constant(gt, None), i32v(
                            [lane % G if lane % G < g else g for lane in range(vl)]))
                    for v in range(nvec):
                        a = accs[r][c][v]
                        b.store(self.fma(b.load(a), xv, wv[v]), a)
        self.reduce_loops(xt, wt, step, G, nvec * vl if self.packed else None)
        for r in range(th):
            for c in range(tw):
                p = self.gep(ot, r * os_[2] + c * os_[3])
                if G == 1:
                    for v in range(nvec):
                        self.store_vec(b.load(accs[r][c][v]), self.gep(p, v * vl),
                                       lanes if v == nvec - 1 else None)
                    continue
                acc = b.load(accs[r][c][0])
                h = 1
                while h < G:                    # lanes f*G + j summed over j into f*G
                    acc = b.fadd(acc, b.shuffle_vector(acc, acc, i32v(
                        [lane ^ h for lane in range(vl)])), flags=_FAST)
                    h *= 2
                acc = b.shuffle_vector(acc, acc, i32v([(lane * G) % vl for lane in range(vl)]))
                self.store_vec(acc, p, F)

    def depthwise_row(self, xrow, orow):
        """One output row, groups == Cin == Cout: for each block of ``nr`` channel vectors,
        tiles of ``tw`` pixels accumulate ``x[pixel tap, c] * w[tap, 0, c]`` lane-wise."""
        spec, b = self.spec, self.b
        O, S, C = self.O, self.S, self.C
        vl, nr, tw = self.vl, spec.nr, spec.tw
        full = C // (nr * vl)
        tail = C - full * nr * vl
        nct = -(-O[2] // tw)

        def columns(off, nvec, lanes):
            def col(ct):
                ow0, big = self.tile_start(ct, tw, O[2])
                xt = self.gep(xrow, self.add(self.scaled(ow0, S[2] * C), off))
                ot = self.gep(orow, self.add(self.scaled(ow0, C), off))
                wt = self.gep(self.w, off)
                if big is not None:
                    self.if_else(big, lambda: self.depthwise_tile(xt, wt, ot, tw, nvec, lanes),
                                 lambda: self.depthwise_tile(xt, wt, ot, tw - 1, nvec, lanes))
                else:
                    self.depthwise_tile(xt, wt, ot, tw, nvec, lanes)
            self.loop_const(nct, col)

        if full:
            self.loop_const(full, lambda cb: columns(self.scaled(cb, nr * vl), nr, vl))
        if tail:
            nvec = -(-tail // vl)
            columns(I64(full * nr * vl), nvec, tail - (nvec - 1) * vl)

    def depthwise_tile(self, xt, wt, ot, tw, nvec, lanes):
        b, vl, C = self.b, self.vl, self.C
        K, R, S, xs = self.K, self.R, self.S, self.xs
        accs = [[self.accs[c * nvec + v] for v in range(nvec)] for c in range(tw)]
        for row in accs:
            for a in row:
                b.store(self.zero, a)
        ws = (K[1] * K[2] * C, K[2] * C, C)

        def tap(xk, wk):
            wv = [self.load_vec(self.gep(wk, v * vl), lanes if v == nvec - 1 else None)
                  for v in range(nvec)]
            for c in range(tw):
                p = self.gep(xk, c * S[2] * xs[3])
                for v in range(nvec):
                    xv = self.load_vec(self.gep(p, v * vl), lanes if v == nvec - 1 else None)
                    a = accs[c][v]
                    b.store(self.fma(b.load(a), xv, wv[v]), a)

        def at_kd(kd):
            xd = self.gep(xt, self.scaled(kd, R[0] * xs[1]))
            wd = self.gep(wt, self.scaled(kd, ws[0]))

            def at_kh(kh):
                xh = self.gep(xd, self.scaled(kh, R[1] * xs[2]))
                wh = self.gep(wd, self.scaled(kh, ws[1]))
                self.loop_const(K[2], lambda kw: tap(self.gep(xh, self.scaled(kw, R[2] * xs[3])),
                                                     self.gep(wh, self.scaled(kw, ws[2]))))
            self.loop_const(K[1], at_kh)
        self.loop_const(K[0], at_kd)
        for c in range(tw):
            for v in range(nvec):
                self.store_vec(b.load(accs[c][v]), self.gep(ot, c * C + v * vl),
                               lanes if v == nvec - 1 else None)

    def grouped_row(self, xrow, orow):
        """One output row, any feature groups: a plain loop per output value."""
        spec, b = self.spec, self.b
        O, S, C, F, K, R, xs = self.O, self.S, self.C, self.F, self.K, self.R, self.xs
        G = spec.feature_groups
        cg, og = C // G, F // G
        ws = (K[1] * K[2] * cg * F, K[2] * cg * F, cg * F)
        acc = self.accs[0]

        def pixel(ow):
            xp = self.gep(xrow, self.scaled(ow, S[2] * C))
            op = self.gep(orow, self.scaled(ow, F))

            def group(g):
                xg = self.gep(xp, self.scaled(g, cg))

                def out_channel(j):
                    o = self.add(self.scaled(g, og), j)
                    b.store(ir.Constant(self.ft, 0.0), acc)
                    wo = self.gep(self.w, o)

                    def at_kd(kd):
                        xd = self.gep(xg, self.scaled(kd, R[0] * xs[1]))
                        wd = self.gep(wo, self.scaled(kd, ws[0]))

                        def at_kh(kh):
                            xh = self.gep(xd, self.scaled(kh, R[1] * xs[2]))
                            wh = self.gep(wd, self.scaled(kh, ws[1]))

                            def at_kw(kw):
                                xw = self.gep(xh, self.scaled(kw, R[2] * xs[3]))
                                ww = self.gep(wh, self.scaled(kw, ws[2]))

                                def at_ci(ci):
                                    xv = self.load_scalar(self.gep(xw, ci))
                                    wv = self.load_scalar(self.gep(ww, self.scaled(ci, F)))
                                    b.store(b.fadd(b.load(acc), b.fmul(xv, wv, flags=_FAST),
                                                   flags=_FAST), acc)
                                self.loop_const(cg, at_ci)
                            self.loop_const(K[2], at_kw)
                        self.loop_const(K[1], at_kh)
                    self.loop_const(K[0], at_kd)
                    b.store(b.load(acc), self.gep(op, o), align=self.esize)
                self.loop_const(og, out_channel)
            self.loop_const(G, group)
        self.loop_const(O[2], pixel)

    def pixels_tile(self, xt, ot, th):
        """th rows x vl consecutive columns, all channels; one input channel, unit stride."""
        b, F, vl = self.b, self.F, self.vl
        S, xs, os_ = self.S, self.xs, self.os
        accs = [[self.accs[r * F + f] for f in range(F)] for r in range(th)]
        for row in accs:
            for a in row:
                b.store(self.zero, a)

        def step(xk, wk, g):
            wv = [self.broadcast(self.load_scalar(self.gep(wk, f))) for f in range(F)]
            for r in range(th):
                xv = self.load_vec(self.gep(xk, r * S[1] * xs[2]))
                for f in range(F):
                    b.store(self.fma(b.load(accs[r][f]), xv, wv[f]), accs[r][f])
        self.reduce_loops(xt, self.w, step)
        for r in range(th):
            vals = [b.load(a) for a in accs[r]]
            self.store_interleaved(vals, self.gep(ot, r * os_[2]))

    def store_interleaved(self, vals, p):
        """Store channel vectors ``vals[f][pixel]`` as ``p[pixel * F + f]``."""
        b, vl, F = self.b, self.vl, len(vals)
        if F == 1:
            self.store_vec(vals[0], p)
            return
        size = 1
        while size < F:
            size *= 2
        parts = vals + [ir.Constant(self.vt, ir.Undefined)] * (size - F)
        width = vl
        while len(parts) > 1:
            mask = ir.Constant(ir.VectorType(I32, 2 * width), list(range(2 * width)))
            parts = [b.shuffle_vector(parts[i], parts[i + 1], mask)
                     for i in range(0, len(parts), 2)]
            width *= 2
        cat = parts[0]
        order = [f * vl + q for q in range(vl) for f in range(F)]
        out = b.shuffle_vector(cat, ir.Constant(cat.type, ir.Undefined),
                               ir.Constant(ir.VectorType(I32, len(order)), order))
        vt = ir.VectorType(self.ft, len(order))
        b.store(out, b.bitcast(p, vt.as_pointer()), align=self.esize)
