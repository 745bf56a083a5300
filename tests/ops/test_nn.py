"""s4.nn.functional: convolutions, pooling, softmax and image ops against torch (layouts
converted: s4tf_py is channels-last with HWIO filters, torch channels-first with OIHW)."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4

F = s4.nn.functional
T = s4.Tensor
import torch  # noqa: E402 - a test extra (setup.py), never skipped
TF = torch.nn.functional


def _rng(seed=0):
    return np.random.default_rng(seed)


def to_torch(x):
    """Channels-last numpy -> channels-first torch tensor."""
    return torch.tensor(np.moveaxis(x, -1, 1))


def from_torch(t):
    return np.moveaxis(t.numpy(), 1, -1)


def filter_to_torch(w):
    """(*k, I, O) -> (O, I, *k)."""
    return torch.tensor(np.moveaxis(np.moveaxis(w, -1, 0), -1, 1))


# ---- convolutions ---------------------------------------------------------------------------------

CONV_CASES = [  # stride, padding, dilation, groups
    (1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 2), (2, 1, 2, 4), (3, (1, 2), 1, 1)]


@pytest.mark.parametrize("nsp", [1, 2, 3])
@pytest.mark.parametrize("stride,pad,dil,groups", CONV_CASES)
def test_conv_matches_torch(nsp, stride, pad, dil, groups):
    rng = _rng(nsp)
    sp = (7, 8, 6)[:nsp] if nsp < 3 else (6, 5, 6)
    x = rng.normal(size=(2, *sp, 4))
    w = rng.normal(size=(3,) * nsp + (4 // groups, 8))
    if isinstance(pad, tuple):          # asymmetric explicit padding: pad torch's input by hand
        pads = (pad,) * nsp
        xt = TF.pad(to_torch(x), [p for lo_hi in reversed(pads) for p in lo_hi])
        tpad = 0
    else:
        pads, xt, tpad = pad, to_torch(x), pad
    fn = (F.conv1d, F.conv2d, F.conv3d)[nsp - 1]
    tfn = (TF.conv1d, TF.conv2d, TF.conv3d)[nsp - 1]
    got = fn(T(x), T(w), strides=stride, padding=pads, dilations=dil, groups=groups)
    want = from_torch(tfn(xt, filter_to_torch(w), stride=stride, padding=tpad, dilation=dil,
                          groups=groups))
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_conv2d_same_padding_is_tensorflows():
    """TF "same": output ceil(n / stride), the odd pad unit at the end (bottom/right)."""
    rng = _rng(1)
    x = rng.normal(size=(1, 6, 7, 2)).astype(np.float32)
    w = rng.normal(size=(4, 3, 2, 3)).astype(np.float32)
    got = F.conv2d(T(x), T(w), strides=2, padding="same").numpy()
    assert got.shape == (1, 3, 4, 3)
    # rows: total pad (3-1)*2 + 4 - 6 = 2 -> (1, 1); cols: (4-1)*2 + 3 - 7 = 2 -> (1, 1)
    want = from_torch(TF.conv2d(TF.pad(to_torch(x), [1, 1, 1, 1]), filter_to_torch(w), stride=2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got = F.conv2d(T(x), T(w), padding="same").numpy()       # stride 1: pads (1, 2) and (1, 1)
    want = from_torch(TF.conv2d(TF.pad(to_torch(x), [1, 1, 1, 2]), filter_to_torch(w)))
    assert got.shape == (1, 6, 7, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_conv_s4tf_full_rank_strides_and_low_precision():
    rng = _rng(2)
    x = rng.normal(size=(1, 6, 6, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 2)).astype(np.float32)
    a = F.conv2d(T(x), T(w), strides=(1, 2, 2, 1)).numpy()
    b = F.conv2d(T(x), T(w), strides=2).numpy()
    np.testing.assert_array_equal(a, b)
    for d in (s4.float16, s4.bfloat16):
        r = F.conv2d(T(x).astype(d), T(w).astype(d), strides=2)
        assert r.dtype == d
        np.testing.assert_allclose(r.numpy().astype(np.float32), b, rtol=0.05, atol=0.1)


@pytest.mark.parametrize("nsp", [1, 2, 3])
@pytest.mark.parametrize("stride,pad,opad,dil,groups", [
    (1, 0, 0, 1, 1), (2, 0, 1, 1, 1), (2, 1, 1, 1, 2), (3, 2, 1, 2, 1), (2, 1, 0, 2, 4)])
def test_conv_transpose_matches_torch(nsp, stride, pad, opad, dil, groups):
    rng = _rng(3 + nsp)
    sp = (5, 4, 3)[:nsp]
    x = rng.normal(size=(2, *sp, 4))
    w = rng.normal(size=(3,) * nsp + (3, 4))             # (*k, out/groups, in) as TF
    fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[nsp - 1]
    tfn = (TF.conv_transpose1d, TF.conv_transpose2d, TF.conv_transpose3d)[nsp - 1]
    got = fn(T(x), T(w), strides=stride, padding=pad, output_padding=opad, dilations=dil,
             groups=groups)
    # torch's weight is (in, out/groups, *k)
    wt = torch.tensor(np.moveaxis(np.moveaxis(w, -1, 0), -1, 1))
    want = from_torch(tfn(to_torch(x), wt, stride=stride, padding=pad, output_padding=opad,
                          dilation=dil, groups=groups))
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("n,stride", [(7, 2), (8, 2), (9, 3), (5, 1)])
def test_conv_transpose_is_the_adjoint_of_conv(padding, n, stride):
    """<conv(y), x> == <conv_transpose(x), y> for TF-style "same"/"valid" with output_shape."""
    rng = _rng(n * 10 + stride)
    w = rng.normal(size=(3, 3, 2, 5))
    y = rng.normal(size=(2, n, n + 1, 2))
    fy = F.conv2d(T(y), T(w), strides=stride, padding=padding)
    x = rng.normal(size=fy.shape)
    tx = F.conv_transpose2d(T(x), T(w), output_shape=y.shape, strides=stride, padding=padding)
    assert tx.shape == y.shape
    np.testing.assert_allclose(np.sum(fy.numpy() * x), np.sum(tx.numpy() * y), rtol=1e-10)


def test_conv_transpose_default_output_sizes_follow_s4tf():
    x = T(np.ones((1, 3, 4, 2)))
    w = T(np.ones((3, 3, 5, 2)))
    assert F.conv_transpose2d(x, w, strides=2, padding="same").shape == (1, 6, 8, 5)
    assert F.transposed_conv2d(x, w, strides=2).shape == (1, 7, 9, 5)   # (n-1)*s + k


def test_depthwise_conv2d_matches_torch_groups():
    rng = _rng(5)
    x = rng.normal(size=(2, 6, 6, 3))
    w = rng.normal(size=(3, 3, 3, 2))                      # (kh, kw, in, multiplier)
    got = F.depthwise_conv2d(T(x), T(w), strides=2, padding=1).numpy()
    wt = torch.tensor(np.transpose(w.reshape(3, 3, 6), (2, 0, 1))[:, None])   # (C*M, 1, kh, kw)
    want = from_torch(TF.conv2d(to_torch(x), wt, stride=2, padding=1, groups=3))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    pw = rng.normal(size=(1, 1, 6, 4))
    sep = F.separable_conv2d(T(x), T(w), T(pw), strides=2, padding=1)
    np.testing.assert_allclose(sep.numpy(), np.einsum("nhwc,co->nhwo", got, pw[0, 0]),
                               rtol=1e-10, atol=1e-10)


# ---- pooling ------------------------------------------------------------------------------------

def test_pooling_matches_torch():
    rng = _rng(6)
    x = rng.normal(size=(2, 7, 6, 3)).astype(np.float32)
    xt = to_torch(x)
    cases = [
        (F.max_pool2d(T(x), 3, 2), TF.max_pool2d(xt, 3, 2)),
        (F.max_pool2d(T(x), 3, 2, padding=1), TF.max_pool2d(xt, 3, 2, padding=1)),
        (F.avg_pool2d(T(x), (2, 3), (1, 2)), TF.avg_pool2d(xt, (2, 3), (1, 2))),
        (F.avg_pool2d(T(x), 3, 2, padding=1),
         TF.avg_pool2d(xt, 3, 2, padding=1, count_include_pad=False)),
        (F.avg_pool2d(T(x), 3, 2, padding=1, count_include_pad=True),
         TF.avg_pool2d(xt, 3, 2, padding=1)),
    ]
    for got, want in cases:
        np.testing.assert_allclose(got.numpy(), from_torch(want), rtol=1e-6, atol=1e-6)
    x1 = rng.normal(size=(2, 9, 3))
    np.testing.assert_allclose(F.max_pool1d(T(x1), 3, 2).numpy(),
                               from_torch(TF.max_pool1d(to_torch(x1), 3, 2)))
    np.testing.assert_allclose(F.avg_pool1d(T(x1), 2).numpy(),
                               from_torch(TF.avg_pool1d(to_torch(x1), 2)))
    x3 = rng.normal(size=(1, 4, 5, 6, 2))
    np.testing.assert_allclose(F.avg_pool3d(T(x3), 2).numpy(),
                               from_torch(TF.avg_pool3d(to_torch(x3), 2)))
    np.testing.assert_allclose(F.max_pool3d(T(x3), (2, 3, 2), 1).numpy(),
                               from_torch(TF.max_pool3d(to_torch(x3), (2, 3, 2), 1)))


def test_same_pooling_is_tensorflows():
    x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    m = F.max_pool2d(T(x), 2, 2, padding="same").numpy()[0, :, :, 0]
    # output 3x3; windows end at the padded last row/column
    np.testing.assert_array_equal(m, [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    a = F.avg_pool2d(T(x), 2, 2, padding="same").numpy()[0, :, :, 0]
    np.testing.assert_allclose(a, [[3, 5, 6.5], [13, 15, 16.5], [20.5, 22.5, 24]])
    # 3x3 stride 1: the corner averages 4 real elements (padding excluded, as TF)
    a = F.avg_pool2d(T(x), 3, 1, padding="same").numpy()[0, :, :, 0]
    assert a.shape == (5, 5) and a[0, 0] == np.mean([0, 1, 5, 6])


def test_global_pooling():
    x = _rng(7).normal(size=(2, 3, 4, 5))
    np.testing.assert_allclose(F.global_avg_pool2d(T(x)).numpy(), x.mean(axis=(1, 2)))
    np.testing.assert_allclose(F.global_max_pool2d(T(x), keepdims=True).numpy(),
                               x.max(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(F.global_avg_pool1d(T(x[:, 0])).numpy(), x[:, 0].mean(axis=1))


# ---- softmax -----------------------------------------------------------------------------------

def test_softmax_and_log_softmax_match_torch_and_are_stable():
    x = _rng(8).normal(size=(3, 5)).astype(np.float32) * 40
    np.testing.assert_allclose(F.softmax(T(x)).numpy(), TF.softmax(torch.tensor(x), -1).numpy(),
                               atol=1e-6)
    np.testing.assert_allclose(F.log_softmax(T(x), axis=0).numpy(),
                               TF.log_softmax(torch.tensor(x), 0).numpy(), rtol=1e-5, atol=1e-4)
    big = F.softmax(T([[1000.0, 1000.0], [-1000.0, 0.0]])).numpy()
    np.testing.assert_allclose(big, [[0.5, 0.5], [0.0, 1.0]])
    masked = F.log_softmax(T([0.0, float("-inf"), 0.0])).numpy()
    np.testing.assert_allclose(masked, [np.log(0.5), -np.inf, np.log(0.5)])
    assert F.softmax(T([1, 2, 3])).dtype == s4.float32          # ints compute in float32


def test_softmax_uses_a_stop_gradient_max():
    fn = s4.trace(lambda x: F.softmax(x), T(np.ones((2, 3), np.float32)))
    assert "stop_gradient" in str(fn)


# ---- image ops -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(10, 14), (3, 4), (5, 3), (8, 11)])
def test_resize_matches_torch_half_pixel(size):
    img = _rng(9).normal(size=(2, 5, 7, 3)).astype(np.float32)
    it = to_torch(img)
    got = F.resize(T(img), size).numpy()
    want = from_torch(TF.interpolate(it, size=size, mode="bilinear", align_corners=False))
    np.testing.assert_allclose(got, want, atol=1e-5)
    got = F.resize(T(img), size, method="nearest").numpy()
    want = from_torch(TF.interpolate(it, size=size, mode="nearest-exact"))
    np.testing.assert_array_equal(got, want)


def test_resize_dtypes_and_hwc():
    img = np.arange(12, dtype=np.int32).reshape(2, 2, 3)
    assert F.resize(T(img), (4, 4), method="nearest").dtype == s4.int32
    b = F.resize(T(img), (4, 4))
    assert b.dtype == s4.float32 and b.shape == (4, 4, 3)


def test_depth_to_space_and_back():
    x = _rng(10).normal(size=(2, 3, 4, 12))
    d = F.depth_to_space(T(x), 2).numpy()
    want = np.zeros((2, 6, 8, 3))
    for i in range(2):
        for j in range(2):
            want[:, i::2, j::2, :] = x[..., (i * 2 + j) * 3:(i * 2 + j + 1) * 3]
    np.testing.assert_array_equal(d, want)
    np.testing.assert_array_equal(F.space_to_depth(T(d), 2).numpy(), x)


def test_batch_norm():
    rng = _rng(11)
    x = rng.normal(size=(4, 3))
    m, v, o, s = x.mean(0), x.var(0), rng.normal(size=3), rng.normal(size=3)
    got = F.batch_norm(T(x), T(m), T(v), offset=T(o), scale=T(s), epsilon=1e-5).numpy()
    np.testing.assert_allclose(got, (x - m) / np.sqrt(v + 1e-5) * s + o)


# ---- errors -------------------------------------------------------------------------------------

def test_conv_channel_mismatch_names_op_and_line():
    with pytest.raises(s4.ShapeError) as e:
        F.conv2d(s4.ones((1, 5, 5, 3)), s4.ones((3, 3, 4, 8)))
    msg = str(e.value)
    assert "conv_general" in msg and "test_nn.py" in msg and "f32[1,5,5,3]" in msg


def test_conv_rank_and_window_errors():
    with pytest.raises(s4.ShapeError, match="conv2d") as e:
        F.conv2d(s4.ones((5, 5, 3)), s4.ones((3, 3, 3, 8)))
    assert "test_nn.py" in str(e.value)
    with pytest.raises(s4.ShapeError, match="smaller than the"):
        F.conv2d(s4.ones((1, 2, 2, 1)), s4.ones((3, 3, 1, 1)))
    with pytest.raises(s4.DTypeError, match="bool"):
        F.conv1d(s4.ones((1, 4, 1), dtype=s4.bool_), s4.ones((2, 1, 1), dtype=s4.bool_))


def test_pool_errors_name_op_and_line():
    with pytest.raises(s4.ShapeError) as e:
        F.max_pool2d(s4.ones((1, 2, 2, 1)), 3)
    assert "reduce_window" in str(e.value) and "test_nn.py" in str(e.value)
    with pytest.raises(s4.ShapeError, match="max_pool2d"):
        F.max_pool2d(s4.ones((2, 2)), 2)
    with pytest.raises(ValueError, match="padding"):
        F.avg_pool2d(s4.ones((1, 4, 4, 1)), 2, padding="full")
