"""``s4.check_grads``: reverse and forward mode against central finite differences.

As JAX's ``check_grads``: along random directions ``v`` (and random output cotangents ``u``),
compare the directional derivative ``(f(x + εv) - f(x - εv)) / 2ε`` with the JVP ``J·v`` and
with ``<u, J·v> = <Jᵀ·u, v>`` from the VJP, in float64. ``order=2`` checks the derivatives of
the derivative maps as well (gradients of gradients).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..tensor import Tensor

#: (rtol, atol) by dtype of the arguments, for the finite-difference comparisons
TOLERANCES = {dt.float64: (1e-5, 1e-6), dt.float32: (2e-2, 2e-3),
              dt.float16: (1e-1, 1e-1), dt.bfloat16: (2e-1, 2e-1)}


def _inner(a, b) -> float:
    return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))


def _check_close(what, got, want, dtype, rtol=None, atol=None):
    r, a = TOLERANCES.get(dtype, (1e-2, 1e-3))
    r, a = rtol or r, atol or a
    scale = max(1.0, float(np.max(np.abs(want))) if np.size(want) else 1.0)
    if not np.allclose(got, want, rtol=r, atol=a * scale):
        raise AssertionError(f"check_grads: {what} disagrees with finite differences: "
                             f"{got!r} vs {want!r} (rtol={r}, atol={a})")


def check_grads(f, args, order: int = 1, modes=("rev", "fwd"), eps: float | None = None,
                rtol=None, atol=None, seed: int = 0) -> None:
    """Check ``f``'s derivatives at ``args`` (a tuple of Tensors) up to ``order``.

    Raises AssertionError naming the mode and order that disagree.

    >>> import s4tf_py as s4
    >>> s4.check_grads(s4.sin, (s4.Tensor([0.5, 1.0], dtype=s4.float64),), order=2)
    """
    from .api import value_with_differential, value_with_pullback
    args = tuple(a if isinstance(a, Tensor) else Tensor(a, dtype=dt.float64) for a in args)
    for a in args:
        if not dt.is_floating(a.dtype):
            raise TypeError(f"check_grads: arguments must be floating-point tensors, got {a.dtype}")
    dtype = args[0].dtype
    rng = np.random.default_rng(seed)

    def f_flat(*xs):
        return f(*xs)

    out_dtype = f(*args).dtype
    if TOLERANCES.get(out_dtype, (0, 0))[0] > TOLERANCES.get(dtype, (0, 0))[0]:
        dtype = out_dtype              # judge by the less precise of inputs and result
    # finite-difference step: large enough that the result's rounding does not dominate
    eps = eps or {dt.float64: 1e-4, dt.float32: 1e-2, dt.float16: 5e-2, dt.bfloat16: 1e-1}.get(
        dtype, 1e-2)
    x0 = [a.numpy().astype(np.float64) for a in args]
    # directions with unit RMS, so the step eps means the same for scalars and arrays
    v = [d / max(float(np.sqrt(np.mean(d * d))), 1e-12) if d.size else d
         for d in (rng.standard_normal(x.shape) for x in x0)]

    def fd(fn, xs, vs):
        plus = fn(*[Tensor((x + eps * d).astype(a.dtype), dtype=a.dtype) for x, d, a in zip(xs, vs, args)])
        minus = fn(*[Tensor((x - eps * d).astype(a.dtype), dtype=a.dtype) for x, d, a in zip(xs, vs, args)])
        return (np.asarray(plus.numpy(), np.float64) - np.asarray(minus.numpy(), np.float64)) / (2 * eps)

    at = args[0] if len(args) == 1 else args
    tangent = [Tensor(d.astype(a.dtype), dtype=a.dtype) for d, a in zip(v, args)]
    want = fd(f_flat, x0, v)
    if "fwd" in modes:
        _, diff = value_with_differential(at, f_flat)
        got = diff(tangent[0] if len(args) == 1 else tuple(tangent))
        _check_close("forward mode (JVP)", np.asarray(got.numpy(), np.float64), want, dtype,
                     rtol, atol)
    if "rev" in modes:
        out, pb = value_with_pullback(at, f_flat)
        u = rng.standard_normal(out.shape)
        cts = pb(Tensor(u.astype(out.dtype), dtype=out.dtype))
        cts = (cts,) if len(args) == 1 else cts
        got = sum(_inner(c.numpy(), d) for c, d in zip(cts, v))
        _check_close("reverse mode (VJP)", got, _inner(u, want), dtype, rtol, atol)
    if order >= 2:
        _check_derivative_maps(f_flat, args, order, modes, eps, rtol, atol, seed, rng, want,
                               v, tangent)


def _check_derivative_maps(f_flat, args, order, modes, eps, rtol, atol, seed, rng, want, v,
                           tangent):
    """Order > 1: the VJP and JVP maps are functions of the inputs too; check them."""
    import warnings

    from ..ops.reduction import sum as _sum
    from .api import value_with_differential, value_with_pullback
    u = rng.standard_normal(np.shape(want))
    u_t = Tensor(u.astype(args[0].dtype), dtype=args[0].dtype)

    def vjp_fn(*xs):
        _, pb2 = value_with_pullback(xs[0] if len(xs) == 1 else xs, f_flat)
        cts = pb2(u_t)
        cts = (cts,) if len(xs) == 1 else cts
        total = None
        for c, d in zip(cts, v):
            term = _sum(c * Tensor(d.astype(c.dtype), dtype=c.dtype))
            total = term if total is None else total + term
        return total

    def jvp_fn(*xs):
        _, d2 = value_with_differential(xs[0] if len(xs) == 1 else xs, f_flat)
        return d2(tangent[0] if len(xs) == 1 else tuple(tangent))

    with warnings.catch_warnings():
        # the derivative of a linear function does not depend on its inputs: that is expected
        warnings.filterwarnings("ignore", message=".*does not depend on the differentiation",
                                category=UserWarning)
        check_grads(vjp_fn, args, order - 1, modes, eps, rtol, atol, seed + 1)
        if "fwd" in modes:
            check_grads(jvp_fn, args, order - 1, modes, eps, rtol, atol, seed + 2)
