"""Noise layers (Dropout, AlphaDropout, GaussianDropout, GaussianNoise): identity in inference,
the statistics of the noise in training, gradients, backend parity; and ``s4.random.key_scope``,
which gives a compiled training step a fresh mask per step from a key passed as an input."""
from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
import torch

import s4tf_py as s4
from s4tf_py.nn.dropout import AlphaDropout, Dropout, GaussianDropout, GaussianNoise

LLVM, REF = s4.Device("llvm"), s4.Device("reference")
N = 200_000          # statistics: 4-sigma bounds below are far from flaky and far from loose


def _training():
    return s4.learning_phase("training")


ALL = [Dropout(0.3), AlphaDropout(0.3), GaussianDropout(0.3), GaussianNoise(0.5)]
IDS = [type(layer).__name__ for layer in ALL]


@pytest.mark.parametrize("layer", ALL, ids=IDS)
def test_inference_is_the_identity(layer):
    x = s4.random.normal((3, 7), seed=0)
    assert s4.learning_phase() == "inference"
    np.testing.assert_array_equal(layer(x).numpy(), x.numpy())
    with s4.learning_phase("inference"):
        np.testing.assert_array_equal(layer(x, key=s4.random.key(1)).numpy(), x.numpy())


@pytest.mark.parametrize("layer", ALL, ids=IDS)
def test_training_adds_noise_and_keeps_shape_and_dtype(layer):
    for dtype in (s4.float32, s4.bfloat16):
        x = s4.random.normal((4, 5), seed=0).astype(dtype)
        with _training():
            y = layer(x, key=s4.random.key(3))
        assert y.shape == x.shape and y.dtype == dtype
        assert not np.array_equal(y.astype(s4.float32).numpy(), x.astype(s4.float32).numpy())


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keep_rate_and_scaling(p):
    x = s4.random.uniform((N,), seed=0, minval=1.0, maxval=2.0)
    with _training():
        y = Dropout(p)(x, key=s4.random.key(7)).numpy()
    kept = y != 0
    sigma = np.sqrt(p * (1 - p) / N)
    assert abs(kept.mean() - (1 - p)) < 4 * sigma
    np.testing.assert_allclose(y[kept], x.numpy()[kept] / (1 - p), rtol=1e-6)
    # the expectation is preserved: E[y] = E[x]
    xs = x.numpy().astype(np.float64)
    sd_y = np.sqrt((xs ** 2).mean() / (1 - p) - xs.mean() ** 2)
    assert abs(y.mean() - xs.mean()) < 4 * sd_y / np.sqrt(N)


def test_dropout_edge_probabilities_and_errors():
    x = s4.random.normal((100,), seed=0)
    with _training():
        np.testing.assert_array_equal(Dropout(0.0)(x).numpy(), x.numpy())
        assert not Dropout(1.0)(x).numpy().any()
    for cls, bad in ((Dropout, 1.5), (Dropout, -0.1), (AlphaDropout, 1.0), (GaussianDropout, 1.0)):
        with pytest.raises(ValueError, match="probability"):
            cls(bad)
    with pytest.raises(ValueError, match="standard_deviation"):
        GaussianNoise(-1.0)
    with pytest.raises(s4.DTypeError, match="Dropout: expects a floating-point input"):
        with _training():
            Dropout(0.5)(s4.Tensor([1, 2, 3]))


def test_alpha_dropout_matches_torchs_formula_and_keeps_selu_statistics():
    p = 0.2
    x = s4.random.normal((N,), seed=1)
    with _training():
        y = AlphaDropout(p)(x, key=s4.random.key(2)).numpy()
    # torch.nn.functional.alpha_dropout's affine map (aten/src/ATen/native/Dropout.cpp)
    alpha = 1.7580993408473766
    a = 1.0 / np.sqrt((alpha * alpha * p + 1) * (1 - p))
    dropped_value = -alpha * a + alpha * a * p
    dropped = np.isclose(y, dropped_value, rtol=0, atol=1e-6)
    xs = x.numpy()
    np.testing.assert_allclose(y[~dropped], xs[~dropped] * a + alpha * a * p, rtol=1e-5, atol=1e-6)
    assert abs(dropped.mean() - p) < 4 * np.sqrt(p * (1 - p) / N)
    # the point of alpha dropout: zero mean and unit variance survive
    assert abs(y.mean()) < 0.01 and abs(y.std() - 1.0) < 0.01
    # and torch's implementation agrees in distribution
    torch.manual_seed(0)
    t = torch.nn.functional.alpha_dropout(torch.tensor(xs), p, training=True).numpy()
    assert abs(t.mean() - y.mean()) < 0.02 and abs(t.std() - y.std()) < 0.02


def test_gaussian_dropout_and_noise_statistics():
    x = s4.random.uniform((N,), seed=3, minval=1.0, maxval=2.0)
    p = 0.3
    with _training():
        ratio = (GaussianDropout(p)(x, key=s4.random.key(4)) / x).numpy()
        noise = (GaussianNoise(0.5)(x, key=s4.random.key(5)) - x).numpy()
    sd = np.sqrt(p / (1 - p))
    assert GaussianDropout(p).standard_deviation == pytest.approx(sd)
    assert abs(ratio.mean() - 1.0) < 4 * sd / np.sqrt(N) and abs(ratio.std() - sd) < 0.01
    assert abs(noise.mean()) < 4 * 0.5 / np.sqrt(N) and abs(noise.std() - 0.5) < 0.005


def test_explicit_keys_are_deterministic():
    x = s4.ones((64,))
    d = Dropout(0.5)
    with _training():
        a = d(x, key=s4.random.key(1)).numpy()
        b = d(x, key=s4.random.key(1)).numpy()
        c = d(x, key=s4.random.key(2)).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_eager_training_without_a_key_draws_from_the_global_key():
    x = s4.ones((64,))
    d = Dropout(0.5)
    s4.random.set_seed(11)
    with _training():
        a, b = d(x).numpy(), d(x).numpy()
    s4.random.set_seed(11)
    with _training():
        a2 = d(x).numpy()
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, a2)


def test_dropout_gradient_is_the_mask_times_the_scale():
    x = s4.random.normal((50,), seed=0)
    k = s4.random.key(9)
    with _training():
        y = Dropout(0.4)(x, key=k)
        g = s4.gradient(at=x, of=lambda x: Dropout(0.4)(x, key=k).sum())
    np.testing.assert_allclose(g.numpy(), (y.numpy() != 0) / 0.6, rtol=1e-6)


@pytest.mark.parametrize("layer", ALL, ids=IDS)
def test_gradients_with_a_fixed_key(on_the_reference_backend, layer):
    k = s4.random.key(5)

    def f(x):
        with _training():
            return layer(x, key=k)
    s4.check_grads(f, (s4.Tensor(np.linspace(-1.0, 2.0, 12).reshape(3, 4)),))


@pytest.mark.parametrize("layer", ALL, ids=IDS)
def test_llvm_matches_the_reference_backend(layer):
    outs = []
    for dev in (LLVM, REF):
        with s4.default_device(dev), _training():
            x = s4.Tensor(np.linspace(-2.0, 2.0, 60, dtype=np.float32).reshape(6, 10))
            outs.append(layer(x, key=s4.random.key(8)).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


# ---- key_scope -----------------------------------------------------------------------------------

def test_key_scope_draws_fold_in_of_its_key_in_program_order():
    k = s4.random.key(21)
    with s4.random.key_scope(k) as scope:
        a = s4.random.normal((3,))
        b = s4.random.uniform((2,))
        c = s4.random.next_key()
    assert scope.count == 3
    np.testing.assert_array_equal(a.numpy(), s4.random.normal((3,), key=s4.random.fold_in(k, 0)).numpy())
    np.testing.assert_array_equal(b.numpy(), s4.random.uniform((2,), key=s4.random.fold_in(k, 1)).numpy())
    np.testing.assert_array_equal(c.numpy(), s4.random.fold_in(k, 2).numpy())
    # an int is a seed; explicit key= and seed= still win inside a scope
    with s4.random.key_scope(21):
        np.testing.assert_array_equal(s4.random.normal((3,)).numpy(), a.numpy())
        np.testing.assert_array_equal(s4.random.normal((3,), seed=4).numpy(),
                                      s4.random.normal((3,), seed=4).numpy())


def test_key_scopes_nest_and_leave_the_global_key_alone():
    s4.random.set_seed(5)
    want = s4.random.normal((4,)).numpy()
    s4.random.set_seed(5)
    k1, k2 = s4.random.key(1), s4.random.key(2)
    with s4.random.key_scope(k1):
        with s4.random.key_scope(k2):
            inner = s4.random.uniform((2,))
        outer = s4.random.uniform((2,))
    np.testing.assert_array_equal(inner.numpy(), s4.random.uniform((2,), key=s4.random.fold_in(k2, 0)).numpy())
    np.testing.assert_array_equal(outer.numpy(), s4.random.uniform((2,), key=s4.random.fold_in(k1, 0)).numpy())
    np.testing.assert_array_equal(s4.random.normal((4,)).numpy(), want)   # global key untouched


def test_key_scope_is_per_thread():
    seen = []
    with s4.random.key_scope(s4.random.key(3)):
        t = threading.Thread(target=lambda: seen.append(len(_scope_stack())))
        t.start()
        t.join()
        assert len(_scope_stack()) == 1
    assert seen == [0] and len(_scope_stack()) == 0


def _scope_stack():
    from s4tf_py.ops import random as r
    return r._SCOPES.stack


def test_key_scope_rejects_bad_keys():
    with pytest.raises(s4.ShapeError, match="uint32"):
        s4.random.key_scope(s4.Tensor(np.zeros(3, np.uint32)))


def test_compiled_dropout_step_uses_the_step_key_without_retracing():
    d = Dropout(0.5)

    @s4.compile
    def step(x, key):
        with _training(), s4.random.key_scope(key):
            return d(x)

    x = s4.ones((256,))
    masks = [step(x, s4.random.key(i)).numpy() != 0 for i in (0, 1, 2)]
    again = step(x, s4.random.key(1)).numpy() != 0
    assert step.traces == 1
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    np.testing.assert_array_equal(masks[1], again)
    # the compiled mask is the eager one: the i-th draw of the scope is fold_in(key, i)
    with _training():
        eager = d(x, key=s4.random.fold_in(s4.random.key(1), 0)).numpy() != 0
    np.testing.assert_array_equal(masks[1], eager)


def test_compiled_training_step_with_dropout_takes_a_fresh_key_per_step():
    class Net(s4.nn.Layer):
        dense: s4.nn.Dense
        drop: Dropout

        def __call__(self, x):
            return self.drop(self.dense(x))

    model = Net(dense=s4.nn.Dense(8, 8, seed=0), drop=Dropout(0.5))
    opt = s4.optimizers.SGD(for_=model, learning_rate=0.0)     # lr 0: the weights stay put

    @s4.compile
    def step(model, opt, x, key):
        with _training(), s4.random.key_scope(key):
            loss, grads = s4.value_with_gradient(at=model, of=lambda m: (m(x) ** 2).sum())
        opt.update(model, along=grads)
        return model, opt, loss, grads.dense.bias

    x = s4.ones((4, 8))
    root = s4.random.key(0)
    seen = []
    for i in range(3):
        model, opt, loss, g = step(model, opt, x, s4.random.fold_in(root, i))
        seen.append((loss.item(), g.numpy().copy()))
    model, opt, loss, g = step(model, opt, x, s4.random.fold_in(root, 1))
    assert step.traces == 1
    assert len({l for l, _ in seen}) == 3                    # three different masks
    assert loss.item() == seen[1][0]                          # same key, same mask
    np.testing.assert_array_equal(g.numpy(), seen[1][1])
    assert (seen[0][1] == 0).any()                            # dropped units get no gradient


def test_a_scope_entered_outside_a_compiled_function_warns_that_its_key_is_baked_in():
    f = s4.compile(lambda x: x + s4.random.normal(x.shape))
    with s4.random.key_scope(s4.random.key(0)):
        with pytest.warns(UserWarning, match="baked into the compiled program"):
            f(s4.zeros((2,)))
    # a key that is an input does not warn
    g = s4.compile(lambda x, k: _draw_in_scope(x, k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g(s4.zeros((2,)), s4.random.key(1))


def _draw_in_scope(x, k):
    with s4.random.key_scope(s4.random.fold_in(k, 3)):
        return x + s4.random.normal(x.shape)


def test_recomputing_pullbacks_draw_the_same_dropout_mask():
    """with_recomputation_in_pullbacks re-runs the forward in the pullback: its random draws
    must be the forward's, or the gradient belongs to another mask."""
    d = s4.nn.Dropout(0.5)
    x = s4.ones((64,))
    f = s4.with_recomputation_in_pullbacks(lambda x: d(x))
    for scoped in (False, True):
        with s4.learning_phase("training"):
            if scoped:
                with s4.random.key_scope(s4.random.key(3)):
                    y, pb = s4.value_with_pullback(x, f)
            else:
                y, pb = s4.value_with_pullback(x, f)
            g = pb(s4.ones((64,)))
        kept = y.numpy() != 0
        assert 0 < kept.sum() < 64
        np.testing.assert_array_equal(kept, g.numpy() != 0)
