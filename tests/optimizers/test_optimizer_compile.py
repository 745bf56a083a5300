"""Optimizers inside ``s4.compile``: a train step that calls ``opt.update`` traces once and runs
many steps; the learning rate (float or schedule) is an input, so changing it never retraces."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4
import s4tf_py.optimizers as optimizers
from optim_testutil import grad_sequence, initial_params, to_s4


class MLP(s4.nn.Layer):
    l1: s4.nn.Dense
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(s4.tanh(self.l1(x)))


def make_mlp():
    return MLP(l1=s4.nn.Dense(3, 8, seed=0), l2=s4.nn.Dense(8, 2, seed=1))


RNG = np.random.default_rng(7)
X_NP = RNG.standard_normal((16, 3)).astype(np.float32)
Y_NP = RNG.standard_normal((16, 2)).astype(np.float32)


def mse(m, x, y):
    return ((m(x) - y) ** 2).mean()


def train_step(model, opt, x, y):
    loss, g = s4.value_with_gradient(at=model, of=lambda m: mse(m, x, y))
    opt.update(model, along=g)
    return model, opt, loss


def test_compiled_train_step_traces_once_while_the_learning_rate_changes():
    x, y = s4.Tensor(X_NP), s4.Tensor(Y_NP)
    lrs = [0.05, 0.02, 0.1, 0.01, 0.03, 0.07]

    eager_model = make_mlp()
    eager_opt = optimizers.Adam(for_=eager_model)
    eager_losses = []
    for lr in lrs:
        eager_opt.learning_rate = lr
        _, _, loss = train_step(eager_model, eager_opt, x, y)
        eager_losses.append(loss.item())

    step = s4.compile(train_step)
    model = make_mlp()
    opt = optimizers.Adam(for_=model)
    traces_before = s4.metrics()["function_traces"]
    losses = []
    for lr in lrs:
        opt.learning_rate = lr
        model, opt, loss = step(model, opt, x, y)
        losses.append(loss.item())
        assert opt.learning_rate == lr and type(opt.learning_rate) is float
    assert step.traces == 1
    assert s4.metrics()["function_traces"] - traces_before == 1
    assert opt.step == len(lrs) and isinstance(model, MLP) and isinstance(opt, optimizers.Adam)
    np.testing.assert_allclose(losses, eager_losses, rtol=2e-5)
    np.testing.assert_allclose(model.l2.weight.numpy(), eager_model.l2.weight.numpy(),
                               rtol=1e-4, atol=1e-5)
    assert losses[-1] < losses[0]


def test_compiled_step_with_a_schedule_clipping_and_decay_on_a_plain_pytree():
    sched = optimizers.WarmupCosineDecay(peak_value=0.5, warmup_steps=2, decay_steps=6)
    grads = grad_sequence(7, dtype=np.float32)

    def make():
        params = to_s4(initial_params(dtype=np.float32))
        return params, optimizers.SGD(for_=params, learning_rate=sched, momentum=0.9,
                                      nesterov=True, decay=0.1, clip_norm=1.0)

    eager, eager_opt = make()
    for g in grads:
        eager_opt.update(eager, along=to_s4(g))

    @s4.compile
    def step(params, opt, g):
        params = opt.update(params, along=g)
        return params, opt

    params, opt = make()
    for g in grads:
        params, opt = step(params, opt, to_s4(g))
    assert step.traces == 1
    assert opt.learning_rate is sched and opt.step == len(grads)
    for k in params:
        np.testing.assert_allclose(params[k].numpy(), eager[k].numpy(), rtol=1e-5, atol=1e-6)


ALL = [
    lambda p: optimizers.SGD(for_=p, learning_rate=0.1, momentum=0.9),
    lambda p: optimizers.RMSProp(for_=p, centered=True),
    lambda p: optimizers.AdaGrad(for_=p),
    lambda p: optimizers.AdaDelta(for_=p),
    lambda p: optimizers.Adam(for_=p, weight_decay=0.01),
    lambda p: optimizers.AdaMax(for_=p),
    lambda p: optimizers.AMSGrad(for_=p, decay=0.5),
    lambda p: optimizers.RAdam(for_=p, beta2=0.9),
    lambda p: optimizers.AdamW(for_=p, clip_value=0.5),
    lambda p: optimizers.LARS(for_=p),
]


@pytest.mark.parametrize("make", ALL, ids=lambda m: m(to_s4(initial_params())).__class__.__name__)
def test_every_optimizer_compiles_once_and_agrees_with_eager(make):
    grads = grad_sequence(6)
    with s4.default_device(s4.Device("reference")):
        eager = to_s4(initial_params())
        eager_opt = make(eager)
        for g in grads:
            eager_opt.update(eager, along=to_s4(g))

        @s4.compile
        def step(params, opt, g, lr):
            opt.learning_rate = lr
            params = opt.update(params, along=g)
            return params, opt

        params = to_s4(initial_params())
        opt = make(params)
        lr = opt.learning_rate
        for g in grads:
            params, opt = step(params, opt, to_s4(g), lr)
        assert step.traces == 1
        for k in params:
            np.testing.assert_allclose(params[k].numpy(), eager[k].numpy(), rtol=1e-6,
                                       atol=1e-9, err_msg=k)


def test_changing_a_static_hyperparameter_retraces_and_takes_effect():
    with s4.default_device(s4.Device("reference")):
        @s4.compile
        def step(params, opt, g):
            return opt.update(params, along=g), opt

        params = {"w": s4.ones((2,))}
        opt = optimizers.SGD(for_=params, learning_rate=1.0, momentum=0.5)
        g = {"w": s4.ones((2,))}
        params, opt = step(params, opt, g)          # v = 1, w = 0
        opt.momentum = 0.0                           # part of the signature: a new trace
        params, opt = step(params, opt, g)          # w = -1
        assert step.traces == 2
        assert params["w"].tolist() == [-1.0, -1.0]


def test_an_optimizer_captured_by_the_compiled_body_is_refused():
    model = make_mlp()
    opt = optimizers.Adam(for_=model)
    x, y = s4.Tensor(X_NP), s4.Tensor(Y_NP)

    @s4.compile
    def step(model, x, y):
        loss, g = s4.value_with_gradient(at=model, of=lambda m: mse(m, x, y))
        opt.update(model, along=g)
        return model, loss

    with pytest.raises(RuntimeError, match="optimizer is not an argument"):
        step(model, x, y)
    assert opt.step == 0                              # nothing leaked into it

    @s4.compile
    def step2(opt, x, y):
        loss, g = s4.value_with_gradient(at=model, of=lambda m: mse(m, x, y))
        opt.update(model, along=g)
        return opt, loss

    w = model.l1.weight
    with pytest.raises(RuntimeError, match="model is not an argument"):
        step2(opt, x, y)
    assert model.l1.weight is w


def test_donating_the_model_and_optimizer():
    x, y = s4.Tensor(X_NP), s4.Tensor(Y_NP)
    step = s4.compile(train_step, donate_argnums=(0, 1))
    model = make_mlp()
    opt = optimizers.Adam(for_=model, learning_rate=0.05)
    losses = []
    for _ in range(4):
        model, opt, loss = step(model, opt, x, y)
        losses.append(loss.item())
    assert step.traces == 1 and opt.step == 4 and losses[-1] < losses[0]
