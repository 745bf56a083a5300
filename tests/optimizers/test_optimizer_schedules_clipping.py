"""Learning-rate schedules' values (against closed forms and PyTorch's schedulers) and gradient
clipping (against ``torch.nn.utils``)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import s4tf_py as s4
import s4tf_py.optimizers as optimizers
from optim_testutil import grad_sequence, initial_params, to_s4


@pytest.fixture(autouse=True)
def _reference_backend():
    with s4.default_device(s4.Device("reference")):
        yield


def torch_lrs(make_sched, base_lr: float, steps: int) -> list[float]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_sched(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


S = torch.optim.lr_scheduler
VS_TORCH = {
    "step": (optimizers.StepDecay(0.1, step_size=3, gamma=0.5),
             lambda o: S.StepLR(o, step_size=3, gamma=0.5), 0.1),
    "exponential": (optimizers.ExponentialDecay(0.2, decay_rate=0.9),
                    lambda o: S.ExponentialLR(o, gamma=0.9), 0.2),
    "cosine": (optimizers.CosineDecay(0.1, decay_steps=10, alpha=0.05),
               lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.005), 0.1),
    "linear warmup": (optimizers.LinearWarmup(warmup_steps=5, after=0.3, init_value=0.03),
                      lambda o: S.LinearLR(o, start_factor=0.1, end_factor=1.0, total_iters=5),
                      0.3),
}


@pytest.mark.parametrize("name", sorted(VS_TORCH))
def test_schedule_values_match_torch_schedulers(name):
    ours, make, base = VS_TORCH[name]
    steps = 11          # cosine: torch's recursive form only holds up to T_max
    np.testing.assert_allclose(ours.values(steps), torch_lrs(make, base, steps), rtol=1e-9)


def test_warmup_cosine_decay_closed_form():
    s = optimizers.WarmupCosineDecay(peak_value=1.0, warmup_steps=4, decay_steps=12,
                                     init_value=0.2, end_value=0.1)
    want = []
    for k in range(15):
        if k < 4:
            want.append(0.2 + 0.8 * k / 4)
        else:
            frac = min(k - 4, 8) / 8
            want.append(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
    np.testing.assert_allclose(s.values(15), want, rtol=1e-12)
    assert s(4) == 1.0 and s(100) == pytest.approx(0.1)


def test_linear_warmup_into_another_schedule():
    s = optimizers.LinearWarmup(warmup_steps=3, after=optimizers.StepDecay(0.9, 2, 0.5))
    np.testing.assert_allclose(s.values(8), [0.0, 0.3, 0.6, 0.9, 0.9, 0.45, 0.45, 0.225])
    assert optimizers.LinearWarmup(0, after=0.5).values(2) == [0.5, 0.5]


SCHEDULES = [optimizers.Constant(0.3), *[v[0] for v in VS_TORCH.values()],
             optimizers.WarmupCosineDecay(0.5, 3, 9),
             optimizers.ExponentialDecay(1.0, 0.5, decay_steps=3, staircase=True),
             optimizers.LinearWarmup(3, after=optimizers.CosineDecay(1.0, 5))]


@pytest.mark.parametrize("sched", SCHEDULES, ids=lambda s: type(s).__name__)
def test_schedules_evaluate_the_same_on_tensors(sched):
    for k in range(12):
        want = sched(k)
        for dtype in (s4.float64, s4.float32, s4.int32):
            got = sched(s4.Tensor(k, dtype=dtype))
            got = got.item() if isinstance(got, s4.Tensor) else got
            assert got == pytest.approx(want, rel=1e-6, abs=1e-9), (k, dtype)


def test_schedules_are_hashable_values():
    a = optimizers.CosineDecay(0.1, 10)
    assert a == optimizers.CosineDecay(0.1, 10) and hash(a) == hash(optimizers.CosineDecay(0.1, 10))
    assert a != optimizers.CosineDecay(0.1, 11)


@pytest.mark.parametrize("bad", [lambda: optimizers.CosineDecay(0.1, 0),
                                 lambda: optimizers.StepDecay(0.1, step_size=0),
                                 lambda: optimizers.LinearWarmup(-1),
                                 lambda: optimizers.WarmupCosineDecay(1.0, 5, 5),
                                 lambda: optimizers.ExponentialDecay(1.0, 0.5, decay_steps=0)])
def test_bad_schedule_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_a_plain_function_is_a_schedule_too():
    params = {"w": s4.ones((2,))}
    opt = optimizers.SGD(for_=params, learning_rate=lambda step: 0.5 * (step + 1))
    for _ in range(3):
        opt.update(params, along={"w": s4.ones((2,))})
    assert params["w"].tolist() == [1 - 0.5 - 1.0 - 1.5] * 2


# ---- clipping ---------------------------------------------------------------------------------

def torch_clipped(g: dict, fn) -> dict:
    ps = {k: torch.zeros(v.shape, dtype=torch.float64, requires_grad=True) for k, v in g.items()}
    for k, p in ps.items():
        p.grad = torch.tensor(g[k])
    norm = fn(list(ps.values()))
    return {k: p.grad.numpy() for k, p in ps.items()}, norm


@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_by_global_norm_matches_torch(max_norm):
    g = grad_sequence(2)[1]
    want, norm = torch_clipped(g, lambda ps: torch.nn.utils.clip_grad_norm_(ps, max_norm))
    got = optimizers.clip_by_global_norm(to_s4(g), max_norm)
    for k in g:
        np.testing.assert_allclose(got[k].numpy(), want[k], rtol=1e-12)
    assert optimizers.global_norm(to_s4(g)).item() == pytest.approx(norm.item(), rel=1e-12)
    clipped_norm = optimizers.global_norm(got).item()
    assert clipped_norm == pytest.approx(min(max_norm, norm.item()), rel=1e-5)
    if max_norm > norm.item():
        for k in g:       # below the threshold: unchanged
            np.testing.assert_array_equal(got[k].numpy(), g[k])


def test_clip_by_value_matches_torch():
    g = grad_sequence(2)[1]
    want, _ = torch_clipped(g, lambda ps: torch.nn.utils.clip_grad_value_(ps, 0.7))
    got = optimizers.clip_by_value(to_s4(g), 0.7)
    for k in g:
        np.testing.assert_array_equal(got[k].numpy(), want[k])
    assert any(np.abs(v).max() > 0.7 for v in g.values())


def test_clipping_keeps_the_gradient_structure():
    class Pair(s4.nn.Layer):
        a: s4.nn.Dense
        extra: list

        def __call__(self, x):
            return self.a(x) * self.extra[0]

    m = Pair(a=s4.nn.Dense(2, 2, seed=0), extra=[s4.Tensor(3.0)])
    g = s4.gradient(at=m, of=lambda m: (m(s4.ones((1, 2))) ** 2).sum())
    c = optimizers.clip_by_global_norm(g, 1e-2)
    assert type(c) is type(g) and type(c.a) is type(g.a) and isinstance(c.extra, list)
    assert optimizers.global_norm(c).item() == pytest.approx(1e-2, rel=1e-4)
    # None entries pass through; a mixed float32/float64 gradient keeps each dtype
    mixed = {"x": s4.ones((3,), dtype=s4.float32) * 4.0, "y": None,
             "z": s4.ones((1,), dtype=s4.float64) * 3.0}
    out = optimizers.clip_by_global_norm(mixed, 1.0)
    assert out["y"] is None and out["x"].dtype == s4.float32 and out["z"].dtype == s4.float64
    norm = math.sqrt(3 * 16 + 9)
    assert out["z"].item() == pytest.approx(3.0 / (norm + 1e-6), rel=1e-12)


def test_bad_clipping_arguments():
    g = to_s4(initial_params())
    with pytest.raises(ValueError, match="max_norm"):
        optimizers.clip_by_global_norm(g, 0.0)
    with pytest.raises(ValueError, match="clip_value"):
        optimizers.clip_by_value(g, -1.0)
    with pytest.raises(ValueError, match="no floating-point"):
        optimizers.global_norm({"n": s4.Tensor([1, 2])})
    assert optimizers.clip_by_global_norm({"n": s4.Tensor([1, 2])}, 1.0)["n"].tolist() == [1, 2]
