"""Convolution layers (S4TF's ``Convolutional.swift``): ``Conv1D/2D/3D``,
``TransposedConv1D/2D/3D``, ``DepthwiseConv2D``, ``SeparableConv1D/2D``.

Layouts are S4TF's (and TensorFlow's): inputs are channels-last (``NWC``, ``NHWC``, ``NDHWC``);
filters are ``(*kernel, in_channels, out_channels)`` (``HWIO``), transposed-convolution filters
``(*kernel, out_channels, in_channels)``, depthwise filters ``(*kernel, in_channels,
multiplier)``. Each layer is built either from a shape, with S4TF's default initialization
(Glorot uniform filters, zero biases)::

    Conv2D(filter_shape=(3, 3, 16, 32), strides=(1, 1), padding="same", activation=s4.relu)

or from tensors (S4TF's ``init(filter:bias:...)``): ``Conv2D(filter=w, bias=b)``. As in S4TF, a
layer built from a filter without a bias adds none (``use_bias`` is then False).

``strides``, ``dilations`` (and pooling sizes in :mod:`s4tf_py.nn.pooling`) take an int, one int
per spatial dimension, or S4TF's full-rank tuple with 1 at batch and channels; S4TF's 1-D
spellings ``stride=`` and ``dilation=`` are accepted too. ``padding`` is ``"valid"``, ``"same"``
(TensorFlow's rule: output ``ceil(in / stride)``, the extra padding at the end) or explicit.

The 1-, 2- and 3-D variants of a layer are one class each over a shared base that reads the
number of spatial dimensions from the class attribute ``spatial_rank``.

>>> import s4tf_py as s4
>>> from s4tf_py.nn.convolutional import Conv2D
>>> conv = Conv2D(filter_shape=(3, 3, 2, 4), padding="same", activation=s4.relu, seed=0)
>>> conv(s4.ones((1, 5, 5, 2))).shape
(1, 5, 5, 4)
>>> [name for name, _ in conv.named_parameters()]
['filter', 'bias']
"""
from __future__ import annotations

from typing import Callable, ClassVar, Sequence

from .. import dtypes as dt
from .. import random as _random
from ..autodiff.structs import no_derivative
from ..errors import ShapeError, op_error
from ..ops import nn as F
from ..ops._core import to_tensor
from ..ops.nn import _padding, _spatial
from ..ops.shape import reshape
from ..tensor import Tensor
from . import initializers
from .layer import Layer

__all__ = ["Conv1D", "Conv2D", "Conv3D", "TransposedConv1D", "TransposedConv2D",
           "TransposedConv3D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]

_SPATIAL_NAMES = {1: "width", 2: "height, width", 3: "depth, height, width"}


# ---- shared machinery (also used by pooling, reshaping and morphology) --------------------------

class SpatialLayer(Layer):
    """Base of layers over channels-last data with ``spatial_rank`` spatial dimensions.

    A subclass that only sets ``spatial_rank`` (and declares no new fields) keeps its base's
    constructor: ``Layer`` would otherwise synthesize a memberwise one for it.
    """

    spatial_rank: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs):
        if "__init__" not in cls.__dict__ and not cls.__dict__.get("__annotations__"):
            for base in cls.__mro__[1:]:
                if "__init__" in base.__dict__:
                    cls.__init__ = base.__dict__["__init__"]
                    break
        super().__init_subclass__(**kwargs)

    def _check_input(self, x, channels: int | None = None) -> Tensor:
        """``x`` as a Tensor of rank ``spatial_rank + 2`` (with ``channels`` channels if given),
        or a ShapeError naming the layer."""
        x = to_tensor(x)
        rank = self.spatial_rank + 2
        name = type(self).__name__
        if x.ndim != rank:
            raise op_error(ShapeError, name,
                           f"expects a {rank}-D input (batch, {_SPATIAL_NAMES[self.spatial_rank]}, "
                           f"channels), got shape {x.shape}", [x])
        if channels is not None and x.shape[-1] != channels:
            raise op_error(ShapeError, name,
                           f"expects inputs with {channels} channels in the last dimension, got "
                           f"shape {x.shape}", [x])
        return x


def spatial_tuple(cls_name: str, value, rank: int, name: str, alias=None,
                  alias_name: str | None = None) -> tuple[int, ...]:
    """``value`` (an int, ``rank`` ints or S4TF's full-rank tuple) as ``rank`` positive ints;
    ``alias`` is S4TF's singular spelling (``stride=``), used when given."""
    if alias is not None:
        value = alias
        name = alias_name or name
    out = _spatial(cls_name, value, rank, name)
    if any(v < 1 for v in out):
        raise op_error(ValueError, cls_name, f"{name} must be positive, got {out}")
    return out


def padding_spec(cls_name: str, padding, rank: int):
    """``"valid"``/``"same"`` (lowercased), or explicit padding as ``rank`` ``(lo, hi)`` pairs
    (a hashable static value, so that compiled steps cache on it)."""
    if isinstance(padding, str):
        p = padding.lower()
        if p not in ("valid", "same"):
            raise op_error(ValueError, cls_name, f"padding must be 'valid', 'same' or explicit, "
                                                 f"got {padding!r}")
        return p
    # explicit forms do not depend on the input size: normalize them once
    return _padding(cls_name, padding, (0,) * rank, (1,) * rank, (1,) * rank)


def _init_kwargs(seed, key, n: int) -> list[dict]:
    """Randomness for ``n`` initializer calls: the first gets the seed (or key) itself, so that
    ``Conv2D(..., seed=0).filter`` equals ``glorot_uniform(shape, seed=0)``; the others get
    keys folded from it; with neither seed nor key, each draws from the global key."""
    if seed is None and key is None:
        return [{} for _ in range(n)]
    base = key if key is not None else _random.key(seed)
    first = {"seed": seed} if key is None else {"key": key}
    return [first] + [{"key": _random.fold_in(base, i)} for i in range(1, n)]


def _filter_shape(cls_name: str, shape, rank: int, what: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise op_error(TypeError, cls_name, f"{what} must be a tuple of ints, got {shape!r}") \
            from None
    if len(shape) != rank + 2 or any(d < 1 for d in shape):
        raise op_error(ValueError, cls_name, f"{what} must be {rank + 2} positive ints "
                                             f"({rank} kernel sizes, then 2 channel counts), "
                                             f"got {shape}")
    return shape


def _check_param(cls_name: str, t: Tensor, rank: int, what: str) -> Tensor:
    t = to_tensor(t)
    if t.ndim != rank:
        raise op_error(ShapeError, cls_name, f"expects a {rank}-D {what}, got shape {t.shape}", [t])
    return t


class _FilterLayer(SpatialLayer):
    """Filters, then ``+ bias`` (when ``use_bias``), then ``activation`` (S4TF's order)."""

    def _filters(self) -> tuple[int, int]:     # pragma: no cover - every subclass defines it
        """``(input channels, output channels)`` of the layer."""
        raise NotImplementedError

    def _apply(self, x: Tensor) -> Tensor:     # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def __call__(self, x) -> Tensor:
        x = self._check_input(x, self._filters()[0])
        y = self._apply(x)
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y


def _bias_for(cls_name, bias, use_bias, n_out, dtype, initializer, kwargs):
    """The bias Tensor and the use_bias flag, with S4TF's rule for layers built from tensors."""
    if bias is not None:
        bias = _check_param(cls_name, bias, 1, "bias")
        if bias.shape[0] != n_out:
            raise op_error(ShapeError, cls_name, f"the bias needs {n_out} elements (the output "
                                                 f"channels), got shape {bias.shape}", [bias])
        return bias, (True if use_bias is None else bool(use_bias))
    # no bias tensor: zeros (or the initializer's) kept as a field, as Dense does, so that
    # checkpoints and optimizers see the same parameters whether or not it is added
    return initializer((n_out,), dtype, **kwargs), bool(use_bias)


# ---- Conv1D / Conv2D / Conv3D and the transposed convolutions -----------------------------------

class _ConvBase(_FilterLayer):
    """Shared constructor of ``Conv*`` and ``TransposedConv*``: one filter and one bias."""

    filter: Tensor
    bias: Tensor
    activation: Callable | None = no_derivative(default=None)
    strides: tuple = no_derivative(default=None)
    padding: object = no_derivative(default="valid")
    dilations: tuple = no_derivative(default=None)
    use_bias: bool = no_derivative(default=True)
    groups: int = no_derivative(default=1)

    def __init__(self, filter_shape: Sequence[int] | None = None,
                 strides: int | Sequence[int] = 1, padding="valid",
                 dilations: int | Sequence[int] = 1, activation: Callable | None = None,
                 use_bias: bool | None = None, *, filter: Tensor | None = None,
                 bias: Tensor | None = None, groups: int = 1,
                 filter_initializer: Callable = initializers.glorot_uniform,
                 bias_initializer: Callable = initializers.zeros, seed: int | None = None,
                 key: Tensor | None = None, dtype=dt.float32, stride: int | None = None,
                 dilation: int | None = None):
        name, rank = type(self).__name__, self.spatial_rank
        init = _init_kwargs(seed, key, 2)
        if filter is None:
            if filter_shape is None:
                raise op_error(TypeError, name, "needs filter_shape (or filter=)")
            shape = _filter_shape(name, filter_shape, rank, "filter_shape")
            filter = filter_initializer(shape, dtype, **init[0])
            if use_bias is None:
                use_bias = True
        else:
            if filter_shape is not None:
                raise op_error(TypeError, name, "pass filter_shape or filter=, not both")
            filter = _check_param(name, filter, rank + 2, "filter")
            if use_bias is None:
                use_bias = bias is not None     # S4TF: init(filter:bias: nil) adds no bias
        self.filter = filter
        self.groups = int(groups)
        if self.groups < 1:
            raise op_error(ValueError, name, f"groups must be positive, got {groups}")
        self.bias, self.use_bias = _bias_for(name, bias, use_bias, self._filters()[1],
                                             filter.dtype, bias_initializer, init[1])
        self.activation = activation
        self.strides = spatial_tuple(name, strides, rank, "strides", stride, "stride")
        self.dilations = spatial_tuple(name, dilations, rank, "dilations", dilation, "dilation")
        self.padding = padding_spec(name, padding, rank)


class _Conv(_ConvBase):
    """``activation(conv(x, filter) + bias)`` with a ``(*kernel, in / groups, out)`` filter."""

    def _filters(self):
        return self.filter.shape[-2] * self.groups, self.filter.shape[-1]

    def _apply(self, x):
        return F.conv_general(x, self.filter, self.strides, self.padding,
                              rhs_dilation=self.dilations, feature_group_count=self.groups)


class Conv1D(_Conv):
    """A 1-D convolution (S4TF ``Conv1D``): input ``(batch, width, in)``, filter
    ``(width, in / groups, out)``, bias ``(out,)``.

    ``Conv1D(filter_shape, strides=1, padding="valid", dilations=1, activation=None,
    use_bias=True, *, filter=, bias=, groups=1, filter_initializer=, bias_initializer=,
    seed=, key=, dtype=)``; ``stride=``/``dilation=`` are S4TF's spellings.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import Conv1D
    >>> Conv1D(filter_shape=(3, 2, 5), stride=2, seed=0)(s4.ones((4, 9, 2))).shape
    (4, 4, 5)
    """

    spatial_rank = 1


class Conv2D(_Conv):
    """A 2-D convolution (S4TF ``Conv2D``): NHWC input, HWIO filter
    ``(kh, kw, in / groups, out)``, bias ``(out,)``; arguments as :class:`Conv1D`.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import Conv2D
    >>> conv = Conv2D(filter=s4.ones((2, 2, 1, 1)))          # from a tensor: no bias
    >>> conv.use_bias, conv(s4.ones((1, 3, 3, 1))).tolist()
    (False, [[[[4.0], [4.0]], [[4.0], [4.0]]]])
    """

    spatial_rank = 2


class Conv3D(_Conv):
    """A 3-D convolution (S4TF ``Conv3D``): NDHWC input, DHWIO filter
    ``(kd, kh, kw, in / groups, out)``, bias ``(out,)``; arguments as :class:`Conv1D`.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import Conv3D
    >>> Conv3D(filter_shape=(2, 2, 2, 3, 4), strides=2, seed=0)(s4.ones((1, 4, 4, 4, 3))).shape
    (1, 2, 2, 2, 4)
    """

    spatial_rank = 3


class _TransposedConv(_ConvBase):
    """``activation(conv_transpose(x, filter) + bias)`` with a ``(*kernel, out, in)`` filter.

    The output size is S4TF's: ``(in - 1) * stride + dilated_kernel`` with ``"valid"``
    padding, ``in * stride`` with ``"same"`` (for explicit padding, the valid size less the
    padding).
    """

    def _filters(self):
        return self.filter.shape[-1], self.filter.shape[-2] * self.groups

    def _apply(self, x):
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[self.spatial_rank - 1]
        return fn(x, self.filter, None, self.strides, self.padding, 0, self.dilations,
                  self.groups)


class TransposedConv1D(_TransposedConv):
    """A 1-D transposed convolution (S4TF ``TransposedConv1D``): input ``(batch, width, in)``,
    filter ``(width, out, in)``, bias ``(out,)``; arguments as :class:`Conv1D`.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import TransposedConv1D
    >>> x = s4.ones((1, 4, 3))
    >>> TransposedConv1D(filter_shape=(3, 2, 3), stride=2, seed=0)(x).shape   # (4-1)*2 + 3
    (1, 9, 2)
    >>> TransposedConv1D(filter_shape=(3, 2, 3), stride=2, padding="same", seed=0)(x).shape
    (1, 8, 2)
    """

    spatial_rank = 1


class TransposedConv2D(_TransposedConv):
    """A 2-D transposed convolution (S4TF ``TransposedConv2D``): NHWC input, filter
    ``(kh, kw, out, in)``, bias ``(out,)``; output ``(in - 1) * stride + kernel`` ("valid")
    or ``in * stride`` ("same").

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import TransposedConv2D
    >>> up = TransposedConv2D(filter_shape=(4, 4, 8, 16), strides=(2, 2), padding="same", seed=0)
    >>> up(s4.ones((2, 7, 7, 16))).shape
    (2, 14, 14, 8)
    """

    spatial_rank = 2


class TransposedConv3D(_TransposedConv):
    """A 3-D transposed convolution (S4TF ``TransposedConv3D``): NDHWC input, filter
    ``(kd, kh, kw, out, in)``, bias ``(out,)``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import TransposedConv3D
    >>> TransposedConv3D(filter_shape=(2, 2, 2, 1, 3), strides=2, seed=0)(
    ...     s4.ones((1, 2, 2, 2, 3))).shape
    (1, 4, 4, 4, 1)
    """

    spatial_rank = 3


# ---- depthwise and separable convolutions -------------------------------------------------------

def _depthwise(x: Tensor, filt: Tensor, strides, padding, dilations) -> Tensor:
    """Depthwise convolution of any rank: filter ``(*kernel, C, multiplier)`` is a grouped
    convolution with C groups and filter ``(*kernel, 1, C * multiplier)`` (output channel
    ``c * multiplier + m`` from input channel ``c``, TensorFlow's order)."""
    *kernel, c, m = filt.shape
    w = reshape(filt, (*kernel, 1, c * m))
    return F.conv_general(x, w, strides, padding, rhs_dilation=dilations, feature_group_count=c)


class _DepthwiseConv(_ConvBase):
    """``activation(depthwise_conv(x, filter) + bias)``; filter ``(*kernel, in, multiplier)``."""

    def __init__(self, filter_shape: Sequence[int] | None = None,
                 strides: int | Sequence[int] = 1, padding="valid",
                 dilations: int | Sequence[int] = 1, activation: Callable | None = None,
                 use_bias: bool | None = None, *, filter: Tensor | None = None,
                 bias: Tensor | None = None,
                 filter_initializer: Callable = initializers.glorot_uniform,
                 bias_initializer: Callable = initializers.zeros, seed: int | None = None,
                 key: Tensor | None = None, dtype=dt.float32):
        # the convolutions' arguments less groups: a depthwise filter is grouped by its layout
        super().__init__(filter_shape, strides, padding, dilations, activation, use_bias,
                         filter=filter, bias=bias, filter_initializer=filter_initializer,
                         bias_initializer=bias_initializer, seed=seed, key=key, dtype=dtype)

    def _filters(self):
        return self.filter.shape[-2], self.filter.shape[-2] * self.filter.shape[-1]

    def _apply(self, x):
        return _depthwise(x, self.filter, self.strides, self.padding, self.dilations)


class DepthwiseConv2D(_DepthwiseConv):
    """A 2-D depthwise convolution (S4TF ``DepthwiseConv2D``): NHWC input, filter
    ``(kh, kw, in, multiplier)``, bias ``(in * multiplier,)``; each input channel is convolved
    with its own ``multiplier`` filters.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import DepthwiseConv2D
    >>> dw = DepthwiseConv2D(filter_shape=(3, 3, 4, 2), padding="same", seed=0)
    >>> dw(s4.ones((1, 6, 6, 4))).shape, dw.bias.shape
    ((1, 6, 6, 8), (8,))
    """

    spatial_rank = 2


class _SeparableConv(_FilterLayer):
    """A depthwise convolution then a pointwise (1x1) convolution, then bias and activation."""

    depthwise_filter: Tensor
    pointwise_filter: Tensor
    bias: Tensor
    activation: Callable | None = no_derivative(default=None)
    strides: tuple = no_derivative(default=None)
    padding: object = no_derivative(default="valid")
    dilations: tuple = no_derivative(default=None)
    use_bias: bool = no_derivative(default=True)

    def __init__(self, depthwise_filter_shape: Sequence[int] | None = None,
                 pointwise_filter_shape: Sequence[int] | None = None,
                 strides: int | Sequence[int] = 1, padding="valid",
                 dilations: int | Sequence[int] = 1, activation: Callable | None = None,
                 use_bias: bool | None = None, *, depthwise_filter: Tensor | None = None,
                 pointwise_filter: Tensor | None = None, bias: Tensor | None = None,
                 depthwise_filter_initializer: Callable = initializers.glorot_uniform,
                 pointwise_filter_initializer: Callable = initializers.glorot_uniform,
                 bias_initializer: Callable = initializers.zeros, seed: int | None = None,
                 key: Tensor | None = None, dtype=dt.float32, stride: int | None = None,
                 dilation: int | None = None):
        name, rank = type(self).__name__, self.spatial_rank
        init = _init_kwargs(seed, key, 3)
        from_shapes = depthwise_filter is None and pointwise_filter is None
        if from_shapes:
            if depthwise_filter_shape is None or pointwise_filter_shape is None:
                raise op_error(TypeError, name, "needs depthwise_filter_shape and "
                                                "pointwise_filter_shape (or the filters)")
            dshape = _filter_shape(name, depthwise_filter_shape, rank, "depthwise_filter_shape")
            pshape = _filter_shape(name, pointwise_filter_shape, rank, "pointwise_filter_shape")
            depthwise_filter = depthwise_filter_initializer(dshape, dtype, **init[0])
            pointwise_filter = pointwise_filter_initializer(pshape, dtype, **init[1])
            if use_bias is None:
                use_bias = True
        else:
            if depthwise_filter is None or pointwise_filter is None:
                raise op_error(TypeError, name, "needs both depthwise_filter= and "
                                                "pointwise_filter=")
            depthwise_filter = _check_param(name, depthwise_filter, rank + 2, "depthwise filter")
            pointwise_filter = _check_param(name, pointwise_filter, rank + 2, "pointwise filter")
            if use_bias is None:
                use_bias = bias is not None
        c, m = depthwise_filter.shape[-2:]
        if pointwise_filter.shape[:-2] != (1,) * rank or pointwise_filter.shape[-2] != c * m:
            raise op_error(ShapeError, name,
                           f"the pointwise filter must be {(1,) * rank + (c * m, 'out')} for a "
                           f"depthwise filter {depthwise_filter.shape}, got "
                           f"{pointwise_filter.shape}", [depthwise_filter, pointwise_filter])
        self.depthwise_filter = depthwise_filter
        self.pointwise_filter = pointwise_filter
        self.bias, self.use_bias = _bias_for(name, bias, use_bias, pointwise_filter.shape[-1],
                                             depthwise_filter.dtype, bias_initializer, init[2])
        self.activation = activation
        self.strides = spatial_tuple(name, strides, rank, "strides", stride, "stride")
        self.dilations = spatial_tuple(name, dilations, rank, "dilations", dilation, "dilation")
        self.padding = padding_spec(name, padding, rank)

    def _filters(self):
        return self.depthwise_filter.shape[-2], self.pointwise_filter.shape[-1]

    def _apply(self, x):
        y = _depthwise(x, self.depthwise_filter, self.strides, self.padding, self.dilations)
        return F.conv_general(y, self.pointwise_filter)


class SeparableConv1D(_SeparableConv):
    """A 1-D separable convolution (S4TF ``SeparableConv1D``): depthwise filter
    ``(width, in, multiplier)``, pointwise filter ``(1, in * multiplier, out)``, bias
    ``(out,)``.

    ``SeparableConv1D(depthwise_filter_shape, pointwise_filter_shape, strides=1,
    padding="valid", dilations=1, activation=None, use_bias=True, *, depthwise_filter=,
    pointwise_filter=, bias=, seed=, key=, dtype=, ...initializer=)``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import SeparableConv1D
    >>> SeparableConv1D((3, 4, 2), (1, 8, 5), seed=0)(s4.ones((2, 10, 4))).shape
    (2, 8, 5)
    """

    spatial_rank = 1


class SeparableConv2D(_SeparableConv):
    """A 2-D separable convolution (S4TF ``SeparableConv2D``): depthwise filter
    ``(kh, kw, in, multiplier)``, pointwise filter ``(1, 1, in * multiplier, out)``, bias
    ``(out,)``; arguments as :class:`SeparableConv1D`.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.convolutional import SeparableConv2D
    >>> sep = SeparableConv2D((3, 3, 4, 1), (1, 1, 4, 6), padding="same", seed=0)
    >>> sep(s4.ones((1, 5, 5, 4))).shape
    (1, 5, 5, 6)
    """

    spatial_rank = 2

