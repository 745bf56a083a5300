"""``s4.train.metrics``: metrics as stateful accumulators for a training loop.

The metrics of S4TF's ``TrainingLoop`` (its ``MetricsMeasurer`` s): loss, accuracy, top-5
accuracy, Matthews correlation coefficient, and perplexity. Each one

* ``update(predictions=None, labels=None, *, loss=None)`` accumulates one batch (every metric
  takes the same arguments, so a loop can feed them all alike; each uses what it needs);
* ``result()`` is the value over every batch since the last reset, a Python float (NaN before
  any update);
* ``reset()`` starts over (a loop resets at each epoch).

``predictions`` are scores with classes on the last axis (logits or probabilities, shape
``labels.shape + (classes,)``), or, for a binary task, one score per label (shape
``labels.shape``) compared with ``threshold``, or class indices (an integer tensor shaped like
``labels``). ``labels`` are integer classes (floats are rounded: 0./1. targets work).

Each update reduces its batch on the device to a few numbers and reads them (so an update
synchronizes with the device, and must not be called inside ``s4.compile``): the running
state is plain Python numbers, which keeps no device memory or graph alive between batches.

(These are the training metrics; ``s4.metrics()`` is the compiler's counters.)

>>> import s4tf_py as s4
>>> from s4tf_py.train import metrics
>>> acc = metrics.Accuracy()
>>> acc.update(s4.Tensor([[0.1, 0.9], [0.8, 0.2]]), s4.Tensor([1, 1]))
>>> acc.update(s4.Tensor([[0.3, 0.7]]), s4.Tensor([1]))
>>> round(acc.result(), 4)
0.6667
>>> acc.reset(); acc.result()
nan
"""
from __future__ import annotations

import math
import re
from typing import Callable

import numpy as np

import s4tf_py as s4
from .. import losses as _losses
from ..errors import DTypeError, ShapeError, op_error

__all__ = ["Metric", "Loss", "Mean", "Accuracy", "TopKAccuracy", "MatthewsCorrelation",
           "Perplexity", "get"]


def _tensor(x) -> s4.Tensor:
    return x if isinstance(x, s4.Tensor) else s4.asarray(np.asarray(x))


class Metric:
    """Base of the metrics: a ``name``, ``update``, ``result`` and ``reset``."""

    name: str = "metric"

    def __init__(self) -> None:
        self.reset()

    def update(self, predictions=None, labels=None, *, loss=None) -> None:
        """Accumulate one batch."""
        raise NotImplementedError

    def result(self) -> float:
        """The metric over every batch since the last :meth:`reset`."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget every batch seen so far."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, result={self.result():.6g})"

    # ---- shared argument handling --------------------------------------------------------------
    def _need(self, predictions, labels) -> tuple[s4.Tensor, s4.Tensor]:
        if predictions is None or labels is None:
            raise op_error(TypeError, f"metrics.{self.name}",
                           "update needs predictions and labels")
        p, y = _tensor(predictions), _tensor(labels)
        if s4.isdtype(y.dtype, "real floating"):
            y = s4.round(y)                  # 0./1. targets of a binary task
        elif y.dtype != s4.bool_ and not s4.isdtype(y.dtype, "integral"):
            raise op_error(DTypeError, f"metrics.{self.name}",
                           f"labels must be class indices, got {y.dtype}", [y])
        return p, y.astype(s4.int32)

    def _classes(self, p: s4.Tensor, y: s4.Tensor, threshold: float) -> s4.Tensor:
        """The predicted class of every label: argmax over the class axis, a thresholded score
        for a binary task, or the predictions themselves when they are classes already."""
        if p.ndim == y.ndim + 1 and p.shape[:-1] == y.shape:
            return s4.argmax(p, axis=-1).astype(s4.int32)
        if p.shape == y.shape:
            if s4.isdtype(p.dtype, "real floating"):
                return (p > threshold).astype(s4.int32)
            return p.astype(s4.int32)
        raise op_error(ShapeError, f"metrics.{self.name}",
                       f"predictions of shape {p.shape} do not match labels of shape {y.shape}: "
                       f"they need shape {y.shape + ('classes',)} (scores) or {y.shape}",
                       [p, y])


class Mean(Metric):
    """The mean of the values given as ``loss=`` (one per update; a non-scalar value counts as
    its mean), or of ``value_function(predictions, labels)`` when that is set.

    >>> from s4tf_py.train import metrics
    >>> m = metrics.Mean(name="grad_norm")
    >>> m.update(loss=1.0); m.update(loss=2.0)
    >>> m.result()
    1.5
    """

    def __init__(self, value_function: Callable | None = None, *, name: str = "mean") -> None:
        self.value_function = value_function
        self.name = name
        super().__init__()

    def reset(self) -> None:
        self.total = 0.0
        self.count = 0

    def update(self, predictions=None, labels=None, *, loss=None) -> None:
        if loss is None:
            if self.value_function is None:
                raise op_error(TypeError, f"metrics.{self.name}",
                               "update needs loss= (or a value_function to compute it from "
                               "predictions and labels)")
            loss = self.value_function(predictions, labels)
        value = loss.mean().item() if isinstance(loss, s4.Tensor) else float(np.mean(loss))
        self.total += value
        self.count += 1

    def result(self) -> float:
        return self.total / self.count if self.count else math.nan


class Loss(Mean):
    """The mean of the batch losses (S4TF's ``LossMeasurer``: an unweighted mean over
    batches). Pass the step's loss as ``loss=``, or give a ``loss_function`` to compute it.

    >>> import s4tf_py as s4
    >>> from s4tf_py import losses
    >>> from s4tf_py.train import metrics
    >>> m = metrics.Loss(losses.mean_squared_error)
    >>> m.update(s4.Tensor([1.0, 2.0]), s4.Tensor([1.0, 0.0]))    # 2.0
    >>> m.update(loss=s4.Tensor(1.0))
    >>> m.result()
    1.5
    """

    def __init__(self, loss_function: Callable | None = None, *, name: str = "loss") -> None:
        super().__init__(loss_function, name=name)


class Accuracy(Metric):
    """The fraction of labels whose predicted class is right (S4TF's ``AccuracyMeasurer``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.train import metrics
    >>> m = metrics.Accuracy()
    >>> m.update(s4.Tensor([0.2, 0.7, 0.9]), s4.Tensor([0, 1, 0]))   # binary scores
    >>> round(m.result(), 4)
    0.6667
    """

    name = "accuracy"

    def __init__(self, *, threshold: float = 0.5) -> None:
        self.threshold = threshold
        super().__init__()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, predictions=None, labels=None, *, loss=None) -> None:
        p, y = self._need(predictions, labels)
        hits = s4.sum(s4.equal(self._classes(p, y, self.threshold), y).astype(s4.int32))
        self.correct += int(hits.item())
        self.total += y.size

    def result(self) -> float:
        return self.correct / self.total if self.total else math.nan


class TopKAccuracy(Metric):
    """The fraction of labels among the ``k`` highest-scored classes (``k=5``: top-5 accuracy).
    ``k`` larger than the number of classes counts every label as found.

    >>> import s4tf_py as s4
    >>> from s4tf_py.train import metrics
    >>> m = metrics.TopKAccuracy(k=2)
    >>> m.update(s4.Tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]), s4.Tensor([1, 2]))
    >>> m.result(), m.name
    (0.5, 'top2_accuracy')
    """

    def __init__(self, k: int = 5, *, name: str | None = None) -> None:
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise op_error(ValueError, "metrics.TopKAccuracy",
                           f"k must be a positive int, got {k!r}")
        self.k = int(k)
        self.name = name or f"top{self.k}_accuracy"
        super().__init__()

    def reset(self) -> None:
        self.correct = 0
        self.total = 0

    def update(self, predictions=None, labels=None, *, loss=None) -> None:
        p, y = self._need(predictions, labels)
        if p.ndim != y.ndim + 1 or p.shape[:-1] != y.shape:
            raise op_error(ShapeError, f"metrics.{self.name}",
                           f"needs scores of shape {y.shape + ('classes',)} for labels of shape "
                           f"{y.shape}, got predictions of shape {p.shape}", [p, y])
        _, top = s4.top_k(p, min(self.k, p.shape[-1]))
        # the k indices of a row are distinct, so a row matches its label at most once
        found = s4.equal(top.astype(s4.int32), s4.expand_dims(y, -1)).astype(s4.int32)
        self.correct += int(s4.sum(found).item())
        self.total += y.size

    def result(self) -> float:
        return self.correct / self.total if self.total else math.nan


class MatthewsCorrelation(Metric):
    """The Matthews correlation coefficient of the predicted and true classes, for binary
    (the classic ``(TP·TN - FP·FN) / sqrt(...)``) and multiclass tasks (Gorodkin's R_K, as
    scikit-learn's ``matthews_corrcoef``), from a confusion matrix accumulated over batches.
    It is 0 when either the predictions or the labels are all one class.

    >>> import s4tf_py as s4
    >>> from s4tf_py.train import metrics
    >>> m = metrics.MatthewsCorrelation()
    >>> m.update(s4.Tensor([1, 1, 0, 0]), s4.Tensor([1, 0, 0, 0]))   # class predictions
    >>> round(m.result(), 4)
    0.5774
    """

    name = "matthews_correlation"

    def __init__(self, *, threshold: float = 0.5) -> None:
        self.threshold = threshold
        super().__init__()

    def reset(self) -> None:
        #: confusion[true class, predicted class]; grows as new classes appear
        self.confusion = np.zeros((0, 0), np.int64)

    def update(self, predictions=None, labels=None, *, loss=None) -> None:
        p, y = self._need(predictions, labels)
        pred = self._classes(p, y, self.threshold).numpy().ravel()
        true = y.numpy().ravel()
        if true.size and (true.min() < 0 or pred.min() < 0):
            raise op_error(ValueError, f"metrics.{self.name}",
                           "classes must be non-negative integers", [p, y])
        n = max(self.confusion.shape[0], int(true.max(initial=-1)) + 1,
                int(pred.max(initial=-1)) + 1)
        if n > self.confusion.shape[0]:
            grown = np.zeros((n, n), np.int64)
            k = self.confusion.shape[0]
            grown[:k, :k] = self.confusion
            self.confusion = grown
        np.add.at(self.confusion, (true, pred), 1)

    def result(self) -> float:
        c = self.confusion
        samples = int(c.sum())
        if samples == 0:
            return math.nan
        # Python ints: the products of counts overflow int64 for large data sets
        t = [int(v) for v in c.sum(axis=1)]          # how often each class is true
        p = [int(v) for v in c.sum(axis=0)]          # how often each class is predicted
        correct = int(np.trace(c))
        cov_tp = correct * samples - sum(a * b for a, b in zip(t, p))
        cov_pp = samples * samples - sum(b * b for b in p)
        cov_tt = samples * samples - sum(a * a for a in t)
        if cov_pp == 0 or cov_tt == 0:
            return 0.0
        return cov_tp / math.sqrt(cov_tt) / math.sqrt(cov_pp)


class Perplexity(Metric):
    """``exp`` of the mean negative log-likelihood per token. From logits and integer labels
    (token ids), every token weighs the same across batches; from ``loss=`` alone (a mean
    cross-entropy per batch), ``exp`` of the mean over batches.

    >>> import s4tf_py as s4
    >>> from s4tf_py.train import metrics
    >>> m = metrics.Perplexity()
    >>> m.update(s4.zeros((2, 3, 10)), s4.Tensor([[1, 2, 3], [4, 5, 6]]))  # uniform over 10
    >>> round(m.result(), 4)
    10.0
    """

    name = "perplexity"

    def reset(self) -> None:
        self.nll = 0.0
        self.count = 0

    def update(self, predictions=None, labels=None, *, loss=None) -> None:
        if predictions is not None and labels is not None:
            p, y = self._need(predictions, labels)
            nll = _losses.softmax_cross_entropy(p, y, reduction="sum")
            self.nll += float(nll.item())
            self.count += y.size
        elif loss is not None:
            self.nll += loss.mean().item() if isinstance(loss, s4.Tensor) else float(np.mean(loss))
            self.count += 1
        else:
            raise op_error(TypeError, f"metrics.{self.name}",
                           "update needs predictions and labels, or loss=")

    def result(self) -> float:
        return math.exp(self.nll / self.count) if self.count else math.nan


_BY_NAME: dict[str, Callable[[], Metric]] = {
    "loss": Loss,
    "accuracy": Accuracy,
    "matthews_correlation": MatthewsCorrelation,
    "matthews_correlation_coefficient": MatthewsCorrelation,
    "mcc": MatthewsCorrelation,
    "perplexity": Perplexity,
}


def get(name: str | Metric) -> Metric:
    """A fresh metric by name, as S4TF's ``TrainingMetrics``: ``"loss"``, ``"accuracy"``,
    ``"top5_accuracy"`` (any ``"top{k}_accuracy"``), ``"matthews_correlation"`` (or
    ``"mcc"``), ``"perplexity"``; S4TF's camelCase names (``"top5Accuracy"``,
    ``"matthewsCorrelationCoefficient"``) work too. A Metric is returned as it is.

    >>> from s4tf_py.train import metrics
    >>> metrics.get("top5Accuracy").k
    5
    """
    if isinstance(name, Metric):
        return name
    if not isinstance(name, str):
        raise TypeError(f"metrics.get: expects a metric name or a Metric, got {name!r}")
    key = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()     # camelCase -> snake_case
    top = re.fullmatch(r"top_?(\d+)_accuracy", key)
    if top:
        return TopKAccuracy(int(top.group(1)))
    if key not in _BY_NAME:
        raise ValueError(f"metrics.get: unknown metric {name!r}; known: "
                         f"{sorted(_BY_NAME) + ['top5_accuracy']}")
    return _BY_NAME[key]()
