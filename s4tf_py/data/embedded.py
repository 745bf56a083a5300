"""Real data sets that ship inside installed packages (no download, ever): scikit-learn's
handwritten digits and diabetes data.

>>> images, labels = digits()
>>> images.shape, images.dtype, labels.shape, labels.dtype, float(images.max())
((1797, 8, 8), dtype('float32'), (1797,), dtype('int32'), 1.0)
>>> features, targets = diabetes()
>>> features.shape, targets.shape
((442, 10), (442,))
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np


class Digits(NamedTuple):
    """scikit-learn's handwritten digits: ``images`` (1797, 8, 8) float32 in [0, 1] (the 17
    gray levels 0..16 divided by 16) and ``labels`` (1797,) int32 in 0..9."""
    images: np.ndarray
    labels: np.ndarray


class Diabetes(NamedTuple):
    """scikit-learn's diabetes regression data: ``features`` (442, 10) float32 (age, sex,
    bmi, bp, s1..s6; mean-centred and scaled, as scikit-learn ships them, unless
    ``scaled=False``) and ``targets`` (442,) float32, a disease-progression measure one year
    on."""
    features: np.ndarray
    targets: np.ndarray


#: the diabetes data's feature names, in column order
DIABETES_FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


@functools.lru_cache(maxsize=None)
def _digits() -> Digits:
    from sklearn.datasets import load_digits
    d = load_digits()
    return Digits(np.asarray(d.images, np.float32) / np.float32(16.0),
                  np.asarray(d.target, np.int32))


@functools.lru_cache(maxsize=None)
def _diabetes(scaled: bool) -> Diabetes:
    from sklearn.datasets import load_diabetes
    d = load_diabetes(scaled=scaled)
    return Diabetes(np.asarray(d.data, np.float32), np.asarray(d.target, np.float32))


def digits() -> Digits:
    """The 1,797 8×8 handwritten digits of scikit-learn (UCI's optical digits test set):
    ``(images, labels)`` (see :class:`Digits`). Each call returns fresh arrays."""
    d = _digits()
    return Digits(d.images.copy(), d.labels.copy())


def diabetes(*, scaled: bool = True) -> Diabetes:
    """scikit-learn's diabetes data: ``(features, targets)`` (see :class:`Diabetes`). Each call
    returns fresh arrays."""
    d = _diabetes(bool(scaled))
    return Diabetes(d.features.copy(), d.targets.copy())
