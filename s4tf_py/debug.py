"""NaN hunting: find the first op whose output holds a NaN or an Inf, and the user's line.

A lazy program computes many ops in one compiled graph, so a NaN read at the end says nothing
about where it was born. ``s4.debug_nans()`` and ``TrainingLoop(debug_nans=True)`` answer that
by re-running the failing computation **op by op on the reference backend** (each primitive's
numpy implementation, the correctness oracle), checking every op's output, and reporting the
first one that holds a NaN or an Inf: the op, its parameters, statistics of each input (min,
max, mean, NaN and Inf counts) and the file:line of the user's code that recorded it.

* ``with s4.debug_nans():`` — while active, every op records the user's file:line, every graph
  that runs (a value read, ``s4.barrier()``, a call of an ``s4.compile`` d function) checks its
  floating-point results, and the first non-finite result raises :class:`NonFiniteError` with a
  :class:`NonFiniteReport`. Compiled functions trace again inside the block (the debug mode is
  part of their cache key), so their ops carry locations too. The mode is process-wide.
* :func:`find_nonfinite` ``(f, *args)`` — trace ``f(*args)`` and replay it op by op on the
  arguments' values; returns the report, or None when everything stays finite.

>>> import s4tf_py as s4
>>> x = s4.Tensor([1.0, 0.0])
>>> report = find_nonfinite(lambda x: s4.exp(s4.log(x) * 2.0), x)
>>> report.op, report.kind, report.inputs[0].min
('log', 'inf', 0.0)
>>> with debug_nans():             # s4.debug_nans()
...     try:
...         (s4.log(x) * 2.0).numpy()
...     except NonFiniteError as e:
...         print(e.report.op, e.report.location[1] > 0)
log True
"""
from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Callable, Sequence

import numpy as np

from . import dtypes as dt
from . import tree
from .errors import S4TFError, format_location
from .tensor import Tensor

__all__ = ["debug_nans", "enabled", "find_nonfinite", "replay", "NonFiniteError",
           "NonFiniteReport", "OperandStats", "recording_locations"]


# ---- reports --------------------------------------------------------------------------------

@dataclasses.dataclass
class OperandStats:
    """Statistics of one value: its name, type, and min / max / mean over the finite elements,
    with the NaN and Inf counts (``min``/``max``/``mean`` are None when nothing is finite or
    the value is not a number)."""

    name: str
    dtype: str
    shape: tuple
    min: float | None
    max: float | None
    mean: float | None
    nans: int
    infs: int

    @property
    def has_nan(self) -> bool:
        return self.nans > 0

    @property
    def has_inf(self) -> bool:
        return self.infs > 0

    @classmethod
    def of(cls, name: str, value) -> "OperandStats":
        a = np.asarray(value)
        dname = dt.SHORT_NAME.get(a.dtype, str(a.dtype))
        if a.dtype.kind not in "fiub" and a.dtype not in (dt.bfloat16, dt.float16):
            return cls(name, dname, a.shape, None, None, None, 0, 0)
        x = a.astype(np.float64) if a.dtype.kind != "b" else a.astype(np.float64)
        nan = np.isnan(x)
        inf = np.isinf(x)
        finite = x[~(nan | inf)]
        if finite.size:
            lo, hi, mean = float(finite.min()), float(finite.max()), float(finite.mean())
        else:
            lo = hi = mean = None
        return cls(name, dname, a.shape, lo, hi, mean, int(nan.sum()), int(inf.sum()))

    def __str__(self) -> str:
        shape = f"{self.dtype}[{','.join(map(str, self.shape))}]"
        if self.min is None:
            rng = "no finite element"
        else:
            rng = f"min {self.min:.6g}, max {self.max:.6g}, mean {self.mean:.6g}"
        bad = []
        if self.nans:
            bad.append(f"{self.nans} NaN")
        if self.infs:
            bad.append(f"{self.infs} Inf")
        return (f"{self.name}: {shape} {rng}; "
                f"{', '.join(bad) if bad else 'no NaN/Inf'}")


@dataclasses.dataclass
class NonFiniteReport:
    """Where a non-finite value first appeared in a replayed function.

    ``op``: the primitive's name (None when a function *input* already held the value:
    ``input_name`` says which, and the computation that produced it ran earlier).
    ``kind``: ``"nan"`` or ``"inf"`` (what that op's output holds; NaN wins when both).
    ``location``: the user's ``(file, line, function)`` that recorded the op, or None.
    ``inputs``: :class:`OperandStats` of each operand; ``output``: of the result.
    ``first_nan``: when the first non-finite op made only Infs, the report of the op where the
    first NaN appeared (often the one that turned the Inf into a NaN), else None.
    ``backend_mismatch``: set by the training loop when the reference replay stays finite
    although the compiled step did not (a backend disagreeing with the oracle).
    """

    kind: str
    op: str | None
    index: int | None
    function: str
    location: tuple | None
    params: dict
    inputs: list
    output: OperandStats | None
    input_name: str | None = None
    first_nan: "NonFiniteReport | None" = None
    note: str | None = None

    def __str__(self) -> str:
        word = "NaN" if self.kind == "nan" else "Inf"
        if self.op is None:
            lines = [f"the input {self.input_name} of {self.function} already holds {word} "
                     f"(it was computed before this function ran)",
                     f"  {self.output}"]
        else:
            params = ", ".join(f"{k}={v!r}" for k, v in self.params.items()
                               if not callable(v) and k != "fn")
            if len(params) > 200:
                params = params[:200] + "..."
            lines = [f"first {word}: op #{self.index} '{self.op}'"
                     f"{' {' + params + '}' if params else ''} in {self.function}",
                     f"  at {format_location(self.location)}"]
            for s in self.inputs:
                lines.append(f"  input  {s}")
            lines.append(f"  output {self.output}")
        if self.first_nan is not None:
            lines.append("then " + str(self.first_nan).replace("\n", "\n  "))
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)


class NonFiniteError(S4TFError, FloatingPointError):
    """A computation produced a NaN or an Inf; ``report`` (a :class:`NonFiniteReport`, or
    None when the op was not looked for) says where it first appeared."""

    def __init__(self, message: str, report: NonFiniteReport | None = None):
        super().__init__(message)
        self.report = report


# ---- the op-by-op replay ---------------------------------------------------------------------

def _is_float(a) -> bool:
    return isinstance(a, np.ndarray) and dt.is_floating(a.dtype)


def _bad_kind(a, want: str) -> str | None:
    """'nan' / 'inf' when ``a`` (an array) holds what ``want`` asks for ('any', 'nan')."""
    if not _is_float(a) or a.size == 0:
        return None
    x = a if a.dtype.kind == "f" else a.astype(np.float32)    # bfloat16: through float32
    if np.isnan(x).any():
        return "nan"
    if want == "any" and np.isinf(x).any():
        return "inf"
    return None


def replay(fn, values: Sequence, names: Sequence[str] | None = None) -> NonFiniteReport | None:
    """Run the ``ir.Function`` ``fn`` on ``values`` (numpy arrays, one per parameter) op by
    op with each primitive's numpy implementation (the reference backend), and report the
    first op whose output holds a NaN or an Inf (ops without operands, such as constants, are
    not blamed: an Inf written on purpose is a mask). Returns None when all stays finite."""
    names = list(names or [])
    names += [f"%{i}" for i in range(len(names), len(fn.params))]
    env: dict = {}
    for i, (v, val) in enumerate(zip(fn.params, values)):
        env[v] = np.asarray(val)
        kind = _bad_kind(env[v], "any")
        if kind is not None:
            return NonFiniteReport(kind, None, None, fn.name, None, {}, [],
                                   OperandStats.of(names[i], env[v]), input_name=names[i])
    last_use: dict = {}
    for pos, e in enumerate(fn.eqns):
        for v in e.inputs:
            last_use[v] = pos
    keep = set(fn.outputs)
    first: NonFiniteReport | None = None
    with np.errstate(all="ignore"):
        for pos, e in enumerate(fn.eqns):
            args = [env[v] for v in e.inputs]
            r = e.prim.impl(*args, **e.params_dict())
            outs = tuple(r) if e.prim.multiple_results else (r,)
            outs = tuple(o if isinstance(o, np.ndarray) else np.asarray(o) for o in outs)
            for o, val in zip(e.outs, outs):
                env[o] = val
            if e.inputs:
                want = "any" if first is None else "nan"
                for val in outs:
                    kind = _bad_kind(val, want)
                    if kind is None:
                        continue
                    rep = _op_report(fn, pos, e, args, val, kind)
                    if first is None:
                        first = rep
                        if kind == "nan":
                            return first
                    else:
                        first.first_nan = rep
                        return first
                    break
            for v in e.inputs:                 # free what no later op reads
                if last_use.get(v) == pos and v not in keep:
                    env.pop(v, None)
    return first


def _op_report(fn, pos, e, args, out, kind) -> NonFiniteReport:
    inputs = [OperandStats.of(f"#{i}", a) for i, a in enumerate(args)]
    return NonFiniteReport(kind, e.prim.name, pos, fn.name, e.loc, e.params_dict(), inputs,
                           OperandStats.of("result", out))


def _leaf_names(td, prefix: str) -> list[str]:
    """Key-path names of the leaves of the tree ``td`` (``model.l1.weight``, ``x``...)."""
    if td.kind is None:
        return [prefix]
    kind, kids = td.kind, td.children
    if kind in ("tuple", "list"):
        keys = list(range(len(kids)))
    elif kind == "dict":
        keys = list(td.aux)
    elif kind == "none":
        return []
    elif isinstance(kind, type) and hasattr(kind, "__s4_diff_fields__"):
        keys = list(kind.__s4_diff_fields__)
    elif isinstance(kind, type) and hasattr(kind, "__s4_fields__"):
        keys = list(kind.__s4_fields__)
    elif isinstance(kind, type) and hasattr(kind, "_fields"):
        keys = list(kind._fields)
    elif isinstance(kind, type) and kind.__name__ and hasattr(kind, "slot_names"):
        keys = ["state", "learning_rate"]           # an optimizer
    elif isinstance(td.aux, tuple) and len(td.aux) == len(kids) and \
            all(isinstance(a, str) for a in td.aux):
        keys = list(td.aux)                         # a dataclass
    else:
        keys = list(range(len(kids)))
    if len(keys) != len(kids):
        keys = list(range(len(kids)))
    out: list[str] = []
    for k, c in zip(keys, kids):
        out.extend(_leaf_names(c, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _module(name: str):
    # s4tf_py.lazy exports functions named like its modules (compile, materialize)
    import importlib
    return importlib.import_module(f"s4tf_py.lazy.{name}")


def _trace_with_values(f: Callable, args: tuple, kwargs: dict, arg_names=None):
    """``(ir.Function, input values, input names)`` of ``f(*args, **kwargs)``: like
    ``s4.trace``, but it also returns the values of the captured tensors, and every op records
    the user's file:line."""
    from .ir.function import collect, function_from_graph
    from .lazy.materialize import materialize, to_host
    _c = _module("compile")

    flat, in_tree = tree.flatten((args, kwargs))
    kinds = tuple(_c._classify(v) for v in flat)
    abstract = _c._abstract_inputs(flat, kinds)
    a, kw = tree.unflatten(in_tree, abstract)
    with recording_locations():
        _c._trace_depth[0] += 1
        try:
            result = f(*a, **kw)
        finally:
            _c._trace_depth[0] -= 1
    out_flat, _ = tree.flatten(result)
    out_nodes = [o._node for o in out_flat if isinstance(o, Tensor)]
    params = [x._node for x, k in zip(abstract, kinds) if k[0] in "tf"]
    leaves, ops, _ = collect(out_nodes)
    param_ids = {id(p) for p in params}
    captured = [leaf for leaf in leaves if id(leaf) not in param_ids]
    ordered = params + captured
    slot = _c._renumber(ordered, ops)
    name = getattr(f, "__name__", "fn").strip("<>")
    fn = function_from_graph(ordered, ops, slot, out_nodes, name=name)

    values = []
    for v, k in zip(flat, kinds):
        if k[0] == "t":
            n = v._node
            if n.value is None:
                materialize([n])
            values.append(np.array(to_host(n), copy=True))
        elif k[0] == "f":
            values.append(np.asarray(v, dtype=dt.default_float))
    for leaf in captured:
        values.append(np.array(to_host(leaf), copy=True))

    if arg_names is None:
        arg_names = [f"arg{i}" for i in range(len(args))]
    names_td = in_tree.children[0]
    all_names: list[str] = []
    for i, child in enumerate(names_td.children):
        all_names.extend(_leaf_names(child, arg_names[i] if i < len(arg_names) else f"arg{i}"))
    for kname, child in zip(in_tree.children[1].aux or (), in_tree.children[1].children):
        all_names.extend(_leaf_names(child, str(kname)))
    names = [n for n, k in zip(all_names, kinds) if k[0] in "tf"]
    names += [f"captured tensor {leaf.aval}" for leaf in captured]
    return fn, values, names


def find_nonfinite(f: Callable, *args, arg_names: Sequence[str] | None = None,
                   **kwargs) -> NonFiniteReport | None:
    """Trace ``f(*args, **kwargs)`` and replay it op by op on the reference backend; the
    report of the first op whose output holds a NaN or an Inf (see :func:`replay`), or None.

    ``f`` may be a plain function or an ``s4.compile`` d one (its body is traced). The
    arguments are read, not changed. ``arg_names`` names the positional arguments in the
    report (``model``, ``x``...).

    >>> import s4tf_py as s4
    >>> print(find_nonfinite(lambda a: s4.sqrt(a - 1.0), s4.Tensor([0.5, 2.0]),
    ...                      arg_names=["a"]))            # doctest: +ELLIPSIS
    first NaN: op #... 'sqrt' in lambda
      at ...
      input  #0: f32[2] min -0.5, max 1, mean 0.25; no NaN/Inf
      output result: f32[2] min 1, max 1, mean 1; 1 NaN
    """
    body = getattr(f, "fn", f) if type(f).__name__ == "CompiledFunction" else f
    fn, values, names = _trace_with_values(body, args, kwargs, arg_names)
    return replay(fn, values, names)


# ---- locations on every op ---------------------------------------------------------------------

_lock = threading.RLock()
_locations_depth = [0]
_saved_flags: dict = {}


@contextlib.contextmanager
def recording_locations():
    """Make every primitive record the user's file:line on the nodes created inside (ops
    normally record it only where they can fail at run time, to keep tracing cheap)."""
    from .ir.registry import all_primitives
    with _lock:
        if _locations_depth[0] == 0:
            for p in all_primitives():
                _saved_flags[p.name] = p.record_location
                p.record_location = True
        _locations_depth[0] += 1
    try:
        yield
    finally:
        with _lock:
            _locations_depth[0] -= 1
            if _locations_depth[0] == 0:
                for p in all_primitives():
                    p.record_location = _saved_flags.pop(p.name, p.record_location)


# ---- the debug_nans mode ---------------------------------------------------------------------

_active = [0]


def enabled() -> bool:
    """Whether ``s4.debug_nans()`` is active."""
    return _active[0] > 0


def _trace_context() -> bool:
    # part of every compiled function's cache key (lazy.compile.TRACE_CONTEXT): a function
    # traces again inside the block, so its ops get locations and its executable the check
    return _active[0] > 0


class _CheckedExecutable:
    """An executable that, in debug mode, checks its floating-point results and replays its
    (unoptimized) function op by op on a copy of its inputs when one is not finite."""

    __slots__ = ("exe", "fn", "backend", "what")

    def __init__(self, exe, fn, backend, what):
        self.exe, self.fn, self.backend, self.what = exe, fn, backend, what

    def __call__(self, inputs: list):
        if not _active[0]:
            return self.exe(inputs)
        to_host = self.backend.to_host
        saved = [np.array(to_host(b), copy=True) if b is not None else None for b in inputs]
        outs = self.exe(inputs)
        kind = None
        for o in outs:
            kind = _bad_kind(to_host(o), "any") if not isinstance(o, tuple) else None
            if kind is not None:
                break
        if kind is None:
            return outs
        report = replay(self.fn, saved)
        if report is None:
            raise NonFiniteError(
                f"s4.debug_nans: a {self.what} on the {self.backend.name} backend produced a "
                f"{'NaN' if kind == 'nan' else 'Inf'}, but its op-by-op replay on the reference "
                "backend stays finite: the backend disagrees with the reference (please report "
                "it)")
        raise NonFiniteError(f"s4.debug_nans: {report}", report)


def _checking_hook(exe, build_function, backend, what):
    """An executable lookup's hook (``lazy.materialize.EXECUTABLE_HOOKS``): while the mode is
    on, the executable is wrapped in one that checks its outputs."""
    if not _active[0]:
        return exe
    # the unoptimized function: its equations are the user's ops, with their locations
    return _CheckedExecutable(exe, build_function(), backend, what)


def _install_hook() -> None:
    """Add the checking hook to executable lookups (once, on first use; it does nothing
    while the mode is off) and the mode to compiled functions' cache keys."""
    from .lazy.compile import TRACE_CONTEXT
    hooks = _module("materialize").EXECUTABLE_HOOKS
    if _checking_hook not in hooks:
        hooks.append(_checking_hook)
    if _trace_context not in TRACE_CONTEXT:
        TRACE_CONTEXT.append(_trace_context)


class debug_nans(contextlib.ContextDecorator):
    """``with s4.debug_nans():`` (or ``@s4.debug_nans()``): raise :class:`NonFiniteError`
    with a report of the first op that made a NaN or an Inf, found by replaying the failing
    graph op by op on the reference backend (see the module docstring). A ``TrainingLoop``
    run inside the block behaves as with ``debug_nans=True``.

    >>> import s4tf_py as s4
    >>> with debug_nans():
    ...     s4.sqrt(s4.Tensor([4.0])).tolist()
    [2.0]
    """

    def __enter__(self) -> "debug_nans":
        with _lock:
            _install_hook()
            _active[0] += 1
        scope = recording_locations()
        scope.__enter__()
        self._scopes = getattr(self, "_scopes", [])
        self._scopes.append(scope)
        return self

    def __exit__(self, *exc) -> None:
        self._scopes.pop().__exit__(*exc)
        with _lock:
            _active[0] -= 1

