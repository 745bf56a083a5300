"""Pooling layers (s4tf_py.nn.pooling) against PyTorch (channels-last converted to
channels-first; TensorFlow's "same" padding applied by hand), FractionalMaxPool2D against
its definition (TensorFlow's pooling regions) and max pooling, errors, gradients (finite
differences on the reference backend) and LLVM/reference parity."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import s4tf_py as s4
from s4tf_py.nn.pooling import (AvgPool1D, AvgPool2D, AvgPool3D, FractionalMaxPool2D,
                                GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D,
                                GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D, MaxPool1D,
                                MaxPool2D, MaxPool3D)

TF = torch.nn.functional
T = s4.Tensor
MAX = {1: MaxPool1D, 2: MaxPool2D, 3: MaxPool3D}
AVG = {1: AvgPool1D, 2: AvgPool2D, 3: AvgPool3D}


def _rng(seed=0):
    return np.random.default_rng(seed)


def to_torch(x):
    return torch.tensor(np.moveaxis(x, -1, 1))


def from_torch(t):
    return np.moveaxis(t.numpy(), 1, -1)


def same_pads(sizes, window, strides):
    """TensorFlow's "same" padding, written out independently of the library."""
    pads = []
    for n, k, s in zip(sizes, window, strides):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return pads


def torch_pool(kind, x, window, strides, padding):
    """Max or average pooling in torch with TensorFlow's padding rules: the padding never
    wins a max and is not counted in an average."""
    rank = x.ndim - 2
    pads = same_pads(x.shape[1:-1], window, strides) if padding == "same" else [(0, 0)] * rank
    flat = [p for pair in reversed(pads) for p in pair]
    xt = to_torch(x)
    if kind == "max":
        pool = (TF.max_pool1d, TF.max_pool2d, TF.max_pool3d)[rank - 1]
        return from_torch(pool(TF.pad(xt, flat, value=-math.inf), window, strides))
    pool = (TF.avg_pool1d, TF.avg_pool2d, TF.avg_pool3d)[rank - 1]
    total = pool(TF.pad(xt, flat), window, strides)
    count = pool(TF.pad(torch.ones_like(xt), flat), window, strides)
    return from_torch(total / count)


POOL_CASES = [  # window, strides, padding
    (2, None, "valid"), (3, 2, "valid"), (3, 2, "same"), (2, 1, "same"), (2, 3, "same")]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("window,strides,padding", POOL_CASES)
def test_pooling_matches_torch(kind, rank, window, strides, padding):
    x = _rng(rank).normal(size=(2, *(7, 6, 5)[:rank], 3))
    layer = (MAX if kind == "max" else AVG)[rank](pool_size=window, strides=strides,
                                                  padding=padding)
    got = layer(T(x))
    want = torch_pool(kind, x, (window,) * rank, (strides or window,) * rank, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_pool2d_with_per_dimension_sizes_and_s4tfs_full_rank_tuples():
    x = _rng(5).normal(size=(2, 7, 8, 3))
    layer = MaxPool2D(pool_size=(1, 3, 2, 1), strides=(1, 2, 2, 1), padding="same")
    assert layer.pool_size == (3, 2) and layer.strides == (2, 2)
    np.testing.assert_allclose(layer(T(x)).numpy(), torch_pool("max", x, (3, 2), (2, 2), "same"),
                               rtol=1e-10)
    avg = AvgPool2D(pool_size=(2, 3), strides=(1, 2))
    np.testing.assert_allclose(avg(T(x)).numpy(), torch_pool("avg", x, (2, 3), (1, 2), "valid"),
                               rtol=1e-10)


def test_pool_defaults_and_s4tfs_1d_spelling():
    layer = MaxPool2D()
    assert layer.pool_size == (2, 2) and layer.strides == (2, 2) and layer.padding == "valid"
    one = AvgPool1D(pool_size=3, stride=1)
    assert one.strides == (1,)
    assert one(s4.ones((1, 5, 2))).shape == (1, 3, 2)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_global_pooling_matches_torch(rank):
    x = _rng(6).normal(size=(2, *(5, 4, 3)[:rank], 3))
    xt = to_torch(x)
    axes = tuple(range(2, rank + 2))
    avg = (GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D)[rank - 1]()
    mx = (GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D)[rank - 1]()
    np.testing.assert_allclose(avg(T(x)).numpy(), xt.mean(dim=axes).numpy(), rtol=1e-12)
    np.testing.assert_allclose(mx(T(x)).numpy(), xt.amax(dim=axes).numpy(), rtol=1e-12)
    assert avg(T(x)).shape == (2, 3)


# ---- FractionalMaxPool2D -------------------------------------------------------------------------

def fractional_reference(x, rows, cols, overlapping):
    """TensorFlow's FractionalMaxPool given its row and column pooling sequences."""
    h, w = x.shape[1:3]
    out = np.empty((x.shape[0], len(rows) - 1, len(cols) - 1, x.shape[3]), x.dtype)
    for i in range(len(rows) - 1):
        r_end = min(rows[i + 1] if overlapping else rows[i + 1] - 1, h - 1)
        for j in range(len(cols) - 1):
            c_end = min(cols[j + 1] if overlapping else cols[j + 1] - 1, w - 1)
            out[:, i, j] = x[:, rows[i]:r_end + 1, cols[j]:c_end + 1].max(axis=(1, 2))
    return out


def check_sequence(seq, n_in, n_out):
    lengths = np.diff(seq)
    k = n_in // n_out
    assert seq[0] == 0 and seq[-1] == n_in and len(seq) == n_out + 1
    assert set(lengths.tolist()) <= {k, k + 1}


@pytest.mark.parametrize("pseudo_random", [False, True])
@pytest.mark.parametrize("overlapping", [False, True])
def test_fractional_max_pool_follows_tensorflows_regions(pseudo_random, overlapping):
    x = _rng(7).normal(size=(2, 13, 11, 3))
    pool = FractionalMaxPool2D(pooling_ratio=(1.44, 1.73), pseudo_random=pseudo_random,
                               overlapping=overlapping)
    key = s4.random.key(3)
    got = pool(T(x), key=key)
    assert got.shape == (2, 9, 6, 3)                     # floor(13 / 1.44), floor(11 / 1.73)
    rows, cols = (s.numpy() for s in pool.pooling_sequences(13, 11, key=key))
    check_sequence(rows, 13, 9)
    check_sequence(cols, 11, 6)
    if not pseudo_random:                                # a shuffle of the lengths
        assert sorted(np.diff(rows).tolist()) == [1] * 5 + [2] * 4
    np.testing.assert_array_equal(got.numpy(), fractional_reference(x, rows, cols, overlapping))


@pytest.mark.parametrize("pseudo_random", [False, True])
def test_fractional_max_pool_with_an_integer_ratio_is_max_pooling(pseudo_random):
    x = _rng(8).normal(size=(2, 8, 6, 3))
    pool = FractionalMaxPool2D(pooling_ratio=(1.0, 2.0, 2.0, 1.0), pseudo_random=pseudo_random)
    want = from_torch(TF.max_pool2d(to_torch(x), 2, 2))
    for seed in range(3):
        np.testing.assert_array_equal(pool(T(x), key=s4.random.key(seed)).numpy(), want)


def test_fractional_max_pool_randomness():
    x = T(_rng(9).normal(size=(1, 20, 20, 1)))
    det = FractionalMaxPool2D((1.6, 1.3), deterministic=True, seed=4, seed2=1)
    assert np.array_equal(det(x).numpy(), det(x).numpy())
    other = FractionalMaxPool2D((1.6, 1.3), deterministic=True, seed=5)
    seqs = [np.concatenate([s.numpy() for s in p.pooling_sequences(20, 20)]) for p in (det, other)]
    assert not np.array_equal(*seqs)
    # not deterministic: each call draws new regions from the global key
    rnd = FractionalMaxPool2D((1.6, 1.3), pseudo_random=True)
    s4.random.set_seed(11)
    a, b = rnd(x).numpy(), rnd(x).numpy()
    assert not np.array_equal(a, b)
    s4.random.set_seed(11)
    np.testing.assert_array_equal(rnd(x).numpy(), a)
    k = s4.random.key(2)
    np.testing.assert_array_equal(rnd(x, key=k).numpy(), rnd(x, key=k).numpy())


def test_fractional_max_pool_in_a_compiled_step_takes_the_key_as_an_argument():
    pool = FractionalMaxPool2D((1.5, 1.5))
    x = T(_rng(10).normal(size=(2, 9, 9, 2)).astype(np.float32))
    step = s4.compile(lambda x, key: pool(x, key=key))
    k1, k2 = s4.random.key(1), s4.random.key(2)
    a, b, again = step(x, k1), step(x, k2), step(x, k1)
    assert step.traces == 1
    np.testing.assert_array_equal(a.numpy(), pool(x, key=k1).numpy())
    np.testing.assert_array_equal(again.numpy(), a.numpy())
    np.testing.assert_array_equal(b.numpy(), pool(x, key=k2).numpy())
    assert not np.array_equal(a.numpy(), b.numpy())


def test_fractional_max_pool_arguments():
    with pytest.raises(ValueError, match="at least 1.0"):
        FractionalMaxPool2D((0.5, 2.0))
    with pytest.raises(ValueError, match="batch and channel"):
        FractionalMaxPool2D((2.0, 1.5, 1.5, 1.0))
    with pytest.raises(ValueError, match="seed and seed2 must be 0"):
        FractionalMaxPool2D((1.5, 1.5), seed=3)
    with pytest.raises(s4.ShapeError, match="leaves no output"):
        FractionalMaxPool2D((3.0, 1.5))(s4.ones((1, 2, 5, 1)))


def test_fractional_max_pool_gradients(on_the_reference_backend):
    key = s4.random.key(6)
    for pseudo_random, overlapping in ((False, True), (True, False)):
        pool = FractionalMaxPool2D((1.4, 1.7), pseudo_random=pseudo_random,
                                   overlapping=overlapping)
        x = T(_rng(11).normal(size=(1, 7, 6, 2)))
        s4.check_grads(lambda x: pool(x, key=key), (x,), order=1)
        # each output's gradient reaches exactly its region's maximum
        g = s4.gradient(at=x, of=lambda x: pool(x, key=key).sum()).numpy()
        rows, cols = (s.numpy() for s in pool.pooling_sequences(7, 6, key=key))
        want = np.zeros_like(x.numpy())
        xn = x.numpy()
        for i in range(len(rows) - 1):
            r_end = min(rows[i + 1] if overlapping else rows[i + 1] - 1, 6)
            for j in range(len(cols) - 1):
                c_end = min(cols[j + 1] if overlapping else cols[j + 1] - 1, 5)
                for c in range(2):
                    win = xn[0, rows[i]:r_end + 1, cols[j]:c_end + 1, c]
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    want[0, rows[i] + a, cols[j] + b, c] += 1
        np.testing.assert_allclose(g, want)


# ---- errors, gradients, backends for every class ----------------------------------------------

LAYERS = [  # a layer of every class, an input shape it accepts, gradient order to check
    (lambda: MaxPool1D(pool_size=3, strides=2, padding="same"), (2, 5, 2), 2),
    (lambda: MaxPool2D(pool_size=(2, 3), strides=(1, 2)), (1, 4, 5, 2), 2),
    (lambda: MaxPool3D(pool_size=2, strides=1, padding="same"), (1, 3, 3, 2, 1), 1),
    (lambda: AvgPool1D(pool_size=2, strides=1, padding="same"), (2, 5, 2), 2),
    (lambda: AvgPool2D(pool_size=(3, 3), strides=(2, 2), padding="same"), (1, 5, 4, 2), 2),
    (lambda: AvgPool3D(pool_size=2), (1, 4, 2, 2, 2), 1),
    (lambda: GlobalAvgPool1D(), (2, 4, 3), 2),
    (lambda: GlobalAvgPool2D(), (2, 3, 3, 2), 2),
    (lambda: GlobalAvgPool3D(), (1, 2, 3, 2, 2), 1),
    (lambda: GlobalMaxPool1D(), (2, 4, 3), 2),
    (lambda: GlobalMaxPool2D(), (2, 3, 3, 2), 2),
    (lambda: GlobalMaxPool3D(), (1, 2, 3, 2, 2), 1),
    (lambda: FractionalMaxPool2D((1.5, 1.3), deterministic=True, seed=1), (1, 6, 5, 2), 1),
]


@pytest.mark.parametrize("make,shape,order", LAYERS)
def test_wrong_rank_raises_a_shape_error_naming_the_layer(make, shape, order):
    layer = make()
    name = type(layer).__name__
    for bad in (shape[1:], shape + (1,)):
        with pytest.raises(s4.ShapeError) as e:
            layer(s4.ones(bad))
        assert e.value.op == name
        assert f"{name}: expects a {len(shape)}-D input" in str(e.value)
        assert f"got shape {bad}" in str(e.value)


@pytest.mark.parametrize("make,shape,order", LAYERS)
def test_gradients_match_finite_differences(on_the_reference_backend, make, shape, order):
    x = T(_rng(12).normal(size=shape))
    s4.check_grads(make(), (x,), order=order)


@pytest.mark.parametrize("make,shape,order", LAYERS)
def test_llvm_matches_the_reference_backend(make, shape, order):
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
