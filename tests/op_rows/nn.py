"""Op-table rows for ops/nn.py: ``conv_general`` and ``reduce_window`` (and the compositions
built on them). References are direct loops over output positions, independent of the im2col
implementation under test.
"""
from __future__ import annotations

import itertools

import numpy as np

import s4tf_py as s4
from optable import ALL_FLOATS, FLOATS, row

F = s4.nn.functional


# ---- references ---------------------------------------------------------------------------------

def ref_conv(x, w, strides, padding, lhs_dilation, rhs_dilation, groups):
    """Channels-last convolution by definition: for each output position, sum over the window."""
    nsp = x.ndim - 2
    # dilate the input
    if any(d > 1 for d in lhs_dilation):
        shape = [x.shape[0]] + [(n - 1) * d + 1 for n, d in zip(x.shape[1:-1], lhs_dilation)] + \
            [x.shape[-1]]
        xd = np.zeros(shape, x.dtype)
        xd[(slice(None),) + tuple(slice(None, None, d) for d in lhs_dilation)] = x
        x = xd
    # pad (negative pads crop)
    x = np.pad(x, [(0, 0)] + [(max(lo, 0), max(hi, 0)) for lo, hi in padding] + [(0, 0)])
    x = x[(slice(None),) + tuple(slice(-lo if lo < 0 else None, hi if hi < 0 else None)
                                 for lo, hi in padding)]
    ks = w.shape[:nsp]
    eff = [(k - 1) * d + 1 for k, d in zip(ks, rhs_dilation)]
    out_sp = [(n - e) // s + 1 for n, e, s in zip(x.shape[1:-1], eff, strides)]
    cg, cout = w.shape[-2], w.shape[-1]
    og = cout // groups
    out = np.zeros([x.shape[0]] + out_sp + [cout])
    for pos in itertools.product(*[range(o) for o in out_sp]):
        win = x[(slice(None),) + tuple(slice(p * s, p * s + e, d) for p, s, e, d in
                                       zip(pos, strides, eff, rhs_dilation))]
        for g in range(groups):
            xs = win[..., g * cg:(g + 1) * cg]
            ws = w[..., g * og:(g + 1) * og]
            out[(slice(None),) + pos + (slice(g * og, (g + 1) * og),)] = \
                np.tensordot(xs, ws, axes=(list(range(1, nsp + 2)), list(range(nsp + 1))))
    return out


def ref_conv_transpose(x, w, strides, pad, output_padding, dilation):
    """Transposed convolution by definition (scatter): out[i*s - p + k*d] += x[i] w[k]^T.

    ``w`` is (*kernel, out, in) as TF's conv2d_transpose; groups = 1; symmetric ``pad``."""
    nsp = x.ndim - 2
    ks = w.shape[:nsp]
    out_sp = [(n - 1) * s - 2 * p + (k - 1) * d + 1 + op
              for n, s, p, k, d, op in zip(x.shape[1:-1], strides, pad, ks, dilation,
                                           output_padding)]
    out = np.zeros([x.shape[0]] + out_sp + [w.shape[-2]])
    for pos in itertools.product(*[range(n) for n in x.shape[1:-1]]):
        for kpos in itertools.product(*[range(k) for k in ks]):
            o = [i * s - p + k * d for i, s, p, k, d in zip(pos, strides, pad, kpos, dilation)]
            if all(0 <= oi < n for oi, n in zip(o, out_sp)):
                out[(slice(None),) + tuple(o)] += x[(slice(None),) + pos] @ w[kpos].T
    return out


def ref_pool(x, kind, window, strides, padding):
    """Max, sum or TF-style average (padding excluded) over windows of every dimension."""
    fill = 0
    if kind == "max":
        fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    xp = np.pad(x, padding, constant_values=fill)
    cnt = np.pad(np.ones_like(x), padding)
    out_sz = [(n - k) // s + 1 for n, k, s in zip(xp.shape, window, strides)]
    out = np.zeros(out_sz)
    for pos in itertools.product(*[range(o) for o in out_sz]):
        sl = tuple(slice(p * s, p * s + k) for p, s, k in zip(pos, strides, window))
        if kind == "max":
            out[pos] = xp[sl].max()
        elif kind == "sum":
            out[pos] = xp[sl].sum()
        else:
            out[pos] = xp[sl].sum() / cnt[sl].sum()
    return out


def _same(n, k, s):
    total = max((-(-n // s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


# ---- conv_general -----------------------------------------------------------------------------

row("conv2d_valid", "conv_general", lambda x, w: F.conv2d(x, w),
    lambda x, w: ref_conv(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1), (1, 1), 1),
    [((2, 5, 6, 3), (3, 2, 3, 4)), ((1, 3, 3, 1), (3, 3, 1, 2)), ((0, 4, 4, 2), (2, 2, 2, 3))],
    dtypes=ALL_FLOATS, rtol=1e-5, atol=1e-5)
row("conv2d_same_strided_dilated", "conv_general",
    lambda x, w: F.conv2d(x, w, strides=2, padding="same", dilations=(1, 2)),
    lambda x, w: ref_conv(x, w, (2, 2), (_same(x.shape[1], w.shape[0], 2),
                                         _same(x.shape[2], (w.shape[1] - 1) * 2 + 1, 2)),
                          (1, 1), (1, 2), 1),
    [((2, 7, 8, 3), (3, 3, 3, 2)), ((1, 6, 5, 2), (2, 2, 2, 4))],
    dtypes=ALL_FLOATS, rtol=1e-5, atol=1e-5)
row("conv2d_groups_explicit_padding", "conv_general",
    lambda x, w: F.conv2d(x, w, strides=(1, 2), padding=((1, 2), (0, 1)), groups=2),
    lambda x, w: ref_conv(x, w, (1, 2), ((1, 2), (0, 1)), (1, 1), (1, 1), 2),
    [((2, 5, 5, 4), (3, 2, 2, 6))], dtypes=FLOATS, rtol=1e-5, atol=1e-5)
row("conv1d", "conv_general", lambda x, w: F.conv1d(x, w, strides=2, padding=1),
    lambda x, w: ref_conv(x, w, (2,), ((1, 1),), (1,), (1,), 1),
    [((2, 9, 3), (3, 3, 5)), ((1, 4, 1), (4, 1, 1))], dtypes=ALL_FLOATS, rtol=1e-5, atol=1e-5)
row("conv3d", "conv_general", lambda x, w: F.conv3d(x, w, padding="same"),
    lambda x, w: ref_conv(x, w, (1, 1, 1), tuple(_same(n, k, 1) for n, k in
                                                 zip(x.shape[1:4], w.shape[:3])),
                          (1, 1, 1), (1, 1, 1), 1),
    [((1, 4, 3, 5, 2), (3, 2, 3, 2, 3))], dtypes=FLOATS, rtol=1e-5, atol=1e-5)
row("conv_general_lhs_dilation_negative_padding", "conv_general",
    lambda x, w: F.conv_general(x, w, window_strides=(1, 2), padding=((-1, 2), (2, -1)),
                                lhs_dilation=(2, 3), rhs_dilation=(2, 1)),
    lambda x, w: ref_conv(x, w, (1, 2), ((-1, 2), (2, -1)), (2, 3), (2, 1), 1),
    [((2, 4, 3, 2), (2, 3, 2, 3))], dtypes=FLOATS, rtol=1e-5, atol=1e-5)
row("depthwise_conv2d", "conv_general", lambda x, w: F.depthwise_conv2d(x, w, padding="same"),
    lambda x, w: ref_conv(x, w.reshape(w.shape[0], w.shape[1], 1, -1), (1, 1),
                          (_same(x.shape[1], w.shape[0], 1), _same(x.shape[2], w.shape[1], 1)),
                          (1, 1), (1, 1), x.shape[-1]),
    [((2, 5, 5, 3), (3, 3, 3, 2))], dtypes=FLOATS, rtol=1e-5, atol=1e-5)
row("conv_transpose2d", "conv_general",
    lambda x, w: F.conv_transpose2d(x, w, strides=2, padding=1, output_padding=1),
    lambda x, w: ref_conv_transpose(x, w, (2, 2), (1, 1), (1, 1), (1, 1)),
    [((2, 3, 4, 3), (3, 3, 2, 3)), ((1, 2, 2, 1), (2, 2, 3, 1))], dtypes=FLOATS,
    rtol=1e-5, atol=1e-5)
row("conv_transpose1d_dilated", "conv_general",
    lambda x, w: F.conv_transpose1d(x, w, strides=3, dilations=2),
    lambda x, w: ref_conv_transpose(x, w, (3,), (0,), (0,), (2,)),
    [((2, 4, 2), (3, 4, 2))], dtypes=FLOATS, rtol=1e-5, atol=1e-5)

# ---- reduce_window ----------------------------------------------------------------------------

row("max_pool2d", "reduce_window", lambda x: F.max_pool2d(x, (2, 3), (2, 1)),
    lambda x: ref_pool(x, "max", (1, 2, 3, 1), (1, 2, 1, 1), [(0, 0)] * 4),
    [((2, 6, 5, 3),), ((1, 2, 3, 1),)], dtypes=ALL_FLOATS,
    # max is piecewise linear: a small finite-difference step is exact and does not cross a
    # near-tie (this draw has two window entries 1e-4 apart, inside the default step)
    extra={"grad_tol": {"eps": 1e-6}})
row("max_pool2d_same", "reduce_window", lambda x: F.max_pool2d(x, 3, 2, padding="same"),
    lambda x: ref_pool(x, "max", (1, 3, 3, 1), (1, 2, 2, 1),
                       [(0, 0), _same(x.shape[1], 3, 2), _same(x.shape[2], 3, 2), (0, 0)]),
    [((2, 7, 6, 2),)], dtypes=ALL_FLOATS, extra={"grad_tol": {"eps": 1e-6}})
row("max_pool_ints", "reduce_window", lambda x: F.max_pool1d(x, 2, 1, padding="same"),
    lambda x: ref_pool(x, "max", (1, 2, 1), (1, 1, 1), [(0, 0), (0, 1), (0, 0)]).astype(x.dtype),
    [((2, 5, 3),)], dtypes=("int32",), low=-50, high=50, differentiable=False)
row("avg_pool2d", "reduce_window", lambda x: F.avg_pool2d(x, 2),
    lambda x: ref_pool(x, "avg", (1, 2, 2, 1), (1, 2, 2, 1), [(0, 0)] * 4),
    [((1, 5, 5, 2),)], dtypes=ALL_FLOATS)
# windows that tile the input exactly become a reshape and a mean (gradient: a broadcast)
row("avg_pool2d_tiled", ("reshape", "reduce_sum"), lambda x: F.avg_pool2d(x, 2),
    lambda x: ref_pool(x, "avg", (1, 2, 2, 1), (1, 2, 2, 1), [(0, 0)] * 4),
    [((2, 4, 6, 3),)], dtypes=ALL_FLOATS)
row("avg_pool2d_same_excludes_padding", "reduce_window",
    lambda x: F.avg_pool2d(x, 3, 2, padding="same"),
    lambda x: ref_pool(x, "avg", (1, 3, 3, 1), (1, 2, 2, 1),
                       [(0, 0), _same(x.shape[1], 3, 2), _same(x.shape[2], 3, 2), (0, 0)]),
    [((2, 6, 7, 2),)], dtypes=ALL_FLOATS)
row("avg_pool3d", "reduce_window", lambda x: F.avg_pool3d(x, 2, 1),
    lambda x: ref_pool(x, "avg", (1, 2, 2, 2, 1), (1, 1, 1, 1, 1), [(0, 0)] * 5),
    [((1, 3, 4, 3, 2),)], dtypes=FLOATS)
row("reduce_window_sum", "reduce_window",
    lambda x: F.reduce_window(x, "sum", (2, 3), (1, 2), padding=((1, 0), (1, 1))),
    lambda x: ref_pool(x, "sum", (2, 3), (1, 2), [(1, 0), (1, 1)]),
    [((4, 5),), ((3, 3),)], dtypes=FLOATS)

# ---- compositions --------------------------------------------------------------------------------


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


row("softmax", ("reduce_max", "stop_gradient", "exp", "reduce_sum"),
    lambda x: F.softmax(x), _softmax, [((3, 5),), ((2, 3, 4),), ((4,),)], dtypes=ALL_FLOATS,
    low=-20, high=20)
row("log_softmax", ("reduce_max", "exp", "log"), lambda x: F.log_softmax(x, axis=0),
    lambda x: np.log(_softmax(x, 0)), [((3, 5),), ((6,),)], dtypes=ALL_FLOATS, low=-5, high=5,
    rtol=1e-5, atol=1e-5)
row("depth_to_space", "transpose", lambda x: F.depth_to_space(x, 2),
    lambda x: x.reshape(x.shape[0], x.shape[1], x.shape[2], 2, 2, -1).transpose(
        0, 1, 3, 2, 4, 5).reshape(x.shape[0], x.shape[1] * 2, x.shape[2] * 2, -1),
    [((2, 3, 2, 8),)], dtypes=FLOATS)
