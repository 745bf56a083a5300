"""``s4tf_py.losses`` against PyTorch (numpy where PyTorch has no such loss): every loss, every
reduction, S4TF's default reductions, gradients with ``s4.check_grads``, the large-logit
stability of the cross-entropies, and the errors for mismatched shapes and dtypes."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import s4tf_py as s4
from s4tf_py import losses

REDUCTIONS = ["mean", "sum", "none", "callable"]


def _rng(seed=0):
    return np.random.default_rng(seed)


def _t(a) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64))


# ---- the cases: inputs, the s4 call, and an oracle ----------------------------------------------
# Each case: make(rng) -> (predicted, expected) numpy arrays (labels may be ints);
# s4(p, e, **kw) -> the loss; oracle(p, e, reduction) -> numpy value, where reduction is
# "mean" / "sum" / "none" (PyTorch's own reduction is used wherever PyTorch has the loss).

def _torch_red(fn):
    """An oracle from a PyTorch loss taking ``reduction=``."""
    def oracle(p, e, reduction):
        return fn(_t(p), _t(e), reduction).numpy()
    return oracle


def _numpy_red(elementwise):
    def oracle(p, e, reduction):
        v = elementwise(np.asarray(p, np.float64), np.asarray(e, np.float64))
        return {"mean": np.mean, "sum": np.sum, "none": lambda x: x}[reduction](v)
    return oracle


def _softmax(x):
    z = np.exp(x - x.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _cat_hinge(p, e):
    pos = np.sum(e * p, -1)
    neg = np.max((1 - e) * p, -1)
    return np.maximum(0.0, neg - pos + 1)


def _ce_labels(p, e, reduction):
    # PyTorch wants the class axis second
    logits = _t(p)
    if logits.ndim == 3:
        logits = logits.permute(0, 2, 1)
    return TF.cross_entropy(logits, torch.tensor(e, dtype=torch.long), reduction=reduction).numpy()


def _ce_probs(p, e, reduction):
    return TF.cross_entropy(_t(p), _t(e), reduction=reduction).numpy()


def _probs_with_zeros(r, shape):
    q = r.uniform(0.0, 1.0, shape)
    q[..., 0] = 0.0                                   # 0 · log 0 must count as 0
    return q / q.sum(-1, keepdims=True)


def _kl_div(p, e, reduction):
    with warnings.catch_warnings():     # torch's note that "mean" is not "batchmean"
        warnings.simplefilter("ignore", UserWarning)
        return TF.kl_div(torch.log(p), e, reduction=reduction)


CASES = {
    "l1": dict(
        make=lambda r: (r.standard_normal((4, 3)), r.standard_normal((4, 3))),
        s4=losses.l1, default="sum",
        oracle=_torch_red(lambda p, e, red: TF.l1_loss(p, e, reduction=red))),
    "l2": dict(
        make=lambda r: (r.standard_normal((4, 3)), r.standard_normal((4, 3))),
        s4=losses.l2, default="sum",
        oracle=_torch_red(lambda p, e, red: TF.mse_loss(p, e, reduction=red))),
    "mean_absolute_error": dict(
        make=lambda r: (r.standard_normal((6,)), r.standard_normal((6,))),
        s4=losses.mean_absolute_error, default="mean",
        oracle=_torch_red(lambda p, e, red: TF.l1_loss(p, e, reduction=red))),
    "mean_squared_error": dict(
        make=lambda r: (r.standard_normal((2, 3, 2)), r.standard_normal((2, 3, 2))),
        s4=losses.mean_squared_error, default="mean",
        oracle=_torch_red(lambda p, e, red: TF.mse_loss(p, e, reduction=red))),
    "mean_squared_logarithmic_error": dict(
        # negative entries included: both sides are clamped at 0
        make=lambda r: (r.standard_normal((5, 2)) * 2, r.standard_normal((5, 2)) * 2),
        s4=losses.mean_squared_logarithmic_error, default="mean",
        oracle=_torch_red(lambda p, e, red: TF.mse_loss(torch.log1p(torch.relu(p)),
                                                        torch.log1p(torch.relu(e)),
                                                        reduction=red))),
    "mean_absolute_percentage_error": dict(
        make=lambda r: (r.standard_normal((7,)),
                        r.choice([-1.0, 1.0], 7) * r.uniform(0.5, 2.0, 7)),
        s4=losses.mean_absolute_percentage_error, default="mean",
        oracle=_numpy_red(lambda p, e: 100 * np.abs((e - p) / np.abs(e)))),
    "hinge": dict(
        make=lambda r: (r.standard_normal((8,)) * 2, r.choice([-1.0, 1.0], 8)),
        s4=losses.hinge, default="mean",
        oracle=_numpy_red(lambda p, e: np.maximum(0.0, 1 - e * p))),
    "squared_hinge": dict(
        make=lambda r: (r.standard_normal((8,)) * 2, r.choice([-1.0, 1.0], 8)),
        s4=losses.squared_hinge, default="mean",
        oracle=_numpy_red(lambda p, e: np.maximum(0.0, 1 - e * p) ** 2)),
    "categorical_hinge": dict(
        make=lambda r: (r.standard_normal((5, 4)), np.eye(4)[r.integers(0, 4, 5)]),
        s4=losses.categorical_hinge, default="mean", oracle=_numpy_red(_cat_hinge)),
    "log_cosh": dict(
        make=lambda r: (r.standard_normal((6,)) * 3, r.standard_normal((6,))),
        s4=losses.log_cosh, default="mean",
        oracle=_numpy_red(lambda p, e: np.log(np.cosh(p - e)))),
    "poisson": dict(
        make=lambda r: (r.uniform(0.5, 3.0, (3, 4)), r.poisson(2.0, (3, 4)).astype(float)),
        s4=losses.poisson, default="mean",
        oracle=_torch_red(lambda p, e, red: TF.poisson_nll_loss(p, e, log_input=False,
                                                                full=False, eps=0.0,
                                                                reduction=red))),
    "kl_divergence": dict(
        make=lambda r: (_softmax(r.standard_normal((3, 4))), _probs_with_zeros(r, (3, 4))),
        s4=losses.kl_divergence, default="sum",
        oracle=_torch_red(_kl_div)),
    "huber": dict(
        make=lambda r: (r.standard_normal((9,)) * 2, r.standard_normal((9,))),
        s4=lambda p, e, **kw: losses.huber(p, e, delta=0.7, **kw), default="sum",
        oracle=_torch_red(lambda p, e, red: TF.huber_loss(p, e, reduction=red, delta=0.7))),
    "sigmoid_cross_entropy": dict(
        make=lambda r: (r.standard_normal((4, 3)) * 3, r.uniform(0.0, 1.0, (4, 3))),
        s4=losses.sigmoid_cross_entropy, default="mean",
        oracle=_torch_red(lambda p, e, red: TF.binary_cross_entropy_with_logits(
            p, e, reduction=red))),
    "softmax_cross_entropy_labels": dict(
        make=lambda r: (r.standard_normal((6, 5)) * 2, r.integers(0, 5, 6)),
        s4=losses.softmax_cross_entropy, default="mean", oracle=_ce_labels),
    "softmax_cross_entropy_labels_3d": dict(
        make=lambda r: (r.standard_normal((2, 3, 5)), r.integers(0, 5, (2, 3))),
        s4=losses.softmax_cross_entropy, default="mean", oracle=_ce_labels),
    "softmax_cross_entropy_probabilities": dict(
        make=lambda r: (r.standard_normal((4, 3)) * 2, _probs_with_zeros(r, (4, 3))),
        s4=lambda p, e, **kw: losses.softmax_cross_entropy(p, probabilities=e, **kw),
        default="mean", oracle=_ce_probs),
}


def _s4(a, dtype=s4.float64):
    a = np.asarray(a)
    return s4.Tensor(a.astype(np.int32)) if a.dtype.kind == "i" else s4.Tensor(a, dtype=dtype)


def _reduction_kw(reduction):
    if reduction == "callable":
        return {"reduction": lambda t: s4.max(t) * 2.0}
    return {"reduction": reduction}


def _oracle(case, p, e, reduction):
    if reduction == "callable":
        return np.max(case["oracle"](p, e, "none")) * 2.0
    return case["oracle"](p, e, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_against_torch_or_numpy(name, reduction):
    case = CASES[name]
    p, e = case["make"](_rng(sum(map(ord, name))))
    got = case["s4"](_s4(p), _s4(e), **_reduction_kw(reduction))
    want = _oracle(case, p, e, reduction)
    assert got.dtype == s4.float64
    assert got.shape == np.shape(want), (got.shape, np.shape(want))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_reduction_is_s4tfs(name):
    case = CASES[name]
    p, e = case["make"](_rng(1))
    got = case["s4"](_s4(p), _s4(e))
    np.testing.assert_allclose(got.numpy(), case["oracle"](p, e, case["default"]),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_float32_forward(name):
    case = CASES[name]
    p, e = case["make"](_rng(2))
    p32 = np.asarray(p, np.float32)
    e32 = np.asarray(e, np.float32) if np.asarray(e).dtype.kind == "f" else e
    got = case["s4"](_s4(p32, s4.float32), _s4(e32, s4.float32), reduction="none")
    assert got.dtype == s4.float32
    np.testing.assert_allclose(got.numpy(), case["oracle"](p32, e32, "none"), rtol=2e-5,
                               atol=2e-5)


# ---- gradients ----------------------------------------------------------------------------------

@pytest.mark.usefixtures("on_the_reference_backend")
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_check_grads(name, reduction):
    case = CASES[name]
    p, e = case["make"](_rng(3))
    et = _s4(e)
    s4.check_grads(lambda x: case["s4"](x, et, reduction=reduction), (_s4(p),), order=1)


@pytest.mark.usefixtures("on_the_reference_backend")
@pytest.mark.parametrize("name", ["softmax_cross_entropy_labels",
                                  "softmax_cross_entropy_probabilities",
                                  "sigmoid_cross_entropy", "log_cosh"])
def test_second_order_gradients(name):
    case = CASES[name]
    p, e = case["make"](_rng(4))
    et = _s4(e)
    s4.check_grads(lambda x: case["s4"](x, et), (_s4(p),), order=2)


@pytest.mark.usefixtures("on_the_reference_backend")
def test_gradients_with_respect_to_expected_too():
    r = _rng(5)
    p, e = r.standard_normal((3, 2)), r.standard_normal((3, 2))
    for fn in (losses.mean_squared_error, losses.log_cosh, losses.l1):
        s4.check_grads(lambda a, b: fn(a, b), (_s4(p), _s4(e)), order=1)


def test_gradient_matches_torch_autograd():
    r = _rng(6)
    logits, labels = r.standard_normal((4, 5)), r.integers(0, 5, 4)
    g = s4.gradient(at=_s4(logits), of=lambda x: losses.softmax_cross_entropy(x, _s4(labels)))
    x = _t(logits).requires_grad_(True)
    TF.cross_entropy(x, torch.tensor(labels)).backward()
    np.testing.assert_allclose(g.numpy(), x.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_kl_divergence_gradient_finite_where_expected_is_zero():
    r = _rng(7)
    p, e = _softmax(r.standard_normal((2, 3))), _probs_with_zeros(r, (2, 3))
    g = s4.gradient(at=_s4(p), of=lambda x: losses.kl_divergence(x, _s4(e)))
    np.testing.assert_allclose(g.numpy(), -e / p, rtol=1e-10)


# ---- numerical stability ------------------------------------------------------------------------

def test_softmax_cross_entropy_large_logits_finite_loss_and_gradient():
    logits = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 0.0], [3e4, 3e4, -3e4]], np.float32)
    labels = np.array([2, 1, 0])
    x = s4.Tensor(logits)
    value, grad = s4.value_with_gradient(
        at=x, of=lambda z: losses.softmax_cross_entropy(z, s4.Tensor(labels.astype(np.int32))))
    assert np.isfinite(value.item()) and np.all(np.isfinite(grad.numpy()))
    xt = torch.tensor(logits, requires_grad=True)
    want = TF.cross_entropy(xt, torch.tensor(labels))
    want.backward()
    np.testing.assert_allclose(value.item(), want.item(), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), xt.grad.numpy(), atol=1e-6)
    # probabilities: the same stability
    q = np.eye(3, dtype=np.float32)[labels]
    value2, grad2 = s4.value_with_gradient(
        at=x, of=lambda z: losses.softmax_cross_entropy(z, probabilities=s4.Tensor(q)))
    np.testing.assert_allclose(value2.item(), want.item(), rtol=1e-6)
    np.testing.assert_allclose(grad2.numpy(), xt.grad.numpy(), atol=1e-6)


def test_sigmoid_cross_entropy_large_logits_finite_loss_and_gradient():
    logits = np.array([1e4, -1e4, 5e3, -5e3], np.float32)
    labels = np.array([0.0, 1.0, 1.0, 0.0], np.float32)
    value, grad = s4.value_with_gradient(
        at=s4.Tensor(logits),
        of=lambda z: losses.sigmoid_cross_entropy(z, s4.Tensor(labels), reduction="sum"))
    xt = torch.tensor(logits, requires_grad=True)
    want = TF.binary_cross_entropy_with_logits(xt, torch.tensor(labels), reduction="sum")
    want.backward()
    assert np.isfinite(value.item()) and np.all(np.isfinite(grad.numpy()))
    np.testing.assert_allclose(value.item(), want.item(), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), xt.grad.numpy(), atol=1e-6)


def test_softmax_cross_entropy_masked_logits():
    # a -inf logit (a masked class) elsewhere in the row: finite loss and gradient
    logits = s4.Tensor([[2.0, -np.inf, 0.5], [-np.inf, 1.0, 1.0]])
    labels = s4.Tensor([0, 2])
    value, grad = s4.value_with_gradient(
        at=logits, of=lambda z: losses.softmax_cross_entropy(z, labels, reduction="sum"))
    xt = torch.tensor(logits.numpy(), requires_grad=True)
    want = TF.cross_entropy(xt, torch.tensor([0, 2]), reduction="sum")
    want.backward()
    np.testing.assert_allclose(value.item(), want.item(), rtol=1e-6)
    np.testing.assert_allclose(grad.numpy(), xt.grad.numpy(), atol=1e-6)


def test_out_of_range_label_contributes_zero():
    got = losses.softmax_cross_entropy(s4.Tensor([[1.0, 2.0], [0.0, 3.0]]), s4.Tensor([-1, 1]),
                                       reduction="none")
    assert got.numpy()[0] == 0.0 and got.numpy()[1] > 0.0


def test_log_cosh_large_errors_do_not_overflow():
    got = losses.log_cosh(s4.Tensor([200.0, -200.0]), s4.Tensor([0.0, 0.0]), reduction="none")
    np.testing.assert_allclose(got.numpy(), 200 - np.log(2), rtol=1e-6)


# ---- calling conventions ------------------------------------------------------------------------

def test_keyword_and_positional_calls_agree():
    p, e = s4.Tensor([0.5, -1.5, 3.0]), s4.Tensor([0.0, 0.0, 1.0])
    a = losses.huber(p, e, 0.5, "none")
    b = losses.huber(predicted=p, expected=e, delta=0.5, reduction="none")
    assert a.tolist() == b.tolist()
    assert losses.l1(predicted=p, expected=e).item() == losses.l1(p, e).item() == 4.0
    logits = s4.Tensor([[1.0, 2.0], [0.5, 0.0]])
    c = losses.softmax_cross_entropy(logits=logits, labels=s4.Tensor([1, 0]), reduction="sum")
    d = losses.softmax_cross_entropy(logits, s4.Tensor([1, 0]), "sum")
    assert c.item() == d.item()


def test_one_hot_floating_labels_are_probabilities():
    logits = s4.Tensor([[1.0, 2.0, 0.0], [0.5, 0.0, -1.0]])
    a = losses.softmax_cross_entropy(logits, s4.Tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    b = losses.softmax_cross_entropy(logits, s4.Tensor([1, 0]))
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-6)


def test_integer_and_python_targets_are_converted():
    p = s4.Tensor([0.5, -2.0, 1.5])
    a = losses.hinge(p, s4.Tensor([1, 1, -1]), reduction="none")      # int32 labels
    b = losses.hinge(p, [1.0, 1.0, -1.0], reduction="none")             # a Python list
    c = losses.hinge(p, np.array([1, 1, -1]), reduction="none")         # numpy ints
    assert a.dtype == b.dtype == c.dtype == s4.float32
    assert a.tolist() == b.tolist() == c.tolist() == [0.5, 3.0, 2.5]
    assert losses.mean_squared_error(p, 0.0).item() == pytest.approx((0.25 + 4 + 2.25) / 3)


def test_reduce_helper():
    v = s4.Tensor([1.0, 2.0, 6.0])
    assert losses.reduce(v, "mean").item() == 3.0
    assert losses.reduce(v, "sum").item() == 9.0
    assert losses.reduce(v, None).tolist() == [1.0, 2.0, 6.0]
    assert losses.reduce(v, s4.max).item() == 6.0


# ---- errors -------------------------------------------------------------------------------------

def test_shape_mismatch_names_the_loss_and_shapes():
    with pytest.raises(s4.ShapeError) as e:
        losses.mean_squared_error(s4.zeros((3, 1)), s4.zeros((3,)))
    msg = str(e.value)
    assert "losses.mean_squared_error" in msg and "(3, 1)" in msg and "(3,)" in msg
    assert "test_losses.py" in msg                     # the user's line


def test_dtype_mismatch_names_the_loss_and_dtypes():
    with pytest.raises(s4.DTypeError) as e:
        losses.l1(s4.zeros((2,)), s4.zeros((2,), dtype=s4.float64))
    msg = str(e.value)
    assert "losses.l1" in msg and "float32" in msg and "float64" in msg


def test_integer_predictions_are_refused():
    with pytest.raises(s4.DTypeError, match="losses.hinge.*predicted must be a floating"):
        losses.hinge(s4.Tensor([1, 2]), s4.Tensor([1, 1]))


def test_softmax_cross_entropy_label_errors():
    logits = s4.zeros((4, 3))
    with pytest.raises(s4.ShapeError, match=r"softmax_cross_entropy.*\(4, 3\).*\(4,\).*\(2,\)"):
        losses.softmax_cross_entropy(logits, s4.Tensor([0, 1]))
    with pytest.raises(s4.DTypeError, match="integer class indices"):
        losses.softmax_cross_entropy(logits, s4.Tensor([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(s4.ShapeError, match="probabilities has shape"):
        losses.softmax_cross_entropy(logits, probabilities=s4.zeros((4, 2)))
    with pytest.raises(TypeError, match="exactly one of"):
        losses.softmax_cross_entropy(logits)
    with pytest.raises(s4.ShapeError, match="class axis"):
        losses.softmax_cross_entropy(s4.Tensor(1.0), s4.Tensor(0))


def test_bad_reduction_and_delta():
    with pytest.raises(ValueError, match="losses.poisson.*reduction must be one of"):
        losses.poisson(s4.ones((2,)), s4.ones((2,)), reduction="avg")
    with pytest.raises(ValueError, match="delta must be a positive number"):
        losses.huber(s4.ones((2,)), s4.ones((2,)), delta=0.0)
