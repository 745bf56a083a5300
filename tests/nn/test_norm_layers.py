"""Normalization layers against PyTorch with the same weights (layouts converted), BatchNorm's
running statistics step by step, gradients by finite differences, LLVM/reference parity,
fusion into one row kernel, state handling and shape errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import s4tf_py as s4
from s4tf_py.nn.normalization import BatchNorm, GroupNorm, InstanceNorm, LayerNorm, RMSNorm

LLVM, REF = s4.Device("llvm"), s4.Device("reference")
rng = np.random.default_rng(0)


def _rand(*shape, scale=1.0, shift=0.0, dtype=np.float32):
    return (rng.standard_normal(shape) * scale + shift).astype(dtype)


def _nchw(x):            # NHWC -> NCHW for torch
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))


def _nhwc(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


def _training():
    return s4.learning_phase("training")


# ---- BatchNorm ---------------------------------------------------------------------------------

def test_batchnorm_defaults_are_s4tfs():
    bn = BatchNorm(5)
    assert (bn.axis, bn.momentum, bn.epsilon) == (-1, 0.99, 0.001)
    assert bn.offset.tolist() == [0.0] * 5 and bn.scale.tolist() == [1.0] * 5
    assert bn.running_mean.tolist() == [0.0] * 5 and bn.running_variance.tolist() == [1.0] * 5


def test_batchnorm_training_and_running_statistics_match_torch_step_by_step():
    c, momentum, eps = 3, 0.9, 1e-3
    scale, offset = _rand(c, shift=1.0), _rand(c)
    bn = BatchNorm(c, momentum=momentum, epsilon=eps, scale=s4.Tensor(scale),
                   offset=s4.Tensor(offset))
    ref = torch.nn.BatchNorm2d(c, eps=eps, momentum=1 - momentum)   # torch's momentum = 1 - S4TF's
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(scale))
        ref.bias.copy_(torch.from_numpy(offset))
    ref.train()
    want_var = np.ones(c)
    for step in range(3):
        x = _rand(4, 5, 6, c, scale=2.0, shift=step + 0.5)
        with _training():
            y = bn(s4.Tensor(x))
        np.testing.assert_allclose(y.numpy(), _nhwc(ref(_nchw(x))), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(bn.running_mean.numpy(), ref.running_mean.numpy(),
                                   rtol=1e-5, atol=1e-6)
        # S4TF (and Keras) move the running variance towards the *biased* batch variance,
        # PyTorch towards the unbiased one: the reference is S4TF's formula
        want_var = want_var + (x.var(axis=(0, 1, 2), dtype=np.float64) - want_var) * (1 - momentum)
        np.testing.assert_allclose(bn.running_variance.numpy(), want_var, rtol=1e-5)
    # inference normalizes with the running statistics (torch's with the same ones)
    with torch.no_grad():
        ref.running_var.copy_(torch.tensor(bn.running_variance.numpy()))
    ref.eval()
    x = _rand(2, 3, 3, c, shift=1.0)
    before = bn.running_mean.numpy().copy()
    y = bn(s4.Tensor(x))
    np.testing.assert_allclose(y.numpy(), _nhwc(ref(_nchw(x))), rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), before)   # inference leaves state


def test_batchnorm_channels_first_axis_matches_torch():
    x = _rand(6, 4, 7, scale=3.0, shift=-1.0)
    bn = BatchNorm(4, axis=1, momentum=0.5, scale=s4.Tensor(_rand(4)), offset=s4.Tensor(_rand(4)))
    ref = torch.nn.BatchNorm1d(4, eps=1e-3, momentum=0.5)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(bn.scale.numpy()))
        ref.bias.copy_(torch.tensor(bn.offset.numpy()))
    with _training():
        y = bn(s4.Tensor(x))
    np.testing.assert_allclose(y.numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-5)


def test_batchnorm_state_is_not_a_parameter_but_is_saved():
    bn = BatchNorm(3)
    assert [n for n, _ in bn.named_parameters()] == ["offset", "scale"]
    assert list(bn.state_dict()) == ["offset", "scale", "running_mean", "running_variance"]
    assert BatchNorm.TangentVector.__s4_fields__ == ("offset", "scale")


def test_batchnorm_running_statistics_round_trip_through_a_checkpoint(tmp_path):
    bn = BatchNorm(3, momentum=0.5)
    with _training():
        bn(s4.Tensor(_rand(8, 3, shift=4.0)))
    s4.save(bn, tmp_path / "bn.safetensors")
    fresh = BatchNorm(3, momentum=0.5)
    fresh.load_state(tmp_path / "bn.safetensors")
    for name in ("running_mean", "running_variance"):
        np.testing.assert_array_equal(getattr(fresh, name).numpy(), getattr(bn, name).numpy())
    x = s4.Tensor(_rand(2, 3))
    np.testing.assert_array_equal(fresh(x).numpy(), bn(x).numpy())


def test_batchnorm_low_precision_input_keeps_float32_state():
    x = _rand(8, 4, scale=2.0, shift=3.0)
    bn = BatchNorm(4, dtype=s4.bfloat16)
    assert bn.scale.dtype == s4.bfloat16 and bn.running_mean.dtype == s4.float32
    with _training():
        y = bn(s4.Tensor(x).astype(s4.bfloat16))
    assert y.dtype == s4.bfloat16
    want = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-3)
    np.testing.assert_allclose(y.astype(s4.float32).numpy(), want, atol=3e-2)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.01 * x.mean(0), rtol=1e-2)


def test_batchnorm_update_reaches_the_model_through_gradient():
    """s4.gradient calls the layer on a copy of the model; the running statistics are shared
    with it (S4TF's reference-type Parameter), so the model sees the update."""
    class Net(s4.nn.Layer):
        dense: s4.nn.Dense
        bn: BatchNorm

        def __call__(self, x):
            return self.bn(self.dense(x))

    model = Net(dense=s4.nn.Dense(3, 2, seed=0), bn=BatchNorm(2, momentum=0.5))
    x = s4.Tensor(_rand(16, 3, shift=2.0))
    with _training():
        loss, grads = s4.value_with_gradient(at=model, of=lambda m: (m(x) ** 2).sum())
    h = (x @ model.dense.weight + model.dense.bias).numpy()
    np.testing.assert_allclose(model.bn.running_mean.numpy(), 0.5 * h.mean(0), rtol=1e-5)
    assert type(grads.bn).__qualname__ == "BatchNorm.TangentVector"
    assert np.isfinite(grads.dense.weight.numpy()).all()


@pytest.mark.parametrize("phase", ["training", "inference"])
def test_batchnorm_gradients(on_the_reference_backend, phase):
    x = s4.Tensor(_rand(5, 3, shift=1.0, dtype=np.float64))
    w = s4.Tensor(_rand(3, shift=1.0, dtype=np.float64))
    b = s4.Tensor(_rand(3, dtype=np.float64))
    rv = s4.Tensor(np.array([0.5, 1.0, 2.0]))

    def f(x, w, b):
        with s4.learning_phase(phase):
            bn = BatchNorm(3, scale=w, offset=b, running_mean=s4.ones((3,), dtype=s4.float64),
                           running_variance=rv)
            return bn(x)
    s4.check_grads(f, (x, w, b))


def test_compiled_training_step_updates_batchnorm_state_and_traces_once():
    """The functional training step: the returned model carries the new running statistics;
    the step traces once for every batch."""
    class Net(s4.nn.Layer):
        dense: s4.nn.Dense
        bn: BatchNorm

        def __call__(self, x):
            return self.bn(self.dense(x))

    model = Net(dense=s4.nn.Dense(3, 2, seed=0), bn=BatchNorm(2, momentum=0.5))
    opt = s4.optimizers.SGD(for_=model, learning_rate=0.1)

    @s4.compile
    def step(model, opt, x):
        with _training():
            loss, grads = s4.value_with_gradient(at=model, of=lambda m: (m(x) ** 2).mean())
        opt.update(model, along=grads)
        return model, opt, loss

    want = np.zeros(2)
    for i in range(3):
        x = s4.Tensor(_rand(8, 3, shift=float(i)))
        h = (x @ model.dense.weight + model.dense.bias).numpy()     # before the update
        want = want + (h.mean(0) - want) * 0.5
        model, opt, loss = step(model, opt, x)
        np.testing.assert_allclose(model.bn.running_mean.numpy(), want, rtol=1e-5, atol=1e-6)
    assert step.traces == 1


# ---- LayerNorm, GroupNorm, InstanceNorm, RMSNorm vs torch ----------------------------------------

def test_layernorm_matches_torch():
    x = _rand(4, 5, 16, scale=3.0, shift=2.0)
    w, b = _rand(16, shift=1.0), _rand(16)
    ln = LayerNorm(16, scale=s4.Tensor(w), offset=s4.Tensor(b))
    assert (ln.axis, ln.epsilon) == (-1, 0.001)
    ref = torch.nn.LayerNorm(16, eps=1e-3)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
        ref.bias.copy_(torch.from_numpy(b))
    np.testing.assert_allclose(ln(s4.Tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-5)


def test_layernorm_over_another_axis():
    x = _rand(3, 6, 4)
    w, b = _rand(6), _rand(6)
    y = LayerNorm(6, axis=1, scale=s4.Tensor(w), offset=s4.Tensor(b))(s4.Tensor(x)).numpy()
    xd = x.astype(np.float64)
    want = (xd - xd.mean(1, keepdims=True)) / np.sqrt(xd.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(y, want * w[:, None] + b[:, None], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_groupnorm_matches_torch(groups):
    x = _rand(2, 5, 4, 6, scale=2.0, shift=1.0)           # NHWC
    w, b = _rand(6, shift=1.0), _rand(6)
    gn = GroupNorm(6, groups, scale=s4.Tensor(w), offset=s4.Tensor(b))
    ref = torch.nn.GroupNorm(groups, 6, eps=1e-3)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
        ref.bias.copy_(torch.from_numpy(b))
    np.testing.assert_allclose(gn(s4.Tensor(x)).numpy(), _nhwc(ref(_nchw(x))), rtol=1e-4,
                               atol=1e-5)


def test_groupnorm_channels_first_matches_torch():
    x = _rand(3, 8, 5, shift=-2.0)                        # NCW, axis=1
    gn = GroupNorm(8, 4, axis=1, scale=s4.Tensor(_rand(8)), offset=s4.Tensor(_rand(8)))
    ref = torch.nn.GroupNorm(4, 8, eps=1e-3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(gn.scale.numpy()))
        ref.bias.copy_(torch.tensor(gn.offset.numpy()))
    np.testing.assert_allclose(gn(s4.Tensor(x)).numpy(),
                               ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_instancenorm_matches_torch():
    x = _rand(2, 6, 5, 3, scale=4.0, shift=2.0)
    w, b = _rand(3, shift=1.0), _rand(3)
    layer = InstanceNorm(3, scale=s4.Tensor(w), offset=s4.Tensor(b))
    ref = torch.nn.InstanceNorm2d(3, eps=1e-3, affine=True)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
        ref.bias.copy_(torch.from_numpy(b))
    np.testing.assert_allclose(layer(s4.Tensor(x)).numpy(), _nhwc(ref(_nchw(x))), rtol=1e-4,
                               atol=1e-5)
    assert [n for n, _ in layer.named_parameters()] == ["offset", "scale"]


def test_rmsnorm_matches_torch():
    x = _rand(3, 4, 32, scale=2.0)
    w = _rand(32, shift=1.0)
    ref = torch.nn.RMSNorm(32, eps=1e-6)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(w))
    y = RMSNorm(32, scale=s4.Tensor(w))(s4.Tensor(x)).numpy()
    np.testing.assert_allclose(y, ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [s4.float32, s4.bfloat16])
def test_rmsnorm_scale_plus_one_is_gemmas_float32_computation(dtype):
    x = _rand(5, 64, scale=3.0)
    w = _rand(64, scale=0.1)
    tx = torch.from_numpy(x).to(torch.float32 if dtype == s4.float32 else torch.bfloat16)
    tw = torch.from_numpy(w).to(tx.dtype)
    # transformers' GemmaRMSNorm.forward
    xf = tx.float()
    want = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * (1.0 + tw.float()))
    want = want.to(tx.dtype).float().numpy()
    layer = RMSNorm(64, scale_plus_one=True, scale=s4.Tensor(w).astype(dtype))
    y = layer(s4.Tensor(x).astype(dtype))
    assert y.dtype == dtype
    tol = 1e-6 if dtype == s4.float32 else 1e-2
    np.testing.assert_allclose(y.astype(s4.float32).numpy(), want, rtol=tol, atol=tol)


# ---- gradients ---------------------------------------------------------------------------------

_F64 = dict(dtype=np.float64)
GRAD_CASES = {
    "LayerNorm": (lambda x, w, b: LayerNorm(4, scale=w, offset=b)(x), (3, 4), 4),
    "LayerNorm_axis1": (lambda x, w, b: LayerNorm(3, axis=1, scale=w, offset=b)(x), (2, 3, 2), 3),
    "GroupNorm": (lambda x, w, b: GroupNorm(4, 2, scale=w, offset=b)(x), (2, 3, 4), 4),
    "InstanceNorm": (lambda x, w, b: InstanceNorm(2, scale=w, offset=b)(x), (2, 3, 2, 2), 2),
    "RMSNorm": (lambda x, w, b: RMSNorm(4, scale=w)(x) + b, (3, 4), 4),
    "RMSNorm_plus_one": (lambda x, w, b: RMSNorm(4, scale=w, scale_plus_one=True)(x) + b,
                         (3, 4), 4),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_norm_gradients(on_the_reference_backend, name):
    f, shape, c = GRAD_CASES[name]
    args = (s4.Tensor(_rand(*shape, shift=0.5, **_F64)), s4.Tensor(_rand(c, shift=1.0, **_F64)),
            s4.Tensor(_rand(c, **_F64)))
    s4.check_grads(f, args)


def test_layernorm_second_order_gradients(on_the_reference_backend):
    f, shape, c = GRAD_CASES["LayerNorm"]
    s4.check_grads(lambda x, w: f(x, w, s4.zeros((c,), dtype=s4.float64)),
                   (s4.Tensor(_rand(*shape, **_F64)), s4.Tensor(_rand(c, shift=1.0, **_F64))),
                   order=2)


# ---- backends ----------------------------------------------------------------------------------

_P6 = [s4.Tensor(_rand(6)) for _ in range(3)]       # made once: both backends get the same
PARITY = {
    "BatchNorm_training": (lambda: BatchNorm(6, momentum=0.5, scale=_P6[0]), (4, 3, 6), True),
    "BatchNorm_inference": (lambda: BatchNorm(6, running_mean=_P6[0],
                                              running_variance=_P6[1] ** 2 + 0.5),
                            (4, 3, 6), False),
    "LayerNorm": (lambda: LayerNorm(6, scale=_P6[0], offset=_P6[1]), (4, 3, 6), False),
    "GroupNorm": (lambda: GroupNorm(6, 3, scale=_P6[1], offset=_P6[2]), (2, 3, 3, 6), False),
    "InstanceNorm": (lambda: InstanceNorm(6, scale=_P6[0], offset=_P6[2]), (2, 3, 3, 6), False),
    "RMSNorm": (lambda: RMSNorm(6, scale_plus_one=True, scale=_P6[2]), (4, 3, 6), False),
}


@pytest.mark.parametrize("name", sorted(PARITY))
def test_llvm_matches_the_reference_backend(name):
    make, shape, training = PARITY[name]
    x = _rand(*shape, scale=2.0, shift=1.0)
    outs = []
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            layer = make().move(to=dev)
            with s4.learning_phase("training" if training else "inference"):
                y = layer(s4.Tensor(x))
            outs.append((y.numpy(), [t.numpy() for t in layer.state_dict().values()]))
    (y1, s1), (y2, s2) = outs
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    for a, b in zip(s1, s2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [LayerNorm(48, scale=s4.Tensor(_rand(48))),
                                   RMSNorm(48, scale=s4.Tensor(_rand(48))),
                                   RMSNorm(48, scale_plus_one=True)],
                         ids=["LayerNorm", "RMSNorm", "RMSNorm_plus_one"])
def test_trailing_axis_norms_are_one_fused_kernel_on_llvm(layer):
    from s4tf_py.backends.llvm import executable
    from s4tf_py.ir.passes import optimize
    fn = optimize(s4.trace(lambda m, x: m(x), layer, s4.Tensor(_rand(16, 48))))
    groups = [s for kind, s in executable.plan(fn) if kind == "group"]
    others = [s for kind, s in executable.plan(fn)
              if kind != "group" and s.prim.name not in ("constant", "iota", "reshape")]
    assert len(groups) == 1 and not others, [[e.prim.name for e in g.eqns] for g in groups]


# ---- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("layer,shape,expect", [
    (BatchNorm(4), (3, 5), "expects 4 features along axis -1"),
    (BatchNorm(4), (4,), "rank >= 2"),
    (LayerNorm(4), (2, 3), "expects 4 features along axis -1"),
    (GroupNorm(4, 2), (2, 3, 5), "expects 4 features"),
    (GroupNorm(4, 2, axis=1), (4,), "rank >= 2"),
    (InstanceNorm(3), (2, 3), "rank >= 3"),
    (RMSNorm(8), (2, 4), "expects 8 features"),
])
def test_wrong_input_shapes_name_the_layer_and_the_shape(layer, shape, expect):
    name = type(layer).__name__
    with pytest.raises(s4.ShapeError) as e:
        layer(s4.ones(shape))
    msg = str(e.value)
    assert msg.startswith(f"{name}: ") and expect in msg and f"got shape {shape}" in msg
    assert "test_norm_layers.py" in msg


def test_bad_configurations_are_errors():
    with pytest.raises(ValueError, match="divide"):
        GroupNorm(6, 4)
    with pytest.raises(ValueError, match="batch axis"):
        GroupNorm(6, 3, axis=0)
    with pytest.raises(TypeError, match="feature_count"):
        LayerNorm()
    with pytest.raises(s4.ShapeError, match="running_mean of shape"):
        BatchNorm(3, offset=s4.zeros((3,)), scale=s4.ones((3,)), running_mean=s4.zeros((4,)))
    with pytest.raises(s4.DTypeError, match="floating-point"):
        LayerNorm(2)(s4.Tensor([[1, 2]]))
