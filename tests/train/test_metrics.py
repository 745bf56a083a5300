"""``s4tf_py.train.metrics``: accumulated over several batches and compared with scikit-learn
(accuracy, top-k accuracy, Matthews correlation) and numpy (loss mean, perplexity); reset,
the calling conventions a training loop uses, ``get`` by name, and errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, matthews_corrcoef, top_k_accuracy_score

import s4tf_py as s4
from s4tf_py import losses
from s4tf_py.train import metrics


def _batches(seed, n_batches=4, batch=16, classes=6, extra=()):
    """Random logits and labels, in batches of different sizes."""
    r = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        n = batch + 3 * b
        out.append((r.standard_normal((n,) + extra + (classes,)).astype(np.float32),
                    r.integers(0, classes, (n,) + extra)))
    return out


def _feed(metric, batches):
    for p, y in batches:
        metric.update(s4.Tensor(p), s4.Tensor(y.astype(np.int32)))
    return metric.result()


def _all(batches):
    return (np.concatenate([p.reshape(-1, p.shape[-1]) for p, _ in batches]),
            np.concatenate([y.ravel() for _, y in batches]))


def test_accuracy_against_sklearn():
    batches = _batches(0)
    p, y = _all(batches)
    assert _feed(metrics.Accuracy(), batches) == pytest.approx(accuracy_score(y, p.argmax(-1)))


def test_accuracy_over_sequences_and_binary_scores():
    batches = _batches(1, extra=(5,))                   # (batch, time, classes) logits
    p, y = _all(batches)
    assert _feed(metrics.Accuracy(), batches) == pytest.approx(accuracy_score(y, p.argmax(-1)))
    r = np.random.default_rng(2)
    scores, labels = r.uniform(size=50).astype(np.float32), r.integers(0, 2, 50)
    m = metrics.Accuracy(threshold=0.3)
    m.update(s4.Tensor(scores), s4.Tensor(labels.astype(np.float32)))   # 0./1. float labels
    assert m.result() == pytest.approx(accuracy_score(labels, scores > 0.3))


@pytest.mark.parametrize("k", [1, 2, 5])
def test_top_k_accuracy_against_sklearn(k):
    batches = _batches(3, classes=8)
    p, y = _all(batches)
    m = metrics.TopKAccuracy(k)
    assert _feed(m, batches) == pytest.approx(
        top_k_accuracy_score(y, p, k=k, labels=np.arange(8)))
    assert m.name == f"top{k}_accuracy"


def test_top_k_larger_than_the_classes_finds_everything():
    m = metrics.TopKAccuracy(5)
    m.update(s4.Tensor([[0.1, 0.9, 0.3]]), s4.Tensor([0]))
    assert m.result() == 1.0


def test_matthews_correlation_multiclass_against_sklearn():
    r = np.random.default_rng(4)
    m = metrics.MatthewsCorrelation()
    ys, ps = [], []
    for n in (20, 31, 7):
        y = r.integers(0, 4, n)
        logits = r.standard_normal((n, 4)).astype(np.float32)
        logits[np.arange(n), y] += 1.0                  # better than chance
        m.update(s4.Tensor(logits), s4.Tensor(y.astype(np.int32)))
        ys.append(y)
        ps.append(logits.argmax(-1))
    want = matthews_corrcoef(np.concatenate(ys), np.concatenate(ps))
    assert 0.1 < want < 0.9
    assert m.result() == pytest.approx(want, abs=1e-12)


def test_matthews_correlation_binary_against_sklearn_and_the_formula():
    r = np.random.default_rng(5)
    y = r.integers(0, 2, 200)
    scores = np.clip(y * 0.3 + r.uniform(size=200) * 0.7, 0, 1).astype(np.float32)
    m = metrics.MatthewsCorrelation()
    m.update(s4.Tensor(scores[:120]), s4.Tensor(y[:120].astype(np.int32)))
    m.update(s4.Tensor(scores[120:]), s4.Tensor(y[120:].astype(np.int32)))
    pred = (scores > 0.5).astype(int)
    want = matthews_corrcoef(y, pred)
    tp = np.sum((pred == 1) & (y == 1)); tn = np.sum((pred == 0) & (y == 0))
    fp = np.sum((pred == 1) & (y == 0)); fn = np.sum((pred == 0) & (y == 1))
    classic = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m.result() == pytest.approx(want, abs=1e-12)
    assert m.result() == pytest.approx(classic, abs=1e-12)


def test_matthews_correlation_class_predictions_new_classes_and_degenerate_cases():
    m = metrics.MatthewsCorrelation()
    m.update(s4.Tensor([0, 1, 1]), s4.Tensor([0, 1, 0]))
    m.update(s4.Tensor([2, 2, 0]), s4.Tensor([2, 1, 2]))        # class 2 appears later
    y, p = [0, 1, 0, 2, 1, 2], [0, 1, 1, 2, 2, 0]
    assert m.result() == pytest.approx(matthews_corrcoef(y, p), abs=1e-12)
    same = metrics.MatthewsCorrelation()
    same.update(s4.Tensor([1, 1, 1]), s4.Tensor([0, 1, 0]))     # one predicted class
    assert same.result() == 0.0 == matthews_corrcoef([0, 1, 0], [1, 1, 1])


def test_perplexity_from_logits_and_from_loss():
    batches = _batches(6, classes=10, extra=(7,))
    p, y = _all(batches)
    logp = p - np.log(np.exp(p).sum(-1, keepdims=True))
    want = math.exp(-logp[np.arange(len(y)), y].mean())   # per token, over every batch
    assert _feed(metrics.Perplexity(), batches) == pytest.approx(want, rel=1e-5)
    m = metrics.Perplexity()
    for loss in (2.0, 3.0):
        m.update(loss=s4.Tensor(loss))
    assert m.result() == pytest.approx(math.exp(2.5))


def test_loss_mean_over_batches():
    m = metrics.Loss()
    values = [0.5, 2.0, 1.25]
    for v in values:
        m.update(loss=s4.Tensor(v))
    assert m.result() == pytest.approx(np.mean(values))
    with_fn = metrics.Loss(losses.softmax_cross_entropy)
    batches = _batches(7)
    got = _feed(with_fn, batches)
    want = np.mean([losses.softmax_cross_entropy(s4.Tensor(p), s4.Tensor(y.astype(np.int32)))
                    .item() for p, y in batches])
    assert got == pytest.approx(want, rel=1e-6)


def test_reset_and_empty_results():
    for m in (metrics.Loss(), metrics.Accuracy(), metrics.TopKAccuracy(),
              metrics.MatthewsCorrelation(), metrics.Perplexity()):
        assert math.isnan(m.result())
        m.update(s4.Tensor([[0.2, 0.8], [0.6, 0.4]]), s4.Tensor([1, 1]), loss=s4.Tensor(0.7))
        assert not math.isnan(m.result())
        m.reset()
        assert math.isnan(m.result())
        assert m.name in repr(m)


def test_every_metric_takes_the_same_arguments():
    # what a training loop does: the same call for each metric, whatever it needs
    logits, labels, loss = s4.Tensor([[2.0, 0.0], [0.0, 1.0]]), s4.Tensor([0, 0]), s4.Tensor(0.3)
    results = {}
    for name in ("loss", "accuracy", "top5_accuracy", "matthews_correlation", "perplexity"):
        m = metrics.get(name)
        m.update(logits, labels, loss=loss)
        results[m.name] = m.result()
    assert results["loss"] == pytest.approx(0.3)
    assert results["accuracy"] == 0.5 and results["top5_accuracy"] == 1.0


def test_get_by_name():
    assert isinstance(metrics.get("top5Accuracy"), metrics.TopKAccuracy)
    assert metrics.get("top_3_accuracy").k == 3
    assert isinstance(metrics.get("matthewsCorrelationCoefficient"), metrics.MatthewsCorrelation)
    assert isinstance(metrics.get("mcc"), metrics.MatthewsCorrelation)
    acc = metrics.Accuracy()
    assert metrics.get(acc) is acc
    assert metrics.get("accuracy") is not metrics.get("accuracy")      # fresh state each time
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get("f1")


def test_errors():
    with pytest.raises(s4.ShapeError, match=r"metrics.accuracy.*\(3, 4\).*\(2,\)"):
        metrics.Accuracy().update(s4.zeros((3, 4)), s4.Tensor([0, 1]))
    with pytest.raises(s4.ShapeError, match="top5_accuracy"):
        metrics.TopKAccuracy().update(s4.zeros((3,)), s4.Tensor([0, 1, 1]))
    with pytest.raises(TypeError, match="needs loss="):
        metrics.Loss().update(s4.zeros((2, 2)), s4.Tensor([0, 1]))
    with pytest.raises(TypeError, match="needs predictions and labels"):
        metrics.Accuracy().update(loss=s4.Tensor(1.0))
    with pytest.raises(ValueError, match="non-negative"):
        metrics.MatthewsCorrelation().update(s4.Tensor([0, 1]), s4.Tensor([-1, 1]))
    with pytest.raises(ValueError, match="positive int"):
        metrics.TopKAccuracy(0)
