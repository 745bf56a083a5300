"""``s4.nn.initializers``: parameter initializers with S4TF's (and Keras') conventions.

Each initializer is a function ``init(shape, dtype=s4.float32, *, seed=None, key=None)``
returning a new Tensor, so the function itself (or a ``functools.partial`` fixing ``seed`` or
``value``) is what a layer takes as its ``weight_initializer``. Randomness comes from
:mod:`s4tf_py.random` (stateless Threefry): ``key=`` a key from ``s4.random.key``/``split``,
or ``seed=`` an int; with neither, the draw comes from the global key that
``s4.random.set_seed`` resets (S4TF's ``Context.local.randomSeed``).

Fans follow S4TF's ``TensorShape.fans()``: a 2-D ``(in, out)`` weight has
``fan_in = in, fan_out = out``; a convolution filter ``(*spatial, in, out)`` (HWIO) has
``fan_in = in · prod(spatial)`` and ``fan_out = out · prod(spatial)``. S4TF refuses shapes of
rank < 2; here, as in Keras, a vector has ``fan_in = fan_out = its length`` and a scalar 1.

The variance-scaling family (Glorot/Xavier, He/Kaiming, LeCun) draws uniformly from
``[-limit, limit]`` with ``limit = sqrt(3 · scale)``, or from a normal truncated at two standard
deviations whose standard deviation is divided by 0.8796 (the standard deviation of the
truncated standard normal), as S4TF and Keras do, so that the variance is exactly ``scale``:

========================  =========================
initializer               scale (target variance)
========================  =========================
glorot_uniform/normal     2 / (fan_in + fan_out)
he_uniform/normal         2 / fan_in
lecun_uniform/normal      1 / fan_in
========================  =========================

>>> import s4tf_py as s4
>>> from s4tf_py.nn import initializers as init
>>> w = init.glorot_uniform((3, 3, 16, 32), seed=0)      # a conv filter: fans 144 and 288
>>> w.shape, w.dtype
((3, 3, 16, 32), dtype('float32'))
>>> bool(s4.all(s4.abs(w) <= (6 / (144 + 288)) ** 0.5))
True
>>> bool(s4.all(init.he_normal((4, 5), seed=1) == init.he_normal((4, 5), seed=1)))
True
>>> init.fans((3, 3, 16, 32))
(144, 288)
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .. import dtypes as dt
from .. import random as _random
from ..errors import ShapeError, op_error
from ..tensor import Tensor

__all__ = ["fans", "zeros", "ones", "constant", "uniform", "normal", "truncated_normal",
           "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
           "lecun_normal", "variance_scaling", "orthogonal"]

# the standard deviation of a standard normal truncated to (-2, 2): dividing by it makes the
# truncated draws have the intended variance (S4TF's and Keras' constant)
_TRUNCATED_STDDEV = 0.87962566103423978


def _shape(op: str, shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    try:
        shape = tuple(int(d) for d in shape)
    except TypeError:
        raise op_error(TypeError, f"initializers.{op}",
                       f"shape must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise op_error(ShapeError, f"initializers.{op}", f"negative dimension in shape {shape}")
    return shape


def _float(op: str, dtype):
    d = dt.canonical(dtype)
    if not dt.is_floating(d):
        raise op_error(TypeError, f"initializers.{op}", f"needs a floating-point dtype, got {d}")
    return d


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight of ``shape`` (S4TF's ``TensorShape.fans()``; Keras'
    rule for rank 0 and 1).

    >>> from s4tf_py.nn.initializers import fans
    >>> fans((784, 10)), fans((5, 5, 1, 6)), fans((7,)), fans(())
    ((784, 10), (25, 150), (7, 7), (1, 1))
    """
    shape = _shape("fans", shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])       # spatial size of a conv filter (HWIO), 1 for dense
    return shape[-2] * receptive, shape[-1] * receptive


# ---- constants ----------------------------------------------------------------------------------

def zeros(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """All zeros (``seed``/``key`` are accepted, for a uniform signature, and ignored).

    >>> from s4tf_py.nn import initializers as init
    >>> init.zeros((2,)).tolist()
    [0.0, 0.0]
    """
    return constant(shape, dtype, value=0.0)


def ones(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """All ones (``seed``/``key`` are ignored).

    >>> from s4tf_py.nn import initializers as init
    >>> init.ones((2,)).tolist()
    [1.0, 1.0]
    """
    return constant(shape, dtype, value=1.0)


def constant(shape, dtype=dt.float32, *, value: float = 0.0, seed=None, key=None) -> Tensor:
    """Every element ``value`` (S4TF ``constantInitializer(value:)``); use
    ``functools.partial(constant, value=v)`` as an initializer.

    >>> from s4tf_py.nn import initializers as init
    >>> init.constant((2, 2), value=0.5).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    shape = _shape("constant", shape)
    return Tensor(np.full(shape, value, dtype=dt.canonical(dtype)))


# ---- plain distributions ------------------------------------------------------------------------

def uniform(shape, dtype=dt.float32, *, minval: float = -1.0, maxval: float = 1.0, seed=None,
            key=None) -> Tensor:
    """Uniform in ``[minval, maxval)`` (S4TF ``Tensor(randomUniform:lowerBound:upperBound:)``).

    >>> from s4tf_py.nn import initializers as init
    >>> w = init.uniform((100,), minval=0.0, maxval=0.5, seed=0)
    >>> 0.0 <= float(w.min()) and float(w.max()) < 0.5
    True
    """
    d = _float("uniform", dtype)
    return _random.uniform(_shape("uniform", shape), dtype=d, minval=minval, maxval=maxval,
                           seed=seed, key=key)


def normal(shape, dtype=dt.float32, *, mean: float = 0.0, stddev: float = 1.0, seed=None,
           key=None) -> Tensor:
    """Normal with ``mean`` and ``stddev`` (S4TF ``Tensor(randomNormal:)``).

    >>> from s4tf_py.nn import initializers as init
    >>> init.normal((2, 3), stddev=0.02, seed=0).shape
    (2, 3)
    """
    d = _float("normal", dtype)
    return _random.normal(_shape("normal", shape), dtype=d, mean=mean, stddev=stddev,
                          seed=seed, key=key)


def truncated_normal(shape, dtype=dt.float32, *, mean: float = 0.0, stddev: float = 1.0,
                     seed=None, key=None) -> Tensor:
    """Normal with ``mean`` and ``stddev``, redrawn outside two standard deviations (S4TF
    ``truncatedNormalInitializer(mean: 0, standardDeviation: 1)``): every value lies in
    ``(mean - 2·stddev, mean + 2·stddev)``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn import initializers as init
    >>> w = init.truncated_normal((1000,), stddev=0.1, seed=0)
    >>> bool(s4.all(s4.abs(w) < 0.2))
    True
    """
    d = _float("truncated_normal", dtype)
    return _random.truncated_normal(_shape("truncated_normal", shape), dtype=d, mean=mean,
                                    stddev=stddev, seed=seed, key=key)


# ---- variance scaling ---------------------------------------------------------------------------

def variance_scaling(shape, dtype=dt.float32, *, scale: float = 1.0, mode: str = "fan_in",
                     distribution: str = "truncated_normal", seed=None, key=None) -> Tensor:
    """Keras' ``VarianceScaling``: samples of variance ``scale / n`` where ``n`` is ``fan_in``,
    ``fan_out`` or ``fan_avg = (fan_in + fan_out) / 2`` (``mode``), drawn from a
    ``"truncated_normal"`` (two standard deviations, rescaled so that the variance is exact),
    an ``"untruncated_normal"`` or a ``"uniform"`` distribution. The named initializers below
    are its special cases.

    >>> from s4tf_py.nn import initializers as init
    >>> init.variance_scaling((8, 8), scale=2.0, mode="fan_in", distribution="uniform",
    ...                       seed=0).shape
    (8, 8)
    """
    op = "initializers.variance_scaling"
    shape = _shape("variance_scaling", shape)
    fan_in, fan_out = fans(shape)
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}.get(mode)
    if n is None:
        raise op_error(ValueError, op, f"mode must be 'fan_in', 'fan_out' or 'fan_avg', "
                                       f"got {mode!r}")
    variance = scale / max(1.0, n)          # an empty shape (a zero fan) must not divide by 0
    if distribution == "uniform":
        limit = math.sqrt(3.0 * variance)   # Var(U(-a, a)) = a² / 3
        return uniform(shape, dtype, minval=-limit, maxval=limit, seed=seed, key=key)
    if distribution == "truncated_normal":
        return truncated_normal(shape, dtype, stddev=math.sqrt(variance) / _TRUNCATED_STDDEV,
                                seed=seed, key=key)
    if distribution in ("untruncated_normal", "normal"):
        return normal(shape, dtype, stddev=math.sqrt(variance), seed=seed, key=key)
    raise op_error(ValueError, op, "distribution must be 'truncated_normal', "
                                   f"'untruncated_normal' or 'uniform', got {distribution!r}")


def glorot_uniform(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """Glorot/Xavier uniform (S4TF's default for Dense and convolution weights): uniform in
    ``±sqrt(6 / (fan_in + fan_out))``.

    >>> from s4tf_py.nn import initializers as init
    >>> float(init.glorot_uniform((2, 4), seed=0).max()) <= 1.0
    True
    """
    return variance_scaling(shape, dtype, scale=1.0, mode="fan_avg", distribution="uniform",
                            seed=seed, key=key)


def glorot_normal(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """Glorot/Xavier normal: truncated normal of variance ``2 / (fan_in + fan_out)``.

    >>> from s4tf_py.nn import initializers as init
    >>> init.glorot_normal((3, 3, 2, 4), seed=0).shape
    (3, 3, 2, 4)
    """
    return variance_scaling(shape, dtype, scale=1.0, mode="fan_avg",
                            distribution="truncated_normal", seed=seed, key=key)


def he_uniform(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """He/Kaiming uniform: uniform in ``±sqrt(6 / fan_in)``.

    >>> from s4tf_py.nn import initializers as init
    >>> float(init.he_uniform((6, 2), seed=0).max()) <= 1.0
    True
    """
    return variance_scaling(shape, dtype, scale=2.0, mode="fan_in", distribution="uniform",
                            seed=seed, key=key)


def he_normal(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """He/Kaiming normal: truncated normal of variance ``2 / fan_in``.

    >>> from s4tf_py.nn import initializers as init
    >>> init.he_normal((4, 4), seed=0).shape
    (4, 4)
    """
    return variance_scaling(shape, dtype, scale=2.0, mode="fan_in",
                            distribution="truncated_normal", seed=seed, key=key)


def lecun_uniform(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """LeCun uniform: uniform in ``±sqrt(3 / fan_in)``.

    >>> from s4tf_py.nn import initializers as init
    >>> float(init.lecun_uniform((3, 2), seed=0).max()) <= 1.0
    True
    """
    return variance_scaling(shape, dtype, scale=1.0, mode="fan_in", distribution="uniform",
                            seed=seed, key=key)


def lecun_normal(shape, dtype=dt.float32, *, seed=None, key=None) -> Tensor:
    """LeCun normal: truncated normal of variance ``1 / fan_in``.

    >>> from s4tf_py.nn import initializers as init
    >>> init.lecun_normal((4, 4), seed=0).shape
    (4, 4)
    """
    return variance_scaling(shape, dtype, scale=1.0, mode="fan_in",
                            distribution="truncated_normal", seed=seed, key=key)


def orthogonal(shape, dtype=dt.float32, *, gain: float = 1.0, seed=None, key=None) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain`` (S4TF ``Tensor(orthogonal:gain:seed:)``,
    Saxe et al. 2014): the shape is flattened to ``(prod(shape[:-1]), shape[-1])``, a normal
    matrix of that shape (transposed if it is wide) is QR-decomposed, and ``Q`` with its columns'
    signs fixed by ``diag(R)`` is reshaped back. Rows are orthonormal when there are no more
    rows than columns, columns otherwise.

    >>> import numpy as np
    >>> from s4tf_py.nn import initializers as init
    >>> q = init.orthogonal((4, 4), seed=0).numpy()
    >>> bool(np.allclose(q.T @ q, np.eye(4), atol=1e-5))
    True
    """
    from ..ops import linalg, math as m, shape as sh
    op = "initializers.orthogonal"
    shape = _shape("orthogonal", shape)
    d = _float("orthogonal", dtype)
    if len(shape) < 2:
        raise op_error(ShapeError, op, f"needs a shape of rank 2 or more, got {shape}")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    flat = (cols, rows) if rows < cols else (rows, cols)
    # QR in float32 at least: the float16/bfloat16 decomposition would not be orthogonal enough
    work = d if np.dtype(d).itemsize >= 4 else dt.float32
    a = _random.normal(flat, dtype=work, seed=seed, key=key)
    q, r = linalg.qr(a, mode="reduced")
    # Q's columns are unique only up to sign; fixing them by sign(diag(R)) makes Q uniformly
    # distributed (Haar) rather than biased by the QR algorithm's sign convention
    diag = linalg.diagonal(r)
    q = q * m.where(diag < 0, -1.0, 1.0)
    if rows < cols:
        q = sh.matrix_transpose(q)
    q = sh.reshape(q, shape)
    if gain != 1.0:
        q = q * float(gain)
    return q.astype(d) if q.dtype != d else q
