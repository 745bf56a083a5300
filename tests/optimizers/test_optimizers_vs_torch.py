"""Every optimizer matches PyTorch's (or the paper's formula) step for step.

Same initial parameters and the same gradient at every step, in float64 on the reference
backend (the numpy interpreter, so small graphs cost nothing to compile); one float32 run on the
default backend differentiates a real model through ``s4.gradient``.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import s4tf_py as s4
import s4tf_py.optimizers as optimizers
from optim_testutil import grad_sequence, initial_params, to_np, to_s4


STEPS = 10
#: the default device (llvm where it works), before the fixture below switches to the reference
PROCESS_DEFAULT_DEVICE = s4.get_default_device()


@pytest.fixture(autouse=True)
def _reference_backend():
    with s4.default_device(s4.Device("reference")):
        yield


def run_s4(make_opt, steps=STEPS, grads=None, before_step=None):
    params = to_s4(initial_params())
    opt = make_opt(params)
    history = []
    for k, g in enumerate(grads or grad_sequence(steps)):
        if before_step is not None:
            before_step(opt, k)
        out = opt.update(params, along=to_s4(g))
        assert out is params
        history.append(to_np(params))
    return history


def run_torch(make_opt, steps=STEPS, grads=None, before_step=None, clip=None):
    init = initial_params()
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    opt = make_opt(list(tparams.values()))
    history = []
    for k, g in enumerate(grads or grad_sequence(steps)):
        if before_step is not None:
            before_step(opt, k)
        for name, p in tparams.items():
            p.grad = torch.tensor(g[name])
        if clip is not None:
            clip(list(tparams.values()))
        opt.step()
        history.append({k: p.detach().numpy().copy() for k, p in tparams.items()})
    return history


def assert_same_trajectory(ours, theirs, rtol=1e-10, atol=1e-12):
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        for name in b:
            np.testing.assert_allclose(a[name], b[name], rtol=rtol, atol=atol,
                                       err_msg=f"step {k + 1}, parameter {name}")


T = torch.optim
CASES = {
    "SGD": (lambda p: optimizers.SGD(for_=p, learning_rate=0.1),
            lambda p: T.SGD(p, lr=0.1)),
    "SGD momentum": (lambda p: optimizers.SGD(for_=p, learning_rate=0.1, momentum=0.9),
                     lambda p: T.SGD(p, lr=0.1, momentum=0.9)),
    "SGD nesterov": (lambda p: optimizers.SGD(for_=p, learning_rate=0.05, momentum=0.8,
                                               nesterov=True),
                     lambda p: T.SGD(p, lr=0.05, momentum=0.8, nesterov=True)),
    "SGD weight decay": (lambda p: optimizers.SGD(for_=p, learning_rate=0.1, momentum=0.5,
                                                   weight_decay=0.1),
                         lambda p: T.SGD(p, lr=0.1, momentum=0.5, weight_decay=0.1)),
    "RMSProp": (lambda p: optimizers.RMSProp(for_=p, learning_rate=0.01),
                lambda p: T.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
    "RMSProp centered momentum": (
        lambda p: optimizers.RMSProp(for_=p, learning_rate=0.01, rho=0.8, momentum=0.9,
                                     centered=True),
        lambda p: T.RMSprop(p, lr=0.01, alpha=0.8, eps=1e-8, momentum=0.9, centered=True)),
    "AdaGrad": (lambda p: optimizers.AdaGrad(for_=p, learning_rate=0.1),
                lambda p: T.Adagrad(p, lr=0.1, initial_accumulator_value=0.1, eps=1e-8)),
    "AdaDelta": (lambda p: optimizers.AdaDelta(for_=p),
                 lambda p: T.Adadelta(p, lr=1.0, rho=0.95, eps=1e-6)),
    "Adam": (lambda p: optimizers.Adam(for_=p, learning_rate=0.01),
             lambda p: T.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    "Adam weight decay": (lambda p: optimizers.Adam(for_=p, learning_rate=0.01, beta1=0.8,
                                                     beta2=0.99, weight_decay=0.05),
                          lambda p: T.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=0.05)),
    "AMSGrad": (lambda p: optimizers.AMSGrad(for_=p, learning_rate=0.01),
                lambda p: T.Adam(p, lr=0.01, amsgrad=True)),
    "AdamW": (lambda p: optimizers.AdamW(for_=p, learning_rate=0.01, weight_decay=0.1),
              lambda p: T.AdamW(p, lr=0.01, weight_decay=0.1)),
    "AdamW amsgrad": (lambda p: optimizers.AdamW(for_=p, learning_rate=0.01, amsgrad=True),
                      lambda p: T.AdamW(p, lr=0.01, weight_decay=0.01, amsgrad=True)),
    "AdaMax": (lambda p: optimizers.AdaMax(for_=p, learning_rate=0.01),
               lambda p: T.Adamax(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    "RAdam": (lambda p: optimizers.RAdam(for_=p, learning_rate=0.01),
              lambda p: T.RAdam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    # beta2 = 0.9 makes rho_t pass 5 at step 3: both of RAdam's branches run
    "RAdam rectified": (lambda p: optimizers.RAdam(for_=p, learning_rate=0.01, beta2=0.9),
                        lambda p: T.RAdam(p, lr=0.01, betas=(0.9, 0.9), eps=1e-8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_step_for_step(name):
    ours, theirs = CASES[name]
    assert_same_trajectory(run_s4(ours), run_torch(theirs))


def test_radam_takes_both_branches_in_these_runs():
    b2 = 0.999
    rho_inf = 2 / (1 - b2) - 1
    rho = [rho_inf - 2 * t * b2 ** t / (1 - b2 ** t) for t in range(1, STEPS + 1)]
    assert min(rho) <= 5 < max(rho)


def test_the_trajectories_actually_move():
    """A test that compares two optimizers that did nothing would pass: make sure they moved,
    and that a different hyperparameter gives a measurably different trajectory."""
    a = run_s4(CASES["Adam"][0])
    b = run_s4(lambda p: optimizers.Adam(for_=p, learning_rate=0.01, beta2=0.99))
    init = initial_params()
    assert np.abs(a[-1]["w"] - init["w"]).max() > 1e-2
    assert np.abs(a[-1]["w"] - b[-1]["w"]).max() > 1e-6


def test_s4tf_learning_rate_decay_matches_torch_lambda_schedule():
    decay = 0.3
    ours = run_s4(lambda p: optimizers.Adam(for_=p, learning_rate=0.01, decay=decay))
    # S4TF: lr / (1 + decay * t) at the t-th update (1-based); LambdaLR's epoch is t - 1
    sched = {}

    def torch_opt(p):
        opt = T.Adam(p, lr=0.01)
        sched["s"] = T.lr_scheduler.LambdaLR(opt, lambda e: 1 / (1 + decay * (e + 1)))
        return opt

    def advance(opt, k):
        if k:
            sched["s"].step()

    assert_same_trajectory(ours, run_torch(torch_opt, before_step=advance))


@pytest.mark.parametrize("kind", ["cosine", "step"])
def test_schedules_drive_the_optimizer_like_torch_schedulers(kind):
    if kind == "cosine":
        ours_lr = optimizers.CosineDecay(0.1, decay_steps=8, alpha=0.1)
        make_sched = lambda o: T.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.01)
    else:
        ours_lr = optimizers.StepDecay(0.1, step_size=3, gamma=0.5)
        make_sched = lambda o: T.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)
    ours = run_s4(lambda p: optimizers.SGD(for_=p, learning_rate=ours_lr, momentum=0.9),
                  steps=8)
    sched = {}

    def torch_opt(p):
        opt = T.SGD(p, lr=0.1, momentum=0.9)
        sched["s"] = make_sched(opt)
        return opt

    def advance(opt, k):
        if k:
            sched["s"].step()

    assert_same_trajectory(ours, run_torch(torch_opt, steps=8, before_step=advance),
                           rtol=1e-9)


def test_changing_the_float_learning_rate_between_steps():
    lrs = [0.1, 0.05, 0.2, 0.01, 0.3, 0.1, 0.07, 0.02, 0.5, 0.1]

    def set_ours(opt, k):
        opt.learning_rate = lrs[k]

    def set_theirs(opt, k):
        opt.param_groups[0]["lr"] = lrs[k]

    ours = run_s4(lambda p: optimizers.RMSProp(for_=p, momentum=0.5), before_step=set_ours)
    theirs = run_torch(lambda p: T.RMSprop(p, lr=0.1, alpha=0.9, eps=1e-8, momentum=0.5),
                       before_step=set_theirs)
    assert_same_trajectory(ours, theirs)


@pytest.mark.parametrize("option", ["clip_norm", "clip_value"])
def test_clipping_options_match_torch_clip_utilities(option):
    if option == "clip_norm":
        ours = run_s4(lambda p: optimizers.Adam(for_=p, learning_rate=0.01, clip_norm=1.5))
        clip = lambda ps: torch.nn.utils.clip_grad_norm_(ps, 1.5)
    else:
        ours = run_s4(lambda p: optimizers.Adam(for_=p, learning_rate=0.01, clip_value=0.5))
        clip = lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.5)
    theirs = run_torch(lambda p: T.Adam(p, lr=0.01), clip=clip)
    unclipped = run_torch(lambda p: T.Adam(p, lr=0.01))
    assert_same_trajectory(ours, theirs)
    assert np.abs(theirs[-1]["w"] - unclipped[-1]["w"]).max() > 1e-6   # clipping did something


# ---- LARS: PyTorch has none; the paper's Algorithm 1 in numpy -----------------------------------

def lars_reference(params, grads, lr, momentum, weight_decay, eta, eps, nesterov=False,
                   exclude=()):
    p = {k: v.copy() for k, v in params.items()}
    vel = {k: np.zeros_like(v) for k, v in p.items()}
    out = []
    for g in grads:
        for k in p:
            w, gk = p[k], g[k]
            if k in exclude:
                scaled = lr * gk
            else:
                wn, gn = np.linalg.norm(w), np.linalg.norm(gk)
                local = eta * wn / (gn + weight_decay * wn + eps) if wn > 0 and gn > 0 else 1.0
                scaled = lr * local * (gk + weight_decay * w)
            vel[k] = momentum * vel[k] + scaled
            p[k] = w - (momentum * vel[k] + scaled if nesterov else vel[k])
        out.append({k: v.copy() for k, v in p.items()})
    return out


@pytest.mark.parametrize("nesterov", [False, True])
def test_lars_matches_the_paper(nesterov):
    grads = grad_sequence(STEPS)
    grads[2]["b"][:] = 0.0                      # a zero gradient norm: trust ratio 1
    ours = run_s4(lambda p: optimizers.LARS(for_=p, learning_rate=2.0, momentum=0.9,
                                            weight_decay=5e-4, trust_coefficient=1e-3,
                                            nesterov=nesterov), grads=grads)
    ref = lars_reference(initial_params(), grads, 2.0, 0.9, 5e-4, 1e-3, 1e-9, nesterov)
    assert_same_trajectory(ours, ref)


def test_lars_exclude_gives_plain_momentum_sgd_for_those_parameters():
    grads = grad_sequence(STEPS)
    ours = run_s4(lambda p: optimizers.LARS(for_=p, learning_rate=0.5, weight_decay=1e-3,
                                            exclude=lambda path: path == "b"), grads=grads)
    ref = lars_reference(initial_params(), grads, 0.5, 0.9, 1e-3, 1e-3, 1e-9, exclude=("b",))
    assert_same_trajectory(ours, ref)


# ---- defaults are S4TF's ------------------------------------------------------------------------

DEFAULTS = {
    optimizers.SGD: dict(learning_rate=0.01, momentum=0.0, decay=0.0, nesterov=False),
    optimizers.RMSProp: dict(learning_rate=1e-3, rho=0.9, epsilon=1e-8, decay=0.0),
    optimizers.AdaGrad: dict(learning_rate=1e-3, initial_accumulator_value=0.1, epsilon=1e-8),
    optimizers.AdaDelta: dict(learning_rate=1.0, rho=0.95, epsilon=1e-6, decay=0.0),
    optimizers.Adam: dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, decay=0.0),
    optimizers.AdaMax: dict(learning_rate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8),
    optimizers.AMSGrad: dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
                             amsgrad=True),
    optimizers.RAdam: dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8),
    optimizers.AdamW: dict(learning_rate=1e-3, beta1=0.9, beta2=0.999, weight_decay=0.01),
    optimizers.LARS: dict(momentum=0.9, trust_coefficient=1e-3),
}


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda c: c.__name__)
def test_defaults_are_s4tf_defaults(cls):
    opt = cls(for_=to_s4(initial_params()))
    for name, want in DEFAULTS[cls].items():
        got = getattr(opt, name)
        assert got == want and type(got) is type(want), (cls.__name__, name, got)


# ---- float32, a real model, real gradients, the default backend ---------------------------------

def test_adam_on_a_layer_model_with_real_gradients_matches_torch_in_float32():
    class MLP(s4.nn.Layer):
        l1: s4.nn.Dense
        l2: s4.nn.Dense

        def __call__(self, x):
            return self.l2(s4.tanh(self.l1(x)))

    rng = np.random.default_rng(3)
    x_np = rng.standard_normal((8, 3)).astype(np.float32)
    y_np = rng.standard_normal((8, 2)).astype(np.float32)
    w = [rng.standard_normal(s).astype(np.float32) * 0.5 for s in [(3, 5), (5,), (5, 2), (2,)]]

    with s4.default_device(PROCESS_DEFAULT_DEVICE):
        model = MLP(l1=s4.nn.Dense(weight=s4.Tensor(w[0]), bias=s4.Tensor(w[1])),
                    l2=s4.nn.Dense(weight=s4.Tensor(w[2]), bias=s4.Tensor(w[3])))
        opt = optimizers.Adam(for_=model, learning_rate=0.05)
        x, y = s4.Tensor(x_np), s4.Tensor(y_np)
        ours = []
        for _ in range(6):
            loss, g = s4.value_with_gradient(at=model, of=lambda m: ((m(x) - y) ** 2).mean())
            opt.update(model, along=g)
            ours.append((loss.item(), model.l1.weight.numpy().copy()))

    tw = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in w]
    topt = T.Adam(tw, lr=0.05)
    tx, ty = torch.tensor(x_np), torch.tensor(y_np)
    for k in range(6):
        topt.zero_grad()
        loss = ((torch.tanh(tx @ tw[0] + tw[1]) @ tw[2] + tw[3] - ty) ** 2).mean()
        loss.backward()
        topt.step()
        assert math.isclose(ours[k][0], loss.item(), rel_tol=1e-5), k
        # Adam divides by sqrt(v): float32 rounding of tiny gradients moves a step by ~1e-6
        np.testing.assert_allclose(ours[k][1], tw[0].detach().numpy(), rtol=1e-5, atol=1e-5)
    assert ours[-1][0] < ours[0][0] * 0.9
