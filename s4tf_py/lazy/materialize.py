"""Running the lazy graph: slicing it, looking up (or compiling) an executable, storing results.

Reading a tensor's value calls :func:`materialize`, which

1. collects the smallest slice of the graph that produces the requested nodes;
2. also returns every intermediate node of that slice that some other live Tensor still holds
   (so reading ``loss`` does not make a later read of ``hidden`` recompute it);
3. builds the structural key (primitives, params, wiring, input shapes/dtypes) and looks it up
   in the executable cache of the device's backend; on a miss it builds the ``ir.Function``,
   optimizes it and compiles it;
4. donates input buffers that nothing else can see any more (so ``t[i] = v`` on a tensor whose
   old value is held by nobody else updates the buffer in place);
5. stores each result in its node, which then forgets its inputs, freeing the graph above it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import sys
import time

from ..backends import get_backend
from ..errors import ConcretizationError, format_location
from ..ir import graph
from ..ir.function import collect, function_from_graph, structural_key
from .metrics import counters, per_backend

_log = logging.getLogger("s4tf_py.compile")
_getrefcount = sys.getrefcount

#: backend name -> {structural key: executable}
_EXECUTABLES: dict[str, dict] = {}
#: backend name -> {op-sequence signature: last key}, to explain cache misses
_SEEN_SHAPES: dict[str, dict] = {}


def log_compiles() -> bool:
    return os.environ.get("S4TF_LOG_COMPILES", "") not in ("", "0", "false", "False")


def explain_miss(backend: str, key: tuple, fn_name: str = "graph") -> str:
    """Why ``key`` missed the cache: a new structure, or which inputs/params changed."""
    seen = _SEEN_SHAPES.setdefault(backend, {})
    sig = tuple((k[0].name if hasattr(k[0], "name") else k[0]) for k in key[1:-1])
    prev = seen.get(sig)
    seen[sig] = key
    if prev is None:
        return f"first compile of this {fn_name} structure ({len(key) - 2} ops)"
    reasons = []
    if prev[0] != key[0]:
        for i, (a, b) in enumerate(zip(prev[0], key[0])):
            if a != b:
                reasons.append(f"input %{i} changed from {_fmt(a)} to {_fmt(b)}")
        if len(prev[0]) != len(key[0]):
            reasons.append(f"number of inputs changed from {len(prev[0])} to {len(key[0])}")
    for i, (a, b) in enumerate(zip(prev[1:-1], key[1:-1])):
        if a != b:
            name = a[0].name if hasattr(a[0], "name") else a[0]
            reasons.append(f"op #{i} ({name}) changed params or wiring")
            break
    if prev[-1] != key[-1]:
        reasons.append("a different set of outputs was requested")
    return "; ".join(reasons[:4]) or "structure changed"


def _fmt(a):
    from ..dtypes import SHORT_NAME
    shape, dtype, weak = a
    return f"{SHORT_NAME[dtype]}[{','.join(map(str, shape))}]{'~' if weak else ''}"


#: functions ``hook(exe, build_function, backend, what) -> executable`` applied, in order, to
#: every executable :func:`get_executable` returns (``s4.debug_nans`` wraps it in a checking
#: one while the mode is on); the cache keeps the executable itself
EXECUTABLE_HOOKS: list = []


def get_executable(backend, key, build_function, what="graph", donated=()):
    """The cached executable for ``key``, compiling ``build_function()`` on a miss.

    ``donated``: indices of parameters whose buffers the caller hands over (the backend may
    write results into them); it must be part of ``key``."""
    exe = _cached_executable(backend, key, build_function, what, donated)
    for hook in EXECUTABLE_HOOKS:
        exe = hook(exe, build_function, backend, what)
    return exe


def _cached_executable(backend, key, build_function, what, donated):
    cache = _EXECUTABLES.setdefault(backend.name, {})
    stats = per_backend[backend.name]
    exe = cache.get(key)
    if exe is not None:
        stats["cache_hits"] += 1
        counters["cache_hits"] += 1
        return exe
    stats["cache_misses"] += 1
    counters["cache_misses"] += 1
    t0 = time.perf_counter()
    fn = build_function()
    source_key = _source_key(fn)
    load = getattr(backend, "load", None)
    exe = load(source_key, frozenset(donated)) if source_key and load else None
    if exe is None:
        fn = _optimized(fn, source_key)
        fn.donated = frozenset(donated)    # passes keep the parameters, in order
        fn.source_key = source_key
        exe = backend.compile(fn)
    dt_ = time.perf_counter() - t0
    stats["compile_seconds"] += dt_
    if log_compiles():
        msg = (f"s4tf_py: compiled a {what} for {backend.name} in {dt_ * 1e3:.1f} ms "
               f"({len(fn.eqns)} eqns): {explain_miss(backend.name, key, what)}")
        _log.warning(msg)
    cache[key] = exe
    return exe


def _source_key(fn) -> str | None:
    """The disk-cache key of a traced function: its text, its equations' source locations
    (error messages show them) and a digest of s4tf_py's code; None when caching is off."""
    from .. import caching
    if not caching.cache_root():
        return None
    h = hashlib.sha256(str(fn).encode())
    h.update(repr([e.loc for e in fn.eqns]).encode())
    h.update(caching.code_digest().encode())
    return h.hexdigest()[:32]


def _optimized(fn, source_key: str | None):
    """``ir.passes.optimize(fn)``, from the disk cache when an earlier process optimized the
    same function (``source_key``): loading a training step's optimized IR takes a tenth of
    optimizing it again. A backend that caches its own compiled form (:meth:`load`) skips
    even this."""
    from .. import caching
    from ..ir import serialize
    from ..ir.passes import optimize
    if source_key is None:
        return optimize(fn)
    cached = caching.load_entry("optimized", source_key, serialize.loads)
    if cached is not None:
        counters["optimized_from_disk"] += 1
        return cached
    out = optimize(fn)
    try:
        data = serialize.dumps(out)
    except (pickle.PicklingError, TypeError, AttributeError):
        return out                          # holds something unnamed (a closure): not cached
    caching.store_entry("optimized", source_key, data)
    return out


def clear_caches() -> None:
    """Forget every compiled executable (the next run of each graph compiles again)."""
    _EXECUTABLES.clear()
    _SEEN_SHAPES.clear()


def materialize(nodes) -> None:
    """Compute the values of ``nodes`` (op nodes of the lazy graph) and store them."""
    targets = []
    ids = set()
    for n in nodes:
        if n.value is None and id(n) not in ids:
            if n.prim is None:
                _raise_abstract(n)
            ids.add(id(n))
            targets.append(n)
    if not targets:
        return
    leaves, ops, slot = collect(targets)
    _check_concrete(leaves)

    consumers = _count_consumers(ops)

    # Intermediates that a live Tensor (or a node outside this slice) still holds become outputs.
    # References we account for: `ops` (1), the loop variable (1), getrefcount's argument (1),
    # and one per consumer inside the slice.
    outputs = list(targets)
    # inputs of kept nodes (a pullback will read them) stay referenced after this run: keep
    # their values too, so they are neither recomputed nor left pending
    read_by_kept = _read_by_kept(ops)
    for n in ops:
        if id(n) not in ids and (_getrefcount(n) > 3 + consumers.get(id(n), 0)
                                 or id(n) in read_by_kept):
            outputs.append(n)
    del n

    device = targets[0].device
    backend = get_backend(device)
    counters["materializations"] += 1
    per_backend[backend.name]["traces"] += 1
    counters["traces"] += 1
    key = structural_key(leaves, ops, slot, outputs)
    exe = get_executable(backend, key,
                         lambda: function_from_graph(leaves, ops, slot, outputs))

    inputs = _take_inputs(leaves, consumers)
    del leaves
    t0 = time.perf_counter()
    results = exe(inputs)
    per_backend[backend.name]["execute_seconds"] += time.perf_counter() - t0
    it = iter(results)
    for n in outputs:
        # a multiple-result node keeps all its results (its selections read them later)
        n.value = tuple(next(it) for _ in n.avals) if n.prim.multiple_results else next(it)
        graph.forget(n)


def _check_concrete(leaves) -> None:
    """Abstract leaves (traced inputs) have no value to compute with."""
    for leaf in leaves:
        if leaf.value is None:
            _raise_abstract(leaf)
        if type(leaf.value) is _Donated:
            check_not_donated(leaf)


def _take_inputs(leaves, consumers) -> list:
    """The leaves' buffers, donating those that nothing outside the slice references.

    References to a leaf we account for: ``leaves`` (1), the loop variable (1), getrefcount's
    argument (1) and one per consumer inside the slice. A donated leaf gives up its buffer, so
    the executable may overwrite it (functional updates then run in place).
    """
    inputs = []
    donate = not graph.keep_inputs[0]       # a function being differentiated may read them again
    for leaf in leaves:
        if donate and not leaf.keep and _getrefcount(leaf) <= 3 + consumers.get(id(leaf), 0):
            inputs.append(leaf.value)
            leaf.value = _DONATED
            counters["buffer_donations"] += 1
        else:
            inputs.append(leaf.value)
    return inputs


class _Donated:
    """Marks a leaf whose buffer was handed to a computation (``where`` says which)."""

    def __init__(self, where: str = ""):
        self.where = where

    def __repr__(self):
        return "<donated buffer>"


def donate_leaf(node, fn_name: str, marker: "_Donated | None" = None) -> "_Donated":
    """Mark ``node``'s buffer as handed to compiled function ``fn_name`` (donate_argnums).
    Returns the marker, which the other arguments of the same call can share (finding the
    caller's line walks the stack: once per call, not once per donated tensor)."""
    if marker is None:
        from ..errors import format_location, user_location
        marker = _Donated(f"donated to the compiled function {fn_name} at "
                          f"{format_location(user_location(3))}")
    node.value = marker
    return marker


def check_not_donated(node) -> None:
    """A clear error when a tensor whose buffer was donated is used."""
    v = node.value
    if isinstance(v, _Donated) and v.where:
        from ..errors import ExecutionError
        raise ExecutionError(
            f"this tensor {node.aval}'s buffer was {v.where} (donate_argnums): it cannot be "
            "read or used after that call. Use the function's result instead, or leave the "
            "argument out of donate_argnums.")
    if isinstance(v, _Donated):
        from ..errors import ExecutionError
        raise ExecutionError(
            f"internal error: the buffer of a {node.aval} value was handed to an earlier "
            "computation that nothing else seemed to need (please report this with the "
            "program that triggers it)")


_DONATED = _Donated()


def _raise_abstract(node):
    from ..errors import user_location
    raise ConcretizationError(
        f"the value of a traced tensor {node.aval} was needed while tracing, at "
        f"{format_location(user_location(2))}. Inside s4.compile or s4.trace the inputs are "
        "abstract: Python control flow on their values (if/while on a tensor, .item(), "
        ".numpy(), bool()) cannot run there. Pass the value as a static Python argument, "
        "or use s4.where.")


def to_host(node):
    """The numpy value of a materialized node."""
    if type(node.value) is _Donated:
        check_not_donated(node)
    return get_backend(node.device).to_host(node.value)


def transfer(node, device):
    """A leaf on ``device`` holding ``node``'s value."""
    if node.value is None:
        materialize([node])
    host = to_host(node)
    buf = get_backend(device).from_host(host)
    return graph.leaf(buf, node.shape, node.dtype, node.weak, device)


def barrier() -> None:
    """Compute every pending value held by a live Tensor (S4TF's ``LazyTensorBarrier``).

    Training loops call this once per step so that the graph does not grow across steps.
    """
    pending = graph.pending_nodes()
    if not pending:
        return
    inside = _count_consumers(pending)
    # referenced by: `pending` (1), loop variable (1), getrefcount arg (1), pending consumers
    held = [n for n in pending if not n.prim.multiple_results and not n.is_abstract and
            _getrefcount(n) > 3 + inside.get(id(n), 0)]
    del pending
    by_device: dict = {}
    for n in held:
        # a value whose inputs are traced or were donated cannot be computed: reading it
        # raises the error that explains why; a barrier leaves it pending
        if not _uncomputable(n):
            by_device.setdefault(n.device, []).append(n)
    del held
    for nodes in by_device.values():
        materialize(nodes)


def _read_by_kept(nodes) -> set[int]:
    """ids of the nodes that some kept node among ``nodes`` reads."""
    return {id(i) for n in nodes if n.keep for i in n.inputs}


def _count_consumers(nodes) -> dict[int, int]:
    """id(node) -> how many of ``nodes`` read it (a function, so no loop variable lingers)."""
    count: dict[int, int] = {}
    for n in nodes:
        for i in n.inputs:
            count[id(i)] = count.get(id(i), 0) + 1
    return count


def _uncomputable(node) -> bool:
    leaves, _, _ = collect([node])
    return any(l.is_abstract or type(l.value) is _Donated for l in leaves)
