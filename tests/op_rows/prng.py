"""Op-table rows for ops/random.py: the ``threefry2x32`` primitive and the samplers built on it.

(This file is ``prng.py``, not ``random.py``: ``tests/op_rows`` is put on ``sys.path`` by its
``__init__``, where a ``random.py`` would shadow the standard library's ``random``.)

The reference is a plain-Python Threefry-2x32 written from the Random123 specification, one
element at a time, independent of the vectorized numpy implementation under test.
"""
from __future__ import annotations

import numpy as np

import s4tf_py as s4
from optable import row

R = s4.random
_M = 0xFFFFFFFF
_ROT = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry_scalar(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds on Python ints (Random123 / JAX)."""
    ks = (k0, k1, k0 ^ k1 ^ 0x1BD11BDA)
    x0, x1 = (x0 + ks[0]) & _M, (x1 + ks[1]) & _M
    for g in range(5):
        for r in _ROT[g % 2]:
            x0 = (x0 + x1) & _M
            x1 = ((x1 << r) | (x1 >> (32 - r))) & _M
            x1 ^= x0
        x0 = (x0 + ks[(g + 1) % 3]) & _M
        x1 = (x1 + ks[(g + 2) % 3] + g + 1) & _M
    return x0, x1


def ref_threefry(k0, k1, x0, x1):
    shape = np.broadcast_shapes(k0.shape, k1.shape, x0.shape, x1.shape)
    args = [np.broadcast_to(a, shape).ravel() for a in (k0, k1, x0, x1)]
    y = np.array([threefry_scalar(*map(int, t)) for t in zip(*args)], dtype=np.uint32)
    y = y.reshape(-1, 2)
    return y[:, 0].reshape(shape), y[:, 1].reshape(shape)


def _u32(rng, shape, dtype, i):
    return rng.integers(0, 2**32, size=shape, dtype=np.uint64).astype(np.uint32)


def _key(rng, shape, dtype, i):
    return rng.integers(0, 2**32, size=(2,), dtype=np.uint64).astype(np.uint32)


def ref_bits(k, shape):
    n = int(np.prod(shape, dtype=np.int64))
    y0, y1 = ref_threefry(k[0], k[1], np.zeros(n, np.uint32), np.arange(n, dtype=np.uint32))
    return (y0 ^ y1).reshape(shape)


row("threefry2x32", "threefry2x32", lambda a, b, c, d: R.threefry2x32(a, b, c, d), ref_threefry,
    [((5,), (5,), (5,), (5,)), ((), (), (2, 3), (2, 3)), ((1,), (), (4,), (1,)),
     ((0,), (), (0,), ())],
    dtypes=("uint32",), make=_u32, differentiable=False)
row("random_bits", "threefry2x32", lambda k: R.random_bits(k, (3, 4)),
    lambda k: ref_bits(k, (3, 4)), [((2,),)], dtypes=("uint32",), make=_key,
    differentiable=False)
row("random_split", "threefry2x32", lambda k: R.split(k, 3),
    lambda k: np.stack(ref_threefry(k[0], k[1], np.zeros(3, np.uint32),
                                    np.arange(3, dtype=np.uint32)), axis=1),
    [((2,),)], dtypes=("uint32",), make=_key, differentiable=False)
row("random_uniform", "threefry2x32", lambda k: R.uniform(k, (2, 5)),
    lambda k: ((ref_bits(k, (2, 5)) >> 9).astype(np.float32) * np.float32(2.0 ** -23)),
    [((2,),)], dtypes=("uint32",), make=_key, differentiable=False,
    extra={"exact": True})
