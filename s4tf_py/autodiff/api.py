"""The derivative operators: gradient, pullback, jvp and friends (S4TF's names in snake_case).

``at=`` takes one argument or a tuple of arguments (``at=(x, y)``); each may be a Tensor, a
Python float, or a differentiable structure (tuples, lists, dicts, dataclasses and
``s4.nn.Layer`` subclasses of tensors). Gradients come back in the same structure, with
layers and ``@s4.differentiable_struct`` classes mapped to their ``TangentVector``.

>>> import s4tf_py as s4
>>> s4.gradient(at=s4.Tensor(3.0), of=lambda x: x * x).item()
6.0
>>> dx, dy = s4.gradient(at=(s4.Tensor(2.0), s4.Tensor(5.0)), of=lambda x, y: x * y)
>>> dx.item(), dy.item()
(5.0, 2.0)
"""
from __future__ import annotations

import functools
import inspect

from .. import dtypes as dt
from .. import tree
from ..ir import graph
from ..tensor import Tensor
from . import core
from .core import DifferentiationError
from .structs import tangent_unflatten


def _is_leaf(v) -> bool:
    return isinstance(v, Tensor)


class _Prepared:
    """The flattened differentiation arguments, with marks standing for the differentiable leaves."""

    def __init__(self, at, single: bool, op: str):
        self.single = single
        args = (at,) if single else tuple(at)
        leaves, self.treedef = tree.flatten(args, is_leaf=_is_leaf)
        self.leaves = leaves
        self.marked = []
        self.marks = []
        self.positions = []
        for k, v in enumerate(leaves):
            if isinstance(v, Tensor):
                if not dt.is_floating(v.dtype):
                    raise DifferentiationError(
                        f"{op}: cannot differentiate with respect to an integer input "
                        f"({v.dtype} tensor of shape {v.shape}); only floating-point values have "
                        "derivatives. Convert it with .astype(s4.float32) or pass it as a "
                        "non-differentiated argument.")
                m = core.mark(v)
            elif isinstance(v, float):
                m = core.mark(Tensor(v))
            else:
                self.marked.append(v)
                continue
            self.marked.append(m)
            self.marks.append(m._node)
            self.positions.append(k)
        self.args = tree.unflatten(self.treedef, self.marked)

    def tangents(self, cts) -> object:
        """Cotangents (one per mark, None for zero) in the arguments' tangent structure."""
        out = [None] * len(self.leaves)
        for k, c, m in zip(self.positions, cts, self.marks):
            out[k] = c if c is not None else core._zeros(m)
        for k, v in enumerate(self.leaves):
            if k not in self.positions:
                out[k] = None
        t = tangent_unflatten(self.treedef, out)
        return t[0] if self.single else t


def _call(f, prepared: _Prepared):
    graph.keep_inputs[0] += 1
    try:
        return f(*prepared.args)
    finally:
        graph.keep_inputs[0] -= 1


def value_with_pullback(at=None, of=None, *, _op="value_with_pullback"):
    """``(f(at), pullback)``; ``pullback(ct)`` maps an output cotangent to input cotangents."""
    f = _check_of(of, _op)
    p = _Prepared(at, not isinstance(at, tuple), _op)
    value = _call(f, p)
    out_leaves, out_tree = tree.flatten(value, is_leaf=_is_leaf)
    out_nodes = [o._node for o in out_leaves if isinstance(o, Tensor)]
    core.keep_graph(out_nodes, {id(m) for m in p.marks})
    core.warn_if_constant(out_nodes, p.marks, _op)

    def pullback(ct):
        ct_leaves, ct_tree = tree.flatten(ct, is_leaf=_is_leaf)
        if len(ct_leaves) != len(out_leaves):
            raise ValueError(f"pullback: the cotangent has {len(ct_leaves)} leaves but the "
                             f"function's result has {len(out_leaves)}")
        outs, cts = [], []
        from ..ops._core import to_tensor
        for o, c in zip(out_leaves, ct_leaves):
            if isinstance(o, Tensor) and c is not None:
                c = to_tensor(c, dtype=o.dtype)
                if c.shape != o.shape:
                    raise ValueError(f"pullback: cotangent of shape {c.shape} for a result of "
                                     f"shape {o.shape}")
                outs.append(o._node)
                cts.append(c)
        return p.tangents(core.backward(outs, cts, p.marks))

    return value, pullback


def pullback(at=None, of=None):
    """The pullback of ``of`` at ``at`` (see :func:`value_with_pullback`)."""
    return value_with_pullback(at, of, _op="pullback")[1]


def _scalar_check(value, op):
    if not isinstance(value, Tensor) or value.shape != () or not dt.is_floating(value.dtype):
        got = (f"a tensor of shape {value.shape} and dtype {value.dtype}"
               if isinstance(value, Tensor) else type(value).__name__)
        raise DifferentiationError(
            f"{op}: you can only compute the gradient of functions that return scalar values "
            f"(a 0-d floating-point tensor), but the function returned {got}. Use s4.pullback "
            "with a cotangent for other results, or reduce the result (e.g. .sum()).")


def value_with_gradient(at=None, of=None):
    """``(f(at), ∇f(at))`` for a function returning a 0-d floating-point tensor."""
    f = _check_of(of, "value_with_gradient")
    p = _Prepared(at, not isinstance(at, tuple), "value_with_gradient")
    value = _call(f, p)
    _scalar_check(value, "value_with_gradient")
    core.keep_graph([value._node], {id(m) for m in p.marks})
    core.warn_if_constant([value._node], p.marks, "gradient")
    from ..ops.creation import ones_like
    cts = core.backward([value._node], [ones_like(value)], p.marks)
    return value, p.tangents(cts)


def gradient(at=None, of=None):
    """∇f(at); with ``at`` omitted, a function computing the gradient (S4TF's ``gradient(of:)``)."""
    if at is None:
        f = _check_of(of, "gradient")

        @functools.wraps(f)
        def grad_fn(*args):
            wrt = getattr(f, "__s4_wrt__", None)
            if wrt is None:
                return value_with_gradient(args if len(args) != 1 else args[0], f)[1]
            return _gradient_wrt(f, wrt, args)
        return grad_fn
    return value_with_gradient(at, of)[1]


def _gradient_wrt(f, wrt, args):
    idx = wrt
    diff_args = tuple(args[i] for i in idx)

    def g(*d):
        full = list(args)
        for i, v in zip(idx, d):
            full[i] = v
        return f(*full)
    at = diff_args[0] if len(diff_args) == 1 else diff_args
    return value_with_gradient(at, g)[1]


def value_with_differential(at=None, of=None):
    """``(f(at), differential)``: forward mode; ``differential(t)`` is the JVP along ``t``."""
    f = _check_of(of, "value_with_differential")
    p = _Prepared(at, not isinstance(at, tuple), "value_with_differential")
    value = _call(f, p)
    out_leaves, out_tree = tree.flatten(value, is_leaf=_is_leaf)
    out_nodes = [o._node for o in out_leaves]
    core.keep_graph(out_nodes, {id(m) for m in p.marks})

    def differential(tangent):
        t_leaves, _ = tree.flatten(tangent if not p.single else (tangent,), is_leaf=_is_leaf)
        ts = [t_leaves[k] for k in p.positions] if len(t_leaves) == len(p.leaves) else t_leaves
        from ..ops._core import to_tensor
        ts = [to_tensor(t, dtype=m.dtype) if t is not None else None for t, m in zip(ts, p.marks)]
        res = core.forward(out_nodes, p.marks, ts)
        res = [r if r is not None else core._zeros(o) for r, o in zip(res, out_nodes)]
        return tree.unflatten(out_tree, res)

    return value, differential


def jvp(f, primals, tangents):
    """``(f(*primals), J·tangents)``: the Jacobian-vector product (forward mode)."""
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    value, diff = value_with_differential(at=primals if len(primals) != 1 else primals[0], of=f)
    return value, diff(tangents if len(tangents) != 1 else tangents[0])


def differentiable(fn=None, *, wrt=None):
    """Mark a function differentiable (optionally ``wrt=`` some parameter names).

    The function is returned wrapped so that a custom derivative registered later with
    ``@s4.derivative(of=fn)`` is used wherever it is called.
    """
    def deco(f):
        return DifferentiableFunction(f, wrt)
    return deco(fn) if fn is not None else deco


class DifferentiableFunction:
    """A function with an optional custom VJP (S4TF's ``@differentiable`` + ``@derivative``)."""

    def __init__(self, f, wrt=None, vjp=None):
        self.f = f
        self.vjp = vjp
        functools.update_wrapper(self, f)
        if wrt is not None:
            names = (wrt,) if isinstance(wrt, str) else tuple(wrt)
            params = list(inspect.signature(f).parameters)
            missing = [n for n in names if n not in params]
            if missing:
                raise ValueError(f"@differentiable(wrt=...): {f.__name__} has no parameter "
                                 f"{', '.join(missing)}")
            self.__s4_wrt__ = tuple(params.index(n) for n in names)

    def __call__(self, *args, **kwargs):
        if self.vjp is None:
            return self.f(*args, **kwargs)
        from .custom import call_with_custom_vjp
        return call_with_custom_vjp(self.f, self.vjp, args, kwargs)

    def __get__(self, obj, objtype=None):
        return self if obj is None else functools.partial(self, obj)


def _check_of(of, op):
    if of is None or not callable(of):
        raise TypeError(f"{op}: `of=` must be the function to differentiate, got {of!r}")
    return of
