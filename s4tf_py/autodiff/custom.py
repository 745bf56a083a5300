"""Custom derivatives and derivative surgery.

* ``@s4.derivative(of=f)``: a custom VJP ``vjp(*args) -> (value, pullback)`` replaces the traced
  derivative of ``f`` wherever ``f`` is called (``f`` must be an ``@s4.differentiable``
  function, which is what routes its calls here).
* ``s4.without_derivative(x)``, ``s4.with_derivative(x, hook)``.
* ``s4.differentiable_function(vjp)``: a function from its VJP alone.
* ``s4.with_recomputation_in_pullbacks(f)``: the pullback recomputes ``f``'s forward pass from
  its inputs instead of keeping its intermediates (checkpointing).

A custom derivative is recorded as a ``custom_vjp`` node: forward it is the identity on the
value the VJP computed, and its reverse rule calls the user's pullback. The pullback is kept on
the node (``node.aux``), never in its params, so it does not enter cache keys: compiling a
function that uses it compiles once.
"""
from __future__ import annotations

from .. import tree
from ..ir import graph
from ..ir.registry import AVal, defjvp, defvjp, define
from ..tensor import Tensor, wrap


def _custom_rule(*avals, n_out):
    return tuple(avals[:n_out])


def _custom_impl(*xs, n_out):
    return tuple(xs[:n_out])


CUSTOM_VJP = define("custom_vjp", _custom_rule, _custom_impl, multiple_results=True,
                    doc="Identity on the first n_out operands; reverse mode calls a user pullback "
                        "(kept on the node) for the remaining operands (the function's inputs).")


def _custom_vjp_rule(ct, *xs, out, n_out, aux):
    pullback, arg_tree, arg_is_tensor, value_is_tuple = aux
    ct_arg = ct if value_is_tuple else ct[0]
    cts = pullback(ct_arg)
    if not isinstance(cts, tuple):
        cts = (cts,)
    flat, _ = tree.flatten(cts, is_leaf=lambda v: isinstance(v, Tensor) or v is None)
    flat = [c for c, is_t in zip(flat, arg_is_tensor) if is_t] if len(flat) == len(arg_is_tensor) \
        else flat
    return (None,) * n_out + tuple(flat)


def _custom_jvp_rule(ts, *xs, out, n_out, aux):
    # forward mode differentiates the value computation itself (the first n_out operands)
    return tuple(ts[:n_out])


defvjp(CUSTOM_VJP, _custom_vjp_rule)
defjvp(CUSTOM_VJP, _custom_jvp_rule)


def call_with_custom_vjp(f, vjp, args, kwargs):
    """Call ``f`` through its custom VJP: the value from ``vjp``, the derivative from its pullback."""
    from ..ops._core import GET_TUPLE_ELEMENT
    if kwargs:
        raise TypeError(f"{getattr(f, '__name__', 'function')} has a custom derivative; pass its "
                        "arguments positionally")
    value, pb = vjp(*args)
    flat_args, arg_tree = tree.flatten(args, is_leaf=lambda v: isinstance(v, Tensor))
    arg_is_tensor = [isinstance(a, Tensor) for a in flat_args]
    tensor_args = [a for a in flat_args if isinstance(a, Tensor)]
    is_tuple = isinstance(value, tuple)
    values = list(value) if is_tuple else [value]
    if not all(isinstance(v, Tensor) for v in values):
        raise TypeError("a custom VJP must return (value, pullback) with a Tensor value "
                        "(or a tuple of Tensors)")
    nodes = tuple(v._node for v in values) + tuple(a._node for a in tensor_args)
    n_out = len(values)
    avals = tuple(AVal(v.shape, v.dtype, v._node.weak) for v in values)
    device = values[0].device
    node = graph.bind_unique(CUSTOM_VJP, nodes, (("n_out", n_out),), (), None, False, device,
                             aux=(pb, arg_tree, arg_is_tensor, is_tuple))
    node.avals = avals
    outs = [wrap(graph.bind(GET_TUPLE_ELEMENT, (node,), (("index", i),), a.shape, a.dtype,
                            a.weak, device)) for i, a in enumerate(avals)]
    return tuple(outs) if is_tuple else outs[0]


def derivative(of):
    """Register a custom VJP for ``of`` (an ``@s4.differentiable`` function).

    >>> import s4tf_py as s4
    >>> @s4.differentiable
    ... def square(x):
    ...     return x * x
    >>> @s4.derivative(of=square)
    ... def _square_vjp(x):
    ...     return square.f(x), lambda ct: 3.0 * ct   # a deliberately "wrong" derivative
    >>> s4.gradient(at=s4.Tensor(2.0), of=square).item()
    3.0
    """
    from .api import DifferentiableFunction

    def register(vjp):
        if not isinstance(of, DifferentiableFunction):
            name = getattr(of, "__name__", repr(of))
            raise TypeError(f"s4.derivative(of={name}): decorate {name} with @s4.differentiable "
                            "first, so that its calls use the custom derivative")
        of.vjp = vjp
        return vjp
    return register


def differentiable_function(vjp):
    """A differentiable function made from its VJP ``vjp(*args) -> (value, pullback)``."""
    from .api import DifferentiableFunction

    def value_only(*args):
        return vjp(*args)[0]
    value_only.__name__ = getattr(vjp, "__name__", "differentiable_function")
    return DifferentiableFunction(value_only, vjp=vjp)


def without_derivative(x):
    """``x`` as a constant for differentiation (S4TF's ``withoutDerivative(at:)``)."""
    from ..ops._core import stop_gradient
    return tree.map_leaves(lambda v: stop_gradient(v) if isinstance(v, Tensor) else v, x)


def _with_derivative_rule(ct, x, *, out, aux):
    r = aux(ct)
    return (ct if r is None else r,)


WITH_DERIVATIVE = define("with_derivative", lambda x: x, lambda x: x,
                         doc="Identity whose reverse rule passes the cotangent to a user hook.")
defvjp(WITH_DERIVATIVE, _with_derivative_rule)
defjvp(WITH_DERIVATIVE, lambda ts, x, *, out, aux: ts[0])


def with_derivative(x: Tensor, hook) -> Tensor:
    """``x``, whose incoming cotangent is shown to ``hook(ct)``; a non-None return replaces it."""
    n = x._node
    return wrap(graph.bind_unique(WITH_DERIVATIVE, (n,), (), n.shape, n.dtype, n.weak, n.device,
                                  aux=hook))


def with_recomputation_in_pullbacks(f):
    """``f`` whose pullback recomputes the forward pass instead of keeping its intermediates.

    The recomputation starts from ``optimization_barrier`` copies of the inputs, so no pass can
    merge it back into the forward computation (the point is to not keep those values alive).
    """
    from ..ops._core import OPTIMIZATION_BARRIER

    def barrier(v):
        if not isinstance(v, Tensor):
            return v
        n = v._node
        return wrap(graph.bind_unique(OPTIMIZATION_BARRIER, (n,), (), n.shape, n.dtype, n.weak,
                                      n.device))

    def vjp(*args):
        from .api import value_with_pullback
        from ..ops.random import key_scope, next_key
        # random draws inside f (dropout) must draw the same numbers when the pullback
        # recomputes it: both runs take their keys from one scope key, in the same order
        k = next_key()
        with key_scope(k):
            value = f(*args)

        def pb(ct):
            fresh = tree.map_leaves(barrier, args)
            at = fresh[0] if len(fresh) == 1 else tuple(fresh)
            with key_scope(k):
                _, inner = value_with_pullback(at, f)
            return inner(ct)
        return value, pb

    from .api import DifferentiableFunction
    g = DifferentiableFunction(f, vjp=vjp)
    return g
