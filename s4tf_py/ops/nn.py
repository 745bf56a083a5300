"""Neural-network ops (``s4.nn.functional``): convolutions, pooling, softmax, image ops.

Layouts follow S4TF (and TensorFlow): activations are channels-last (``NWC``, ``NHWC``,
``NDHWC``) and filters are ``(*kernel, in_channels / groups, out_channels)`` (``WIO``, ``HWIO``,
``DHWIO``). Transposed convolutions take TF's ``(*kernel, out_channels / groups, in_channels)``
filters; depthwise convolutions TF's ``(kh, kw, in_channels, multiplier)``.

Two primitives carry the heavy lifting:

* ``conv_general`` — XLA's ConvGeneralDilated for channels-last data: window strides, explicit
  ``(lo, hi)`` padding (negative crops), lhs (input) dilation, rhs (kernel) dilation and feature
  groups. Every convolution here, transposed and depthwise ones included, is one of these.
* ``reduce_window`` — max or sum over sliding windows (XLA's ReduceWindow); max/avg pooling.

The rest (softmax, depth_to_space, resize...) are compositions of existing ops.

Strides, dilations and pool sizes take an int, one value per spatial dimension, or S4TF's
full-rank form (``strides=(1, 2, 2, 1)`` for NHWC). ``padding`` is ``"valid"``, ``"same"``
(TensorFlow's rule: output ``ceil(in / stride)``, the extra pad at the end), an int, one int per
spatial dimension, or explicit ``((lo, hi), ...)`` pairs.

>>> import s4tf_py as s4
>>> x = s4.ones((1, 5, 5, 2)); w = s4.ones((3, 3, 2, 4))
>>> s4.nn.functional.conv2d(x, w, padding="same").shape
(1, 5, 5, 4)
>>> s4.nn.functional.max_pool2d(x, 2).shape
(1, 2, 2, 2)
"""
from __future__ import annotations

import builtins
import itertools

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, op_error
from ..ir.registry import AVal, define
from ..tensor import Tensor, wrap
from ._core import bind_op, operand_nodes, stop_gradient, to_tensor

__all__ = [
    "conv_general", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    "transposed_conv1d", "transposed_conv2d", "transposed_conv3d",
    "depthwise_conv2d", "separable_conv2d",
    "reduce_window", "max_pool1d", "max_pool2d", "max_pool3d",
    "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "global_avg_pool1d", "global_avg_pool2d", "global_avg_pool3d",
    "global_max_pool1d", "global_max_pool2d", "global_max_pool3d",
    "softmax", "log_softmax", "depth_to_space", "space_to_depth", "resize",
    "batch_norm", "dropout",
]

# ---- conv_general ------------------------------------------------------------------------------


def _out_size(n, k, stride):
    """Output length of a window ``k`` sliding with ``stride`` over ``n`` elements."""
    return (n - k) // stride + 1


def _conv_rule(lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation,
               feature_group_count):
    if lhs.ndim < 3 or rhs.ndim != lhs.ndim:
        raise ShapeError(f"conv_general needs input (N, *spatial, C) and filter "
                         f"(*kernel, C/groups, O) of the same rank >= 3, got {lhs} and {rhs}")
    if lhs.dtype != rhs.dtype:
        raise DTypeError(f"conv_general operands must share a dtype, got {lhs} and {rhs}")
    if lhs.dtype == dt.bool_:
        raise DTypeError(f"conv_general does not accept bool operands")
    nsp = lhs.ndim - 2
    for name, v in (("window_strides", window_strides), ("padding", padding),
                    ("lhs_dilation", lhs_dilation), ("rhs_dilation", rhs_dilation)):
        if len(v) != nsp:
            raise ShapeError(f"conv_general: {name} has {len(v)} entries for {nsp} spatial "
                             f"dimensions")
    if builtins.any(s < 1 for s in window_strides + lhs_dilation + rhs_dilation):
        raise ShapeError("conv_general: strides and dilations must be >= 1")
    g = feature_group_count
    cin, cout = lhs.shape[-1], rhs.shape[-1]
    if g < 1 or cin % g or cout % g:
        raise ShapeError(f"conv_general: {g} feature groups do not divide the input channels "
                         f"({cin}) and output channels ({cout})")
    if rhs.shape[-2] != cin // g:
        raise ShapeError(f"conv_general: the filter takes {rhs.shape[-2]} input channels per "
                         f"group but the input has {cin} channels in {g} group(s) "
                         f"({lhs} with filter {rhs})")
    out = [lhs.shape[0]]
    for i in range(nsp):
        n = lhs.shape[1 + i]
        dn = (n - 1) * lhs_dilation[i] + 1 if n else 0
        lo, hi = padding[i]
        pn = dn + lo + hi
        k = (rhs.shape[i] - 1) * rhs_dilation[i] + 1
        if rhs.shape[i] == 0 or pn < k:
            raise ShapeError(f"conv_general: spatial dimension {i} of the (padded) input is "
                             f"{pn}, smaller than the (dilated) window {k} ({lhs} with filter "
                             f"{rhs})")
        out.append(_out_size(pn, k, window_strides[i]))
    out.append(cout)
    return AVal(tuple(out), lhs.dtype, False)


def _dilate_pad(x, axes, dilation, padding, value=0):
    """``x`` with interior dilation then edge padding (negative crops) along ``axes``."""
    if builtins.any(d > 1 for d in dilation):
        shape = list(x.shape)
        for a, d in zip(axes, dilation):
            shape[a] = (x.shape[a] - 1) * d + 1 if x.shape[a] else 0
        y = np.full(shape, value, dtype=x.dtype)
        sl = [builtins.slice(None)] * x.ndim
        for a, d in zip(axes, dilation):
            sl[a] = builtins.slice(None, None, d)
        y[tuple(sl)] = x
        x = y
    pads = [(0, 0)] * x.ndim
    crop = [builtins.slice(None)] * x.ndim
    for a, (lo, hi) in zip(axes, padding):
        pads[a] = (builtins.max(lo, 0), builtins.max(hi, 0))
        crop[a] = builtins.slice(-lo if lo < 0 else None, hi if hi < 0 else None)
    if builtins.any(p != (0, 0) for p in pads):
        x = np.pad(x, pads, constant_values=value)
    return x[tuple(crop)]


def _conv_impl(lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation,
               feature_group_count):
    out_dtype = lhs.dtype
    if out_dtype in dt.LOW_PRECISION:
        lhs, rhs = lhs.astype(np.float32), rhs.astype(np.float32)
    nsp = lhs.ndim - 2
    x = np.ascontiguousarray(_dilate_pad(lhs, range(1, nsp + 1), lhs_dilation, padding))
    g = feature_group_count
    n, cin = x.shape[0], x.shape[-1]
    ks = rhs.shape[:nsp]
    cg, cout = rhs.shape[-2], rhs.shape[-1]
    og = cout // g
    out_sp = [_out_size(x.shape[1 + i], (ks[i] - 1) * rhs_dilation[i] + 1, window_strides[i])
              for i in range(nsp)]
    kk = int(np.prod(ks, dtype=np.int64))
    m = n * int(np.prod(out_sp, dtype=np.int64))
    # im2col as ONE strided view (N, *out, *kernel, C) of the padded input, copied once into
    # the (M, K*C) matrix that a single GEMM multiplies by the (K*C, O) filter
    st = x.strides
    view = np.lib.stride_tricks.as_strided(
        x, (n, *out_sp, *ks, cin),
        (st[0], *[st[1 + i] * window_strides[i] for i in range(nsp)],
         *[st[1 + i] * rhs_dilation[i] for i in range(nsp)], st[-1]), writeable=False)
    if g == 1:
        r = view.reshape(m, kk * cin) @ rhs.reshape(kk * cin, cout)
    else:
        # (M, K, G, Cg) -> (G, M, K*Cg);  filter (K, Cg, G, Og) -> (G, K*Cg, Og)
        p = view.reshape(m, kk, g, cg).transpose(2, 0, 1, 3).reshape(g, m, kk * cg)
        w = rhs.reshape(kk, cg, g, og).transpose(2, 0, 1, 3).reshape(g, kk * cg, og)
        r = np.matmul(p, w).transpose(1, 0, 2)                     # (M, G, Og)
    r = r.reshape((n, *out_sp, cout))
    return np.ascontiguousarray(r.astype(out_dtype, copy=False))


CONV_GENERAL = define(
    "conv_general", _conv_rule, _conv_impl,
    doc="Channels-last N-D convolution (XLA ConvGeneralDilated): input (N, *spatial, C), "
        "filter (*kernel, C/groups, O); window_strides, padding ((lo, hi), ...), "
        "lhs_dilation, rhs_dilation, feature_group_count.")


# ---- argument normalization --------------------------------------------------------------------

def _spatial(op, v, nsp, name, default=1):
    """An int, ``nsp`` ints, or S4TF's full-rank tuple (1 at batch and channel) -> nsp ints."""
    if v is None:
        v = default
    if isinstance(v, (int, np.integer)):
        return (int(v),) * nsp
    v = tuple(int(a) for a in v)
    if len(v) == nsp:
        return v
    if len(v) == nsp + 2 and v[0] == 1 and v[-1] == 1:
        return v[1:-1]
    raise op_error(ValueError, op, f"{name} must be an int or {nsp} ints (or {nsp + 2} with 1 "
                                   f"for batch and channels), got {v}")


def _padding(op, padding, in_sizes, windows, strides):
    """Explicit ``((lo, hi), ...)`` padding for "valid", "same", ints or pairs."""
    nsp = len(in_sizes)
    if isinstance(padding, str):
        p = padding.lower()
        if p == "valid":
            return ((0, 0),) * nsp
        if p == "same":
            out = []
            for n, k, s in zip(in_sizes, windows, strides):
                total = builtins.max((-(-n // s) - 1) * s + k - n, 0)
                out.append((total // 2, total - total // 2))
            return tuple(out)
        raise op_error(ValueError, op, f"padding must be 'valid', 'same' or explicit, got "
                                       f"{padding!r}")
    if isinstance(padding, (int, np.integer)):
        return ((int(padding), int(padding)),) * nsp
    pads = list(padding)
    if len(pads) == nsp + 2 and all(not isinstance(q, (int, np.integer)) for q in pads) and \
            tuple(pads[0]) == (0, 0) and tuple(pads[-1]) == (0, 0):
        pads = pads[1:-1]
    if len(pads) != nsp:
        raise op_error(ValueError, op, f"padding needs {nsp} entries, got {padding!r}")
    out = []
    for q in pads:
        if isinstance(q, (int, np.integer)):
            out.append((int(q), int(q)))
        else:
            lo, hi = q
            out.append((int(lo), int(hi)))
    return tuple(out)


def _conv_operands(op, x, filt):
    (nx, nw), dtype, weak = operand_nodes(op, x, filt)
    x, w = wrap(nx), wrap(nw)
    if dtype == dt.bool_:
        raise op_error(DTypeError, op, "does not accept bool operands", [x, w])
    return x, w


def _check_rank(op, x, w, nsp):
    if x.ndim != nsp + 2:
        raise op_error(ShapeError, op, f"expects a {nsp + 2}-D input (batch, {nsp} spatial, "
                                       f"channels), got shape {x.shape}", [x, w])
    if w.ndim != nsp + 2:
        raise op_error(ShapeError, op, f"expects a {nsp + 2}-D filter ({nsp} kernel dims, "
                                       f"in, out), got shape {w.shape}", [x, w])


def conv_general(x, filter, window_strides=None, padding="valid", lhs_dilation=None,
                 rhs_dilation=None, feature_group_count=1) -> Tensor:
    """The ``conv_general`` primitive on channels-last input and ``(*kernel, I/G, O)`` filter.

    ``padding`` may be "valid"/"same" (computed on the dilated input) or explicit pairs.
    """
    op = "conv_general"
    x, w = _conv_operands(op, x, filter)
    nsp = builtins.max(x.ndim - 2, 0)
    ws = _spatial(op, window_strides, nsp, "window_strides")
    ld = _spatial(op, lhs_dilation, nsp, "lhs_dilation")
    rd = _spatial(op, rhs_dilation, nsp, "rhs_dilation")
    sizes = [(n - 1) * d + 1 for n, d in zip(x.shape[1:-1], ld)]
    windows = [(k - 1) * d + 1 for k, d in zip(w.shape[:nsp], rd)]
    pad = _padding(op, padding, sizes, windows, ws)
    return bind_op(CONV_GENERAL, [x, w], (
        ("window_strides", ws), ("padding", pad), ("lhs_dilation", ld), ("rhs_dilation", rd),
        ("feature_group_count", int(feature_group_count))))


def _conv(op, nsp, x, filter, strides, padding, dilations, groups):
    x, w = _conv_operands(op, x, filter)
    _check_rank(op, x, w, nsp)
    s = _spatial(op, strides, nsp, "strides")
    d = _spatial(op, dilations, nsp, "dilations")
    windows = [(k - 1) * di + 1 for k, di in zip(w.shape[:nsp], d)]
    pad = _padding(op, padding, x.shape[1:-1], windows, s)
    return bind_op(CONV_GENERAL, [x, w], (
        ("window_strides", s), ("padding", pad), ("lhs_dilation", (1,) * nsp),
        ("rhs_dilation", d), ("feature_group_count", int(groups))))


def conv1d(x, filter, strides=1, padding="valid", dilations=1, groups=1) -> Tensor:
    """1-D convolution: ``x`` (N, W, C), ``filter`` (kw, C/groups, O) -> (N, W', O)."""
    return _conv("conv1d", 1, x, filter, strides, padding, dilations, groups)


def conv2d(x, filter, strides=1, padding="valid", dilations=1, groups=1) -> Tensor:
    """2-D convolution (S4TF ``conv2D``): ``x`` NHWC, ``filter`` HWIO -> (N, H', W', O).

    >>> import s4tf_py as s4
    >>> s4.nn.functional.conv2d(s4.ones((1, 4, 4, 1)), s4.ones((2, 2, 1, 1)), strides=2).tolist()
    [[[[4.0], [4.0]], [[4.0], [4.0]]]]
    """
    return _conv("conv2d", 2, x, filter, strides, padding, dilations, groups)


def conv3d(x, filter, strides=1, padding="valid", dilations=1, groups=1) -> Tensor:
    """3-D convolution: ``x`` NDHWC, ``filter`` DHWIO."""
    return _conv("conv3d", 3, x, filter, strides, padding, dilations, groups)


def _conv_transpose(op, nsp, x, filter, output_shape, strides, padding, output_padding,
                    dilations, groups):
    from .shape import flip, permute_dims, reshape
    x, w = _conv_operands(op, x, filter)
    _check_rank(op, x, w, nsp)
    s = _spatial(op, strides, nsp, "strides")
    d = _spatial(op, dilations, nsp, "dilations")
    g = int(groups)
    cin = w.shape[-1]
    if g < 1 or cin % g:
        raise op_error(ShapeError, op, f"{g} groups do not divide the filter's {cin} input "
                                       f"channels", [x, w])
    if x.shape[-1] != cin:
        raise op_error(ShapeError, op, f"the input has {x.shape[-1]} channels but the filter "
                                       f"(*kernel, out/groups, in) takes {cin}", [x, w])
    ks = w.shape[:nsp]
    eff = [(k - 1) * di + 1 for k, di in zip(ks, d)]
    n_in = x.shape[1:-1]
    if output_shape is not None:
        os_ = tuple(int(v) for v in output_shape)
        if len(os_) == nsp + 2:
            if os_[0] != x.shape[0] or os_[-1] != w.shape[-2] * g:
                raise op_error(ShapeError, op, f"output_shape {os_} does not match the batch "
                                               f"size and output channels", [x, w])
            os_ = os_[1:-1]
        if len(os_) != nsp:
            raise op_error(ValueError, op, f"output_shape needs {nsp} spatial sizes (or "
                                           f"{nsp + 2} entries), got {output_shape}", [x, w])
    # the padding of the forward convolution this op is the transpose of
    if isinstance(padding, str) and padding.lower() == "same":
        if output_shape is None:
            os_ = tuple(n * si for n, si in zip(n_in, s))
        fwd = []
        for n, o, k, si in zip(n_in, os_, eff, s):
            total = builtins.max((n - 1) * si + k - o, 0)
            fwd.append((total // 2, total - total // 2))
        fwd = tuple(fwd)
    else:
        fwd = _padding(op, padding, os_ if output_shape is not None else n_in, eff, s)
        if output_shape is None:
            op_ = _spatial(op, output_padding, nsp, "output_padding", 0)
            os_ = tuple((n - 1) * si + k - lo - hi + o
                        for n, si, k, (lo, hi), o in zip(n_in, s, eff, fwd, op_))
    extra = [o - ((n - 1) * si + k - lo - hi)
             for o, n, si, k, (lo, hi) in zip(os_, n_in, s, eff, fwd)]
    if builtins.any(e < 0 or e >= builtins.max(si, di) for e, si, di in zip(extra, s, d)):
        raise op_error(ShapeError, op, f"output size {os_} cannot come from input {n_in} with "
                                       f"strides {s}, kernel {tuple(ks)} and padding {fwd}",
                       [x, w])
    pad = tuple((k - 1 - lo, k - 1 - hi + e) for k, (lo, hi), e in zip(eff, fwd, extra))
    # (*k, O/G, I) -> flipped (*k, I/G, O): the forward conv's filter, transposed per group
    og = w.shape[-2]
    wt = flip(w, tuple(range(nsp)))
    wt = reshape(wt, ks + (og, g, cin // g))
    wt = permute_dims(wt, tuple(range(nsp)) + (nsp + 2, nsp + 1, nsp))
    wt = reshape(wt, ks + (cin // g, g * og))
    return bind_op(CONV_GENERAL, [x, wt], (
        ("window_strides", (1,) * nsp), ("padding", pad), ("lhs_dilation", s),
        ("rhs_dilation", d), ("feature_group_count", g)))


def conv_transpose1d(x, filter, output_shape=None, strides=1, padding="valid",
                     output_padding=0, dilations=1, groups=1) -> Tensor:
    """Transposed 1-D convolution: ``x`` (N, W, C), ``filter`` (kw, O/groups, C)."""
    return _conv_transpose("conv_transpose1d", 1, x, filter, output_shape, strides, padding,
                           output_padding, dilations, groups)


def conv_transpose2d(x, filter, output_shape=None, strides=1, padding="valid",
                     output_padding=0, dilations=1, groups=1) -> Tensor:
    """Transposed 2-D convolution (S4TF ``transposedConv2D``, TF ``conv2d_transpose``).

    ``x`` is NHWC and ``filter`` ``(kh, kw, out_channels / groups, in_channels)``. The output
    size is ``output_shape`` when given (spatial sizes, or the full NHWC shape as S4TF passes
    it); otherwise ``(in - 1) * stride + dilated_kernel - pad_lo - pad_hi + output_padding``
    (torch's ``conv_transpose2d``) for "valid"/explicit padding, and ``in * stride`` for "same".
    """
    return _conv_transpose("conv_transpose2d", 2, x, filter, output_shape, strides, padding,
                           output_padding, dilations, groups)


def conv_transpose3d(x, filter, output_shape=None, strides=1, padding="valid",
                     output_padding=0, dilations=1, groups=1) -> Tensor:
    """Transposed 3-D convolution: ``x`` NDHWC, ``filter`` (kd, kh, kw, O/groups, C)."""
    return _conv_transpose("conv_transpose3d", 3, x, filter, output_shape, strides, padding,
                           output_padding, dilations, groups)


transposed_conv1d = conv_transpose1d
transposed_conv2d = conv_transpose2d
transposed_conv3d = conv_transpose3d


def depthwise_conv2d(x, filter, strides=1, padding="valid", dilations=1) -> Tensor:
    """Depthwise 2-D convolution (TF/S4TF): ``filter`` (kh, kw, C, multiplier) -> C*multiplier
    channels, output channel ``c * multiplier + m`` from input channel ``c``."""
    from .shape import reshape
    op = "depthwise_conv2d"
    x, w = _conv_operands(op, x, filter)
    _check_rank(op, x, w, 2)
    if w.shape[2] != x.shape[-1]:
        raise op_error(ShapeError, op, f"the filter has {w.shape[2]} input channels, the input "
                                       f"{x.shape[-1]}", [x, w])
    c = x.shape[-1]
    wg = reshape(w, (w.shape[0], w.shape[1], 1, c * w.shape[3]))
    return _conv(op, 2, x, wg, strides, padding, dilations, c)


def separable_conv2d(x, depthwise_filter, pointwise_filter, strides=1, padding="valid",
                     dilations=1) -> Tensor:
    """Depthwise convolution followed by a 1x1 convolution (TF ``separable_conv2d``)."""
    y = depthwise_conv2d(x, depthwise_filter, strides, padding, dilations)
    return conv2d(y, pointwise_filter)


# ---- reduce_window / pooling -------------------------------------------------------------------

def _rw_rule(x, *, kind, window, strides, padding):
    if kind not in ("max", "sum"):
        raise ShapeError(f"reduce_window: kind must be 'max' or 'sum', got {kind!r}")
    if x.dtype == dt.bool_:
        raise DTypeError(f"reduce_window does not accept bool operands")
    if not (len(window) == len(strides) == len(padding) == x.ndim):
        raise ShapeError(f"reduce_window over {x} needs {x.ndim} window sizes, strides and "
                         f"paddings, got {window}, {strides}, {padding}")
    out = []
    for n, k, s, (lo, hi) in zip(x.shape, window, strides, padding):
        if k < 1 or s < 1 or lo < 0 or hi < 0:
            raise ShapeError("reduce_window: windows and strides must be >= 1 and padding >= 0")
        if n + lo + hi < k:
            raise ShapeError(f"reduce_window: window {tuple(window)} is larger than the padded "
                             f"input {x}")
        out.append(_out_size(n + lo + hi, k, s))
    return AVal(tuple(out), x.dtype, x.weak)


def _rw_impl(x, *, kind, window, strides, padding):
    d = x.dtype
    if d in dt.LOW_PRECISION:
        x = x.astype(np.float32)
    if kind == "max":
        init = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
        combine = np.maximum
    else:
        init, combine = 0, np.add
    xp = _dilate_pad(x, range(x.ndim), (1,) * x.ndim, padding, init)
    out_sz = [_out_size(n, k, s) for n, k, s in zip(xp.shape, window, strides)]
    acc = None
    for off in itertools.product(*[range(k) for k in window]):
        v = xp[tuple(builtins.slice(o, o + (m - 1) * s + 1, s)
                     for o, m, s in zip(off, out_sz, strides))]
        acc = v.copy() if acc is None else combine(acc, v, out=acc)
    return np.ascontiguousarray(acc.astype(d))


REDUCE_WINDOW = define(
    "reduce_window", _rw_rule, _rw_impl,
    doc="Max or sum over sliding windows (XLA ReduceWindow): window, strides and (lo, hi) "
        "padding per dimension; padding holds the identity (-inf or 0).")


def reduce_window(x, kind, window, strides=None, padding="valid") -> Tensor:
    """``kind`` ("max" or "sum") over windows of ``x``, one size/stride per dimension."""
    x = to_tensor(x)
    window = tuple(int(k) for k in window)
    strides = tuple(int(s) for s in strides) if strides is not None else window
    pad = _padding("reduce_window", padding, x.shape, window, strides)
    return bind_op(REDUCE_WINDOW, [x], (("kind", kind), ("window", window), ("strides", strides),
                                        ("padding", pad)))


def _pool_params(op, x, nsp, pool_size, strides, padding):
    if x.ndim != nsp + 2:
        raise op_error(ShapeError, op, f"expects a {nsp + 2}-D input (batch, {nsp} spatial, "
                                       f"channels), got shape {x.shape}", [x])
    k = _spatial(op, pool_size, nsp, "pool_size")
    s = _spatial(op, strides, nsp, "strides", k) if strides is not None else k
    pad = _padding(op, padding, x.shape[1:-1], k, s)
    return ((1,) + k + (1,), (1,) + s + (1,), ((0, 0),) + pad + ((0, 0),))


def _max_pool(op, nsp, x, pool_size, strides, padding):
    x = to_tensor(x)
    window, st, pad = _pool_params(op, x, nsp, pool_size, strides, padding)
    return bind_op(REDUCE_WINDOW, [x], (("kind", "max"), ("window", window), ("strides", st),
                                        ("padding", pad)))


def _avg_pool(op, nsp, x, pool_size, strides, padding, count_include_pad):
    from .creation import ones
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    window, st, pad = _pool_params(op, x, nsp, pool_size, strides, padding)
    if _tiles(x.shape, window, st, pad):
        # non-overlapping windows that tile the input: a reshape and a mean, whose gradient
        # is a broadcast (fused by compiling backends) instead of a padded reduce_window
        from .shape import reshape
        tiled, axes = [x.shape[0]], []
        for n, k in zip(x.shape[1:-1], window[1:-1]):
            tiled += [n // k, k]
            axes.append(len(tiled) - 1)
        tiled.append(x.shape[-1])
        return reshape(x, tuple(tiled)).mean(axis=tuple(axes))
    params = (("kind", "sum"), ("window", window), ("strides", st), ("padding", pad))
    total = bind_op(REDUCE_WINDOW, [x], params)
    if count_include_pad or builtins.all(p == (0, 0) for p in pad):
        return total * (1.0 / int(np.prod(window)))
    # TF: windows that overlap the padding average over the real elements only
    one = ones((1,) + x.shape[1:-1] + (1,), dtype=x.dtype, device=x.device)
    count = bind_op(REDUCE_WINDOW, [one], params)
    return total / count


def _tiles(shape, window, strides, padding) -> bool:
    """Whether the windows are disjoint and cover the input exactly (2x2 stride-2 pooling)."""
    return (tuple(window) == tuple(strides) and builtins.all(p == (0, 0) for p in padding)
            and builtins.all(n % k == 0 for n, k in zip(shape, window)))


def max_pool1d(x, pool_size=2, strides=None, padding="valid") -> Tensor:
    """Max over windows of (N, W, C); ``strides`` defaults to ``pool_size``."""
    return _max_pool("max_pool1d", 1, x, pool_size, strides, padding)


def max_pool2d(x, pool_size=(2, 2), strides=None, padding="valid") -> Tensor:
    """Max over windows of NHWC input (S4TF ``maxPool2D``); ``strides`` defaults to
    ``pool_size``; "same" padding never picks the padding."""
    return _max_pool("max_pool2d", 2, x, pool_size, strides, padding)


def max_pool3d(x, pool_size=(2, 2, 2), strides=None, padding="valid") -> Tensor:
    """Max over windows of NDHWC input; ``strides`` defaults to ``pool_size``."""
    return _max_pool("max_pool3d", 3, x, pool_size, strides, padding)


def avg_pool1d(x, pool_size=2, strides=None, padding="valid", count_include_pad=False) -> Tensor:
    """Mean over windows of (N, W, C) input (padding excluded unless ``count_include_pad``)."""
    return _avg_pool("avg_pool1d", 1, x, pool_size, strides, padding, count_include_pad)


def avg_pool2d(x, pool_size=(2, 2), strides=None, padding="valid",
               count_include_pad=False) -> Tensor:
    """Mean over windows of NHWC input (S4TF ``avgPool2D``). With padding, windows average
    over the real elements only (TensorFlow) unless ``count_include_pad`` (torch's default)."""
    return _avg_pool("avg_pool2d", 2, x, pool_size, strides, padding, count_include_pad)


def avg_pool3d(x, pool_size=(2, 2, 2), strides=None, padding="valid",
               count_include_pad=False) -> Tensor:
    """Mean over windows of NDHWC input (padding excluded unless ``count_include_pad``)."""
    return _avg_pool("avg_pool3d", 3, x, pool_size, strides, padding, count_include_pad)


def _global(op, nsp, reducer, x, keepdims):
    x = to_tensor(x)
    if x.ndim != nsp + 2:
        raise op_error(ShapeError, op, f"expects a {nsp + 2}-D channels-last input, got shape "
                                       f"{x.shape}", [x])
    return reducer(x, axis=tuple(range(1, nsp + 1)), keepdims=keepdims)


def global_avg_pool1d(x, keepdims=False) -> Tensor:
    """Mean over the spatial axis: (N, W, C) -> (N, C)."""
    from .reduction import mean
    return _global("global_avg_pool1d", 1, mean, x, keepdims)


def global_avg_pool2d(x, keepdims=False) -> Tensor:
    """Mean over H and W: NHWC -> (N, C) (S4TF ``GlobalAvgPool2D``)."""
    from .reduction import mean
    return _global("global_avg_pool2d", 2, mean, x, keepdims)


def global_avg_pool3d(x, keepdims=False) -> Tensor:
    """Mean over D, H and W: NDHWC -> (N, C)."""
    from .reduction import mean
    return _global("global_avg_pool3d", 3, mean, x, keepdims)


def global_max_pool1d(x, keepdims=False) -> Tensor:
    """Max over the spatial axis: (N, W, C) -> (N, C)."""
    from .reduction import max as _max
    return _global("global_max_pool1d", 1, _max, x, keepdims)


def global_max_pool2d(x, keepdims=False) -> Tensor:
    """Max over H and W: NHWC -> (N, C) (S4TF ``GlobalMaxPool2D``)."""
    from .reduction import max as _max
    return _global("global_max_pool2d", 2, _max, x, keepdims)


def global_max_pool3d(x, keepdims=False) -> Tensor:
    """Max over D, H and W: NDHWC -> (N, C)."""
    from .reduction import max as _max
    return _global("global_max_pool3d", 3, _max, x, keepdims)


# ---- softmax ------------------------------------------------------------------------------------

def _shifted(op, x, axis):
    from .math import isfinite, where
    from .reduction import max as _max
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    if x.ndim == 0:
        raise op_error(ShapeError, op, "needs at least one dimension", [x])
    m = _max(x, axis=axis, keepdims=True)
    m = stop_gradient(where(isfinite(m), m, 0.0))        # a row of -inf is shifted by 0
    return x - m


def softmax(x, /, axis=-1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis``, with the maximum subtracted first (stable)."""
    from .math import exp
    from .reduction import sum as _sum
    e = exp(_shifted("softmax", x, axis))
    return e / _sum(e, axis=axis, keepdims=True)


def log_softmax(x, /, axis=-1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``, computed stably."""
    from .math import exp, log
    from .reduction import sum as _sum
    z = _shifted("log_softmax", x, axis)
    return z - log(_sum(exp(z), axis=axis, keepdims=True))


# ---- depth/space ------------------------------------------------------------------------------

def depth_to_space(x, block_size: int) -> Tensor:
    """NHWC (N, H, W, C*b*b) -> (N, H*b, W*b, C), TF's "DCR" order: output pixel (i, j) of a
    block reads channels ``[(i*b + j)*C, (i*b + j + 1)*C)``."""
    from .shape import permute_dims, reshape
    x = to_tensor(x)
    b = int(block_size)
    if x.ndim != 4 or b < 1 or x.shape[-1] % (b * b):
        raise op_error(ShapeError, "depth_to_space", f"needs NHWC input whose channels divide "
                                                     f"by block_size**2 = {b * b}", [x])
    n, h, w, c = x.shape
    co = c // (b * b)
    y = reshape(x, (n, h, w, b, b, co))
    y = permute_dims(y, (0, 1, 3, 2, 4, 5))
    return reshape(y, (n, h * b, w * b, co))


def space_to_depth(x, block_size: int) -> Tensor:
    """The inverse of :func:`depth_to_space`: (N, H*b, W*b, C) -> (N, H, W, C*b*b)."""
    from .shape import permute_dims, reshape
    x = to_tensor(x)
    b = int(block_size)
    if x.ndim != 4 or b < 1 or x.shape[1] % b or x.shape[2] % b:
        raise op_error(ShapeError, "space_to_depth", f"needs NHWC input whose height and "
                                                     f"width divide by block_size {b}", [x])
    n, h, w, c = x.shape
    y = reshape(x, (n, h // b, b, w // b, b, c))
    y = permute_dims(y, (0, 1, 3, 2, 4, 5))
    return reshape(y, (n, h // b, w // b, b * b * c))


# ---- resize -----------------------------------------------------------------------------------

def _nearest_index(n_in, n_out):
    scale = n_in / n_out
    src = np.floor((np.arange(n_out) + 0.5) * scale).astype(np.int64)
    return np.clip(src, 0, n_in - 1).astype(np.int32)


def _linear_index(n_in, n_out):
    scale = n_in / n_out
    src = (np.arange(n_out) + 0.5) * scale - 0.5
    lo = np.floor(src)
    frac = src - lo
    i0 = np.clip(lo, 0, n_in - 1).astype(np.int32)
    i1 = np.clip(lo + 1, 0, n_in - 1).astype(np.int32)
    return i0, i1, frac


def resize(images, size, method="bilinear", antialias=False) -> Tensor:
    """Resize NHWC (or HWC) images to ``size = (height, width)``, as TF2's ``tf.image.resize``
    (half-pixel centers). ``method``: "bilinear" (float result) or "nearest" (keeps dtype)."""
    from .indexing import take
    from .shape import reshape
    x = to_tensor(images)
    op = "resize"
    if x.ndim not in (3, 4):
        raise op_error(ShapeError, op, f"expects NHWC or HWC images, got shape {x.shape}", [x])
    if antialias:
        raise op_error(ValueError, op, "antialias=True is not supported", [x])
    size = tuple(int(s) for s in size)
    if len(size) != 2 or builtins.any(s < 1 for s in size):
        raise op_error(ValueError, op, f"size must be two positive ints, got {size}", [x])
    ax0 = x.ndim - 3
    method = method.lower()
    if method in ("nearest", "nearest_neighbor"):
        for a, n in ((ax0, size[0]), (ax0 + 1, size[1])):
            if x.shape[a] != n:
                idx = Tensor(_nearest_index(x.shape[a], n), device=x.device)
                x = take(x, idx, axis=a)
        return x
    if method != "bilinear":
        raise op_error(ValueError, op, f"method must be 'bilinear' or 'nearest', got {method!r}",
                       [x])
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    for a, n in ((ax0, size[0]), (ax0 + 1, size[1])):
        n_in = x.shape[a]
        if n_in == n:
            continue
        i0, i1, frac = _linear_index(n_in, n)
        shape = [1] * x.ndim
        shape[a] = n
        f = Tensor(frac.astype(x.dtype).reshape(shape), device=x.device)
        lo = take(x, Tensor(i0, device=x.device), axis=a)
        hi = take(x, Tensor(i1, device=x.device), axis=a)
        x = lo + (hi - lo) * f
    return x


# ---- normalization and dropout --------------------------------------------------------------

def batch_norm(x, mean, variance, offset=None, scale=None, epsilon=1e-3) -> Tensor:
    """``(x - mean) / sqrt(variance + epsilon) * scale + offset`` (TF ``batch_normalization``),
    every argument broadcasting against ``x``."""
    from .math import rsqrt
    x = to_tensor(x)
    inv = rsqrt(to_tensor(variance) + epsilon)
    if scale is not None:
        inv = inv * scale
    y = (x - mean) * inv
    return y + offset if offset is not None else y


def dropout(x, rate: float, *, key=None, seed=None, training: bool = True) -> Tensor:
    """Zero each element with probability ``rate`` and scale the rest by ``1 / (1 - rate)``.

    Stateless: pass ``key=`` (or ``seed=``); without either, the global key of ``s4.random``
    is used. ``training=False`` (or ``rate == 0``) returns ``x`` unchanged.
    """
    from .math import where
    from .random import bernoulli
    x = to_tensor(x)
    if not 0.0 <= rate < 1.0:
        raise op_error(ValueError, "dropout", f"rate must be in [0, 1), got {rate}", [x])
    if not training or rate == 0.0:
        return x.copy()
    keep = bernoulli(p=1.0 - rate, shape=x.shape, key=key, seed=seed)
    return where(keep, x * (1.0 / (1.0 - rate)), 0.0)


# ---- derivatives ------------------------------------------------------------------------------
#
# conv_general: both cotangents are convolutions again (as XLA/JAX's
# _conv_general_dilated_transpose_lhs/rhs), so derivatives of any order stay convolutions.
# reduce_window: "sum" is transposed by an interior-padded (strided) cotangent summed over the
# same window; "max" routes each window's cotangent to the first position holding its maximum
# (XLA's select_and_scatter with a >= select, as TF/JAX/torch max-pool gradients), built from
# strided slices, comparisons, selects and pads so it is differentiable again.

def _dilated(n, d):
    return (n - 1) * d + 1 if n else 0


def _conv_transpose_lhs(ct, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                        feature_group_count):
    """Cotangent of conv_general's input: ``ct`` convolved with the flipped, per-group
    transposed filter (strides and lhs dilation swap roles)."""
    from .shape import flip, permute_dims, reshape
    nsp = lhs.ndim - 2
    g = feature_group_count
    ks = rhs.shape[:nsp]
    pad = []
    for n, k, o, s, (lo, _), ld, rd in zip(lhs.shape[1:-1], ks, ct.shape[1:-1], window_strides,
                                           padding, lhs_dilation, rhs_dilation):
        ln, kn, on = _dilated(n, ld), _dilated(k, rd), _dilated(o, s)
        before = kn - lo - 1
        pad.append((before, ln + kn - 1 - on - before))
    cg, cout = rhs.shape[-2:]
    og = cout // g
    # (*k, Cg, G*Og) -> (*k, Og, G*Cg): filter[.., o, j*Cg + c] = rhs[.., c, j*Og + o]
    w = reshape(rhs, ks + (cg, g, og))
    w = permute_dims(w, tuple(range(nsp)) + (nsp + 2, nsp + 1, nsp))
    w = reshape(w, ks + (og, g * cg))
    w = flip(w, tuple(range(nsp)))
    return bind_op(CONV_GENERAL, [ct, w], (
        ("window_strides", tuple(lhs_dilation)), ("padding", tuple(pad)),
        ("lhs_dilation", tuple(window_strides)), ("rhs_dilation", tuple(rhs_dilation)),
        ("feature_group_count", g)))


def _conv_transpose_rhs(ct, lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                        feature_group_count):
    """Cotangent of conv_general's filter: a convolution of the input (batch as features,
    channels as batch) with the cotangent as the filter; feature groups stay feature groups
    (the input's group axis moves next to the batch)."""
    from .shape import permute_dims, reshape
    nsp = lhs.ndim - 2
    g = feature_group_count
    pad = []
    for n, k, o, s, (lo, _), ld, rd in zip(lhs.shape[1:-1], rhs.shape[:nsp], ct.shape[1:-1],
                                           window_strides, padding, lhs_dilation, rhs_dilation):
        ln, kn, on = _dilated(n, ld), _dilated(k, rd), _dilated(o, s)
        pad.append((lo, on - ln + kn - lo - 1))
    nb, c = lhs.shape[0], lhs.shape[-1]
    cg = c // g
    sp = lhs.shape[1:-1]
    # (N, *sp, G*Cg) -> (Cg, *sp, G*N)
    x = reshape(lhs, (nb,) + sp + (g, cg))
    x = permute_dims(x, (nsp + 2,) + tuple(range(1, nsp + 1)) + (nsp + 1, 0))
    x = reshape(x, (cg,) + sp + (g * nb,))
    f = permute_dims(ct, tuple(range(1, nsp + 1)) + (0, nsp + 1))          # (*osp, N, O)
    r = bind_op(CONV_GENERAL, [x, f], (
        ("window_strides", tuple(rhs_dilation)), ("padding", tuple(pad)),
        ("lhs_dilation", tuple(lhs_dilation)), ("rhs_dilation", tuple(window_strides)),
        ("feature_group_count", g)))                                           # (Cg, *k, O)
    return permute_dims(r, tuple(range(1, nsp + 1)) + (0, nsp + 1))


def _window_starts(window):
    return itertools.product(*[range(k) for k in window])


def _window_view(xp, off, out_shape, strides):
    """The strided slice of ``xp`` that window offset ``off`` contributes to each output."""
    from .shape import slice as _slice
    limit = tuple(o + (m - 1) * s + 1 if m else o for o, m, s in zip(off, out_shape, strides))
    return _slice(xp, off, limit, strides)


def _unview(c, off, padded_shape, strides):
    """The transpose of :func:`_window_view`: ``c`` placed back at its strided positions."""
    from .creation import zeros
    from .shape import PAD
    high = tuple(p - (o + (m - 1) * s + 1) if m else p - o
                 for p, o, m, s in zip(padded_shape, off, c.shape, strides))
    z = zeros((), dtype=c.dtype, device=c.device)
    return bind_op(PAD, [c, z], (("low", tuple(off)), ("high", high),
                                 ("interior", tuple(s - 1 for s in strides))))


def _rw_max_hits(x, out, window, strides, padding):
    """For each window offset, a bool mask over the outputs: this offset holds the window's
    maximum and no earlier offset does (the first maximum wins, as XLA's select_and_scatter)."""
    from .creation import full
    from .math import equal, logical_and, logical_not, logical_or
    from .shape import PAD
    ninf = full((), -np.inf, dtype=x.dtype, device=x.device)
    xp = bind_op(PAD, [x, ninf], (("low", tuple(lo for lo, _ in padding)),
                                  ("high", tuple(hi for _, hi in padding)),
                                  ("interior", (0,) * x.ndim)))
    taken = None
    for off in _window_starts(window):
        hit = equal(_window_view(xp, off, out.shape, strides), out)
        if taken is None:
            taken = hit
        else:
            hit = logical_and(hit, logical_not(taken))
            taken = logical_or(taken, hit)
        yield off, hit, xp.shape


def _crop(y, padding):
    from .creation import zeros
    from .shape import PAD
    if builtins.all(p == (0, 0) for p in padding):
        return y
    z = zeros((), dtype=y.dtype, device=y.device)
    return bind_op(PAD, [y, z], (("low", tuple(-lo for lo, _ in padding)),
                                 ("high", tuple(-hi for _, hi in padding)),
                                 ("interior", (0,) * y.ndim)))


def _derivatives():
    from ..autodiff import rules as R
    from ..ir.registry import defjvp, defvjp
    from .creation import zeros, zeros_like
    from .math import where
    from .shape import PAD

    def conv_vjp(ct, lhs, rhs, *, out, **p):
        if ct.size == 0:
            return zeros_like(lhs), zeros_like(rhs)
        ct = ct.astype(lhs.dtype) if ct.dtype != lhs.dtype else ct
        args = (p["window_strides"], p["padding"], p["lhs_dilation"], p["rhs_dilation"],
                p["feature_group_count"])
        return (_conv_transpose_lhs(ct, lhs, rhs, *args),
                _conv_transpose_rhs(ct, lhs, rhs, *args))

    def conv_jvp(ts, lhs, rhs, *, out, **p):
        tl, tr = ts
        r = None
        if tl is not None:
            r = R.rebind(CONV_GENERAL, [tl, rhs], p)
        if tr is not None:
            t = R.rebind(CONV_GENERAL, [lhs, tr], p)
            r = t if r is None else r + t
        return r
    defvjp(CONV_GENERAL, conv_vjp)
    defjvp(CONV_GENERAL, conv_jvp)

    def rw_sum_transpose(ct, x, window, strides, padding):
        if ct.size == 0 or x.size == 0:
            return zeros_like(x)
        low = tuple(k - 1 - lo for k, (lo, _) in zip(window, padding))
        high = tuple(n + lo - (m - 1) * s - 1
                     for n, (lo, _), m, s in zip(x.shape, padding, ct.shape, strides))
        z = zeros((), dtype=ct.dtype, device=ct.device)
        spread = bind_op(PAD, [ct, z], (("low", low), ("high", high),
                                        ("interior", tuple(s - 1 for s in strides))))
        return bind_op(REDUCE_WINDOW, [spread], (
            ("kind", "sum"), ("window", tuple(window)), ("strides", (1,) * x.ndim),
            ("padding", ((0, 0),) * x.ndim)))

    def rw_vjp(ct, x, *, out, kind, window, strides, padding):
        if kind == "sum":
            return (rw_sum_transpose(ct, x, window, strides, padding),)
        if ct.size == 0 or x.size == 0:
            return (zeros_like(x),)
        acc = None
        for off, hit, pshape in _rw_max_hits(x, out, window, strides, padding):
            c = _unview(where(hit, ct, 0.0), off, pshape, strides)
            acc = c if acc is None else acc + c
        return (_crop(acc, padding),)

    def rw_jvp(ts, x, *, out, kind, window, strides, padding):
        t = ts[0]
        if t is None:
            return None
        if kind == "sum":
            return R.rebind(REDUCE_WINDOW, [t], dict(kind=kind, window=window, strides=strides,
                                                     padding=padding))
        if out.size == 0:
            return zeros_like(out)
        z = zeros((), dtype=t.dtype, device=t.device)
        tp = bind_op(PAD, [t, z], (("low", tuple(lo for lo, _ in padding)),
                                   ("high", tuple(hi for _, hi in padding)),
                                   ("interior", (0,) * t.ndim)))
        r = None
        for off, hit, _ in _rw_max_hits(x, out, window, strides, padding):
            v = where(hit, _window_view(tp, off, out.shape, strides), 0.0)
            r = v if r is None else r + v
        return r
    defvjp(REDUCE_WINDOW, rw_vjp)
    defjvp(REDUCE_WINDOW, rw_jvp)


_derivatives()
