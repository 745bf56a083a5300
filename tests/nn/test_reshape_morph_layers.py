"""ZeroPadding1D/2D/3D and UpSampling1D/2D/3D (s4tf_py.nn.reshaping) against PyTorch,
Dilation2D/Erosion2D (s4tf_py.nn.morphology) against TensorFlow's definition written out in
numpy and, for a flat structuring element, torch's dilated max pooling; errors, gradients
(finite differences on the reference backend) and LLVM/reference parity."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import s4tf_py as s4
from s4tf_py.nn.morphology import Dilation2D, Erosion2D
from s4tf_py.nn.reshaping import (UpSampling1D, UpSampling2D, UpSampling3D, ZeroPadding1D,
                                  ZeroPadding2D, ZeroPadding3D)

TF = torch.nn.functional
T = s4.Tensor


def _rng(seed=0):
    return np.random.default_rng(seed)


def to_torch(x):
    return torch.tensor(np.moveaxis(x, -1, 1))


def from_torch(t):
    return np.moveaxis(t.numpy(), 1, -1)


# ---- ZeroPadding ---------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,pairs", [
    (ZeroPadding1D(), [(1, 1)]),
    (ZeroPadding1D(padding=3), [(3, 3)]),
    (ZeroPadding1D(padding=(2, 0)), [(2, 0)]),               # S4TF's 1-D (before, after)
    (ZeroPadding2D(padding=(1, 2)), [(1, 1), (2, 2)]),       # S4TF's (height, width)
    (ZeroPadding2D(padding=((0, 1), (3, 2))), [(0, 1), (3, 2)]),
    (ZeroPadding3D(padding=2), [(2, 2)] * 3),
    (ZeroPadding3D(padding=(1, 0, 2)), [(1, 1), (0, 0), (2, 2)]),
    (ZeroPadding3D(padding=((1, 0), (0, 2), (1, 1))), [(1, 0), (0, 2), (1, 1)]),
])
def test_zero_padding_matches_torch(layer, pairs):
    rank = len(pairs)
    x = _rng(rank).normal(size=(2, *(4, 3, 2)[:rank], 3))
    want = from_torch(TF.pad(to_torch(x), [p for pair in reversed(pairs) for p in pair]))
    got = layer(T(x))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


def test_zero_padding_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        ZeroPadding2D(padding=-1)
    with pytest.raises(ValueError, match="padding needs"):
        ZeroPadding3D(padding=(1, 2))


# ---- UpSampling ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,factors", [
    (UpSampling1D(), (2,)),
    (UpSampling1D(size=3), (3,)),
    (UpSampling2D(size=2), (2, 2)),
    (UpSampling2D(size=(1, 3)), (1, 3)),
    (UpSampling3D(size=2), (2, 2, 2)),
    (UpSampling3D(size=(2, 1, 3)), (2, 1, 3)),
])
def test_upsampling_matches_torchs_nearest_interpolation(layer, factors):
    rank = len(factors)
    x = _rng(rank).normal(size=(2, *(3, 4, 2)[:rank], 3))
    want = from_torch(TF.interpolate(to_torch(x), scale_factor=factors, mode="nearest"))
    got = layer(T(x))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


def test_upsampling_gradient_sums_each_block():
    x = s4.ones((1, 2, 3, 1))
    g = s4.gradient(at=x, of=lambda x: (UpSampling2D(size=(2, 3))(x) * 2.0).sum())
    np.testing.assert_array_equal(g.numpy(), np.full((1, 2, 3, 1), 12.0))


# ---- Dilation2D / Erosion2D ----------------------------------------------------------------------

def same_pads(sizes, window, strides, rates):
    pads = []
    for n, k, s, r in zip(sizes, window, strides, rates):
        eff = (k - 1) * r + 1
        total = max((math.ceil(n / s) - 1) * s + eff - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def morphology_reference(x, f, strides, rates, padding, erosion=False):
    """TensorFlow's dilation2d (erosion2d) written out: positions in the padding never win;
    erosion takes the minimum of ``x - f`` with ``f`` reversed in height and width."""
    kh, kw, _ = f.shape
    h, w = x.shape[1:3]
    effh, effw = (kh - 1) * rates[0] + 1, (kw - 1) * rates[1] + 1
    if padding == "same":
        (top, bottom), (left, right) = same_pads((h, w), (kh, kw), strides, rates)
    else:
        top = bottom = left = right = 0
    fill = np.inf if erosion else -np.inf
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    oh = (h + top + bottom - effh) // strides[0] + 1
    ow = (w + left + right - effw) // strides[1] + 1
    out = np.full((x.shape[0], oh, ow, x.shape[3]), fill)
    for y, xx, i, j in itertools.product(range(oh), range(ow), range(kh), range(kw)):
        v = xp[:, y * strides[0] + i * rates[0], xx * strides[1] + j * rates[1], :]
        if erosion:
            out[:, y, xx] = np.minimum(out[:, y, xx], v - f[kh - 1 - i, kw - 1 - j])
        else:
            out[:, y, xx] = np.maximum(out[:, y, xx], v + f[i, j])
    return out


MORPH_CASES = [  # filter (kh, kw), strides, rates, padding
    ((2, 2), (1, 1), (1, 1), "valid"),
    ((3, 2), (2, 1), (1, 2), "valid"),
    ((3, 3), (2, 2), (1, 1), "same"),
    ((2, 3), (1, 2), (2, 1), "same"),
]


@pytest.mark.parametrize("cls", [Dilation2D, Erosion2D])
@pytest.mark.parametrize("window,strides,rates,padding", MORPH_CASES)
def test_morphology_matches_tensorflows_definition(cls, window, strides, rates, padding):
    rng = _rng(3)
    x = rng.normal(size=(2, 7, 6, 3))
    f = rng.normal(size=(*window, 3))
    got = cls(filter=T(f), strides=strides, rates=rates, padding=padding)(T(x))
    want = morphology_reference(x, f, strides, rates, padding, erosion=cls is Erosion2D)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_a_flat_structuring_element_is_dilated_max_pooling():
    x = _rng(4).normal(size=(2, 9, 8, 3))
    dil = Dilation2D(filter_shape=(3, 2, 3), strides=(2, 1), rates=(2, 3), dtype=s4.float64)
    ero = Erosion2D(filter_shape=(3, 2, 3), strides=(2, 1), rates=(2, 3), dtype=s4.float64)
    np.testing.assert_array_equal(dil.filter.numpy(), np.zeros((3, 2, 3)))   # zeros by default
    want = from_torch(TF.max_pool2d(to_torch(x), (3, 2), (2, 1), dilation=(2, 3)))
    np.testing.assert_array_equal(dil(T(x)).numpy(), want)
    want_min = -from_torch(TF.max_pool2d(to_torch(-x), (3, 2), (2, 1), dilation=(2, 3)))
    np.testing.assert_array_equal(ero(T(x)).numpy(), want_min)


def test_morphology_arguments():
    with pytest.raises(TypeError, match="not both"):
        Dilation2D()
    with pytest.raises(ValueError, match="filter_shape must be 3 positive ints"):
        Erosion2D(filter_shape=(3, 3, 1, 1))
    with pytest.raises(s4.ShapeError, match="expects a 3-D filter"):
        Dilation2D(filter=s4.zeros((3, 3, 1, 1)))
    layer = Dilation2D(filter_shape=(2, 2, 1), seed=0,
                       filter_initializer=s4.nn.initializers.glorot_uniform)
    assert float(s4.abs(layer.filter).max()) > 0
    assert [n for n, _ in layer.named_parameters()] == ["filter"]


@pytest.mark.parametrize("cls", [Dilation2D, Erosion2D])
@pytest.mark.parametrize("strides,rates,padding", [((1, 1), (1, 1), "valid"),
                                                   ((2, 1), (1, 2), "same")])
def test_morphology_gradients_match_finite_differences(on_the_reference_backend, cls, strides,
                                                       rates, padding):
    rng = _rng(5)
    x, f = T(rng.normal(size=(1, 5, 4, 2))), T(rng.normal(size=(2, 2, 2)))
    s4.check_grads(lambda x, f: cls(filter=f, strides=strides, rates=rates,
                                    padding=padding)(x), (x, f), order=2)


def test_morphology_gradients_reach_each_windows_maximum():
    rng = _rng(6)
    x, f = rng.normal(size=(1, 4, 4, 1)), rng.normal(size=(2, 2, 1))
    gx, gf = s4.gradient(at=(T(x), T(f)), of=lambda x, f: Dilation2D(filter=f)(x).sum())
    want_x, want_f = np.zeros_like(x), np.zeros_like(f)
    for y, xx in itertools.product(range(3), range(3)):
        win = x[0, y:y + 2, xx:xx + 2, 0] + f[..., 0]
        i, j = np.unravel_index(np.argmax(win), win.shape)
        want_x[0, y + i, xx + j, 0] += 1
        want_f[i, j, 0] += 1
    np.testing.assert_allclose(gx.numpy(), want_x)
    np.testing.assert_allclose(gf.numpy(), want_f)


# ---- errors, gradients, backends for every class ----------------------------------------------

LAYERS = [  # a layer, an input shape it accepts, its channel count when it checks one
    (lambda: ZeroPadding1D(padding=(1, 2)), (2, 3, 2), None),
    (lambda: ZeroPadding2D(padding=1), (1, 3, 2, 2), None),
    (lambda: ZeroPadding3D(padding=(1, 0, 1)), (1, 2, 2, 2, 1), None),
    (lambda: UpSampling1D(size=2), (2, 3, 2), None),
    (lambda: UpSampling2D(size=(2, 1)), (1, 2, 3, 2), None),
    (lambda: UpSampling3D(size=2), (1, 2, 1, 2, 1), None),
    (lambda: Dilation2D(filter=T(np.linspace(-1, 1, 8).reshape(2, 2, 2).astype(np.float32)),
                        padding="same"), (1, 4, 3, 2), 2),
    (lambda: Erosion2D(filter=T(np.linspace(-1, 1, 8).reshape(2, 2, 2).astype(np.float32)),
                       strides=(2, 2)), (1, 5, 4, 2), 2),
]


@pytest.mark.parametrize("make,shape,channels", LAYERS)
def test_wrong_input_raises_a_shape_error_naming_the_layer(make, shape, channels):
    layer = make()
    name = type(layer).__name__
    for bad in (shape[1:], shape + (1,)):
        with pytest.raises(s4.ShapeError) as e:
            layer(s4.ones(bad))
        assert e.value.op == name
        assert f"{name}: expects a {len(shape)}-D input" in str(e.value)
        assert f"got shape {bad}" in str(e.value)
    if channels is not None:
        bad = shape[:-1] + (channels + 1,)
        with pytest.raises(s4.ShapeError, match=f"expects inputs with {channels} channels") as e:
            layer(s4.ones(bad))
        assert e.value.op == name


@pytest.mark.parametrize("make,shape,channels", LAYERS[:6])
def test_reshaping_gradients_match_finite_differences(on_the_reference_backend, make, shape,
                                                      channels):
    s4.check_grads(make(), (T(_rng(7).normal(size=shape)),), order=2)


@pytest.mark.parametrize("make,shape,channels", LAYERS)
def test_llvm_matches_the_reference_backend(make, shape, channels):
    x = _rng(13).normal(size=shape).astype(np.float32)
    outs = []
    for device in (s4.Device("llvm"), s4.Device("reference")):
        with s4.default_device(device):
            layer = make()
            y = layer(T(x))
            ct = T(np.cos(np.arange(y.size)).reshape(y.shape).astype(np.float32))
            g_layer, g_x = s4.gradient(at=(layer, T(x)), of=lambda m, x: (m(x) * ct).sum())
            outs.append([y.numpy(), g_x.numpy()] + [g.numpy() for g in g_layer])
    assert len(outs[0]) == len(outs[1]) >= 2
    for a, b in zip(*outs):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
