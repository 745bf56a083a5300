"""``s4tf_py.nn.initializers``: the fan computation (against PyTorch's, layouts converted),
each initializer's statistics and support, the distributions themselves (Kolmogorov-Smirnov
against scipy), orthogonality, determinism of seeds and keys, dtypes and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

import s4tf_py as s4
from s4tf_py.nn import initializers as init
from s4tf_py.nn import layer as _layer

CONV = (3, 3, 64, 128)          # HWIO: fan_in 576, fan_out 1152, 73,728 samples
DENSE = (300, 200)


def _torch_fans(shape):
    """PyTorch's fans of the same weight in its layout: (out, in) or (O, I, *spatial)."""
    if len(shape) == 2:
        t = torch.empty(shape[1], shape[0])
    else:
        t = torch.empty(shape[-1], shape[-2], *shape[:-2])
    return torch.nn.init._calculate_fan_in_and_fan_out(t)


@pytest.mark.parametrize("shape", [(784, 10), (5, 5, 1, 6), (3, 16, 32), (2, 3, 3, 4, 8),
                                   CONV, (1, 1, 7, 9)])
def test_fans_match_pytorchs_for_the_same_weight(shape):
    assert init.fans(shape) == _torch_fans(shape)


def test_fans_of_low_rank_shapes_follow_keras():
    assert init.fans((7,)) == (7, 7)
    assert init.fans(()) == (1, 1)


# name -> (target variance from (fan_in, fan_out), "uniform" or "truncated")
VARIANCE_SCALING = {
    "glorot_uniform": (lambda i, o: 2 / (i + o), "uniform"),
    "glorot_normal": (lambda i, o: 2 / (i + o), "truncated"),
    "he_uniform": (lambda i, o: 2 / i, "uniform"),
    "he_normal": (lambda i, o: 2 / i, "truncated"),
    "lecun_uniform": (lambda i, o: 1 / i, "uniform"),
    "lecun_normal": (lambda i, o: 1 / i, "truncated"),
}


@pytest.mark.parametrize("shape", [CONV, DENSE])
@pytest.mark.parametrize("name", sorted(VARIANCE_SCALING))
def test_variance_scaling_statistics(name, shape):
    target, kind = VARIANCE_SCALING[name]
    fan_in, fan_out = init.fans(shape)
    var = target(fan_in, fan_out)
    w = getattr(init, name)(shape, seed=11)
    assert w.shape == shape and w.dtype == s4.float32
    x = w.numpy().astype(np.float64).ravel()
    n = x.size
    assert abs(x.mean()) < 5 * math.sqrt(var / n)
    assert x.var() == pytest.approx(var, rel=0.04)
    if kind == "uniform":
        limit = math.sqrt(3 * var)
        assert np.abs(x).max() <= limit
        assert np.abs(x).max() > 0.99 * limit            # the whole support is used
        assert scipy.stats.kstest(x, scipy.stats.uniform(-limit, 2 * limit).cdf).pvalue > 1e-3
    else:
        # a normal truncated at 2 sigma, sigma rescaled so that the variance is exact
        sigma = math.sqrt(var) / 0.87962566103423978
        assert np.abs(x).max() < 2 * sigma
        dist = scipy.stats.truncnorm(-2, 2, scale=sigma)
        assert scipy.stats.kstest(x, dist.cdf).pvalue > 1e-3


def test_truncated_normal_is_bounded_with_the_truncated_variance():
    w = init.truncated_normal((200, 300), mean=0.5, stddev=0.1, seed=3).numpy().astype(np.float64)
    assert w.min() > 0.5 - 0.2 and w.max() < 0.5 + 0.2
    assert w.mean() == pytest.approx(0.5, abs=1e-3)
    assert w.std() == pytest.approx(0.1 * 0.87962566103423978, rel=0.02)
    default = init.truncated_normal((10_000,), seed=4).numpy()     # S4TF's default: N(0, 1)
    assert np.abs(default).max() < 2.0 and default.std() == pytest.approx(0.8796, rel=0.03)


def test_plain_uniform_and_normal():
    u = init.uniform((50_000,), minval=-0.5, maxval=2.0, seed=5).numpy()
    assert u.min() >= -0.5 and u.max() < 2.0
    assert u.mean() == pytest.approx(0.75, abs=0.02)
    n = init.normal((50_000,), mean=1.0, stddev=0.02, seed=6).numpy().astype(np.float64)
    assert n.mean() == pytest.approx(1.0, abs=1e-3) and n.std() == pytest.approx(0.02, rel=0.02)


@pytest.mark.parametrize("shape", [(6, 6), (8, 3), (3, 8), (3, 3, 4, 8), (2, 2, 8, 4)])
def test_orthogonal_is_orthogonal(shape):
    q = init.orthogonal(shape, seed=7).numpy().astype(np.float64)
    assert q.shape == shape
    m = q.reshape(-1, shape[-1])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T    # the shorter side is orthonormal
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5)


def test_orthogonal_gain_dtype_and_seeds():
    q = init.orthogonal((5, 5), s4.float64, gain=3.0, seed=1).numpy()
    np.testing.assert_allclose(q.T @ q, 9 * np.eye(5), atol=1e-10)
    a = init.orthogonal((4, 4), seed=2).numpy()
    assert np.array_equal(a, init.orthogonal((4, 4), seed=2).numpy())
    assert not np.allclose(a, init.orthogonal((4, 4), seed=3).numpy())
    assert init.orthogonal((4, 4), s4.bfloat16, seed=2).dtype == s4.bfloat16


def test_orthogonal_columns_are_not_sign_biased():
    # sign(diag(R)) correction: the first entries of Q are positive and negative equally often
    firsts = [init.orthogonal((3, 3), s4.float64, seed=s).numpy()[0, 0] for s in range(40)]
    positives = sum(v > 0 for v in firsts)
    assert 8 <= positives <= 32


ALL_RANDOM = ["uniform", "normal", "truncated_normal", "glorot_uniform", "glorot_normal",
              "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal"]


@pytest.mark.parametrize("name", ALL_RANDOM)
def test_seeds_and_keys_are_deterministic(name):
    fn = getattr(init, name)
    a = fn((16, 8), seed=42).numpy()
    assert np.array_equal(a, fn((16, 8), seed=42).numpy())
    assert np.array_equal(a, fn((16, 8), key=s4.random.key(42)).numpy())
    assert not np.array_equal(a, fn((16, 8), seed=43).numpy())
    k1, k2 = s4.random.split(s4.random.key(0))
    assert not np.array_equal(fn((16, 8), key=k1).numpy(), fn((16, 8), key=k2).numpy())
    try:
        s4.random.set_seed(9)                    # no seed or key: the global key
        b = fn((16, 8)).numpy()
        c = fn((16, 8)).numpy()
        s4.random.set_seed(9)
        assert np.array_equal(b, fn((16, 8)).numpy())
        assert not np.array_equal(b, c)          # each draw advances the global key
    finally:
        s4.random.set_seed(0)                    # the global key's initial state


@pytest.mark.parametrize("dtype", [s4.float16, s4.bfloat16, s4.float32, s4.float64])
def test_dtypes(dtype):
    for name in ("glorot_uniform", "he_normal", "zeros", "ones"):
        assert getattr(init, name)((4, 3), dtype, seed=0).dtype == dtype


def test_constants():
    assert init.zeros((2, 3)).numpy().tolist() == [[0.0] * 3] * 2
    assert init.ones((2,), s4.float64).tolist() == [1.0, 1.0]
    c = init.constant((2, 2), s4.float16, value=0.25)
    assert c.dtype == s4.float16 and c.tolist() == [[0.25, 0.25], [0.25, 0.25]]
    assert init.zeros(3).shape == (3,)


def test_compatible_with_the_layer_module_glorot_uniform():
    # nn.layer.glorot_uniform(shape, fan_in, fan_out) (what Dense uses) draws from the same
    # distribution for a dense weight: same bound, same variance
    i, o = DENSE
    limit = math.sqrt(6 / (i + o))
    old = _layer.glorot_uniform(DENSE, i, o, seed=0).numpy().astype(np.float64)
    new = init.glorot_uniform(DENSE, seed=0).numpy().astype(np.float64)
    for x in (old, new):
        assert np.abs(x).max() <= limit and x.var() == pytest.approx(limit ** 2 / 3, rel=0.03)


def test_variance_scaling_options_and_errors():
    w = init.variance_scaling((100, 400), scale=3.0, mode="fan_out", distribution="normal",
                              seed=0).numpy().astype(np.float64)
    assert w.var() == pytest.approx(3.0 / 400, rel=0.05)
    with pytest.raises(ValueError, match="mode must be"):
        init.variance_scaling((2, 2), mode="fan_sum")
    with pytest.raises(ValueError, match="distribution must be"):
        init.variance_scaling((2, 2), distribution="cauchy")
    with pytest.raises(TypeError, match="floating-point dtype"):
        init.he_uniform((2, 2), s4.int32)
    with pytest.raises(s4.ShapeError, match="rank 2 or more"):
        init.orthogonal((4,))
    with pytest.raises(s4.ShapeError, match="negative dimension"):
        init.glorot_normal((2, -1))
