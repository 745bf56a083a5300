"""Convolution layers (s4tf_py.nn.convolutional) against PyTorch with the same weights
(channels-last/HWIO converted to channels-first/OIHW), S4TF's output shapes, construction
rules, errors, gradients (finite differences on the reference backend) and LLVM/reference
parity."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import s4tf_py as s4
from s4tf_py.nn import initializers
from s4tf_py.nn.convolutional import (Conv1D, Conv2D, Conv3D, DepthwiseConv2D, SeparableConv1D,
                                      SeparableConv2D, TransposedConv1D, TransposedConv2D,
                                      TransposedConv3D)

TF = torch.nn.functional
T = s4.Tensor
CONV = {1: Conv1D, 2: Conv2D, 3: Conv3D}
TCONV = {1: TransposedConv1D, 2: TransposedConv2D, 3: TransposedConv3D}


def _rng(seed=0):
    return np.random.default_rng(seed)


def to_torch(x):
    """Channels-last numpy -> channels-first torch tensor."""
    return torch.tensor(np.moveaxis(x, -1, 1))


def from_torch(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


def filter_to_torch(w):
    """(*k, A, B) -> (B, A, *k): HWIO -> OIHW, and (*k, out, in) -> (in, out, *k) as torch's
    transposed convolutions take it."""
    return torch.tensor(np.moveaxis(np.moveaxis(w, -1, 0), -1, 1))


def same_pads(sizes, kernel, strides, dilations):
    """TensorFlow's "same" padding, written out independently of the library."""
    pads = []
    for n, k, s, d in zip(sizes, kernel, strides, dilations):
        eff = (k - 1) * d + 1
        total = max((math.ceil(n / s) - 1) * s + eff - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def torch_pad(xt, pads):
    """Pad a channels-first torch tensor by ``(lo, hi)`` pairs of its spatial dimensions."""
    return TF.pad(xt, [p for pair in reversed(pads) for p in pair])


def torch_conv(x, w, b, strides, padding, dilations, groups=1):
    rank = x.ndim - 2
    xt = to_torch(x)
    if padding == "same":
        xt = torch_pad(xt, same_pads(x.shape[1:-1], w.shape[:rank], strides, dilations))
    conv = (TF.conv1d, TF.conv2d, TF.conv3d)[rank - 1]
    y = conv(xt, filter_to_torch(w), None if b is None else torch.tensor(b), stride=strides,
             dilation=dilations, groups=groups)
    return from_torch(y)


def _tuple(v, rank):
    return (v,) * rank if isinstance(v, int) else tuple(v)


# ---- Conv1D / Conv2D / Conv3D --------------------------------------------------------------------

CONV_CASES = [  # kernel, strides, padding, dilations, groups
    (3, 1, "valid", 1, 1),
    (3, 2, "same", 1, 1),
    (2, 1, "same", 2, 1),        # even kernel: TensorFlow puts the extra padding at the end
    (3, 3, "same", 1, 2),
    (3, 2, "valid", 2, 2),
]


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel,strides,padding,dilations,groups", CONV_CASES)
def test_conv_matches_torch(rank, kernel, strides, padding, dilations, groups):
    rng = _rng(rank)
    sizes = (9, 8, 7)[:rank]
    x = rng.normal(size=(2, *sizes, 4))
    w = rng.normal(size=(kernel,) * rank + (4 // groups, 6))
    b = rng.normal(size=(6,))
    layer = CONV[rank](filter=T(w), bias=T(b), strides=strides, padding=padding,
                       dilations=dilations, groups=groups)
    got = layer(T(x))
    want = torch_conv(x, w, b, _tuple(strides, rank), padding, _tuple(dilations, rank), groups)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_conv2d_asymmetric_strides_dilations_and_activation_match_torch():
    rng = _rng(1)
    x = rng.normal(size=(2, 11, 10, 3))
    w = rng.normal(size=(3, 2, 3, 5))
    b = rng.normal(size=(5,))
    layer = Conv2D(filter=T(w), bias=T(b), strides=(2, 3), padding="same", dilations=(1, 2),
                   activation=s4.relu)
    want = np.maximum(torch_conv(x, w, b, (2, 3), "same", (1, 2)), 0)
    np.testing.assert_allclose(layer(T(x)).numpy(), want, rtol=1e-10, atol=1e-10)


def test_conv_explicit_padding_matches_torch():
    rng = _rng(2)
    x = rng.normal(size=(1, 6, 7, 2))
    w = rng.normal(size=(3, 3, 2, 3))
    layer = Conv2D(filter=T(w), padding=((1, 2), (0, 1)))
    want = from_torch(TF.conv2d(torch_pad(to_torch(x), [(1, 2), (0, 1)]), filter_to_torch(w)))
    np.testing.assert_allclose(layer(T(x)).numpy(), want, rtol=1e-10, atol=1e-10)


def test_conv1d_accepts_s4tfs_singular_stride_and_dilation():
    rng = _rng(3)
    x = rng.normal(size=(2, 12, 3))
    w = rng.normal(size=(3, 3, 4))
    layer = Conv1D(filter=T(w), stride=2, dilation=2)
    assert layer.strides == (2,) and layer.dilations == (2,)
    want = torch_conv(x, w, None, (2,), "valid", (2,))
    np.testing.assert_allclose(layer(T(x)).numpy(), want, rtol=1e-10, atol=1e-10)


def test_full_rank_strides_as_s4tf_writes_them():
    assert Conv2D((3, 3, 1, 1), strides=(1, 2, 3, 1), seed=0).strides == (2, 3)


# ---- construction -------------------------------------------------------------------------------

def test_filter_shape_uses_s4tfs_default_initialization():
    layer = Conv2D(filter_shape=(3, 3, 4, 8), seed=3)
    assert layer.filter.shape == (3, 3, 4, 8) and layer.filter.dtype == s4.float32
    np.testing.assert_array_equal(layer.filter.numpy(),
                                  initializers.glorot_uniform((3, 3, 4, 8), seed=3).numpy())
    limit = math.sqrt(6 / (36 + 72))           # fans of a 3x3x4x8 filter: 36 and 72
    assert np.abs(layer.filter.numpy()).max() <= limit
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(8, np.float32))
    assert layer.use_bias and layer.activation is None and layer.padding == "valid"
    assert layer.strides == (1, 1) and layer.dilations == (1, 1)


def test_seeds_and_keys_make_initialization_repeatable():
    a = Conv3D((2, 2, 2, 1, 3), seed=5)
    b = Conv3D((2, 2, 2, 1, 3), seed=5)
    c = Conv3D((2, 2, 2, 1, 3), seed=6)
    assert np.array_equal(a.filter.numpy(), b.filter.numpy())
    assert not np.array_equal(a.filter.numpy(), c.filter.numpy())
    k = s4.random.key(9)
    assert np.array_equal(Conv1D((3, 2, 2), key=k).filter.numpy(),
                          Conv1D((3, 2, 2), key=k).filter.numpy())


def test_initializers_dtype_and_use_bias_options():
    layer = Conv1D((3, 2, 4), dtype=s4.float64, use_bias=False,
                   filter_initializer=initializers.ones, bias_initializer=initializers.ones)
    assert layer.filter.dtype == s4.float64 and layer.bias.dtype == s4.float64
    y = layer(s4.ones((1, 5, 2), dtype=s4.float64))
    np.testing.assert_array_equal(y.numpy(), np.full((1, 3, 4), 6.0))   # no bias added


def test_a_layer_built_from_a_filter_alone_adds_no_bias_as_in_s4tf():
    w = T(np.ones((1, 1, 1, 2)))
    assert not Conv2D(filter=w).use_bias
    assert Conv2D(filter=w, bias=T(np.ones(2))).use_bias
    assert Conv2D(filter=w, use_bias=True).use_bias


def test_parameters_and_tangent_vector():
    layer = Conv2D((3, 3, 2, 4), padding="same", seed=0)
    assert [n for n, _ in layer.named_parameters()] == ["filter", "bias"]
    x = s4.ones((1, 4, 4, 2))
    g = s4.gradient(at=layer, of=lambda m: m(x).sum())
    assert type(g).__qualname__ == "Conv2D.TangentVector"
    assert g.filter.shape == (3, 3, 2, 4)
    np.testing.assert_allclose(g.bias.numpy(), np.full(4, 16.0))      # d sum / d bias = H * W
    sep = SeparableConv2D((3, 3, 2, 2), (1, 1, 4, 3), seed=0)
    assert [n for n, _ in sep.named_parameters()] == ["depthwise_filter", "pointwise_filter",
                                                      "bias"]


def test_a_compiled_step_traces_a_layer_once():
    layer = Conv2D((3, 3, 2, 4), strides=2, padding="same", activation=s4.relu, seed=0)
    step = s4.compile(lambda m, x: m(x).sum())
    x = T(_rng(4).normal(size=(2, 6, 6, 2)).astype(np.float32))
    a = step(layer, x)
    b = step(layer, x * 2.0)
    assert step.traces == 1
    np.testing.assert_allclose(a.item(), layer(x).sum().item(), rtol=1e-5)
    assert b.item() != a.item()


# ---- transposed convolutions ---------------------------------------------------------------------

def torch_transposed(x, w, b, strides, padding, dilations=None, groups=1):
    """torch's full transposed convolution, cropped (or zero-extended at the end) to
    TensorFlow's "same" size ``in * stride``; the bias is added last."""
    rank = x.ndim - 2
    dilations = dilations or (1,) * rank
    conv = (TF.conv_transpose1d, TF.conv_transpose2d, TF.conv_transpose3d)[rank - 1]
    y = from_torch(conv(to_torch(x), filter_to_torch(w), stride=strides, dilation=dilations,
                        groups=groups))
    if padding == "same":
        for i, (n, k, s, d) in enumerate(zip(x.shape[1:-1], w.shape[:rank], strides,
                                             dilations)):
            target = n * s
            lo = max((k - 1) * d + 1 - s, 0) // 2
            y = np.moveaxis(y, i + 1, 0)[lo:lo + target]
            if y.shape[0] < target:
                y = np.concatenate([y, np.zeros((target - y.shape[0],) + y.shape[1:])])
            y = np.moveaxis(y, 0, i + 1)
    return y + b


TCONV_CASES = [  # kernel, strides, padding
    (3, 1, "valid"), (3, 2, "valid"), (3, 2, "same"), (4, 2, "same"), (2, 3, "same"),
]


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel,strides,padding", TCONV_CASES)
def test_transposed_conv_matches_torch_with_s4tfs_output_size(rank, kernel, strides, padding):
    rng = _rng(10 + rank)
    sizes = (5, 4, 3)[:rank]
    x = rng.normal(size=(2, *sizes, 3))
    w = rng.normal(size=(kernel,) * rank + (4, 3))        # (*k, out, in)
    b = rng.normal(size=(4,))
    layer = TCONV[rank](filter=T(w), bias=T(b), strides=strides, padding=padding)
    got = layer(T(x))
    # S4TF: (in - 1) * stride + kernel with "valid" padding, in * stride with "same"
    want_sizes = tuple((n - 1) * strides + kernel if padding == "valid" else n * strides
                       for n in sizes)
    assert got.shape == (2, *want_sizes, 4)
    want = torch_transposed(x, w, b, (strides,) * rank, padding)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding,size", [("valid", (9, 7)), ("same", (8, 5))])
def test_transposed_conv_with_dilations_and_groups_matches_torch(padding, size):
    rng = _rng(20)
    x = rng.normal(size=(1, 4, 5, 4))
    w = rng.normal(size=(3, 2, 3, 4))                      # (*k, out / groups, in), groups=2
    b = rng.normal(size=(6,))
    layer = TransposedConv2D(filter=T(w), bias=T(b), strides=(2, 1), dilations=(1, 2),
                             groups=2, padding=padding, activation=s4.tanh)
    got = layer(T(x))
    want = np.tanh(torch_transposed(x, w, b, (2, 1), padding, (1, 2), groups=2))
    assert got.shape == want.shape == (1, *size, 6)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_transposed_conv_filter_shape_is_out_then_in():
    layer = TransposedConv2D(filter_shape=(3, 3, 8, 16), strides=2, seed=0)
    assert layer.bias.shape == (8,)
    assert layer(s4.ones((1, 4, 4, 16))).shape == (1, 9, 9, 8)
    with pytest.raises(s4.ShapeError, match="16 channels"):
        layer(s4.ones((1, 4, 4, 8)))


# ---- depthwise and separable convolutions --------------------------------------------------------

def torch_depthwise(x, w, strides, padding, dilations):
    """(kh, kw, C, m) depthwise filter as torch's grouped (C*m, 1, kh, kw) weight."""
    kh, kw, c, m = w.shape
    xt = to_torch(x)
    if padding == "same":
        xt = torch_pad(xt, same_pads(x.shape[1:3], (kh, kw), strides, dilations))
    wt = filter_to_torch(w.reshape(kh, kw, 1, c * m))
    return from_torch(TF.conv2d(xt, wt, stride=strides, dilation=dilations, groups=c))


@pytest.mark.parametrize("strides,padding,dilations", [
    ((1, 1), "valid", (1, 1)), ((2, 2), "same", (1, 1)), ((1, 2), "same", (2, 1))])
def test_depthwise_conv2d_matches_torch(strides, padding, dilations):
    rng = _rng(30)
    x = rng.normal(size=(2, 8, 7, 3))
    w = rng.normal(size=(3, 3, 3, 2))
    b = rng.normal(size=(6,))
    layer = DepthwiseConv2D(filter=T(w), bias=T(b), strides=strides, padding=padding,
                            dilations=dilations)
    want = torch_depthwise(x, w, strides, padding, dilations) + b
    got = layer(T(x))
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)
    assert DepthwiseConv2D((3, 3, 3, 2), seed=0).bias.shape == (6,)


@pytest.mark.parametrize("strides,padding", [(1, "valid"), (2, "same")])
def test_separable_conv2d_matches_torch(strides, padding):
    rng = _rng(31)
    x = rng.normal(size=(2, 7, 7, 3))
    dw = rng.normal(size=(3, 3, 3, 2))
    pw = rng.normal(size=(1, 1, 6, 5))
    b = rng.normal(size=(5,))
    layer = SeparableConv2D(depthwise_filter=T(dw), pointwise_filter=T(pw), bias=T(b),
                            strides=strides, padding=padding, activation=s4.relu)
    mid = torch_depthwise(x, dw, (strides, strides), padding, (1, 1))
    want = np.maximum(torch_conv(mid, pw, b, (1, 1), "valid", (1, 1)), 0)
    np.testing.assert_allclose(layer(T(x)).numpy(), want, rtol=1e-10, atol=1e-10)


def test_separable_conv1d_matches_torch():
    rng = _rng(32)
    x = rng.normal(size=(2, 11, 3))
    dw = rng.normal(size=(3, 3, 2))                        # (width, in, multiplier)
    pw = rng.normal(size=(1, 6, 4))                        # (1, in * multiplier, out)
    b = rng.normal(size=(4,))
    layer = SeparableConv1D(depthwise_filter=T(dw), pointwise_filter=T(pw), bias=T(b),
                            stride=2, padding="same", dilation=1)
    xt = torch_pad(to_torch(x), same_pads((11,), (3,), (2,), (1,)))
    mid = TF.conv1d(xt, filter_to_torch(dw.reshape(3, 1, 6)), stride=2, groups=3)
    want = from_torch(TF.conv1d(mid, filter_to_torch(pw), torch.tensor(b)))
    got = layer(T(x))
    assert got.shape == (2, 6, 4)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_separable_conv_checks_its_pointwise_filter():
    with pytest.raises(s4.ShapeError, match="pointwise filter"):
        SeparableConv2D((3, 3, 4, 2), (1, 1, 4, 6), seed=0)    # needs 4 * 2 = 8 inputs


# ---- errors --------------------------------------------------------------------------------------

LAYERS = [  # a layer of every class and an input it accepts
    (lambda: Conv1D((3, 2, 4), seed=0), (2, 6, 2)),
    (lambda: Conv2D((3, 3, 2, 4), seed=0), (2, 5, 5, 2)),
    (lambda: Conv3D((2, 2, 2, 2, 4), seed=0), (1, 3, 3, 3, 2)),
    (lambda: TransposedConv1D((3, 4, 2), stride=2, seed=0), (2, 4, 2)),
    (lambda: TransposedConv2D((3, 3, 4, 2), strides=2, seed=0), (2, 3, 3, 2)),
    (lambda: TransposedConv3D((2, 2, 2, 4, 2), strides=2, seed=0), (1, 2, 2, 2, 2)),
    (lambda: DepthwiseConv2D((3, 3, 2, 2), seed=0), (2, 5, 5, 2)),
    (lambda: SeparableConv1D((3, 2, 2), (1, 4, 3), seed=0), (2, 6, 2)),
    (lambda: SeparableConv2D((3, 3, 2, 2), (1, 1, 4, 3), seed=0), (2, 5, 5, 2)),
]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_wrong_rank_or_channels_raise_shape_errors_naming_the_layer(make, shape):
    layer = make()
    name = type(layer).__name__
    bad_rank = shape[1:]
    with pytest.raises(s4.ShapeError) as e:
        layer(s4.ones(bad_rank))
    assert e.value.op == name
    assert f"{name}: expects a {len(shape)}-D input" in str(e.value)
    assert f"got shape {bad_rank}" in str(e.value)
    bad_channels = shape[:-1] + (shape[-1] + 1,)
    with pytest.raises(s4.ShapeError) as e:
        layer(s4.ones(bad_channels))
    assert e.value.op == name
    assert f"expects inputs with {shape[-1]} channels" in str(e.value)
    assert f"got shape {bad_channels}" in str(e.value)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="filter_shape must be 4 positive ints"):
        Conv2D((3, 3, 4))
    with pytest.raises(TypeError, match="needs filter_shape"):
        Conv2D()
    with pytest.raises(ValueError, match="padding must be"):
        Conv2D((3, 3, 1, 1), padding="full")
    with pytest.raises(ValueError, match="strides must be positive"):
        Conv2D((3, 3, 1, 1), strides=0)
    with pytest.raises(s4.ShapeError, match="bias needs 4 elements"):
        Conv1D(filter=T(np.ones((3, 2, 4))), bias=T(np.ones(3)))
    with pytest.raises(s4.ShapeError, match="expects a 4-D filter"):
        Conv2D(filter=T(np.ones((3, 2, 4))))


# ---- gradients (finite differences, reference backend) -------------------------------------------

GRAD_CASES = [  # build(filter, bias) -> layer, x shape, filter shape, bias shape
    (lambda w, b: Conv1D(filter=w, bias=b, stride=2, padding="same"), (2, 5, 2), (3, 2, 3), 3),
    (lambda w, b: Conv2D(filter=w, bias=b, dilations=2, activation=s4.tanh), (1, 5, 5, 2),
     (2, 2, 2, 2), 2),
    (lambda w, b: Conv2D(filter=w, bias=b, groups=2, strides=(2, 1), padding="same"),
     (1, 4, 3, 4), (2, 2, 2, 2), 2),
    (lambda w, b: Conv3D(filter=w, bias=b, padding="same"), (1, 3, 2, 3, 1), (2, 2, 2, 1, 2), 2),
    (lambda w, b: TransposedConv1D(filter=w, bias=b, stride=2, padding="same"), (1, 3, 2),
     (3, 2, 2), 2),
    (lambda w, b: TransposedConv2D(filter=w, bias=b, strides=2), (1, 2, 3, 2), (3, 2, 2, 2), 2),
    (lambda w, b: TransposedConv3D(filter=w, bias=b, strides=(1, 2, 1)), (1, 2, 2, 2, 1),
     (2, 2, 2, 2, 1), 2),
    (lambda w, b: DepthwiseConv2D(filter=w, bias=b, strides=2, padding="same"), (1, 4, 4, 2),
     (3, 3, 2, 2), 4),
]


@pytest.mark.parametrize("build,xs,ws,bs", GRAD_CASES)
def test_gradients_match_finite_differences(on_the_reference_backend, build, xs, ws, bs):
    rng = _rng(40)
    args = (T(rng.normal(size=xs)), T(rng.normal(size=ws)), T(rng.normal(size=(bs,))))
    s4.check_grads(lambda x, w, b: build(w, b)(x), args, order=2)


def test_separable_gradients_match_finite_differences(on_the_reference_backend):
    rng = _rng(41)
    args = (T(rng.normal(size=(1, 5, 4, 2))), T(rng.normal(size=(3, 2, 2, 2))),
            T(rng.normal(size=(1, 1, 4, 3))), T(rng.normal(size=(3,))))

    def f(x, dw, pw, b):
        return SeparableConv2D(depthwise_filter=dw, pointwise_filter=pw, bias=b,
                               padding="same")(x)
    s4.check_grads(f, args, order=1)
    args1 = (T(rng.normal(size=(2, 5, 2))), T(rng.normal(size=(2, 2, 2))),
             T(rng.normal(size=(1, 4, 2))), T(rng.normal(size=(2,))))
    s4.check_grads(lambda x, dw, pw, b: SeparableConv1D(
        depthwise_filter=dw, pointwise_filter=pw, bias=b, stride=2)(x), args1, order=1)


# ---- the LLVM backend (default) against the reference backend ------------------------------------

def forward_and_vjp(layer, x):
    """The layer's output and the gradients of ``sum(output * cotangent)`` with respect to
    the input and every parameter, as numpy arrays."""
    y = layer(T(x))
    ct = T(np.cos(np.arange(y.size)).reshape(y.shape).astype(np.float32))
    g_layer, g_x = s4.gradient(at=(layer, T(x)), of=lambda m, x: (m(x) * ct).sum())
    return [y.numpy(), g_x.numpy()] + [g.numpy() for g in g_layer]


@pytest.mark.parametrize("make,shape", LAYERS)
def test_llvm_matches_the_reference_backend(make, shape):
    rng = _rng(50)
    # random parameters (the initial bias is zero), the same on both backends
    arrays = {n: rng.normal(size=t.shape).astype(np.float32)
              for n, t in make().named_parameters()}
    x = rng.normal(size=shape).astype(np.float32)

    def run(device):
        with s4.default_device(device):
            fresh = make()
            for n, a in arrays.items():
                setattr(fresh, n, T(a))
            return forward_and_vjp(fresh, x)
    llvm, ref = run(s4.Device("llvm")), run(s4.Device("reference"))
    assert len(llvm) == len(ref) == 2 + len(arrays)
    for a, b in zip(llvm, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_model_names_the_failing_layers_key_path():
    from s4tf_py.nn.pooling import MaxPool2D
    net = s4.nn.Sequential(Conv2D((3, 3, 1, 4), padding="same", seed=0), MaxPool2D(),
                           Conv2D((3, 3, 3, 2), seed=1))
    with pytest.raises(s4.ShapeError) as e:
        net(s4.ones((1, 8, 8, 1)))
    assert "layer 2 (Conv2D) of Sequential: expects inputs with 3 channels" in str(e.value)
    assert "got shape (1, 4, 4, 4)" in str(e.value)
