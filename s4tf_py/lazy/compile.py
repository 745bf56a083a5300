"""``s4.compile`` (whole-function compilation cached by signature) and ``s4.trace``.

Both run the Python body once with *abstract* tensors standing for the inputs, so the body's
ops record a graph with no values. ``s4.trace`` returns that graph as an ``ir.Function``;
``s4.compile`` compiles it and, on later calls with the same signature, runs the executable
without running the Python body again.

The signature of a call: the structure of the arguments, each Tensor's shape and dtype, each
Python float as a weakly typed scalar input (so a changing learning rate does not retrace), and
every other Python value (ints, bools, strings, None, tuples of those) as a static part of the
key, as JAX's ``static_argnums`` would be.
"""
from __future__ import annotations

import functools
import sys
import time

import numpy as np

from .. import dtypes as dt
from .. import tree
from ..backends import get_backend
from ..device import get_default_device
from ..errors import user_location

#: functions whose results a trace depends on besides its arguments (e.g. the learning phase:
#: dropout traces differently in training); each compiled function's cache key includes them
TRACE_CONTEXT: list = []
from ..ir import graph
from ..ir.function import collect, function_from_graph, structural_key
from ..tensor import Tensor, wrap
from .materialize import get_executable
from .metrics import counters


def _classify(leaf):
    """('t', aval) for a tensor input, ('s', value) for a static one."""
    if isinstance(leaf, Tensor):
        n = leaf._node
        return ("t", n.shape, n.dtype, n.weak, n.device)
    if isinstance(leaf, float):
        return ("f",)
    try:
        hash(leaf)
    except TypeError:
        raise TypeError(f"s4.compile: argument of type {type(leaf).__name__} is neither a Tensor "
                        "nor a hashable static value") from None
    return ("s", type(leaf), leaf)


def _abstract_inputs(flat, kinds):
    """Abstract tensors for the dynamic leaves, static leaves unchanged."""
    device = get_default_device()
    out = []
    for v, k in zip(flat, kinds):
        if k[0] == "t":
            out.append(wrap(graph.abstract_leaf(k[1], k[2], k[3], k[4])))
        elif k[0] == "f":
            out.append(wrap(graph.abstract_leaf((), dt.default_float, True, device)))
        else:
            out.append(v)
    return out


#: how many traces are running (a compiled function called inside one is inlined)
_trace_depth = [0]


def is_tracing() -> bool:
    return _trace_depth[0] > 0


class _Entry:
    __slots__ = ("executable", "out_tree", "out_static", "captured", "n_dynamic", "device",
                 "function", "single_output", "donated")


class CompiledFunction:
    """The callable :func:`compile` returns; ``.traces`` counts how often the body ran."""

    def __init__(self, fn, device=None, donate_argnums=()):
        self.fn = fn
        self.device = device
        self.donate_argnums = _argnums(fn, donate_argnums)
        self._cache: dict = {}
        self._fast: dict = {}        # positional-Tensor signatures -> the same entries
        self.traces = 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if _trace_depth[0]:        # called inside another trace: inline the body
            return self.fn(*args, **kwargs)
        tc = TRACE_CONTEXT                    # (no generator: this is the dispatch path)
        ctx = tc[0]() if len(tc) == 1 else tuple([f() for f in tc])
        if not kwargs:
            # fast path: positional Tensors only (the common training-step call)
            fast_key = [ctx]
            for a in args:
                if type(a) is not Tensor:
                    break
                n = a._node
                fast_key.append((n.shape, n.dtype, n.weak, n.device))
            else:
                entry = self._fast.get(tuple(fast_key))
                if entry is not None:
                    return self._run_fast(entry, args)
        flat, in_tree = tree.flatten((args, kwargs))
        kinds = tuple(_classify(v) for v in flat)
        key = (in_tree, kinds, ctx)
        entry = self._cache.get(key)
        if entry is None:
            entry = self._trace(flat, in_tree, kinds)
            self._cache[key] = entry
            if not kwargs and all(type(a) is Tensor for a in args):
                self._fast[(ctx,) + tuple((a._node.shape, a._node.dtype, a._node.weak,
                                           a._node.device) for a in args)] = entry
        inputs = []
        for v, k in zip(flat, kinds):
            if k[0] == "t":
                n = v._node
                if n.value is None:
                    from .materialize import materialize
                    materialize([n])
                elif type(n.value) is _Donated:
                    check_not_donated(n)
                inputs.append(n.value)
            elif k[0] == "f":
                inputs.append(np.asarray(v, dtype=dt.default_float))
        inputs.extend(leaf.value for leaf in entry.captured)
        if entry.donated:
            _donate(entry, inputs, [getattr(v, "_node", None) for v, k in zip(flat, kinds)
                                    if k[0] in "tf"],
                    self.fn)
        outs = entry.executable(inputs)
        out_leaves = []
        it = iter(outs)
        for static, aval in entry.out_static:
            if static is not _DYNAMIC:
                out_leaves.append(static)
            else:
                out_leaves.append(wrap(graph.leaf(next(it), aval[0], aval[1], aval[2], entry.device)))
        return tree.unflatten(entry.out_tree, out_leaves)

    def _run_fast(self, entry, args):
        inputs = []
        for a in args:
            n = a._node
            if n.value is None:
                from .materialize import materialize
                materialize([n])
            elif type(n.value) is _Donated:
                check_not_donated(n)
            inputs.append(n.value)
        for leaf in entry.captured:
            inputs.append(leaf.value)
        if entry.donated:
            _donate(entry, inputs, [a._node for a in args], self.fn)
        outs = entry.executable(inputs)
        if entry.single_output is not None:
            shape, dtype, weak = entry.single_output
            return wrap(graph.leaf(outs[0], shape, dtype, weak, entry.device))
        out_leaves = []
        it = iter(outs)
        for static, aval in entry.out_static:
            out_leaves.append(static if static is not _DYNAMIC else
                              wrap(graph.leaf(next(it), aval[0], aval[1], aval[2], entry.device)))
        return tree.unflatten(entry.out_tree, out_leaves)

    def _trace(self, flat, in_tree, kinds):
        from .metrics import per_backend
        compiled = sum(c.get("compile_seconds", 0.0) for c in per_backend.values())
        t0 = time.perf_counter()
        try:
            return self._trace_body(flat, in_tree, kinds)
        finally:
            # the body's run (and the graph's collection), without the compile it led to
            compiled = sum(c.get("compile_seconds", 0.0) for c in per_backend.values()) - compiled
            counters["trace_seconds"] += time.perf_counter() - t0 - compiled

    def _trace_body(self, flat, in_tree, kinds):
        self.traces += 1
        counters["function_traces"] += 1
        abstract = _abstract_inputs(flat, kinds)
        args, kwargs = tree.unflatten(in_tree, abstract)
        _trace_depth[0] += 1
        try:
            result = self.fn(*args, **kwargs)
        finally:
            _trace_depth[0] -= 1
        out_flat, out_tree = tree.flatten(result)
        params = [a._node for a, k in zip(abstract, kinds) if k[0] in "tf"]
        out_nodes, out_static = [], []
        for o in out_flat:
            if isinstance(o, Tensor):
                out_nodes.append(o._node)
                n = o._node
                out_static.append((_DYNAMIC, (n.shape, n.dtype, n.weak)))
            else:
                out_static.append((o, None))
        device = params[0].device if params else (out_nodes[0].device if out_nodes
                                                  else get_default_device())
        leaves, ops, slot = collect(out_nodes, stop_at_values=True)
        param_ids = {id(p) for p in params}
        captured = [l for l in leaves if id(l) not in param_ids]
        for c in captured:
            if c.value is None:
                raise RuntimeError(
                    f"s4.compile({getattr(self.fn, '__name__', 'fn')}): the body uses a tensor "
                    "traced by an enclosing transformation that is not one of its inputs; pass it "
                    "as an argument")
        # parameters first (in argument order), then captured tensors (closures, globals)
        ordered = params + captured
        slot = _renumber(ordered, ops)
        donated = self._donated_params(in_tree, kinds)
        key = ("compile", donated, structural_key(ordered, ops, slot, out_nodes))
        backend = get_backend(device)
        entry = _Entry()
        entry.donated = donated
        entry.executable = (get_executable(
            backend, key, lambda: function_from_graph(ordered, ops, slot, out_nodes,
                                                      name=getattr(self.fn, "__name__", "fn")),
            what=f"function {getattr(self.fn, '__name__', 'fn')}", donated=donated))
        entry.out_tree = out_tree
        entry.out_static = out_static
        entry.single_output = (out_static[0][1] if out_tree.kind is None and len(out_static) == 1
                               and out_static[0][0] is _DYNAMIC else None)
        entry.captured = captured
        entry.device = device
        return entry


    def _donated_params(self, in_tree, kinds) -> tuple:
        """Indices (among the function's tensor/float inputs) of the donated arguments' leaves."""
        if not self.donate_argnums:
            return ()
        args_td = in_tree.children[0]
        out, flat_index = [], 0
        for i, td in enumerate(args_td.children):
            n = td.num_leaves
            if i in self.donate_argnums:
                out.extend(range(flat_index, flat_index + n))
            flat_index += n
        param_of, p = {}, 0
        for j, k in enumerate(kinds):
            if k[0] in "tf":
                param_of[j] = p
                p += 1
        return tuple(param_of[j] for j in out if j in param_of and kinds[j][0] == "t")


def _argnums(fn, donate_argnums) -> frozenset:
    if isinstance(donate_argnums, int):
        donate_argnums = (donate_argnums,)
    out = set()
    for i in donate_argnums:
        if not isinstance(i, int) or isinstance(i, bool) or i < 0:
            raise TypeError(f"s4.compile({getattr(fn, '__name__', 'fn')}): donate_argnums takes "
                            f"non-negative positions of positional arguments, got {i!r}")
        out.add(i)
    return frozenset(out)


def _donate(entry, inputs: list, nodes: list, fn) -> None:
    """Hand the donated arguments' buffers to the executable (which may write its results
    into them): their tensors become unreadable. A buffer that something else can still see
    (another argument, a numpy view, a second tensor) is copied first, so no other value
    changes."""
    from .materialize import donate_leaf
    marker = None
    for p in entry.donated:
        node = nodes[p]
        buf = inputs[p]
        marker = donate_leaf(node, getattr(fn, "__name__", "fn"), marker)
        # references: `inputs`, `buf`, getrefcount's argument (the same buffer passed twice
        # is one more reference from `inputs`, so it is copied too)
        if (not isinstance(buf, np.ndarray) or buf.base is not None or
                not buf.flags.writeable or sys.getrefcount(buf) > 3):
            inputs[p] = np.array(buf, copy=True)
        del buf


_DYNAMIC = object()

from .materialize import _Donated, check_not_donated  # noqa: E402


def _renumber(inputs, ops) -> dict:
    """Slots with the function's inputs first (unused arguments included), then the ops."""
    slot = {id(n): i for i, n in enumerate(inputs)}
    for k, n in enumerate(ops):
        slot[id(n)] = len(inputs) + k
    return slot


def compile(fn=None, *, device=None, donate_argnums=()):  # noqa: A001 - the name is fixed
    """Compile a whole function; later calls with the same signature skip the Python body.

    ``donate_argnums`` (as in ``jax.jit``): positions of arguments whose buffers the call may
    reuse for its results — a training step's parameters and optimizer state are then updated
    in place. A donated tensor cannot be read after the call (the error says so); use the
    result instead. Arguments are leaves or trees (a list of parameters, a Layer).

    >>> import s4tf_py as s4
    >>> @s4.compile
    ... def step(x, lr):
    ...     return x - lr * x
    >>> step(s4.ones((2,)), 0.5).tolist()
    [0.5, 0.5]
    >>> _ = step(s4.ones((2,)), 0.25)   # a new learning rate: same executable
    >>> step.traces
    1
    """
    if fn is None:
        return lambda f: CompiledFunction(f, device, donate_argnums)
    return CompiledFunction(fn, device, donate_argnums)


def trace(f, *args, optimize: bool = False, **kwargs):
    """The ``ir.Function`` that ``f(*args, **kwargs)`` records (nothing runs).

    >>> import s4tf_py as s4
    >>> print(s4.trace(lambda a: (a * a).sum(), s4.ones((2, 2))))
    func @lambda(%0: f32[2,2]) -> (f32[]) {
      %1 = mul(%0, %0) : f32[2,2]
      %2 = reduce_sum(%1) {axes=(0, 1)} : f32[]
      return %2
    }
    """
    flat, in_tree = tree.flatten((args, kwargs))
    kinds = tuple(_classify(v) for v in flat)
    abstract = _abstract_inputs(flat, kinds)
    a, kw = tree.unflatten(in_tree, abstract)
    _trace_depth[0] += 1
    try:
        result = f(*a, **kw)
    finally:
        _trace_depth[0] -= 1
    out_flat, _ = tree.flatten(result)
    out_nodes = [o._node for o in out_flat if isinstance(o, Tensor)]
    params = [x._node for x, k in zip(abstract, kinds) if k[0] in "tf"]
    leaves, ops, slot = collect(out_nodes)
    param_ids = {id(p) for p in params}
    ordered = params + [l for l in leaves if id(l) not in param_ids]
    slot = _renumber(ordered, ops)
    name = getattr(f, "__name__", "fn").strip("<>")
    fn = function_from_graph(ordered, ops, slot, out_nodes, name=name)
    if optimize:
        from ..ir.passes import optimize as _opt
        fn = _opt(fn)
    return fn
