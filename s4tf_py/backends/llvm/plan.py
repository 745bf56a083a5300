"""Planning: which equations become fused LLVM kernels, gemm or convolution kernels, or host steps.

:func:`plan` first sinks every fusible equation to just before its first non-fusible reader
(:func:`_sink_fusible`), then walks the equations in order and grows *fusion groups* over one
iteration shape: elementwise primitives (those with an ``llvm`` slot), broadcasts (load
strides), reshapes and transposes of buffers in memory (reads with other strides), constants
(inlined) and reductions over trailing axes (elementwise producers fuse into the reduction).
After a reduction the group becomes a row kernel (see :class:`Group`): softmax, log-softmax,
layer/RMS norm and cross-entropy are one kernel each. Reductions over other axes, pooling windows and bias-gradient sums are
rewritten into forms that fit (a transposed read, a strided window view, ``ones @ x``).
float32/64 products and convolutions become ``("dot", eqn)`` / ``("conv", eqn)`` steps; an
equation that fits nothing (a gather, control flow, linalg...) is a ``("host", eqn)`` step run
by the primitive's numpy implementation, scheduled before the open group when it does not read
it, so independent ops do not split a group.
"""
from __future__ import annotations

import numpy as np

from ...ir.function import Eqn, Function, Var
from ...ir.registry import AVal
from . import blas, codegen, conv

_REDUCE_KIND = {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min",
                "reduce_prod": "prod", "reduce_and": "and", "reduce_or": "or"}


def _broadcastable(small, big) -> bool:
    if len(small) > len(big):
        return False
    return all(s == b or s == 1 for s, b in zip(small[::-1], big[::-1]))


def _trailing(e):
    axes = dict(e.params)["axes"]
    nd = len(e.inputs[0].aval.shape)
    return len(axes) > 0 and tuple(axes) == tuple(range(nd - len(axes), nd))


class Group:
    """Equations fused into one kernel over ``shape``, with reductions over its trailing axes.

    After a first reduction the group is a *row kernel*: for each row (the kept axes ``kept``)
    it may go on with ops on per-row values (the reduction results, ``row_values``: shape
    ``kept`` or ``kept + (1,) * reduce_ndim``), further full-shape ops reading them broadcast,
    and further reductions over the same axes. Softmax ``exp(x - max(x)) / sum(...)`` is then
    one kernel whose row loop makes three cache-hot passes over each row (codegen stages)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.eqns = []
        self.produced = set()
        self.reduce_ndim = 0
        self.row_values: set = set()  # produced per-row values (reductions and ops on them)
        self.closed = False           # nothing more can join

    @property
    def kept(self) -> tuple:
        return self.shape[:len(self.shape) - self.reduce_ndim]

    def row_shape(self, shape) -> bool:
        """Whether ``shape`` is a per-row shape (``kept`` or ``kept + (1,)*r``)."""
        return self.reduce_ndim > 0 and tuple(shape) in (
            self.kept, self.kept + (1,) * self.reduce_ndim)

    def add(self, e):
        self.eqns.append(e)
        self.produced.update(e.outs)
        name = e.prim.name
        if name in _REDUCE_KIND:
            self.reduce_ndim = len(dict(e.params)["axes"])
            self.row_values.add(e.outs[0])
            # a reduction over size-1 axes leaves per-row values of the full shape: stop there
            self.closed = self.kept + (1,) * self.reduce_ndim == self.shape
        elif self.reduce_ndim and e.outs[0].aval.shape != self.shape and \
                any(v in self.row_values for v in e.inputs):
            self.row_values.add(e.outs[0])

    def accepts(self, e) -> bool:
        if self.closed:
            return False
        name = e.prim.name
        if name in _REDUCE_KIND:
            return (e.inputs[0].aval.shape == self.shape and _trailing(e) and
                    (not self.reduce_ndim or len(dict(e.params)["axes"]) == self.reduce_ndim))
        if name == "constant":
            return _broadcastable(e.outs[0].aval.shape, self.shape)
        out_shape = e.outs[0].aval.shape
        if name in ("reshape", "transpose"):
            if name == "reshape" and e.inputs[0] in self.row_values:
                return self.row_shape(out_shape)      # per-row value, other unit axes
            # a reshape or transpose of a buffer in memory is a read with other strides
            return e.inputs[0] not in self.produced and _broadcastable(out_shape, self.shape)
        if self.reduce_ndim and any(v in self.row_values for v in e.inputs):
            return self._accepts_row_reader(e)
        if out_shape == self.shape:
            return all(v not in self.produced or v.aval.shape == self.shape or
                       _broadcastable(v.aval.shape, self.shape) for v in e.inputs)
        # a smaller value that broadcasts into the group is recomputed per element (cheap, and
        # it saves a pass): only from values that are themselves small
        return _broadcastable(out_shape, self.shape) and all(
            v not in self.produced or v.aval.shape != self.shape for v in e.inputs)

    def _accepts_row_reader(self, e) -> bool:
        """An elementwise op reading per-row values: full-shape (reading them broadcast, as
        ``kept + (1,)*r``) or itself per-row (reading other per-row values and values that
        broadcast into its shape)."""
        out_shape = tuple(e.outs[0].aval.shape)
        bcast = self.kept + (1,) * self.reduce_ndim
        if out_shape == self.shape:
            return all(v.aval.shape == bcast if v in self.row_values else
                       (v not in self.produced or v.aval.shape == self.shape or
                        _broadcastable(v.aval.shape, self.shape)) for v in e.inputs)
        if not self.row_shape(out_shape):
            return False
        # other inputs: values from outside that broadcast into the op's shape, or (made in
        # the group, so aligned with the full shape) scalars and same-rank broadcasts
        return all(v.aval.shape == out_shape if v in self.row_values else
                   _broadcastable(v.aval.shape, out_shape) and (
                       v not in self.produced or v.aval.ndim == 0 or
                       len(out_shape) == len(self.shape))
                   for v in e.inputs)


def _elementwise(e) -> bool:
    p = e.prim
    if p.name == "convert" and _float_to_int(e):
        # NaN/Inf cannot become integers: the host step's check raises an error naming the
        # cast (in a kernel, LLVM's fptosi would give poison). Such casts are rare in hot loops.
        return False
    return (not p.multiple_results and p.llvm is not None) or p.name == "broadcast_to"


def _float_to_int(e) -> bool:
    from ... import dtypes as dt
    return dt.is_floating(e.inputs[0].aval.dtype) and dt.is_integer(e.outs[0].aval.dtype)


def plan(fn: Function):
    """Steps ``("group", Group)``, ``("dot", eqn)`` and ``("host", eqn)`` in a
    dependency-respecting order."""
    steps = _plan(_sink_fusible(_widen_low_precision_products(fn.eqns)))
    return _rematerialize(steps, set(fn.outputs))


def _widen_low_precision_products(eqns):
    """float16/bfloat16 products and convolutions in float32:
    ``convert(dot(convert(a), convert(b)))``. The operands' casts fuse into the kernels that
    make them, and the product accumulates in float32 (as the reference computes it); numpy
    has no BLAS for these types."""
    from ... import dtypes as dt
    from ...ops._core import CONVERT
    f32 = np.dtype(np.float32)
    out = []
    for e in eqns:
        if e.prim.name not in ("dot_general", "conv_general") or \
                e.inputs[0].aval.dtype not in dt.LOW_PRECISION or \
                e.inputs[1].aval.dtype != e.inputs[0].aval.dtype:
            out.append(e)
            continue
        wide = []
        for v in e.inputs:
            w = Var(AVal(tuple(v.aval.shape), f32, False))
            out.append(Eqn(CONVERT, (v,), (("dtype", f32),), (w,), e.loc))
            wide.append(w)
        params = tuple((k, v) for k, v in e.params if k != "preferred")
        res = e.outs[0]
        if res.aval.dtype == f32:
            out.append(Eqn(e.prim, tuple(wide), params, e.outs, e.loc))
            continue
        r32 = Var(AVal(tuple(res.aval.shape), f32, False))
        out.append(Eqn(e.prim, tuple(wide), params, (r32,), e.loc))
        out.append(Eqn(CONVERT, (r32,), (("dtype", res.aval.dtype),), (res,), e.loc))
    return out


def _fusible(e) -> bool:
    return _elementwise(e) or e.prim.name in _REDUCE_KIND or e.prim.name in (
        "constant", "reshape", "transpose")


def _sink_fusible(eqns):
    """The equations with each fusible one moved down to just before its first non-fusible
    reader (or the end): an elementwise op that only reads inputs (Adam's ``b1 * m``) then
    fuses with the rest of its chain instead of running as a kernel of its own before the
    backward pass."""
    pending: dict = {}                 # result Var -> deferred eqn (insertion = program order)
    order: dict = {}
    out = []
    for pos, e in enumerate(eqns):
        order[id(e)] = pos
        if _fusible(e) and not e.prim.multiple_results:
            pending[e.outs[0]] = e
            continue
        need, stack = {}, [v for v in e.inputs if v in pending]
        while stack:
            v = stack.pop()
            d = pending.pop(v, None)
            if d is None:
                continue
            need[id(d)] = d
            stack.extend(u for u in d.inputs if u in pending)
        out.extend(sorted(need.values(), key=lambda d: order[id(d)]))
        out.append(e)
    out.extend(pending.values())
    return out


#: the most equations a recomputed value may take (its elementwise cone)
REMAT_MAX_EQNS = 24
#: a value is recomputed in at most this many later kernels
REMAT_MAX_KERNELS = 2


def _rematerialize(steps, outputs: set):
    """Recompute cheap elementwise values in the later kernels that read them instead of
    storing them: what the backward pass reads of GELU's forward (``x*x``, ``tanh(...)``,
    ``1 + t`` ...) is computed again from the gate's product, which is stored anyway, so the
    forward kernel writes one array instead of seven and the backward kernel reads one.

    A value ``v`` made in one fusion group and read only by other fusion groups (not by a
    product or a host step, which need it stored) gets its *cone* (the elementwise equations
    from stored values, its *anchors*, up to ``v``) copied to the front of each reading group,
    which then reads the copy. A cone qualifies when it is small (``REMAT_MAX_EQNS``), its
    anchors are no larger than ``v``, at most one anchor as large as ``v`` is one the reading
    group does not read already (so the group reads no more than it did), and ``v`` is read
    by at most ``REMAT_MAX_KERNELS`` other groups. A group that would not accept the copies
    (:meth:`Group.accepts`) is left reading ``v``."""
    where: dict = {}                     # id(eqn) -> step index
    producer: dict = {}
    readers: dict = {}
    for i, (kind, s) in enumerate(steps):
        for e in (s.eqns if kind == "group" else [s]):
            where[id(e)] = i
            for o in e.outs:
                producer[o] = e
            for v in e.inputs:
                readers.setdefault(v, []).append(e)

    def cheap(e) -> bool:
        return e is not None and kind_of(e) == "group" and e.prim.name != "constant" and (
            _elementwise(e) and e.prim.name not in _REDUCE_KIND and
            not e.prim.multiple_results)

    def kind_of(e):
        return steps[where[id(e)]][0]

    def cone_of(v):
        """(the cone's equations, each after those it reads; anchors), or None."""
        cone, anchors, seen = [], set(), set()
        stack = [(v, False)]
        while stack:
            u, done = stack.pop()
            e = producer.get(u)
            if done:
                cone.append(e)
                continue
            if u in seen:
                continue
            seen.add(u)
            if not cheap(e):
                if e is not None and kind_of(e) == "group" and e.prim.name != "constant":
                    return None      # made inside a kernel (a view, a row value): not stored
                anchors.add(u)       # stored, or a constant (a host step materializes it)
                continue
            if len(seen) > 2 * REMAT_MAX_EQNS:
                return None
            stack.append((u, True))              # emitted once its inputs are
            stack.extend((w, False) for w in e.inputs if w not in seen)
        if len(cone) > REMAT_MAX_EQNS:
            return None
        return cone, anchors

    groups = {i: s for i, (kind, s) in enumerate(steps) if kind == "group"}
    new_front: dict = {}                 # step index -> copied equations
    clones: dict = {}                    # (step index, original var) -> its copy there
    renames: dict = {}                   # step index -> {original var: copy}
    for i, g in groups.items():
        for e in g.eqns:
            if not cheap(e) or e.prim.name == "broadcast_to":
                continue
            v = e.outs[0]
            rs = readers.get(v, ())
            far = sorted({where[id(r)] for r in rs if where[id(r)] != i})
            if (not far or v in outputs or len(far) > REMAT_MAX_KERNELS or
                    any(where[id(r)] not in groups for r in rs)):
                continue
            found = cone_of(v)
            if found is None:
                continue
            cone, anchors = found
            size = int(np.prod(v.aval.shape))
            if any(int(np.prod(a.aval.shape)) > size for a in anchors):
                continue
            for j in far:
                target = groups[j]
                if any(where[id(r)] == j and not (_elementwise(r) or r.prim.name in _REDUCE_KIND)
                       for r in rs):
                    continue                 # a strided read (transpose, view) needs a buffer
                reads = {u for q in target.eqns for u in q.inputs}
                extra = [a for a in anchors
                         if int(np.prod(a.aval.shape)) == size and a not in reads]
                if len(extra) > 1:
                    continue
                copies, local = [], {}
                for q in cone:
                    if all((j, o) in clones for o in q.outs):
                        continue
                    outs = tuple(Var(o.aval) for o in q.outs)
                    ins = tuple(local.get(u) or clones.get((j, u), u) for u in q.inputs)
                    copies.append((q, Eqn(q.prim, ins, q.params, outs, q.loc)))
                    local.update(zip(q.outs, outs))
                trial = Group(target.shape)
                # a row kernel's stages take full-shape values and per-row values made from
                # its reductions; a smaller copy would be neither
                ok = not target.reduce_ndim or all(
                    c.outs[0].aval.shape == target.shape for _, c in copies)
                for c in [c for _, c in new_front.get(j, []) + copies] if ok else []:
                    if not trial.accepts(c):
                        ok = False
                        break
                    trial.add(c)
                if not ok:
                    continue
                for q, c in copies:
                    for o, n in zip(q.outs, c.outs):
                        clones[(j, o)] = n
                new_front.setdefault(j, []).extend(copies)
                renames.setdefault(j, {})[v] = clones[(j, v)]
    if not renames:
        return steps
    out = list(steps)
    for j, sub in renames.items():
        # the copies first (each was accepted above), then the group's own equations reading
        # them: full-shape values made in the group instead of read from outside
        old = groups[j]
        g = Group(old.shape)
        for _, c in new_front[j]:
            g.add(c)
        for q in old.eqns:
            g.add(Eqn(q.prim, tuple(sub.get(u, u) for u in q.inputs), q.params, q.outs, q.loc)
                  if any(u in sub for u in q.inputs) else q)
        g.closed = old.closed
        if _reads_only_what_exists(g, j, producer, where):
            out[j] = ("group", g)
    return out


def _reads_only_what_exists(g: Group, j: int, producer: dict, where: dict) -> bool:
    """Whether every value group ``g`` (step ``j``) reads is made before it: earlier in the
    group, by an earlier step, or a parameter."""
    made: set = set()
    for q in g.eqns:
        for u in q.inputs:
            p = producer.get(u)
            if u not in made and p is not None and where[id(p)] >= j:
                return False
        made.update(q.outs)
    return True


#: how far ahead a closing group looks for elementwise equations it can take (pull_ahead)
LOOKAHEAD = 64

#: a sum over this many leading rows (and at most GEMV_MAX_ROWS: BLAS accumulates in the
#: input's precision, our reduction kernels in float64) runs as ``ones @ x`` on BLAS
GEMV_ROWS = 16
GEMV_MAX_ROWS = 4096


def _canonical_dot(e):
    """(transpose eqns, dot eqn) computing ``e`` with its operands transposed to
    ``[batch..., free..., contract...]`` / ``[batch..., contract..., free...]``, a layout BLAS
    walks; None when that does not help (unsupported dtypes). Only an operand not already in
    a usable layout is copied."""
    from ...ops.shape import TRANSPOSE
    a, b = e.inputs
    p = e.params_dict()
    lb, rb = tuple(p["lhs_batch"]), tuple(p["rhs_batch"])
    lc, rc = tuple(p["lhs_contract"]), tuple(p["rhs_contract"])
    fa = tuple(i for i in range(a.aval.ndim) if i not in lc and i not in lb)
    fb = tuple(i for i in range(b.aval.ndim) if i not in rc and i not in rb)
    nb, nc = len(lb), len(lc)
    perm_a, perm_b = lb + fa + lc, rb + rc + fb
    canon_a = (tuple(range(nb)), tuple(range(nb + len(fa), nb + len(fa) + nc)))
    canon_b = (tuple(range(nb)), tuple(range(nb, nb + nc)))

    def transposed(v, perm):
        if perm == tuple(range(v.aval.ndim)):
            return v, []
        out = Var(AVal(tuple(v.aval.shape[i] for i in perm), v.aval.dtype, v.aval.weak))
        return out, [Eqn(TRANSPOSE, (v,), (("permutation", perm),), (out,), e.loc)]
    base = dict(e.params)
    for fix_a, fix_b in ((False, True), (True, False), (True, True)):
        ta, pre_a = transposed(a, perm_a) if fix_a else (a, [])
        tb, pre_b = transposed(b, perm_b) if fix_b else (b, [])
        params = dict(base)
        if fix_a:
            params["lhs_batch"], params["lhs_contract"] = canon_a
        if fix_b:
            params["rhs_batch"], params["rhs_contract"] = canon_b
        dot = Eqn(e.prim, (ta, tb), tuple((k, params[k]) for k, _ in e.params), e.outs, e.loc)
        if blas.supported(dot):
            return pre_a + pre_b, dot
    return None


def _leading_sum_as_product(e):
    """``sum(x, leading axes)`` as ``ones(R) @ x.reshape(R, C)``: a bias gradient. The
    transposed-read reduction walks each column with a stride (~1 ns an element); BLAS reads
    the rows contiguously, vectorized over the columns. Steps, or None when it does not apply."""
    from ...ops._core import CONSTANT
    from ...ops.contraction import DOT_GENERAL
    from ...ops.shape import RESHAPE
    x = e.inputs[0]
    axes = tuple(sorted(dict(e.params)["axes"]))
    nd = x.aval.ndim
    if (e.prim.name != "reduce_sum" or axes != tuple(range(len(axes))) or len(axes) == nd or
            x.aval.dtype not in (np.dtype(np.float32), np.dtype(np.float64))):
        return None
    rows = int(np.prod([x.aval.shape[i] for i in axes], dtype=np.int64))
    cols = int(np.prod(x.aval.shape[len(axes):], dtype=np.int64))
    if not GEMV_ROWS <= rows <= GEMV_MAX_ROWS:
        return None
    d = x.aval.dtype
    ones = Var(AVal((rows,), d, False))
    x2 = Var(AVal((rows, cols), d, x.aval.weak))
    prod = Var(AVal((cols,), d, False))
    dot = Eqn(DOT_GENERAL, (ones, x2), (("lhs_contract", (0,)), ("rhs_contract", (0,)),
                                        ("lhs_batch", ()), ("rhs_batch", ())), (prod,), e.loc)
    if not blas.supported(dot):
        return None
    out = e.outs[0]
    steps = [("host", Eqn(CONSTANT, (), (("value", 1.0), ("dtype", d), ("shape", (rows,))),
                          (ones,), e.loc)),
             ("host", Eqn(RESHAPE, (x,), (("new_sizes", (rows, cols)),), (x2,), e.loc))]
    if tuple(out.aval.shape) == (cols,) and not out.aval.weak:
        return steps + [("dot", Eqn(DOT_GENERAL, dot.inputs, dot.params, (out,), e.loc))]
    return steps + [("dot", dot),
                    ("host", Eqn(RESHAPE, (prod,), (("new_sizes", tuple(out.aval.shape)),),
                                 (out,), e.loc))]


class _WindowView:
    """A plan-only op: the windows of a reduce_window as a strided view of its input,
    shaped (output dims..., window dims > 1...) — a read with explicit strides."""

    name = "window_view"
    multiple_results = False
    nullary = False
    inplace_operand = None
    llvm = None


_WINDOW_VIEW = _WindowView()


def _window_kernel_ok(e) -> bool:
    p = dict(e.params)
    x = e.inputs[0]
    return (p["kind"] in ("max", "sum") and x.aval.size > 0 and e.outs[0].aval.size > 0 and
            (np.dtype(x.aval.dtype).kind == "f" and x.aval.dtype.itemsize >= 4))


def _as_window_reduction(e):
    """(host steps, window view eqn, trailing reduction eqn) for a reduce_window."""
    from ...ops.nn import _dilate_pad
    from ...ops.reduction import REDUCE_MAX, REDUCE_SUM
    p = dict(e.params)
    x = e.inputs[0]
    pre = []
    padding = tuple(tuple(q) for q in p["padding"])
    if any(lo or hi for lo, hi in padding):
        # padding holds the reduction's identity; the kernel reads the padded copy
        ident = -np.inf if p["kind"] == "max" else 0.0
        shape = tuple(n + lo + hi for n, (lo, hi) in zip(x.aval.shape, padding))
        xp = Var(AVal(shape, x.aval.dtype, False))
        nd = x.aval.ndim

        def pad(a, _pad=padding, _ident=ident, _nd=nd):
            return np.ascontiguousarray(_dilate_pad(a, range(_nd), (1,) * _nd, _pad, _ident))
        pre.append(("host", Eqn(_HostOp("reduce_window_pad", pad), (x,), (), (xp,), e.loc)))
        x = xp
    out = e.outs[0]
    window, strides = tuple(p["window"]), tuple(p["strides"])
    wdims = [d for d, k in enumerate(window) if k > 1]
    vshape = tuple(out.aval.shape) + tuple(window[d] for d in wdims)
    view = Var(AVal(vshape, x.aval.dtype, x.aval.weak))
    params = (("in_shape", tuple(x.aval.shape)), ("window", window), ("strides", strides))
    v_eqn = Eqn(_WINDOW_VIEW, (x,), params, (view,), e.loc)
    nd_out = out.aval.ndim
    prim = REDUCE_MAX if p["kind"] == "max" else REDUCE_SUM
    r_eqn = Eqn(prim, (view,), (("axes", tuple(range(nd_out, len(vshape)))),), (out,), e.loc)
    return pre, v_eqn, r_eqn


def _window_strides(in_shape, window, strides, shape) -> tuple:
    rm = codegen._strides(tuple(in_shape))
    st = [rm[d] * strides[d] for d in range(len(in_shape))]
    st += [rm[d] for d, k in enumerate(window) if k > 1]
    return tuple(0 if n == 1 else s_ for s_, n in zip(st, shape))


def _as_trailing_reduction(e):
    """``reduce(x, axes)`` as ``reduce(transpose(x, kept + axes), trailing axes)``."""
    from ...ops.shape import TRANSPOSE
    x = e.inputs[0]
    axes = tuple(sorted(dict(e.params)["axes"]))
    kept = tuple(i for i in range(x.aval.ndim) if i not in axes)
    perm = kept + axes
    tv = Var(AVal(tuple(x.aval.shape[i] for i in perm), x.aval.dtype, x.aval.weak))
    t = Eqn(TRANSPOSE, (x,), (("permutation", perm),), (tv,), e.loc)
    n = x.aval.ndim
    params = tuple((k, tuple(range(len(kept), n)) if k == "axes" else v) for k, v in e.params)
    return t, Eqn(e.prim, (tv,), params, e.outs, e.loc)


def _split_group(g: Group):
    """(eqns ``g`` does not need, ``g`` without them).

    A smaller value joins a group on the chance that a full-shape value reads it (it is then
    recomputed per element instead of stored and reloaded). The ones no full-shape value or
    reduction reads (a bias's optimizer update planned beside its weight's) would be
    recomputed per element for nothing: they leave, to be planned on their own, before ``g``
    (they read nothing ``g`` computes at full shape, so the order is safe)."""
    by_out = {o: e for e in g.eqns for o in e.outs}
    need, stack = set(), [e for e in g.eqns if e.outs[0].aval.shape == g.shape or
                          e.prim.name in _REDUCE_KIND or e.outs[0] in g.row_values]
    while stack:
        e = stack.pop()
        if id(e) in need:
            continue
        need.add(id(e))
        stack.extend(by_out[v] for v in e.inputs if v in by_out)
    moving = [e for e in g.eqns if id(e) not in need and e.prim.name != "constant"]
    if not moving:
        return [], g
    # what they read inside the group moves with them (all smaller values); the group then
    # reads those as inputs
    move = set()
    stack = list(moving)
    while stack:
        e = stack.pop()
        if id(e) in move:
            continue
        move.add(id(e))
        stack.extend(by_out[v] for v in e.inputs
                     if v in by_out and by_out[v].prim.name != "constant")
    kept = Group(g.shape)
    for e in g.eqns:
        if id(e) not in move:
            kept.add(e)
    return [e for e in g.eqns if id(e) in move], kept


def _plan(eqns):
    steps, group = [], None

    def flush():
        nonlocal group
        if group is not None:
            rest, kept = _split_group(group)
            if rest:
                steps.extend(_plan(rest))
            steps.append(("group", kept))
            group = None

    made_here = {v for q in eqns for v in q.outs}
    defined: set = set()                  # values made by the equations planned so far
    pulled: set = set()                   # ids of equations planned ahead of their turn

    def pull_ahead(i):
        """Before the open group closes for the non-fusible ``eqns[i]``, pull into it the
        later elementwise equations it accepts whose inputs exist already (the two halves of
        GeGLU's backward read the same gradient: one kernel then reads it once). Moving an
        equation earlier is safe when its inputs are defined: what reads it comes later."""
        pending = set(eqns[i].outs)       # what the closing equation makes is not there yet
        for q in eqns[i + 1:i + 1 + LOOKAHEAD]:
            if id(q) in pulled or not (_elementwise(q) and not q.prim.multiple_results):
                continue
            if all(v not in pending and (v in defined or v not in made_here or
                                         v in group.produced)
                   for v in q.inputs) and group.accepts(q):
                group.add(q)
                pulled.add(id(q))
                defined.update(q.outs)

    for i, e in enumerate(eqns):
        if id(e) in pulled:
            continue
        defined.update(e.outs)
        name = e.prim.name
        if name == "constant":
            # constants are inlined wherever a kernel reads them; materialize once for others
            steps.append(("host", e))
            if group is not None and group.accepts(e):
                group.add(e)
            continue
        if name in ("reshape", "transpose") and group is not None and group.accepts(e):
            group.add(e)
            continue
        if name == "transpose":
            # a strided copy kernel, which the elementwise ops reading it may join
            if group is not None and e.inputs[0] in group.produced:
                flush()
            flush()
            group = Group(e.outs[0].aval.shape)
            group.add(e)
            continue
        if name == "reduce_window" and _window_kernel_ok(e):
            # pooling: the windows are a strided view of the (padded) input; reduce them
            if group is not None and e.inputs[0] in group.produced:
                flush()
            flush()
            pre, view, red = _as_window_reduction(e)
            steps.extend(pre)
            group = Group(view.outs[0].aval.shape)
            group.add(view)
            group.add(red)
            continue
        if name in _REDUCE_KIND and not _trailing(e) and dict(e.params)["axes"]:
            # reduce over any axes: read the input transposed (kept axes, then reduced ones)
            # and reduce trailing axes
            if group is not None and e.inputs[0] in group.produced:
                flush()
            flush()
            as_gemv = _leading_sum_as_product(e)
            if as_gemv is not None:
                steps.extend(as_gemv)
                continue
            t, r = _as_trailing_reduction(e)
            group = Group(t.outs[0].aval.shape)
            group.add(t)
            group.add(r)
            continue
        if _elementwise(e) or name in _REDUCE_KIND:
            if group is not None and group.accepts(e):
                group.add(e)
                continue
            if name in _REDUCE_KIND and not _trailing(e):
                if group is not None and any(v in group.produced for v in e.inputs):
                    flush()
                steps.append(("host", e))
                continue
            # (a broadcast that starts a group is a copy kernel the ops reading it may join;
            # numpy's broadcast view would be copied anyway before a kernel could read it)
            flush()
            group = Group(e.inputs[0].aval.shape if name in _REDUCE_KIND else e.outs[0].aval.shape)
            group.add(e)
            continue
        if group is not None and any(v in group.produced for v in e.inputs):
            if not group.closed and e.prim.name in ("dot_general", "conv_general"):
                pull_ahead(i)
            flush()
        if name == "dot_general" and blas.supported(e):
            steps.append(("dot", e))
        elif name == "dot_general" and _canonical_dot(e) is not None:
            # operands whose dims BLAS cannot walk as matrices are copied into a layout it
            # can (a transpose kernel each) rather than multiplied by numpy
            pre, dot = _canonical_dot(e)
            steps.extend(_plan(pre))
            steps.append(("dot", dot))
        elif name == "conv_general" and conv.supported(e):
            steps.append(("conv", e))
        else:
            steps.append(("host", e))
    flush()
    return steps


class _HostOp:
    """A host step of the backend's own making (not a registry primitive): padding a
    convolution's input for its kernel."""

    multiple_results = False
    nullary = False
    inplace_operand = None

    def __init__(self, name: str, impl):
        self.name, self.impl = name, impl
