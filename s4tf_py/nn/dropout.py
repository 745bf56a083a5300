"""Noise layers: ``Dropout``, ``AlphaDropout``, ``GaussianDropout``, ``GaussianNoise`` (S4TF's).

Each is the identity in the inference phase (the default) and draws noise only in the training
phase (``with s4.learning_phase("training"):``). The noise comes from :mod:`s4tf_py.random`:
a key passed to the call (``layer(x, key=k)``), else the innermost
``s4.random.key_scope``, else the global key. Inside ``s4.compile`` use a key scope whose key is
an argument of the compiled function, so that each step draws a new mask without retracing::

    @s4.compile
    def step(model, opt, x, y, key):
        with s4.learning_phase("training"), s4.random.key_scope(key):
            loss, grads = s4.value_with_gradient(at=model, of=lambda m: loss_fn(m(x), y))
        opt.update(model, along=grads)
        return model, opt, loss

>>> import s4tf_py as s4
>>> from s4tf_py.nn.dropout import Dropout
>>> d = Dropout(probability=0.5)
>>> x = s4.ones((2, 4))
>>> d(x).tolist()                                  # inference: the identity
[[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]
>>> with s4.learning_phase("training"):
...     y = d(x, key=s4.random.key(0))
>>> sorted(set(y.numpy().ravel().tolist()))        # dropped, or kept and scaled by 1 / (1 - p)
[0.0, 2.0]
"""
from __future__ import annotations

import math

from .. import dtypes as dt
from .. import random as _random
from ..autodiff.structs import no_derivative
from ..errors import DTypeError, op_error
from ..ops import math as _m
from ..ops._core import to_tensor
from ..tensor import Tensor
from .context import is_training
from .layer import Layer

__all__ = ["Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise"]


def _check_probability(name: str, p: float) -> float:
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name}: probability must be in [0, 1], got {p}")
    return p


def _input(name: str, x) -> Tensor:
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        raise op_error(DTypeError, name, f"expects a floating-point input, got {x.dtype}", [x])
    return x


def _uniform(x: Tensor, key) -> Tensor:
    """Uniform [0, 1) noise of ``x``'s shape (float32 for low-precision ``x``), from ``key`` or,
    without one, the key scope / global key."""
    dtype = dt.float32 if x.dtype in dt.LOW_PRECISION else x.dtype
    return _random.uniform(x.shape, dtype=dtype, key=key)


class Dropout(Layer):
    """Sets each element to zero with probability ``probability`` and scales the others by
    ``1 / (1 - probability)`` in the training phase (S4TF's ``Dropout``; Srivastava et al. 2014),
    as S4TF does: ``x * (uniform >= p) / (1 - p)``. ``probability=1`` drops everything.

    ``Dropout(probability)``; call as ``layer(x)`` or ``layer(x, key=k)``.
    """

    probability: float = no_derivative(default=0.5)

    def __init__(self, probability: float = 0.5):
        self.probability = _check_probability("Dropout", probability)

    def __call__(self, x: Tensor, *, key: Tensor | None = None) -> Tensor:
        x = _input("Dropout", x)
        p = self.probability
        if not is_training() or p == 0.0:
            return x
        if p == 1.0:
            return x * 0.0
        keep = _m.greater_equal(_uniform(x, key), p)
        return _m.where(keep, x * (1.0 / (1.0 - p)), 0.0).astype(x.dtype)


class AlphaDropout(Layer):
    """Dropout that keeps the mean and variance of SELU activations (S4TF's ``AlphaDropout``;
    Klambauer et al. 2017): dropped elements are set to SELU's negative saturation
    ``-alpha * scale``, then ``a * x + b`` restores zero mean and unit variance, with
    ``a = ((1 - p) * (1 + p * alpha_p²))^-1/2`` and ``b = -a * alpha_p * p``.

    ``AlphaDropout(probability)`` with ``0 <= probability < 1``; the identity in inference.

    >>> import s4tf_py as s4
    >>> x = s4.random.normal((200_000,), seed=0)
    >>> with s4.learning_phase("training"):
    ...     y = AlphaDropout(0.2)(x, key=s4.random.key(1))
    >>> round(float(y.mean()), 2) + 0.0, round(float(y.std()), 2)
    (0.0, 1.0)
    """

    probability: float = no_derivative(default=0.5)

    #: SELU's constants
    ALPHA = 1.6732632423543772848170429916717
    SCALE = 1.0507009873554804934193349852946

    def __init__(self, probability: float = 0.5):
        p = _check_probability("AlphaDropout", probability)
        if p == 1.0:
            raise ValueError("AlphaDropout: probability must be < 1 (the affine correction "
                             "((1 - p) * (1 + p * alpha_p**2))**-0.5 is infinite at 1)")
        self.probability = p

    def __call__(self, x: Tensor, *, key: Tensor | None = None) -> Tensor:
        x = _input("AlphaDropout", x)
        p = self.probability
        if not is_training() or p == 0.0:
            return x
        alpha_p = -self.ALPHA * self.SCALE
        a = ((1.0 - p) * (1.0 + p * alpha_p ** 2)) ** -0.5
        b = -a * alpha_p * p
        keep = _m.greater_equal(_uniform(x, key), p)
        # a * (x if kept else alpha_p) + b, as one select
        return _m.where(keep, x * a + b, a * alpha_p + b).astype(x.dtype)


class GaussianDropout(Layer):
    """Multiplies by Gaussian noise of mean 1 and standard deviation
    ``sqrt(p / (1 - p))`` in the training phase (S4TF's ``GaussianDropout``; Srivastava et al.
    2014, section 10).

    ``GaussianDropout(probability)`` with ``0 <= probability < 1``; the identity in inference.
    """

    probability: float = no_derivative(default=0.5)
    standard_deviation: float = no_derivative(default=1.0)

    def __init__(self, probability: float = 0.5):
        p = _check_probability("GaussianDropout", probability)
        if p == 1.0:
            raise ValueError("GaussianDropout: probability must be < 1 (the noise's standard "
                             "deviation sqrt(p / (1 - p)) is infinite at 1)")
        self.probability = p
        self.standard_deviation = math.sqrt(p / (1.0 - p))

    def __call__(self, x: Tensor, *, key: Tensor | None = None) -> Tensor:
        x = _input("GaussianDropout", x)
        if not is_training() or self.probability == 0.0:
            return x
        dtype = dt.float32 if x.dtype in dt.LOW_PRECISION else x.dtype
        noise = _random.normal(x.shape, dtype=dtype, mean=1.0,
                               stddev=self.standard_deviation, key=key)
        return (x * noise).astype(x.dtype)


class GaussianNoise(Layer):
    """Adds Gaussian noise of mean 0 and standard deviation ``standard_deviation`` in the
    training phase (S4TF's ``GaussianNoise``), a regularizer; the identity in inference.

    ``GaussianNoise(standard_deviation)``.
    """

    standard_deviation: float = no_derivative(default=1.0)

    def __init__(self, standard_deviation: float = 1.0):
        sd = float(standard_deviation)
        if not sd >= 0.0:
            raise ValueError(f"GaussianNoise: standard_deviation must be >= 0, got {sd}")
        self.standard_deviation = sd

    def __call__(self, x: Tensor, *, key: Tensor | None = None) -> Tensor:
        x = _input("GaussianNoise", x)
        if not is_training() or self.standard_deviation == 0.0:
            return x
        dtype = dt.float32 if x.dtype in dt.LOW_PRECISION else x.dtype
        noise = _random.normal(x.shape, dtype=dtype, stddev=self.standard_deviation, key=key)
        return (x + noise).astype(x.dtype)
