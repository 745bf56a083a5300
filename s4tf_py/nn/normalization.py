"""Normalization layers: ``BatchNorm``, ``LayerNorm``, ``GroupNorm``, ``InstanceNorm`` (S4TF's,
with its defaults) and ``RMSNorm`` (plus Gemma's ``(1 + w)`` variant).

Every layer normalizes with ``(x - mean) * rsqrt(variance + epsilon) * scale + offset``, the
moments computed with ``s4.mean(..., keepdims=True)`` and the variance as the mean of squared
deviations (biased, as S4TF's ``moments``). Where the normalized axes are trailing (LayerNorm
and RMSNorm over the last axis) the LLVM backend fuses the whole layer into one row kernel.
float16/bfloat16 inputs are normalized in float32 and the result cast back.

``BatchNorm`` keeps running statistics: state, not parameters (``s4.no_derivative`` fields, left
out of the ``TangentVector`` and of optimizers, saved by ``state_dict``). They change only in
the training phase (``with s4.learning_phase("training"):``); inference, the default,
normalizes with them.

>>> import s4tf_py as s4
>>> from s4tf_py.nn.normalization import BatchNorm, LayerNorm
>>> x = s4.Tensor([[1.0, 2.0], [3.0, 6.0]])
>>> print(LayerNorm(2)(x).numpy().round(3))
[[-0.998  0.998]
 [-1.     1.   ]]
>>> bn = BatchNorm(2)
>>> with s4.learning_phase("training"):
...     y = bn(x)
>>> print(y.numpy().round(3), bn.running_mean.numpy().round(3))
[[-1. -1.]
 [ 1.  1.]] [0.02 0.04]
>>> sorted(bn.state_dict())
['offset', 'running_mean', 'running_variance', 'scale']
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as dt
from ..autodiff import without_derivative
from ..autodiff.structs import no_derivative
from ..errors import DTypeError, ShapeError, op_error
from ..ops import math as _m
from ..ops import reduction as _r
from ..ops import shape as _s
from ..ops._core import to_tensor
from ..tensor import Tensor
from .context import is_training
from .layer import Layer

__all__ = ["BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm"]


# ---- shared helpers -----------------------------------------------------------------------------

def _compute_dtype(x: Tensor):
    """float32 for float16/bfloat16 inputs (their statistics need the range and mantissa),
    else the input's own dtype."""
    return dt.float32 if x.dtype in dt.LOW_PRECISION else x.dtype


def _check_float(name: str, x: Tensor) -> None:
    if not dt.is_floating(x.dtype):
        raise op_error(DTypeError, name, f"expects a floating-point input, got {x.dtype}", [x])


def _feature_axis(name: str, axis: int, x: Tensor, features: int, min_rank: int = 1) -> int:
    """``axis`` made non-negative for ``x``, after checking the rank and the feature count."""
    if x.ndim < min_rank or not -x.ndim <= axis < x.ndim:
        need = max(min_rank, axis + 1 if axis >= 0 else -axis)
        raise op_error(ShapeError, name, f"expects an input of rank >= {need} with {features} "
                                         f"features along axis {axis}, got shape {x.shape}", [x])
    ax = axis % x.ndim
    if x.shape[ax] != features:
        raise op_error(ShapeError, name, f"expects {features} features along axis {axis}, got "
                                         f"shape {x.shape}", [x])
    return ax


def _along(v: Tensor, ax: int, ndim: int) -> Tensor:
    """A per-feature vector shaped to broadcast along axis ``ax`` of a rank-``ndim`` value."""
    if ax == ndim - 1:
        return v
    shape = [1] * ndim
    shape[ax] = v.shape[0]
    return _s.reshape(v, tuple(shape))


def _moments(x: Tensor, axes: tuple) -> tuple[Tensor, Tensor, Tensor]:
    """``(mean, centered, variance)`` over ``axes`` (kept as size-1 axes); the variance is the
    mean of the squared deviations, the form the LLVM backend fuses with the mean."""
    mean = _r.mean(x, axis=axes, keepdims=True)
    xc = x - mean
    return mean, xc, _r.mean(xc * xc, axis=axes, keepdims=True)


def _vector(v, n: int, fill: float, dtype, name: str, what: str) -> Tensor:
    if v is None:
        return Tensor(np.full((n,), fill, dtype=dtype))
    v = to_tensor(v)
    if v.shape != (n,):
        raise op_error(ShapeError, name, f"expects {what} of shape ({n},), got shape {v.shape}",
                       [v])
    return v


def _feature_count(name: str, feature_count, *given) -> int:
    for v in given:
        if v is not None:
            n = to_tensor(v).shape
            if len(n) != 1:
                raise op_error(ShapeError, name, f"expects rank-1 parameters, got shape {n}")
            if feature_count is not None and n[0] != feature_count:
                raise op_error(ShapeError, name, f"feature_count is {feature_count} but a "
                                                 f"parameter has shape {n}")
            return n[0]
    if feature_count is None:
        raise TypeError(f"{name} needs feature_count (or its parameters)")
    if int(feature_count) < 1:
        raise ValueError(f"{name}: feature_count must be positive, got {feature_count}")
    return int(feature_count)


# ---- BatchNorm ----------------------------------------------------------------------------------

class BatchNorm(Layer):
    """Batch normalization (S4TF's ``BatchNorm``; Ioffe & Szegedy 2015).

    ``BatchNorm(feature_count, axis=-1, momentum=0.99, epsilon=0.001)``: ``offset`` (zeros) and
    ``scale`` (ones) are parameters; ``running_mean`` (zeros) and ``running_variance`` (ones)
    are state, stored in float32 even for float16/bfloat16 layers.

    * training phase: normalizes with the batch's mean and (biased) variance over every axis
      but ``axis``, and moves the running statistics towards them:
      ``running += (batch - running) * (1 - momentum)``;
    * inference phase (the default): normalizes with the running statistics.

    ``momentum`` is S4TF's and Keras' (the weight of the old value): PyTorch's ``momentum`` is
    ``1 - momentum``, and PyTorch updates ``running_var`` with the *unbiased* batch variance
    where S4TF and Keras use the biased one used for normalizing.

    The update assigns the fields (``self.running_mean = ...``, new tensors: one held elsewhere
    keeps its value). ``s4.Layer`` writes such state assignments made on the copy that
    ``s4.gradient(at=model, ...)`` differentiates through to ``model`` (S4TF's reference-type
    ``Parameter``), and a compiled step takes the state as input and returns it with the model.

    >>> import s4tf_py as s4
    >>> bn = BatchNorm(3, momentum=0.9)
    >>> x = s4.Tensor([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]])
    >>> bn(x).tolist()                       # inference: running stats 0 and 1
    [[0.0, 0.999..., 1.999...], [1.999..., 2.998..., 3.998...]]
    >>> with s4.learning_phase("training"):
    ...     _ = bn(x)
    >>> print(bn.running_mean.numpy().round(4), bn.running_variance.numpy().round(4))
    [0.1 0.2 0.3] [1. 1. 1.]
    """

    offset: Tensor
    scale: Tensor
    running_mean: Tensor = no_derivative(default=None)
    running_variance: Tensor = no_derivative(default=None)
    axis: int = no_derivative(default=-1)
    momentum: float = no_derivative(default=0.99)
    epsilon: float = no_derivative(default=1e-3)

    def __init__(self, feature_count: int | None = None, axis: int = -1, momentum: float = 0.99,
                 epsilon: float = 1e-3, *, offset: Tensor | None = None,
                 scale: Tensor | None = None, running_mean: Tensor | None = None,
                 running_variance: Tensor | None = None, dtype=dt.float32):
        n = _feature_count("BatchNorm", feature_count, offset, scale)
        state_dtype = dt.float32 if dt.canonical(dtype) in dt.LOW_PRECISION else dtype
        self.offset = _vector(offset, n, 0.0, dtype, "BatchNorm", "offset")
        self.scale = _vector(scale, n, 1.0, dtype, "BatchNorm", "scale")
        self.running_mean = _vector(running_mean, n, 0.0, state_dtype, "BatchNorm",
                                    "running_mean")
        self.running_variance = _vector(running_variance, n, 1.0, state_dtype, "BatchNorm",
                                        "running_variance")
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def __call__(self, x: Tensor) -> Tensor:
        x = to_tensor(x)
        _check_float("BatchNorm", x)
        ax = _feature_axis("BatchNorm", self.axis, x, self.offset.shape[0], min_rank=2)
        cdt = _compute_dtype(x)
        xf = x.astype(cdt) if cdt != x.dtype else x
        scale = _along(self.scale, ax, x.ndim)
        offset = _along(self.offset, ax, x.ndim)
        if is_training():
            axes = tuple(i for i in range(x.ndim) if i != ax)
            mean, xc, var = _moments(xf, axes)
            y = xc * (_m.rsqrt(var + self.epsilon) * scale) + offset
            self._update_running(_s.reshape(mean, (-1,)), _s.reshape(var, (-1,)))
        else:
            mean = _along(self.running_mean, ax, x.ndim)
            var = _along(self.running_variance, ax, x.ndim)
            y = (xf - mean) * (_m.rsqrt(var + self.epsilon) * scale) + offset
        return y.astype(x.dtype) if x.dtype in dt.LOW_PRECISION else y

    def _update_running(self, mean: Tensor, var: Tensor) -> None:
        decay = 1.0 - self.momentum
        # state has no derivative: the update must not keep the batch's graph for a pullback
        mean, var = without_derivative(mean), without_derivative(var)
        rm, rv = self.running_mean, self.running_variance
        mean = mean.astype(rm.dtype) if mean.dtype != rm.dtype else mean
        var = var.astype(rv.dtype) if var.dtype != rv.dtype else var
        # S4TF: running += (batch - running) * (1 - momentum)
        self.running_mean = rm + (mean - rm) * decay
        self.running_variance = rv + (var - rv) * decay


# ---- LayerNorm ----------------------------------------------------------------------------------

class LayerNorm(Layer):
    """Layer normalization over one axis (S4TF's ``LayerNorm``; Ba et al. 2016).

    ``LayerNorm(feature_count, axis=-1, epsilon=0.001)``: each position is normalized by the
    mean and variance of its ``feature_count`` features along ``axis``, then scaled by
    ``scale`` (ones) and shifted by ``offset`` (zeros). Over the last axis this is
    ``torch.nn.LayerNorm(feature_count, eps=epsilon)``, and one fused kernel on LLVM.

    >>> import s4tf_py as s4
    >>> print(LayerNorm(3)(s4.Tensor([[1.0, 2.0, 3.0]])).numpy().round(4))
    [[-1.2238  0.      1.2238]]
    """

    offset: Tensor
    scale: Tensor
    axis: int = no_derivative(default=-1)
    epsilon: float = no_derivative(default=1e-3)

    def __init__(self, feature_count: int | None = None, axis: int = -1,
                 epsilon: float = 1e-3, *, offset: Tensor | None = None,
                 scale: Tensor | None = None, dtype=dt.float32):
        n = _feature_count("LayerNorm", feature_count, offset, scale)
        self.offset = _vector(offset, n, 0.0, dtype, "LayerNorm", "offset")
        self.scale = _vector(scale, n, 1.0, dtype, "LayerNorm", "scale")
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def __call__(self, x: Tensor) -> Tensor:
        x = to_tensor(x)
        _check_float("LayerNorm", x)
        ax = _feature_axis("LayerNorm", self.axis, x, self.offset.shape[0])
        cdt = _compute_dtype(x)
        xf = x.astype(cdt) if cdt != x.dtype else x
        _, xc, var = _moments(xf, (ax,))
        y = xc * _m.rsqrt(var + self.epsilon) * _along(self.scale, ax, x.ndim) + \
            _along(self.offset, ax, x.ndim)
        return y.astype(x.dtype) if x.dtype in dt.LOW_PRECISION else y


# ---- GroupNorm and InstanceNorm -----------------------------------------------------------------

def _group_norm(name: str, x: Tensor, offset: Tensor, scale: Tensor, groups: int, axis: int,
                epsilon: float) -> Tensor:
    """S4TF's group normalization: the features along ``axis`` split into ``groups`` contiguous
    groups; each (example, group) normalized over its features and every other non-batch axis."""
    x = to_tensor(x)
    _check_float(name, x)
    c = offset.shape[0]
    ax = _feature_axis(name, axis, x, c, min_rank=2)
    if ax == 0:
        raise op_error(ShapeError, name, f"the feature axis cannot be the batch axis 0 (axis="
                                         f"{axis}), got shape {x.shape}", [x])
    cdt = _compute_dtype(x)
    xf = x.astype(cdt) if cdt != x.dtype else x
    cg = c // groups
    g = _s.reshape(xf, x.shape[:ax] + (groups, cg) + x.shape[ax + 1:])
    # with the group axis moved next to the batch axis the normalized axes are trailing: the
    # whole normalization is one fused row kernel (reading the input transposed), and moving
    # the result back is one transposing copy
    moved = _s.moveaxis(g, ax, 1)                    # (N, G, ..., Cg, ...)
    _, xc, var = _moments(moved, tuple(range(2, moved.ndim)))
    shape = [1] * moved.ndim
    shape[1], shape[ax + 1] = groups, cg
    shape = tuple(shape)
    y = xc * _m.rsqrt(var + epsilon) * _s.reshape(scale, shape) + _s.reshape(offset, shape)
    y = _s.reshape(_s.moveaxis(y, 1, ax), x.shape)
    return y.astype(x.dtype) if x.dtype in dt.LOW_PRECISION else y


class GroupNorm(Layer):
    """Group normalization (S4TF's ``GroupNorm``; Wu & He 2018).

    ``GroupNorm(feature_count, group_count, axis=-1, epsilon=0.001)``: the ``feature_count``
    features along ``axis`` (not the batch axis 0) form ``group_count`` groups of consecutive
    features; each example's group is normalized over its features and all other axes, then
    scaled and shifted per feature. ``torch.nn.GroupNorm(group_count, feature_count)`` on
    the channels-first layout computes the same.

    >>> import s4tf_py as s4
    >>> gn = GroupNorm(4, 2)
    >>> print(gn(s4.Tensor([[1.0, 3.0, 10.0, 10.0]])).numpy().round(3))
    [[-1.  1.  0.  0.]]
    """

    offset: Tensor
    scale: Tensor
    group_count: int = no_derivative(default=1)
    axis: int = no_derivative(default=-1)
    epsilon: float = no_derivative(default=1e-3)

    def __init__(self, feature_count: int | None = None, group_count: int | None = None,
                 axis: int = -1, epsilon: float = 1e-3, *, offset: Tensor | None = None,
                 scale: Tensor | None = None, dtype=dt.float32):
        n = _feature_count("GroupNorm", feature_count, offset, scale)
        if group_count is None:
            raise TypeError("GroupNorm needs group_count")
        if int(group_count) < 1 or n % int(group_count):
            raise ValueError(f"GroupNorm: group_count must be positive and divide the "
                             f"{n} features, got {group_count}")
        if axis == 0:
            raise ValueError("GroupNorm: the feature axis cannot be the batch axis 0")
        self.offset = _vector(offset, n, 0.0, dtype, "GroupNorm", "offset")
        self.scale = _vector(scale, n, 1.0, dtype, "GroupNorm", "scale")
        self.group_count = int(group_count)
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def __call__(self, x: Tensor) -> Tensor:
        return _group_norm("GroupNorm", x, self.offset, self.scale, self.group_count,
                           self.axis, self.epsilon)


class InstanceNorm(Layer):
    """Instance normalization (S4TF's ``InstanceNorm``; Ulyanov et al. 2016): ``GroupNorm`` with
    one group per feature, so each example's feature is normalized over the spatial axes.

    ``InstanceNorm(feature_count, axis=-1, epsilon=0.001)``; S4TF delegated to a ``GroupNorm``
    field, here ``offset`` and ``scale`` are the layer's own (key paths ``offset``/``scale``).
    ``torch.nn.InstanceNorm2d(feature_count, affine=True)`` on NCHW computes the same.

    >>> import s4tf_py as s4
    >>> x = s4.Tensor([[[1.0, 5.0], [3.0, 5.0]]])          # (N, W, C) = (1, 2, 2)
    >>> print(InstanceNorm(2)(x).numpy().round(3))
    [[[-1.  0.]
      [ 1.  0.]]]
    """

    offset: Tensor
    scale: Tensor
    axis: int = no_derivative(default=-1)
    epsilon: float = no_derivative(default=1e-3)

    def __init__(self, feature_count: int | None = None, axis: int = -1,
                 epsilon: float = 1e-3, *, offset: Tensor | None = None,
                 scale: Tensor | None = None, dtype=dt.float32):
        n = _feature_count("InstanceNorm", feature_count, offset, scale)
        if axis == 0:
            raise ValueError("InstanceNorm: the feature axis cannot be the batch axis 0")
        self.offset = _vector(offset, n, 0.0, dtype, "InstanceNorm", "offset")
        self.scale = _vector(scale, n, 1.0, dtype, "InstanceNorm", "scale")
        self.axis = int(axis)
        self.epsilon = float(epsilon)

    def __call__(self, x: Tensor) -> Tensor:
        x = to_tensor(x)
        if x.ndim < 3:
            # one feature per group and no spatial axis leaves nothing to normalize over
            raise op_error(ShapeError, "InstanceNorm", "expects an input of rank >= 3 (batch, "
                                                       "spatial..., features), got shape "
                                                       f"{x.shape}", [x])
        return _group_norm("InstanceNorm", x, self.offset, self.scale, self.offset.shape[0],
                           self.axis, self.epsilon)


# ---- RMSNorm ------------------------------------------------------------------------------------

class RMSNorm(Layer):
    """Root-mean-square normalization over the last axis (Zhang & Sennrich 2019).

    ``RMSNorm(feature_count, epsilon=1e-6, scale_plus_one=False)``:
    ``x * rsqrt(mean(x², axis=-1) + epsilon) * scale`` with ``scale`` initialized to ones
    (``torch.nn.RMSNorm(feature_count, eps=epsilon)``). ``scale_plus_one=True`` is Gemma's form,
    ``... * (1 + scale)`` with ``scale`` initialized to zeros. Either way the computation runs
    in float32 for float16/bfloat16 inputs (scale included) and the result is cast back to the
    input's dtype; it is one fused row kernel on LLVM.

    >>> import s4tf_py as s4
    >>> print(RMSNorm(2)(s4.Tensor([[3.0, 4.0]])).numpy().round(4))
    [[0.8485 1.1314]]
    >>> RMSNorm(2, scale_plus_one=True).scale.tolist()
    [0.0, 0.0]
    """

    scale: Tensor
    epsilon: float = no_derivative(default=1e-6)
    scale_plus_one: bool = no_derivative(default=False)

    def __init__(self, feature_count: int | None = None, epsilon: float = 1e-6, *,
                 scale_plus_one: bool = False, scale: Tensor | None = None,
                 dtype=dt.float32):
        n = _feature_count("RMSNorm", feature_count, scale)
        self.scale = _vector(scale, n, 0.0 if scale_plus_one else 1.0, dtype, "RMSNorm",
                             "scale")
        self.epsilon = float(epsilon)
        self.scale_plus_one = bool(scale_plus_one)

    def __call__(self, x: Tensor) -> Tensor:
        x = to_tensor(x)
        _check_float("RMSNorm", x)
        _feature_axis("RMSNorm", -1, x, self.scale.shape[0])
        cdt = _compute_dtype(x)
        xf = x.astype(cdt) if cdt != x.dtype else x
        w = self.scale.astype(cdt) if self.scale.dtype in dt.LOW_PRECISION else self.scale
        if self.scale_plus_one:
            w = 1.0 + w
        y = xf * _m.rsqrt(_r.mean(xf * xf, axis=-1, keepdims=True) + self.epsilon) * w
        return y.astype(x.dtype) if x.dtype in dt.LOW_PRECISION else y
