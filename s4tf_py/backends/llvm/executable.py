"""An ``ir.Function`` compiled for the CPU: the plan (:mod:`.plan`) as LLVM kernels and host steps.

Each fusion group becomes a loop-nest kernel (:mod:`.codegen`), each float product a gemm
kernel (:mod:`.blas`), each convolution a direct kernel (:mod:`.conv`). All kernels of one
executable are built as ONE LLVM module (one optimization, one JIT), and the compiled object is
cached on disk (:mod:`.cache`). The program runs as one generated straight-line Python function
(:func:`_driver`) that fills each kernel's buffer table and calls it — through the runtime's
thread pool when it is large. Values are dropped after their last read (functional updates
then run in place), kernel outputs reuse pooled buffers, and outputs may be written into
donated inputs (:func:`_plan_inplace`).
"""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import math
import pickle
import sys
import threading

import numpy as np
from llvmlite import ir

from ...ir.function import Eqn, Function, Var
from ...ir.registry import AVal
from ..host import run_host_step, uniquely_held
from . import blas, codegen, conv, jit
from .plan import (GEMV_MAX_ROWS, GEMV_ROWS, _REDUCE_KIND, Group, _HostOp,  # noqa: F401
                   _window_strides, plan)

_getrefcount = sys.getrefcount

#: below this many elements a kernel runs on the calling thread
PARALLEL_THRESHOLD = 1 << 15


class _PaddedInputs:
    """A convolution's padded input, written into a buffer kept from an earlier call when
    nothing else holds it any more: a fresh buffer of that size costs page faults that were
    most of a stride-1 depthwise convolution's time."""

    def __init__(self, eqn):
        self.eqn = eqn
        self.buffers: list = []

    def __call__(self, x):
        j = _free_index(self.buffers)
        if j >= 0:
            return conv.pad_input(x, self.eqn, self.buffers[j])
        out = conv.pad_input(x, self.eqn)
        if out is not x and len(self.buffers) < POOL_DEPTH:
            self.buffers.append(out)
        return out


@dataclasses.dataclass(eq=False)
class ScatterSpec:
    """A scatter along one axis that sets slices (a decode step's KV-cache write) or adds
    them (an embedding's gradient), run by the runtime's ``s4tf_scatter`` over rows of
    ``outer``: no code is generated, and it runs inside a run of kernels instead of as a host
    step. Its buffer table is the leading pointers of ``args`` (an ``s4tf_scatter_args``): x,
    indices, updates and the output, which is NULL when the scatter writes into ``x`` itself.
    As for the host step, that is decided on each call: when ``x`` is read for the last time
    and nothing else holds its buffer (a donated KV cache, a tensor written by ``t[i] = v``)."""
    name: str
    outer: int
    n: int
    count: int
    inner_bytes: int
    index_bytes: int
    combine: int = 0                     # 0 set, 1 add float32, 2 add float64
    inplace: dict = dataclasses.field(default_factory=dict)   # never static (see above)

    @property
    def iterations(self) -> int:
        return self.outer

    parallel = False


#: the float dtypes whose scatter-adds the runtime runs (combine code)
_ADD_CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2}


def _native_scatter(e: Eqn):
    """A :class:`ScatterSpec` for host step ``e`` when the runtime can run it (sets; adds of
    float32/float64), else None."""
    if e.prim.name != "scatter":
        return None
    prm = e.params_dict()
    x, idx, u = e.inputs
    dtype = np.dtype(x.aval.dtype)
    if np.dtype(idx.aval.dtype) not in (np.dtype(np.int32), np.dtype(np.int64)):
        return None
    if prm["combine"] == "set":
        combine = 0
    elif prm["combine"] == "add" and dtype in _ADD_CODES:
        combine = _ADD_CODES[dtype]
    else:
        return None
    axis = prm["axis"]
    shape = x.aval.shape
    outer = math.prod(shape[:axis])
    inner = math.prod(shape[axis + 1:]) * dtype.itemsize
    return ScatterSpec("scatter", outer, shape[axis], math.prod(idx.aval.shape), inner,
                       np.dtype(idx.aval.dtype).itemsize, combine)


@dataclasses.dataclass(eq=False)
class CopySpec:
    """A concatenate, slice or pad run by the runtime's ``s4tf_copy_regions`` (a host step
    before: numpy's copy into a fresh array, page faults included, and a break in the run of
    kernels): the output is filled with the pad value when there is one, then each source's
    region is copied to its place. ``params`` is the runtime's description (see
    ``runtime/s4tf_runtime.h``); the buffer table is the sources, the fill value, the output."""
    name: str
    params: tuple
    inplace: dict = dataclasses.field(default_factory=dict)

    iterations = 1
    parallel = False


def _byte_strides(shape, itemsize: int) -> list:
    out, acc = [], itemsize
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return out[::-1]


def _native_copy(e: Eqn):
    """A :class:`CopySpec` for a concatenate, slice or pad (without cropping), else None."""
    name = e.prim.name
    if name not in ("concatenate", "slice", "pad"):
        return None
    out = e.outs[0].aval
    ndim, elem = len(out.shape), np.dtype(out.dtype).itemsize
    if ndim > 16:
        return None
    prm = e.params_dict()
    dst_strides = _byte_strides(out.shape, elem)
    regions = []                        # (shape, src strides, dst strides, src off, dst off)
    if name == "concatenate":
        axis, offset = prm["axis"], 0
        for x in e.inputs:
            shape = x.aval.shape
            regions.append((shape, _byte_strides(shape, elem), dst_strides, 0,
                            offset * dst_strides[axis]))
            offset += shape[axis]
        fill = False
    elif name == "slice":
        x = e.inputs[0].aval
        src = _byte_strides(x.shape, elem)
        regions.append((out.shape, [a * st for a, st in zip(src, prm["strides"])], dst_strides,
                        sum(a * b for a, b in zip(src, prm["start"])), 0))
        fill = False
    else:
        if min(prm["low"]) < 0 or min(prm["high"]) < 0:
            return None                  # cropping: the host step
        x = e.inputs[0].aval
        regions.append((x.shape, _byte_strides(x.shape, elem),
                        [d * (it + 1) for d, it in zip(dst_strides, prm["interior"])], 0,
                        sum(d * lo for d, lo in zip(dst_strides, prm["low"]))))
        fill = True
    params = [len(regions), ndim, elem, int(fill), math.prod(out.shape) * elem]
    for shape, ss, ds, so, do in regions:
        params += [*shape, *ss, *ds, so, do]
    return CopySpec(name, tuple(int(v) for v in params))


class _CompiledRegion:
    """A control-flow body (a :class:`~s4tf_py.ir.region.Region`) that runs as its own LLVM
    executable, built on first use: ``cond``/``while_loop``/``scan`` host steps call
    ``.run`` once per iteration, which the reference interpreter answered op by op in numpy
    (an LSTM's scan spent most of its time there)."""

    __slots__ = ("region", "fn", "_exe")

    def __init__(self, region):
        self.region, self.fn, self._exe = region, region.fn, None

    def run(self, *arrays):
        if self._exe is None:
            self._exe = LLVMExecutable(self.fn)
        return self._exe(list(arrays))

    def __reduce__(self):
        return _CompiledRegion, (self.region,)


def _with_compiled_regions(e: Eqn) -> Eqn:
    """``e`` with the Regions in its params run on this backend (:class:`_CompiledRegion`)."""
    from ...ir.passes._util import regions_in
    from ...ir.region import Region
    if not regions_in(e.params):
        return e

    def swap(v):
        if isinstance(v, Region):
            return _CompiledRegion(v)
        if isinstance(v, tuple):
            return tuple(swap(x) for x in v)
        return v
    params = tuple((k, swap(v)) for k, v in e.params)
    op = _HostOp(e.prim.name, e.prim.impl)
    op.multiple_results = e.prim.multiple_results
    return Eqn(op, e.inputs, params, e.outs, e.loc)


class _MaybeInPlace:
    """A scatter's output pool, when its operand (a Python-held value read for the last time)
    may be written in place: the driver checks on each call whether anything else holds it
    (``backends.host.uniquely_held``, as for host steps)."""

    __slots__ = ("pool",)

    def __init__(self, pool):
        self.pool = pool


#: plan steps the runtime runs itself (no code is generated for them)
_RUNTIME_SPECS = (ScatterSpec, CopySpec)


class LLVMExecutable:
    """Runs the plan: kernels through their function pointers, host steps through numpy."""

    def __init__(self, fn: Function, plan: tuple | None = None):
        """Plan, compile and link ``fn`` (``plan``: what :meth:`from_cache` loaded instead)."""
        if plan is None:
            key_text = _key_text(fn, _threads(), getattr(fn, "donated", ()))
            plan = _planned(fn, key_text)
        fn, self.program, specs, unique, key_text = plan
        self.fn = fn
        addresses = _compile(specs, unique, key_text)
        self.prog, self.nvalues, self.outputs = _link(fn, self.program, addresses)
        self._run = _driver(self.prog, self.nvalues, self.outputs)
        self._lock = threading.Lock()

    @classmethod
    def from_cache(cls, source_key: str, donated=()) -> "LLVMExecutable | None":
        """The executable of the traced function whose optimization cache key is
        ``source_key`` (``lazy.materialize``), straight from its plan on disk: neither the
        optimized IR nor its text is needed, so a warm process skips both. None on a miss."""
        from ... import caching
        from ...ir import serialize
        key = _plan_key(source_key, _threads(), donated)
        if key is None:
            return None
        plan = caching.load_entry("plans", key, serialize.loads)
        if plan is None:
            return None
        from .cache import stats
        stats["plan_hits"] += 1
        plan[0].donated = frozenset(donated)
        return cls(plan[0], plan)

    def __call__(self, inputs: list):
        """Run on ``inputs`` (a list this call takes over: donated buffers are released).

        Values are dropped after their last read, so a functional update (``update_slice``,
        ``scatter``...) whose operand nothing else holds any more runs in place."""
        # one call at a time: the kernels' buffer tables and the output pools are per
        # executable, and a kernel call releases the GIL
        with self._lock:
            return self._run(inputs)


def _build_program(fn: Function, threads: int):
    """(program, kernel specs): the plan's steps as ``["host", eqn]`` and
    ``["kernel", spec, in_vars, out_vars]`` entries, in order."""
    steps = plan(fn)
    last_read: dict = {}
    for k, (kind, s) in enumerate(steps):
        for e in (s.eqns if kind == "group" else [s]):
            for v in e.inputs:
                last_read[v] = max(last_read.get(v, -1), k)
    fn_outputs = set(fn.outputs)
    specs, program = [], []
    host_made = {s.outs[0] for kind, s in steps if kind == "host" and
                 s.prim.name == "constant"}
    for k, (kind, s) in enumerate(steps):
        if kind == "host":
            spec = _native_scatter(s) or _native_copy(s)
            if spec is not None:
                specs.append(spec)
                program.append(["kernel", spec, list(s.inputs), list(s.outs)])
            else:
                program.append(["host", _with_compiled_regions(s)])
            continue
        if kind == "dot":
            spec = blas.make_spec(s, f"k_{len(specs)}", threads)
            specs.append(spec)
            program.append(["kernel", spec, list(s.inputs), list(s.outs)])
            continue
        if kind == "conv":
            spec = conv.make_spec(s, f"k_{len(specs)}", threads)
            x, w = s.inputs
            padded = conv.padded_shape(x.aval.shape, s.params_dict())
            if tuple(padded) != tuple(x.aval.shape):
                # the kernel reads a padded (and lhs-dilated) copy made on the host
                xp = Var(AVal(tuple(padded), x.aval.dtype, False))
                pad = _HostOp("conv_pad_input", _PaddedInputs(s))
                program.append(["host", Eqn(pad, (x,), (), (xp,), s.loc)])
                x = xp
            specs.append(spec)
            program.append(["kernel", spec, [x, w], list(s.outs)])
            continue
        spec, in_vars, out_vars = _spec(s, k, last_read, fn_outputs, len(specs), host_made)
        for e in spec.pre_host:
            program.append(["host", e])
        if not spec.outputs and not spec.row_outputs:
            continue                      # nothing anyone reads (e.g. inlined constants)
        specs.append(spec)
        program.append(["kernel", spec, in_vars, out_vars])
    return program, specs


def _plan_inplace(fn: Function, program: list) -> None:
    """Write kernel outputs into donated inputs (``s4.compile(donate_argnums=...)``): an
    output goes into a donated parameter's buffer when the kernel reads that parameter for the
    last time, at the output's own index (same shape and dtype, no broadcast, no other
    strides), so each element is read before it is overwritten. A training step's parameters
    and optimizer state are then updated in place."""
    donated = {fn.params[i] for i in getattr(fn, "donated", ())}
    if not donated:
        return
    last: dict = {}
    for pos, st in enumerate(program):
        for v in (st[1].inputs if st[0] == "host" else st[2]):
            last[v] = pos
    outputs = set(fn.outputs)
    for pos, st in enumerate(program):
        if st[0] != "kernel" or not isinstance(st[1], codegen.KernelSpec):
            continue
        _, spec, in_vars, out_vars = st
        taken = set()
        for j, ov in enumerate(out_vars[:len(spec.outputs)]):
            for idx, iv in enumerate(in_vars):
                op = spec.inputs[idx]
                if (iv in donated and iv not in taken and iv not in outputs and
                        last.get(iv) == pos and in_vars.count(iv) == 1 and
                        op.strides is None and tuple(op.shape) == tuple(spec.shape) and
                        tuple(iv.aval.shape) == tuple(ov.aval.shape) == tuple(spec.shape) and
                        iv.aval.dtype == ov.aval.dtype):
                    spec.inplace[j] = idx
                    taken.add(iv)
                    break


def _run_host(step, args):
    """One host step: the primitive's numpy ``impl`` (in place when its operand is free)."""
    _, impl, ins, params, outs, multi, dead, inplace_slot, eqn = step
    return run_host_step(impl, args, params, multi, inplace_slot, eqn)


def _driver(prog, nvalues: int, outputs: tuple):
    """The program as ONE generated Python function of straight-line code: every step's
    constants (function pointers, buffer tables, pools) are bound once, and each value is a
    local variable dropped after its last read. Walking a list of step tuples instead cost
    ~5 us per step (a compiled ``a + b`` spent half its dispatch time there).

    Each run of kernels between two host steps is ONE call into the runtime
    (``s4tf_run_steps`` over a table of steps bound at link time): the buffer tables of the
    run are filled first (inputs, pooled outputs), then every kernel runs without coming back
    to Python, and only then are the run's dead values dropped (a donated input's memory must
    outlive the kernels that read it)."""
    from ... import _native, runtime
    ffi, lib = runtime.ffi, runtime.lib
    run_steps = int(ffi.cast("uintptr_t", ffi.addressof(lib, "s4tf_run_steps")))
    from ...lazy.metrics import counters
    ns = {"_run_host": _run_host, "_buffer": _buffer, "_contig": np.ascontiguousarray,
          "_uniquely_held": uniquely_held, "_NULL": ffi.NULL, "_counters": counters}
    lines = ["def run(inputs):"]
    n_in = nvalues - sum(1 if st[0] == "alias" else
                         len(st[4] if st[0] == "host" else st[5]) for st in prog)
    if n_in:
        names = ", ".join(f"v{i}" for i in range(n_in))
        lines.append(f"    {names}, = inputs")
    lines.append("    inputs.clear()                # the caller's list gives up its references")
    planned: set = set()                       # slots of values with planned buffers
    run: list = []                             # (fnptr, ctx, n_outer, parallel) pending
    run_reads: dict = {}                       # value slot -> addresses of its table slots
    run_dead: list = []                        # slots to drop once the run has run

    def flush():
        if not run:
            return
        table = ffi.new("s4tf_step[]", len(run))
        for j, (fnptr, ctx, n_outer, parallel) in enumerate(run):
            table[j].fn, table[j].ctx = fnptr, ctx
            table[j].n, table[j].parallel = n_outer, int(bool(parallel))
        name = f"R{len(ns)}"
        ns[name + "t"] = table                 # keeps the table alive
        ns[name] = _native.KernelRun(run_steps, int(ffi.cast("uintptr_t", table)), len(run),
                                     list(run_reads.values()))
        lines.append(f"    {name}({''.join(f'v{i}, ' for i in run_reads)})")
        for i in run_dead:
            if i not in planned:
                lines.append(f"    v{i} = None")
        run.clear()
        run_reads.clear()
        run_dead.clear()

    for k, st in enumerate(prog):
        if st[0] == "alias":                   # a reshape of a planned buffer: same bytes
            planned.add(st[1])
            continue
        if st[0] == "host":
            flush()
            _, impl, ins, params, outs, multi, dead, inplace_slot, eqn = st
            if getattr(impl, "_s4_constant", False):
                ns[f"K{k}"] = impl()
                lines.append(f"    v{outs[0]} = K{k}")
                continue
            if eqn.prim.name == "reshape" and not multi:
                # a view of a contiguous buffer (shapes were checked when it was traced): no
                # call through the generic host runner (~4 us a step)
                lines.append(f"    v{outs[0]} = _contig(v{ins[0]}).reshape({params['new_sizes']!r})")
                for i in dead:
                    lines.append(f"    v{i} = None")
                continue
            ns[f"S{k}"] = st
            lines.append(f"    _a = [{', '.join(f'v{i}' for i in ins)}]")
            for i in dead:
                lines.append(f"    v{i} = None")
            target = ", ".join(f"v{o}" for o in outs) + ("," if multi else "")
            lines.append(f"    {target} = _run_host(S{k}, _a)")
            lines.append("    _a = None")
            continue
        _, fnptr, ctx, ptrs, ins, outs, pools, dead, n_outer, parallel, lib_ = st
        ns[f"P{k}"] = ptrs
        base = int(ffi.cast("uintptr_t", ptrs))
        width = ffi.sizeof("void *")
        j = 0
        for i in ins:
            if i not in planned:                # planned buffers: filled in at link time
                run_reads.setdefault(i, []).append(base + j * width)
            j += 1
        for o, pool in zip(outs, pools):
            if type(pool) is int:              # written in place of input slot `pool`
                lines.append(f"    v{o} = v{pool}")
                continue
            if type(pool) is _MaybeInPlace:    # a scatter: in place when its operand is free
                ns[f"Q{k}_{j}"] = pool.pool
                # the local variable stands where a host step's argument list does
                lines.append(f"    if _uniquely_held(v{ins[0]}):")
                lines.append(f"        v{o}, P{k}[{j}] = v{ins[0]}, _NULL")
                lines.append("        _counters['inplace_updates'] += 1")
                lines.append("    else:")
                lines.append(f"        v{o}, P{k}[{j}] = _buffer(Q{k}_{j})")
                lines.append("        _counters['update_copies'] += 1")
                j += 1
                continue
            if type(pool) is _Fixed:           # only kernels read it: no Python value
                planned.add(o)
                j += 1
                continue
            ns[f"Q{k}_{j}"] = pool
            lines.append(f"    v{o}, P{k}[{j}] = _buffer(Q{k}_{j})")
            j += 1
        run.append((fnptr, ctx, n_outer, parallel))
        run_dead.extend(dead)
    flush()
    lines.append(f"    return [{', '.join(f'v{i}' for i in outputs)}]")
    from .cache import compiled_python
    exec(compiled_python("\n".join(lines), "<s4tf llvm executable>"), ns)  # noqa: S102
    return ns["run"]


def _ffi():
    from ... import runtime
    return runtime.ffi


def _link(fn: Function, program: list, addresses: dict):
    """The program with values as slots of one list: (steps, number of slots, output slots).

    Each step lists the slots it reads for the last time (``dead``), dropped as it runs."""
    index = {v: i for i, v in enumerate(fn.params)}
    n = len(fn.params)
    reads = [list(s[1].inputs) if s[0] == "host" else list(s[2]) for s in program]
    last: dict = {}
    for pos, vs in enumerate(reads):
        for v in vs:
            last[v] = pos
    outputs = set(fn.outputs)
    fixed = _plan_buffers(program, outputs)
    steps = []
    for pos, (step, vs) in enumerate(zip(program, reads)):
        dead = tuple(sorted({index[v] for v in vs if last[v] == pos and v not in outputs}))
        if step[0] == "host" and step[1].outs[0] in fixed:
            # a reshape of a planned buffer (_plan_buffers): the result is the same bytes
            index[step[1].outs[0]] = n
            steps.append(("alias", n))
            n += 1
            continue
        if step[0] == "host":
            e = step[1]
            ins = tuple(index[v] for v in e.inputs)
            k = e.prim.inplace_operand
            inplace_slot = None
            if k is not None and e.inputs.count(e.inputs[k]) == 1 and index[e.inputs[k]] in dead:
                inplace_slot = k
            outs = tuple(range(n, n + len(e.outs)))
            n += len(e.outs)
            index.update(zip(e.outs, outs))
            impl, params = e.prim.impl, e.params_dict()
            if e.prim.nullary and not e.prim.multiple_results and e.outs[0] not in outputs:
                # constants and iotas read inside the step: computed once, read-only (so
                # never updated in place); a returned one is the caller's own fresh buffer
                value = np.asarray(impl(**params))
                value.flags.writeable = False
                impl, params = (lambda _v=value: _v), {}
                impl._s4_constant = True
            steps.append(("host", impl, ins, params, outs, e.prim.multiple_results, dead,
                          inplace_slot, e))
            continue
        _, fnptr, ctx, ptrs, in_vars, out_vars, n_outer, parallel, lib = \
            _prepare(step, addresses)
        ins = tuple(index[v] for v in in_vars)
        outs = tuple(range(n, n + len(out_vars)))
        n += len(out_vars)
        index.update(zip(out_vars, outs))
        inplace = getattr(step[1], "inplace", {})
        # an output written into an input's buffer is that input's slot (an int); one only
        # kernels read gets a buffer planned here (_Fixed); the others a pool
        pools = tuple(ins[inplace[j]] if j in inplace else
                      fixed[v] if v in fixed else
                      _Pool(v.aval.shape, v.aval.dtype, _ffi()) for j, v in enumerate(out_vars))
        if isinstance(step[1], ScatterSpec) and ins[0] in dead and in_vars[0] not in fixed:
            pools = (_MaybeInPlace(pools[0]),)
        # planned buffers never move: their addresses go into the buffer table once
        for j, v in enumerate(list(in_vars)):
            if v in fixed:
                ptrs[j] = fixed[v].address
        j = len(in_vars)
        for pool in pools:
            if type(pool) is _Fixed:
                ptrs[j] = pool.address
            if type(pool) is not int:
                j += 1
        steps.append(("kernel", fnptr, ctx, ptrs, ins, outs, pools, dead, n_outer, parallel,
                      lib))
    return steps, n, tuple(index[v] for v in fn.outputs)


class _Fixed:
    """The buffer of a value that only kernels read and that is not returned: planned when
    the executable is linked (shared with values whose lifetimes do not overlap), so a call
    neither looks for a free buffer nor fills its address into the readers' tables."""

    __slots__ = ("array", "address")

    def __init__(self, array, address):
        self.array, self.address = array, address


def _plan_buffers(program: list, outputs: set) -> dict:
    """Var -> _Fixed for kernel outputs read only by kernels (never by host steps, never
    returned): one buffer per set of values whose lifetimes (definition to last read) do not
    overlap, best fit by size. A step's outputs never share a buffer with its inputs.

    A host reshape of such a value is the same bytes under another shape: its result shares
    the buffer (the step becomes an alias and costs nothing), and the buffer lives until the
    last read of either."""
    alias = {st[1].outs[0]: st[1].inputs[0] for st in program
             if st[0] == "host" and st[1].prim.name == "reshape" and len(st[1].outs) == 1}

    def root(v):
        while v in alias:
            v = alias[v]
        return v
    members: dict = {}
    for y in alias:
        members.setdefault(root(y), []).append(y)
    host_read = {v for st in program if st[0] == "host" and st[1].outs[0] not in alias
                 for v in st[1].inputs}
    last: dict = {}
    for pos, st in enumerate(program):
        for v in (st[1].inputs if st[0] == "host" else st[2]):
            r = root(v)
            last[r] = max(last.get(r, pos), pos)
    free: list = []             # (nbytes, serial, array) of buffers nobody uses now, sorted
    out: dict = {}
    releases: dict = {}
    ffi = _ffi()
    for pos, st in enumerate(program):
        if st[0] != "kernel":
            continue
        inplace = getattr(st[1], "inplace", {})
        if isinstance(st[1], ScatterSpec):
            continue                      # its output may be its operand's buffer (decided per call)
        for j, v in enumerate(st[3]):
            group = [v, *members.get(v, ())]
            if j in inplace or any(u in outputs or u in host_read for u in group):
                continue
            nbytes = max(1, math.prod(v.aval.shape) * v.aval.dtype.itemsize)
            k = bisect.bisect_left(free, (nbytes,))          # the smallest that fits
            if k < len(free):
                entry = free.pop(k)
            else:
                entry = (nbytes, id(v), np.empty(nbytes, np.uint8))
            arr = entry[2]
            fixed = _Fixed(arr, ffi.cast("void *", arr.ctypes.data))
            for u in group:
                out[u] = fixed
            releases.setdefault(max(last.get(v, pos), pos), []).append(entry)
        for entry in releases.pop(pos, ()):
            bisect.insort(free, entry)
    return out


class _Pool:
    """Earlier calls' buffers for one kernel output (and their addresses)."""

    __slots__ = ("shape", "dtype", "arrays", "addresses", "ffi")

    def __init__(self, shape, dtype, ffi):
        self.shape, self.dtype, self.ffi = tuple(shape), dtype, ffi
        self.arrays: list = []
        self.addresses: list = []


#: buffers kept per kernel output: a training step's outputs are its next call's inputs, so
#: the buffers of the call before last are the ones free again (double buffering)
POOL_DEPTH = 3


def _free_index(arrays: list) -> int:
    """The index of a buffer in ``arrays`` that nothing but the list references, or -1."""
    for j in range(len(arrays)):
        # references: the list, getrefcount's argument (no loop variable: enumerate's
        # recycled tuple would hold one more)
        if _getrefcount(arrays[j]) <= 2:
            return j
    return -1


def _buffer(pool: "_Pool"):
    """(buffer, its address) for a kernel output: one of its earlier calls' buffers that
    nothing but the pool holds any more, else a new one."""
    arrays = pool.arrays
    j = _free_index(arrays)
    if j >= 0:
        return arrays[j], pool.addresses[j]
    a = np.empty(pool.shape, dtype=pool.dtype)
    if len(arrays) >= POOL_DEPTH:
        arrays.pop(0)
        pool.addresses.pop(0)
    arrays.append(a)
    pool.addresses.append(pool.ffi.cast("void *", a.ctypes.data))
    return a, pool.addresses[-1]


def _spec(g: Group, step_index, last_read, fn_outputs, serial, host_made):
    spec = codegen.KernelSpec(name=f"k_{serial}", shape=g.shape, inputs=[])
    in_vars, slot = [], {}
    inlined = {e.outs[0] for e in g.eqns if e.prim.name == "constant"}
    red = g.reduce_ndim
    kept = g.shape[:len(g.shape) - red]

    def read(v, shape, strides=None, key=None):
        """The value index of input ``v`` read as ``shape`` broadcast into the loop."""
        key = v if key is None else key
        if key not in slot:
            slot[key] = len(in_vars)
            in_vars.append(v)
            spec.inputs.append(codegen.Operand(tuple(shape), v.aval.dtype, strides))
        return slot[key]

    for e in g.eqns:
        name, out = e.prim.name, e.outs[0]
        if name == "reshape" and e.inputs[0] in g.produced:
            continue                              # a per-row value with other unit axes
        if name == "reshape":
            # read the input's buffer with the reshaped shape
            slot[out] = read(e.inputs[0], out.aval.shape, key=out)
        elif name == "window_view":
            prm = dict(e.params)
            slot[out] = read(e.inputs[0], out.aval.shape, _window_strides(
                prm["in_shape"], prm["window"], prm["strides"], g.shape), key=out)
        elif name == "transpose":
            # read the input's buffer with permuted strides
            v = e.inputs[0]
            slot[out] = read(v, out.aval.shape, _transposed_strides(
                v.aval.shape, dict(e.params)["permutation"], g.shape), key=out)
        elif name not in _REDUCE_KIND and out in g.row_values and \
                len(out.aval.shape) < len(g.shape):
            # an op over per-row values shaped ``kept``: its inputs from outside broadcast
            # into ``kept``, so they are read aligned to the kept axes
            for v in e.inputs:
                if v not in g.produced:
                    n = len(kept) - v.aval.ndim
                    slot[(v, "row")] = read(v, (1,) * n + tuple(v.aval.shape) + (1,) * red,
                                            key=(v, "row"))
        else:
            for v in e.inputs:
                if v not in g.produced:
                    read(v, v.aval.shape)
    values = [op.dtype for op in spec.inputs]
    ops = []
    n_in = len(in_vars)

    def arg(v, e):
        if (v, "row") in slot and e.outs[0] in g.row_values and \
                len(e.outs[0].aval.shape) < len(g.shape):
            return slot[(v, "row")]
        return slot[v]
    for e in g.eqns:
        p, out = e.prim, e.outs[0]
        if p.name == "constant":
            prm = e.params_dict()
            slot[out] = n_in + len(ops)
            ops.append(("const", prm["value"], prm["dtype"]))
            values.append(prm["dtype"])
        elif p.name == "broadcast_to" or (p.name == "reshape" and e.inputs[0] in g.produced):
            slot[out] = slot[e.inputs[0]]            # broadcasting lives in the load strides
        elif p.name in ("reshape", "transpose", "window_view"):
            pass                                     # an aliased input (above)
        elif p.name in _REDUCE_KIND:
            slot[out] = n_in + len(ops)
            ops.append(("reduce", _REDUCE_KIND[p.name], slot[e.inputs[0]], out.aval.dtype))
            values.append(out.aval.dtype)
        else:
            slot[out] = n_in + len(ops)
            ops.append((p.llvm, [arg(v, e) for v in e.inputs], [v.aval.dtype for v in e.inputs],
                        out.aval.dtype, e.params_dict()))
            values.append(out.aval.dtype)
    spec.ops, spec.values = ops, values
    out_vars, row_vars, pre_host = [], [], []
    for e in g.eqns:
        out = e.outs[0]
        if out in inlined or not (last_read.get(out, -1) > step_index or out in fn_outputs):
            continue
        if out in g.row_values:
            spec.row_outputs.append(slot[out])       # stored once per row
            row_vars.append(out)
        elif out.aval.shape == g.shape and (e.prim.name != "reshape" or _only_eqn(g, e)):
            spec.outputs.append(slot[out])
            out_vars.append(out)
        else:
            pre_host.append(e)            # a smaller value others read: compute it on the host
    spec.pre_host = _closure_in_group(pre_host, g)
    spec.reduce_ndim = red if spec.row_outputs or any(o[0] == "reduce" for o in ops) else 0
    return spec, in_vars, out_vars + row_vars


def _only_eqn(g: Group, e) -> bool:
    return all(q is e or q.prim.name == "constant" for q in g.eqns)


def _transposed_strides(in_shape, perm, shape) -> tuple:
    """Element strides, over the iteration ``shape``, of reading a row-major buffer of
    ``in_shape`` transposed by ``perm`` (broadcast dims read with stride 0)."""
    rm = codegen._strides(tuple(in_shape))
    out_shape = [in_shape[p] for p in perm]
    out_strides = [rm[p] for p in perm]
    lead = len(shape) - len(out_shape)
    st = []
    for d, n in enumerate(shape):
        j = d - lead
        st.append(out_strides[j] if j >= 0 and out_shape[j] == n and n != 1 else 0)
    return tuple(st)


def _closure_in_group(needed, g):
    """The group's equations (in order) that computing ``needed`` values on the host takes."""
    want = set(id(e) for e in needed)
    by_out = {e.outs[0]: e for e in g.eqns}
    stack = list(needed)
    while stack:
        e = stack.pop()
        for v in e.inputs:
            p = by_out.get(v)
            if p is not None and id(p) not in want and p.prim.name != "constant":
                want.add(id(p))
                stack.append(p)
    return [e for e in g.eqns if id(e) in want]


def _threads() -> int:
    from ... import runtime
    return runtime.num_threads() if runtime.available() else 1


def _settings(threads: int, donated) -> str:
    """Everything besides the function that decides the plan and the code (module settings
    can be changed at run time; the code generator's sources are in the disk keys)."""
    return (f"threads={threads} donated={sorted(donated)} par={PARALLEL_THRESHOLD} "
            f"gemm_par={blas.PARALLEL_FLOPS} gemv={GEMV_ROWS}-{GEMV_MAX_ROWS}")


def _key_text(fn: Function, threads: int, donated) -> str:
    """What decides the plan and the code: the optimized function and the settings."""
    return f"{fn}\n{_settings(threads, donated)}"


def _plan_key(source: str, threads: int, donated) -> str | None:
    """The disk key of a plan: ``source`` (what identifies the function: the traced
    function's cache key, or the optimized function's text and source locations) with the
    settings and the code generator's sources; None when caching is off."""
    from ... import caching
    if not caching.cache_root():
        return None
    from .cache import source_digest
    h = hashlib.sha256(source.encode())
    h.update(_settings(threads, donated).encode())
    h.update(caching.code_digest().encode())
    h.update(source_digest().encode())
    return h.hexdigest()[:32]


def _planned(fn: Function, key_text: str):
    """(fn, program, kernel specs, unique kernel names, key text): planned here, or loaded
    from the disk cache where an earlier process planned the same function (planning a Gemma
    training step takes ~80 ms; loading it ~25). The loaded function replaces ``fn``: it is
    the same function, and the program refers to its values.

    The plan is filed under the traced function's key when ``lazy.materialize`` gave one
    (``fn.source_key``: then :meth:`LLVMExecutable.from_cache` finds it before anything is
    optimized), else under the optimized function's text and source locations (host steps
    report the user's line when they fail)."""
    from ... import caching
    from ...ir import serialize
    from .cache import stats as cache_stats
    donated = getattr(fn, "donated", ())
    source = getattr(fn, "source_key", None) or \
        key_text + repr([e.loc for e in fn.eqns])
    key = _plan_key(source, _threads(), donated)
    if key is not None:
        cached = caching.load_entry("plans", key, serialize.loads)
        if cached is not None:
            cached[0].donated = frozenset(donated)
            cache_stats["plan_hits"] += 1
            return cached
        cache_stats["plan_misses"] += 1
    program, specs = _build_program(fn, _threads())
    _plan_inplace(fn, program)
    for sp in specs:
        if isinstance(sp, codegen.KernelSpec):
            _extent(sp)
    unique = _unique_kernels([sp for sp in specs if not isinstance(sp, _RUNTIME_SPECS)])
    plan = (fn, program, specs, unique, key_text)
    if key is not None:
        try:
            data = serialize.dumps(plan)
        except (pickle.PicklingError, TypeError, AttributeError):
            data = None                     # holds a closure (a convolution's padding): not cached
        if data is not None:
            caching.store_entry("plans", key, data)
    return plan


def _compile(specs, unique: dict, key_text: str) -> dict:
    """Kernel name -> address. The module is built only when neither memory nor the disk cache
    has it: the key is the optimized function (which determines the plan and every kernel)."""
    specs = [sp for sp in specs if not isinstance(sp, _RUNTIME_SPECS)]   # runtime functions
    if not specs:
        return {}
    digest = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    if any(isinstance(sp, blas.DotSpec) for sp in specs) and not blas._symbols_ok():
        raise RuntimeError("s4tf_py: the BLAS this plan was made with cannot be loaded")

    def build() -> str:
        # unique names in the shared engine
        return _module_text(specs, unique).replace('@"k_', f'@"k{digest}_')
    from .cache import compile_cached
    compile_cached(key_text, digest, build)
    return {spec.name: jit.function_address(f"k{digest}_{unique[spec.name][2:]}")
            for spec in specs}


def _signature(spec):
    """What a kernel computes, without its name: equal signatures, equal machine code."""
    if not isinstance(spec, codegen.KernelSpec):
        return dataclasses.replace(spec, name="")         # frozen dataclasses
    ops = tuple(op if op[0] in ("const", "reduce") else
                (id(op[0]), tuple(op[1]), tuple(op[2]), op[3], repr(sorted(op[4].items())))
                for op in spec.ops)
    return (tuple(spec.shape), tuple((tuple(o.shape), o.dtype, o.strides)
                                     for o in spec.inputs),
            tuple(spec.values), repr(ops), tuple(spec.outputs),
            tuple(spec.row_outputs), spec.reduce_ndim, tuple(sorted(spec.inplace.items())))


def _unique_kernels(specs) -> dict:
    """Kernel name -> the name of the first kernel with its signature (a model's layers repeat
    the same kernels: each is generated, optimized and compiled once)."""
    first: dict = {}
    out = {}
    for spec in specs:
        out[spec.name] = first.setdefault(_signature(spec), spec.name)
    return out


def _module_text(specs, unique: dict | None = None) -> str:
    """One LLVM module holding every distinct kernel of ``specs`` (``unique``: what
    :func:`_unique_kernels` gives, when the caller has it already)."""
    module = ir.Module(name="s4tf")
    specs = [sp for sp in specs if not isinstance(sp, _RUNTIME_SPECS)]
    unique = _unique_kernels(specs) if unique is None else unique
    for spec in specs:
        if unique[spec.name] != spec.name:
            continue
        if isinstance(spec, blas.DotSpec):
            blas.build_dot_kernel(module, spec)
        elif isinstance(spec, conv.ConvSpec):
            conv.build_conv_kernel(module, spec)
        else:
            codegen.build_kernel(module, spec)
    return str(module)


def _prepare(step, addresses):
    """A kernel step's function pointer, buffer table and loop extent."""
    from ... import runtime
    _, spec, in_vars, out_vars = step
    ffi, lib = runtime.ffi, runtime.lib
    # the kernel's buffer table, filled with addresses on each call
    if isinstance(spec, ScatterSpec):
        spec.args = args = ffi.new("s4tf_scatter_args *")     # the spec keeps it alive
        args.outer, args.n, args.count = spec.outer, spec.n, spec.count
        args.inner_bytes, args.index_bytes = spec.inner_bytes, spec.index_bytes
        args.combine = spec.combine
        ctx = ffi.cast("void *", args)
        fnptr = ffi.cast("s4tf_range_fn", ffi.addressof(lib, "s4tf_scatter"))
        return ("kernel", fnptr, ctx,
                ffi.cast("void **", args), in_vars, out_vars, spec.outer, False, lib)
    ptrs = ffi.new("void *[]", max(len(in_vars) + len(out_vars), 1))
    if isinstance(spec, CopySpec):
        params = ffi.new("int64_t[]", list(spec.params))
        args = ffi.new("s4tf_copy_args *")
        args.ptrs, args.params = ptrs, params
        spec.args = (args, params, ptrs)                 # the spec keeps them alive
        fnptr = ffi.cast("s4tf_range_fn", ffi.addressof(lib, "s4tf_copy_regions"))
        return ("kernel", fnptr, ffi.cast("void *", args), ptrs, in_vars, out_vars, 1, False,
                lib)
    if isinstance(spec, (blas.DotSpec, conv.ConvSpec)):
        fnptr = ffi.cast("s4tf_range_fn", addresses[spec.name])
        return ("kernel", fnptr, ffi.cast("void *", ptrs), ptrs, in_vars, out_vars,
                spec.iterations, spec.parallel, lib)
    n_outer, work = _extent(spec)
    fnptr = ffi.cast("s4tf_range_fn", addresses[spec.name])
    ctx = ffi.cast("void *", ptrs)
    return ("kernel", fnptr, ctx, ptrs, in_vars, out_vars, n_outer,
            work >= PARALLEL_THRESHOLD and n_outer > 1, lib)


def _extent(spec) -> tuple[int, int]:
    """(outer loop extent, elements) of a loop-nest kernel: computed when it is planned and
    kept with the spec (a cached plan skips the computation)."""
    ext = getattr(spec, "extent", None)
    if ext is None:
        red = spec.reduce_ndim
        shape = spec.shape
        sizes, _, split = codegen._collapse(
            shape, [codegen.Strided(op.strides) if op.strides is not None else op.shape
                    for op in spec.inputs] + [shape] * len(spec.outputs) +
            [shape[:len(shape) - red] + (1,) * red] * len(spec.row_outputs),
            keep_split=len(shape) - red if red else None)
        if split is None:
            split = len(sizes)
        ext = spec.extent = (sizes[0] if split > 0 and sizes else 1, math.prod(shape))
    return ext


def kernel_module_text(fn: Function) -> str:
    """The LLVM IR of ``fn``'s kernels (what :class:`LLVMExecutable` compiles)."""
    from ... import runtime
    threads = runtime.num_threads() if runtime.available() else 1
    program, specs = _build_program(fn, threads)
    _plan_inplace(fn, program)
    return _module_text(specs)
