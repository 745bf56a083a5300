"""Gradient clipping: by global norm (over every tensor of a gradient) and by value.

Each function takes a gradient of any structure (a model's ``TangentVector``, a list or dict of
Tensors, a single Tensor; ``None`` entries pass through) and returns one of the same structure.
They only record graph ops, so they work inside ``s4.compile``, and every optimizer takes them
as options too (``clip_norm=``, ``clip_value=``).

>>> import s4tf_py as s4
>>> import s4tf_py.optimizers as optimizers
>>> g = {"a": s4.Tensor([3.0]), "b": s4.Tensor([4.0])}
>>> round(optimizers.global_norm(g).item(), 5)
5.0
>>> c = optimizers.clip_by_global_norm(g, 1.0)
>>> round(c["a"].item(), 5), round(c["b"].item(), 5)
(0.6, 0.8)
>>> optimizers.clip_by_value(g, 3.5)["b"].item()
3.5
"""
from __future__ import annotations

from typing import Any, TypeVar

from .. import dtypes as dt
from .. import tree
from ..tensor import Tensor

__all__ = ["global_norm", "clip_by_global_norm", "clip_by_value"]

T = TypeVar("T")

#: added to the norm before dividing, as torch.nn.utils.clip_grad_norm_ does
NORM_EPSILON = 1e-6


def _float_leaves(grads) -> tuple[list, Any]:
    leaves, td = tree.flatten(grads, is_leaf=lambda v: isinstance(v, Tensor))
    return leaves, td


def _is_float_tensor(v) -> bool:
    return isinstance(v, Tensor) and dt.is_floating(v.dtype)


def _norm_dtype(tensors) -> Any:
    return dt.float64 if any(t.dtype == dt.float64 for t in tensors) else dt.float32


def global_norm(grads) -> Tensor:
    """The L2 norm of all floating-point tensors in ``grads`` taken together, as a scalar
    (float32, or float64 when any tensor is float64; half-precision tensors are summed in
    float32)."""
    leaves, _ = _float_leaves(grads)
    ts = [t for t in leaves if _is_float_tensor(t)]
    if not ts:
        raise ValueError("global_norm: the gradient holds no floating-point tensors")
    from ..ops import sqrt
    d = _norm_dtype(ts)
    total = None
    for t in ts:
        x = t if t.dtype == d else t.astype(d)
        sq = (x * x).sum()
        total = sq if total is None else total + sq
    return sqrt(total)


def clip_by_global_norm(grads: T, max_norm: float) -> T:
    """Scale every tensor of ``grads`` by ``min(1, max_norm / (global_norm + 1e-6))``, so the
    global norm is at most ``max_norm`` (the same rule as ``torch.nn.utils.clip_grad_norm_``).
    ``max_norm`` is a graph input, not a constant: changing it does not recompile.
    """
    if not isinstance(max_norm, Tensor) and not max_norm > 0:
        raise ValueError(f"clip_by_global_norm: max_norm must be > 0, got {max_norm}")
    leaves, td = _float_leaves(grads)
    ts = [t for t in leaves if _is_float_tensor(t)]
    if not ts:
        return grads
    from ..ops import minimum
    norm = global_norm(grads)
    coef = minimum(max_norm / (norm + NORM_EPSILON), 1.0)
    out = [(t * (coef if coef.dtype == t.dtype else coef.astype(t.dtype)))
           if _is_float_tensor(t) else t for t in leaves]
    return tree.unflatten(td, out)


def clip_by_value(grads: T, clip_value: float) -> T:
    """Clamp every element of ``grads`` to ``[-clip_value, clip_value]`` (as
    ``torch.nn.utils.clip_grad_value_``)."""
    if not isinstance(clip_value, Tensor) and not clip_value > 0:
        raise ValueError(f"clip_by_value: clip_value must be > 0, got {clip_value}")
    from ..ops import clip
    leaves, td = _float_leaves(grads)
    out = [clip(t, -clip_value, clip_value) if _is_float_tensor(t) else t for t in leaves]
    return tree.unflatten(td, out)
