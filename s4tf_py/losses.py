"""``s4.losses``: Swift for TensorFlow's loss functions, each with a ``reduction``.

Every loss computes an elementwise (or per-example) loss and hands it to ``reduction``:

* ``"mean"`` — the mean over all elements (S4TF's ``_mean``);
* ``"sum"`` — the sum over all elements (S4TF's ``_sum``);
* ``"none"`` (or ``None``) — no reduction: the unreduced loss, shaped like the inputs (like
  the logits without their class axis for the cross-entropies and the categorical hinge);
* any callable ``Tensor -> Tensor`` (``s4.mean``, ``lambda t: t.sum() / 8`` ...).

The default reduction of each loss is S4TF's: ``l1``, ``l2``, ``kl_divergence`` and ``huber``
sum; everything else averages. The formulas are S4TF's (``swift-apis/Sources/TensorFlow/
Loss.swift``), argument names in snake_case: ``loss(predicted, expected, reduction=...)``, and
``softmax_cross_entropy(logits, labels)`` / ``sigmoid_cross_entropy(logits, labels)``.
Arguments may be passed positionally or by keyword. Where this module departs from S4TF it says
so in the function's docstring: the four ``mean_*`` errors take a ``reduction`` too (S4TF's
always averaged), ``squared_hinge`` squares before reducing, ``kl_divergence`` counts
``0 · log 0`` as 0, and ``huber``'s ``delta`` defaults to 1.

All losses are ordinary compositions of differentiable ops, so ``s4.gradient`` of any of them
(with respect to ``predicted``/``logits``, and also ``expected`` where the formula allows) is
a program like any other.

>>> import s4tf_py as s4
>>> from s4tf_py import losses
>>> p = s4.Tensor([1.0, 2.0, 4.0])
>>> e = s4.Tensor([1.0, 0.0, 2.0])
>>> round(losses.mean_squared_error(p, e).item(), 4)      # (0 + 4 + 4) / 3
2.6667
>>> losses.l2(predicted=p, expected=e).item()       # S4TF's l2Loss sums by default
8.0
>>> losses.l1(p, e, reduction="none").tolist()
[0.0, 2.0, 2.0]
>>> logits = s4.Tensor([[1e4, 0.0, -1e4]])          # large logits stay finite
>>> losses.softmax_cross_entropy(logits, s4.Tensor([1])).item()
10000.0
"""
from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np

import s4tf_py as s4
from .errors import DTypeError, ShapeError, op_error

__all__ = ["l1", "l2", "mean_absolute_error", "mean_squared_error",
           "mean_squared_logarithmic_error", "mean_absolute_percentage_error", "hinge",
           "squared_hinge", "categorical_hinge", "log_cosh", "poisson", "kl_divergence",
           "softmax_cross_entropy", "sigmoid_cross_entropy", "huber", "reduce"]

#: what ``reduction=`` accepts
Reduction = Union[str, None, Callable[["s4.Tensor"], "s4.Tensor"]]
#: what the inputs may be: a Tensor or anything ``s4.asarray`` takes (arrays, lists, numbers)
TensorLike = Union["s4.Tensor", np.ndarray, float, int, list]

_REDUCTIONS = ("mean", "sum", "none")


# ---- helpers ------------------------------------------------------------------------------------

def _name(loss: str) -> str:
    return f"losses.{loss}"


def reduce(values: s4.Tensor, reduction: Reduction = "mean", *, loss: str = "loss") -> s4.Tensor:
    """Apply ``reduction`` (``"mean"``, ``"sum"``, ``"none"``/``None`` or a callable) to an
    unreduced loss.

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.reduce(s4.Tensor([1.0, 3.0]), "sum").item()
    4.0
    >>> losses.reduce(s4.Tensor([1.0, 3.0]), lambda t: t.max()).item()
    3.0
    """
    if callable(reduction):
        return reduction(values)
    if reduction is None or reduction == "none":
        return values
    if reduction == "mean":
        return s4.mean(values)
    if reduction == "sum":
        return s4.sum(values)
    raise op_error(ValueError, _name(loss),
                   f"reduction must be one of {_REDUCTIONS}, None or a callable, "
                   f"got {reduction!r}")


def _floating(loss: str, x: TensorLike, what: str) -> s4.Tensor:
    """``x`` as a floating-point Tensor; an integer or boolean Tensor is an error (its
    derivative would be meaningless), Python numbers and lists become float32."""
    if not isinstance(x, s4.Tensor):
        x = s4.asarray(x)
        if not s4.isdtype(x.dtype, "real floating"):
            x = x.astype(s4.float32)
        return x
    if not s4.isdtype(x.dtype, "real floating"):
        raise op_error(DTypeError, _name(loss),
                       f"{what} must be a floating-point tensor, got {x.dtype}", [x])
    return x


def _like(loss: str, x: TensorLike, ref: s4.Tensor, what: str, ref_what: str) -> s4.Tensor:
    """``x`` checked against ``ref``: the same shape and floating dtype. Targets given as
    Python numbers/lists/numpy arrays or as integer/boolean tensors (labels such as -1/1 or 0/1)
    are converted to ``ref``'s dtype; floating tensors of another dtype are an error, since
    silently promoting would change the precision the caller asked for."""
    if not isinstance(x, s4.Tensor):
        x = s4.asarray(np.asarray(x), dtype=ref.dtype, device=ref.device)
        if x.ndim == 0 and ref.ndim:
            x = s4.broadcast_to(x, ref.shape)
    elif not s4.isdtype(x.dtype, "real floating"):
        x = x.astype(ref.dtype)
    elif x.dtype != ref.dtype:
        raise op_error(DTypeError, _name(loss),
                       f"{ref_what} is {ref.dtype} but {what} is {x.dtype}; cast one of them "
                       f"(e.g. {what}.astype({ref_what}.dtype))", [ref, x])
    if x.shape != ref.shape:
        # no broadcasting: predicted (N, 1) against expected (N,) would silently give (N, N)
        raise op_error(ShapeError, _name(loss),
                       f"{ref_what} has shape {ref.shape} but {what} has shape {x.shape}; "
                       f"they must be equal", [ref, x])
    return x


def _pair(loss: str, predicted: TensorLike, expected: TensorLike) -> tuple[s4.Tensor, s4.Tensor]:
    p = _floating(loss, predicted, "predicted")
    return p, _like(loss, expected, p, "expected", "predicted")


# ---- regression losses --------------------------------------------------------------------------

def l1(predicted: TensorLike, expected: TensorLike, reduction: Reduction = "sum") -> s4.Tensor:
    """L1 loss ``reduction(|expected - predicted|)`` (S4TF ``l1Loss``; sums by default).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.l1(s4.Tensor([1.0, -1.0]), s4.Tensor([0.0, 1.0])).item()
    3.0
    """
    p, e = _pair("l1", predicted, expected)
    return reduce(s4.abs(e - p), reduction, loss="l1")


def l2(predicted: TensorLike, expected: TensorLike, reduction: Reduction = "sum") -> s4.Tensor:
    """L2 loss ``reduction((expected - predicted)²)`` (S4TF ``l2Loss``; sums by default).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.l2(s4.Tensor([1.0, -1.0]), s4.Tensor([0.0, 1.0])).item()
    5.0
    """
    p, e = _pair("l2", predicted, expected)
    return reduce(s4.square(e - p), reduction, loss="l2")


def mean_absolute_error(predicted: TensorLike, expected: TensorLike,
                        reduction: Reduction = "mean") -> s4.Tensor:
    """``mean(|expected - predicted|)`` (S4TF ``meanAbsoluteError``).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.mean_absolute_error(s4.Tensor([1.0, -1.0]), s4.Tensor([0.0, 1.0])).item()
    1.5
    """
    p, e = _pair("mean_absolute_error", predicted, expected)
    return reduce(s4.abs(e - p), reduction, loss="mean_absolute_error")


def mean_squared_error(predicted: TensorLike, expected: TensorLike,
                       reduction: Reduction = "mean") -> s4.Tensor:
    """``mean((expected - predicted)²)`` (S4TF ``meanSquaredError``).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.mean_squared_error(s4.Tensor([1.0, -1.0]), s4.Tensor([0.0, 1.0])).item()
    2.5
    """
    p, e = _pair("mean_squared_error", predicted, expected)
    return reduce(s4.square(e - p), reduction, loss="mean_squared_error")


def mean_squared_logarithmic_error(predicted: TensorLike, expected: TensorLike,
                                   reduction: Reduction = "mean") -> s4.Tensor:
    """``mean((log(1 + max(expected, 0)) - log(1 + max(predicted, 0)))²)`` (S4TF
    ``meanSquaredLogarithmicError``: negative entries are clamped at 0, where ``log1p`` is
    defined).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> round(losses.mean_squared_logarithmic_error(s4.Tensor([3.0]), s4.Tensor([1.0])).item(), 4)
    0.4805
    """
    p, e = _pair("mean_squared_logarithmic_error", predicted, expected)
    log_p = s4.log1p(s4.maximum(p, 0.0))
    log_e = s4.log1p(s4.maximum(e, 0.0))
    return reduce(s4.square(log_e - log_p), reduction, loss="mean_squared_logarithmic_error")


def mean_absolute_percentage_error(predicted: TensorLike, expected: TensorLike,
                                   reduction: Reduction = "mean") -> s4.Tensor:
    """``100 · mean(|(expected - predicted) / |expected||)`` (S4TF
    ``meanAbsolutePercentageError``; an ``expected`` of 0 gives inf, as there).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.mean_absolute_percentage_error(s4.Tensor([110.0, 45.0]),
    ...                                       s4.Tensor([100.0, 50.0])).item()
    10.0
    """
    p, e = _pair("mean_absolute_percentage_error", predicted, expected)
    return reduce(100.0 * s4.abs((e - p) / s4.abs(e)), reduction,
                  loss="mean_absolute_percentage_error")


def log_cosh(predicted: TensorLike, expected: TensorLike,
             reduction: Reduction = "mean") -> s4.Tensor:
    """``reduction(log(cosh(predicted - expected)))`` (S4TF ``logCoshLoss``), computed as
    ``x + softplus(-2x) - log 2``, which does not overflow for large errors.

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.log_cosh(s4.Tensor([1000.0]), s4.Tensor([0.0])).item()   # ≈ 1000 - log 2
    999.30...
    """
    p, e = _pair("log_cosh", predicted, expected)
    x = p - e
    return reduce(x + s4.softplus(-2.0 * x) - math.log(2.0), reduction, loss="log_cosh")


def huber(predicted: TensorLike, expected: TensorLike, delta: float = 1.0,
          reduction: Reduction = "sum") -> s4.Tensor:
    """Huber loss (S4TF ``huberLoss``; sums by default): for each ``x = expected - predicted``,
    ``0.5·x²`` where ``|x| <= delta`` and ``0.5·delta² + delta·(|x| - delta)`` elsewhere.

    S4TF requires ``delta``; here it defaults to 1.0 (Keras and PyTorch's default).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.huber(s4.Tensor([0.5, 3.0]), s4.Tensor([0.0, 0.0]), delta=1.0,
    ...              reduction="none").tolist()
    [0.125, 2.5]
    """
    if not isinstance(delta, (int, float)) or isinstance(delta, bool) or not delta > 0:
        raise op_error(ValueError, _name("huber"),
                       f"delta must be a positive number, got {delta!r}")
    p, e = _pair("huber", predicted, expected)
    abs_error = s4.abs(e - p)
    quadratic = s4.minimum(abs_error, float(delta))
    linear = abs_error - quadratic
    return reduce(0.5 * quadratic * quadratic + float(delta) * linear, reduction, loss="huber")


def poisson(predicted: TensorLike, expected: TensorLike,
            reduction: Reduction = "mean") -> s4.Tensor:
    """``reduction(predicted - expected · log(predicted))`` (S4TF ``poissonLoss``;
    ``predicted`` is the rate, so it must be positive).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.poisson(s4.Tensor([1.0]), s4.Tensor([3.0])).item()
    1.0
    """
    p, e = _pair("poisson", predicted, expected)
    return reduce(p - e * s4.log(p), reduction, loss="poisson")


def kl_divergence(predicted: TensorLike, expected: TensorLike,
                  reduction: Reduction = "sum") -> s4.Tensor:
    """Kullback-Leibler divergence ``reduction(expected · log(expected / predicted))`` (S4TF
    ``kullbackLeiblerDivergence``; sums by default). Where ``expected`` is 0 the term is 0
    (``0 · log 0 = 0``, as PyTorch's ``kl_div``), not NaN.

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.kl_divergence(s4.Tensor([0.5, 0.5]), s4.Tensor([1.0, 0.0])).item()   # log 2
    0.6931...
    """
    p, e = _pair("kl_divergence", predicted, expected)
    positive = e > 0
    # xlogy: take log(1) where expected is 0, so neither the value nor its derivative is NaN
    e_safe = s4.where(positive, e, 1.0)
    terms = s4.where(positive, e * (s4.log(e_safe) - s4.log(p)), 0.0)
    return reduce(terms, reduction, loss="kl_divergence")


# ---- classification losses ----------------------------------------------------------------------

def hinge(predicted: TensorLike, expected: TensorLike, reduction: Reduction = "mean") -> s4.Tensor:
    """``reduction(max(0, 1 - expected · predicted))`` with ``expected`` in {-1, 1} (S4TF
    ``hingeLoss``).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.hinge(s4.Tensor([0.5, -2.0]), s4.Tensor([1, 1]), reduction="none").tolist()
    [0.5, 3.0]
    """
    p, e = _pair("hinge", predicted, expected)
    return reduce(s4.relu(1.0 - e * p), reduction, loss="hinge")


def squared_hinge(predicted: TensorLike, expected: TensorLike,
                  reduction: Reduction = "mean") -> s4.Tensor:
    """``reduction(max(0, 1 - expected · predicted)²)`` (S4TF ``squaredHingeLoss``'s
    documented formula; S4TF's code squared the already averaged hinge loss, a bug not copied).

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.squared_hinge(s4.Tensor([0.5, -2.0]), s4.Tensor([1, 1])).item()  # (0.25 + 9) / 2
    4.625
    """
    p, e = _pair("squared_hinge", predicted, expected)
    return reduce(s4.square(s4.relu(1.0 - e * p)), reduction, loss="squared_hinge")


def categorical_hinge(predicted: TensorLike, expected: TensorLike,
                      reduction: Reduction = "mean") -> s4.Tensor:
    """``reduction(max(0, neg - pos + 1))`` per example (S4TF ``categoricalHingeLoss``), where
    along the last (class) axis ``pos = sum(expected · predicted)`` and
    ``neg = max((1 - expected) · predicted)``; ``expected`` is one-hot. Unreduced, the loss has
    the shape of ``predicted`` without its last axis.

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.categorical_hinge(s4.Tensor([[2.0, 1.5, 0.0]]), s4.Tensor([[1.0, 0.0, 0.0]]),
    ...                          reduction="none").tolist()
    [0.5]
    """
    p, e = _pair("categorical_hinge", predicted, expected)
    if p.ndim == 0:
        raise op_error(ShapeError, _name("categorical_hinge"),
                       "predicted needs a class axis (at least one dimension)", [p])
    positive = s4.sum(e * p, axis=-1)
    negative = s4.max((1.0 - e) * p, axis=-1)
    return reduce(s4.relu(negative - positive + 1.0), reduction, loss="categorical_hinge")


def softmax_cross_entropy(logits: TensorLike, labels: TensorLike | None = None,
                          reduction: Reduction = "mean", *,
                          probabilities: TensorLike | None = None) -> s4.Tensor:
    """Softmax cross-entropy between ``logits`` (classes on the last axis) and either integer
    class ``labels`` (shape: ``logits`` without its last axis, values in ``[0, classes)``; a
    label outside that range, such as -1 for padding, matches no class and contributes 0, while
    still counting in a ``"mean"``) or
    class ``probabilities`` (shape of ``logits``, each row a distribution) — S4TF's two
    ``softmaxCrossEntropy`` overloads. A floating ``labels`` tensor shaped like ``logits`` is
    taken as probabilities, so ``softmax_cross_entropy(logits, one_hot)`` works positionally.

    Per example the loss is ``-log_softmax(logits)[label]`` (or
    ``-sum(probabilities · log_softmax(logits))``). ``log_softmax`` subtracts the row maximum
    first, so logits of any magnitude give a finite loss and the gradient
    ``softmax(logits) - one_hot(labels)``.

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> logits = s4.Tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> round(losses.softmax_cross_entropy(logits, s4.Tensor([0, 0])).item(), 4)
    1.1269
    >>> losses.softmax_cross_entropy(logits, probabilities=s4.Tensor([[1.0, 0.0], [1.0, 0.0]]),
    ...                              reduction="none").shape
    (2,)
    """
    name = "softmax_cross_entropy"
    x = _floating(name, logits, "logits")
    if x.ndim == 0:
        raise op_error(ShapeError, _name(name), "logits need a class axis (at least one "
                                                "dimension)", [x])
    if (labels is None) == (probabilities is None):
        raise op_error(TypeError, _name(name), "pass exactly one of labels= (integer classes) "
                                               "and probabilities=")
    if probabilities is None and isinstance(labels, s4.Tensor) and \
            s4.isdtype(labels.dtype, "real floating") and labels.shape == x.shape:
        labels, probabilities = None, labels
    log_p = s4.log_softmax(x, axis=-1)
    if probabilities is not None:
        q = _like(name, probabilities, x, "probabilities", "logits")
        return reduce(-s4.sum(q * log_p, axis=-1), reduction, loss=name)
    if not isinstance(labels, s4.Tensor):
        labels = s4.asarray(np.asarray(labels), device=x.device)
    if not s4.isdtype(labels.dtype, "integral"):
        raise op_error(DTypeError, _name(name),
                       f"labels must be integer class indices, got {labels.dtype} with shape "
                       f"{labels.shape} (logits {x.shape}); pass class probabilities as "
                       f"probabilities=", [x, labels])
    if labels.shape != x.shape[:-1]:
        raise op_error(ShapeError, _name(name),
                       f"logits of shape {x.shape} need labels of shape {x.shape[:-1]}, got "
                       f"{labels.shape}", [x, labels])
    # pick log_p[label] with a one-hot mask rather than a gather: it fuses with log_softmax
    # into one elementwise kernel, and `where` (not a multiply) keeps a masked -inf logit
    # elsewhere in the row from turning the loss into 0 * -inf = NaN
    hot = s4.equal(s4.expand_dims(labels, -1),
                   s4.arange(x.shape[-1], dtype=labels.dtype, device=x.device))
    return reduce(-s4.sum(s4.where(hot, log_p, 0.0), axis=-1), reduction, loss=name)


def sigmoid_cross_entropy(logits: TensorLike, labels: TensorLike,
                          reduction: Reduction = "mean") -> s4.Tensor:
    """Sigmoid (binary) cross-entropy between ``logits`` and ``labels`` in [0, 1] (S4TF
    ``sigmoidCrossEntropy``), in the stable form
    ``max(x, 0) - x·z + log(1 + exp(-|x|))``, finite for logits of any magnitude.

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> losses.sigmoid_cross_entropy(s4.Tensor([0.0, 1e4]), s4.Tensor([1.0, 1.0]),
    ...                              reduction="none").tolist()
    [0.693..., 0.0]
    """
    name = "sigmoid_cross_entropy"
    x = _floating(name, logits, "logits")
    z = _like(name, labels, x, "labels", "logits")
    return reduce(s4.relu(x) - x * z + s4.log1p(s4.exp(-s4.abs(x))), reduction, loss=name)
