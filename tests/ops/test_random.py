"""s4.random: Threefry known answers, determinism, key splitting, distributions, JAX parity."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

import s4tf_py as s4
from s4tf_py.ops.random import threefry2x32_numpy

R = s4.random


def _kat(k0, k1, x0, x1):
    y = R.threefry2x32(*(np.uint32(v) for v in (k0, k1, x0, x1)))
    s4.barrier()
    return tuple(int(t.item()) for t in y)


# ---- the cipher ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key,ctr,want", [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
])
def test_threefry2x32_random123_known_answers(key, ctr, want):
    assert _kat(*key, *ctr) == want


def test_threefry2x32_broadcasts_and_matches_numpy_reference():
    rng = np.random.default_rng(0)
    x0 = rng.integers(0, 2**32, size=(3, 4), dtype=np.uint64).astype(np.uint32)
    x1 = rng.integers(0, 2**32, size=(3, 4), dtype=np.uint64).astype(np.uint32)
    k = s4.Tensor(np.array([7, 9], np.uint32))
    y0, y1 = R.threefry2x32(k[0], k[1], s4.Tensor(x0), s4.Tensor(x1))
    s4.barrier()
    r0, r1 = threefry2x32_numpy(np.uint32(7), np.uint32(9), x0, x1)
    np.testing.assert_array_equal(y0.numpy(), r0)
    np.testing.assert_array_equal(y1.numpy(), r1)
    assert y0.dtype == s4.uint32 and y0.shape == (3, 4)


def test_threefry2x32_rejects_non_uint32_operands_naming_the_op_and_line():
    with pytest.raises(s4.DTypeError) as e:
        R.threefry2x32(s4.Tensor([1.0]), np.uint32(0), np.uint32(0), np.uint32(0))
    msg = str(e.value)
    assert "threefry2x32" in msg and "test_random.py" in msg


# ---- keys ----------------------------------------------------------------------------------------

def test_key_layout():
    assert R.key(42).tolist() == [0, 42]
    assert R.key(0).dtype == s4.uint32 and R.key(0).shape == (2,)
    assert R.key(2**40 + 3).tolist() == [256, 3]
    assert R.PRNGKey(5).tolist() == [0, 5]


def test_same_key_same_bits_different_keys_different_bits():
    a = R.random_bits(R.key(1), (64,)).numpy()
    b = R.random_bits(R.key(1), (64,)).numpy()
    c = R.random_bits(R.key(2), (64,)).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.mean(a == c) < 0.05


def test_seed_key_and_positional_key_agree():
    k = R.key(3)
    a = R.normal((4, 5), seed=3).numpy()
    b = R.normal((4, 5), key=k).numpy()
    c = R.normal(k, (4, 5)).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    u1 = R.uniform((3,), seed=3, minval=-1.0, maxval=1.0).numpy()
    u2 = R.uniform(k, (3,), minval=-1.0, maxval=1.0).numpy()
    np.testing.assert_array_equal(u1, u2)


def test_split_gives_distinct_independent_keys():
    k = R.key(0)
    ks = R.split(k, 4)
    assert ks.shape == (4, 2) and ks.dtype == s4.uint32
    rows = {tuple(r) for r in ks.numpy().tolist()}
    assert len(rows) == 4 and tuple(k.tolist()) not in rows
    a = R.normal(ks[0], (20000,)).numpy()
    b = R.normal(ks[1], (20000,)).numpy()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03
    # split(k, n)[i] == fold_in(k, i), and splitting is deterministic
    np.testing.assert_array_equal(R.fold_in(k, 2).numpy(), ks.numpy()[2])
    np.testing.assert_array_equal(R.split(k, 4).numpy(), ks.numpy())
    k1, k2 = R.split(k)
    assert k1.shape == (2,) and k1.tolist() != k2.tolist()


def test_global_key_is_reproducible_with_set_seed():
    R.set_seed(123)
    a, b = R.uniform((5,)).numpy(), R.uniform((5,)).numpy()
    R.set_seed(123)
    c = R.uniform((5,)).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)


# ---- distributions --------------------------------------------------------------------------------

N = 50000


def test_uniform_statistics():
    u = R.uniform(R.key(10), (N,)).numpy()
    assert u.dtype == np.float32 and u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert st.kstest(u, "uniform").pvalue > 1e-3
    v = R.uniform(R.key(11), (N,), minval=-3.0, maxval=5.0).numpy()
    assert v.min() >= -3.0 and v.max() < 5.0
    assert st.kstest(v, st.uniform(-3, 8).cdf).pvalue > 1e-3


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_uniform_and_normal_dtypes(dtype):
    u = R.uniform(R.key(4), (2000,), dtype=dtype)
    z = R.normal(R.key(4), (2000,), dtype=dtype)
    assert u.dtype == s4.dtypes.canonical(dtype) and z.dtype == u.dtype
    uv = u.numpy().astype(np.float64)
    zv = z.numpy().astype(np.float64)
    assert uv.min() >= 0 and uv.max() < 1 and abs(uv.mean() - 0.5) < 0.05
    assert np.all(np.isfinite(zv)) and abs(zv.mean()) < 0.1 and abs(zv.std() - 1) < 0.1


def test_normal_statistics_mean_stddev():
    z = R.normal(R.key(12), (N,)).numpy().astype(np.float64)
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    assert st.kstest(z, "norm").pvalue > 1e-3
    w = R.normal(R.key(13), (N,), mean=2.0, stddev=0.5).numpy().astype(np.float64)
    assert abs(w.mean() - 2) < 0.01 and abs(w.std() - 0.5) < 0.01


def test_truncated_normal():
    z = R.truncated_normal(R.key(14), (N,), lower=-1.0, upper=2.0).numpy().astype(np.float64)
    assert z.min() > -1.0 and z.max() < 2.0
    assert st.kstest(z, st.truncnorm(-1.0, 2.0).cdf).pvalue > 1e-3
    t = R.truncated_normal((1000,), seed=1, stddev=0.1).numpy()
    assert np.all(np.abs(t) < 0.2)


def test_bernoulli():
    b = R.bernoulli(R.key(15), 0.3, (N,))
    assert b.dtype == s4.bool_
    assert abs(b.numpy().mean() - 0.3) < 0.01
    p = s4.Tensor([0.0, 1.0, 0.5])
    s = R.bernoulli(R.key(16), p).numpy()
    assert s.shape == (3,) and not s[0] and s[1]


def test_categorical_frequencies_follow_softmax():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4], np.float32))
    idx = R.categorical(R.key(17), s4.Tensor(logits), shape=(N,)).numpy()
    assert idx.shape == (N,) and idx.min() >= 0 and idx.max() <= 3
    counts = np.bincount(idx, minlength=4)
    assert st.chisquare(counts, N * np.array([0.1, 0.2, 0.3, 0.4])).pvalue > 1e-3
    batch = R.categorical(R.key(18), s4.Tensor(np.zeros((3, 5), np.float32)))
    assert batch.shape == (3,)
    ax0 = R.categorical(R.key(18), s4.Tensor(np.zeros((5, 3), np.float32)), axis=0, shape=(7, 3))
    assert ax0.shape == (7, 3) and int(s4.max(ax0).item()) <= 4


def test_permutation_and_shuffle():
    p = R.permutation(R.key(19), 50).numpy()
    assert sorted(p.tolist()) == list(range(50))
    assert p.tolist() != list(range(50))
    x = np.arange(12).reshape(4, 3)
    y = R.permutation(R.key(19), s4.Tensor(x), axis=1).numpy()
    perm = y[0]
    assert sorted(perm.tolist()) == [0, 1, 2]
    np.testing.assert_array_equal(y, x[:, perm])       # one permutation for every row


def test_randint_range_and_uniformity():
    r = R.randint(R.key(20), (N,), -3, 7).numpy()
    assert r.dtype == np.int32 and r.min() == -3 and r.max() == 6
    assert st.chisquare(np.bincount(r + 3, minlength=10)).pvalue > 1e-3
    u8 = R.randint(R.key(21), (1000,), 0, 256, dtype="uint8")
    assert u8.dtype == s4.uint8 and len(np.unique(u8.numpy())) > 200
    assert np.all(R.randint(R.key(22), (10,), 5, 5).numpy() == 5)


def test_dropout_keeps_expectation():
    x = s4.ones((N,))
    y = s4.nn.functional.dropout(x, 0.25, key=R.key(23)).numpy()
    assert set(np.unique(y).tolist()) <= {0.0, float(np.float32(1.0 / 0.75))}
    assert abs(y.mean() - 1.0) < 0.02
    assert s4.nn.functional.dropout(x, 0.5, training=False).numpy().min() == 1.0


# ---- errors ---------------------------------------------------------------------------------------

def test_bad_key_raises_naming_the_op_and_line():
    with pytest.raises(s4.ShapeError) as e:
        R.normal((2,), key=s4.Tensor(np.zeros(3, np.uint32)))
    assert "random.normal" in str(e.value) and "test_random.py" in str(e.value)
    with pytest.raises(s4.DTypeError) as e:
        R.split(s4.Tensor([1.0, 2.0]))
    assert "random.split" in str(e.value) and "test_random.py" in str(e.value)
    with pytest.raises(TypeError, match="key= or seed="):
        R.uniform((2,), key=R.key(0), seed=1)
    with pytest.raises(s4.DTypeError, match="floating-point"):
        R.uniform((2,), seed=0, dtype="int32")


# ---- JAX parity (the same bits as jax.random for the same seed) --------------------------------

def test_matches_jax_random():
    import jax
    jr = jax.random
    for seed in (42,):
        k, jk = R.key(seed), jr.PRNGKey(seed)
        np.testing.assert_array_equal(k.numpy(), np.asarray(jk))
        np.testing.assert_array_equal(R.split(k, 3).numpy(), np.asarray(jr.split(jk, 3)))
        np.testing.assert_array_equal(R.fold_in(k, 7).numpy(), np.asarray(jr.fold_in(jk, 7)))
        np.testing.assert_array_equal(R.random_bits(k, (3, 4)).numpy(),
                                      np.asarray(jr.bits(jk, (3, 4))))
        for d in ("float32", "float16", "bfloat16"):
            np.testing.assert_array_equal(R.uniform(k, (4, 3), dtype=d).numpy(),
                                          np.asarray(jr.uniform(jk, (4, 3), dtype=d)))
        np.testing.assert_allclose(R.normal(k, (50,)).numpy(), np.asarray(jr.normal(jk, (50,))),
                                   rtol=1e-5, atol=1e-6)
        for lo, hi, d in ((0, 10, "int32"), (-5, 1000, "int32"), (0, 256, "uint8"),
                          (-100, 300, "int8")):
            np.testing.assert_array_equal(R.randint(k, (4, 5), lo, hi, dtype=d).numpy(),
                                          np.asarray(jr.randint(jk, (4, 5), lo, hi, dtype=d)))
        np.testing.assert_array_equal(R.permutation(k, 10).numpy(),
                                      np.asarray(jr.permutation(jk, 10)))
        lg = np.random.default_rng(seed).normal(size=(3, 5)).astype(np.float32)
        np.testing.assert_array_equal(R.categorical(k, s4.Tensor(lg), shape=(6, 3)).numpy(),
                                      np.asarray(jr.categorical(jk, lg, shape=(6, 3))))
        np.testing.assert_array_equal(R.bernoulli(k, 0.3, (20,)).numpy(),
                                      np.asarray(jr.bernoulli(jk, 0.3, (20,))))


def test_seeded_positional_forms_match_key_first_forms():
    k = R.key(1)
    same = np.testing.assert_array_equal
    same(R.bernoulli(0.3, (5,), seed=1).numpy(), R.bernoulli(k, 0.3, (5,)).numpy())
    want = R.randint(k, (5,), 0, 10).numpy()
    same(R.randint((5,), 0, 10, seed=1).numpy(), want)
    same(R.randint((5,), maxval=10, seed=1).numpy(), want)
    same(R.randint((5,), minval=0, maxval=10, key=k).numpy(), want)
    x = s4.Tensor(np.arange(12).reshape(3, 4))
    same(R.permutation(x, 1, seed=1).numpy(), R.permutation(k, x, 1).numpy())
    lg = s4.Tensor(np.zeros((4, 3), np.float32))
    same(R.categorical(lg, 0, (5, 3), seed=1).numpy(), R.categorical(k, lg, 0, (5, 3)).numpy())
    with pytest.raises(TypeError, match="too many positional"):
        R.randint((5,), 0, 10, maxval=3, seed=1)
