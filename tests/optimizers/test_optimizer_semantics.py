"""What ``opt.update(model, along=grads)`` does to models and tensors: value semantics, nested
layers and pytrees, ``None`` gradients, clear errors, state dicts and devices."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4
import s4tf_py.optimizers as optimizers
from optim_testutil import grad_sequence, initial_params, to_np, to_s4


#: the default device (llvm where it works), before the fixture below switches to the reference
PROCESS_DEFAULT_DEVICE = s4.get_default_device()


@pytest.fixture(autouse=True)
def _reference_backend():
    with s4.default_device(s4.Device("reference")):
        yield


class MLP(s4.nn.Layer):
    l1: s4.nn.Dense
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(s4.relu(self.l1(x)))


class Tower(s4.nn.Layer):
    """Fields that are a list of layers, a dict of layers, a tuple of tensors and
    non-differentiable fields (one of them a tensor)."""
    blocks: list
    heads: dict
    pair: tuple
    scales: list
    counts: s4.Tensor = s4.no_derivative(default=None)
    name: str = s4.no_derivative(default="tower")

    def __call__(self, x):
        for b in self.blocks:
            x = s4.tanh(b(x))
        x = x * self.pair[0] * self.scales[0] + self.pair[1]
        return self.heads["a"](x) + self.heads["b"](x)


def make_mlp():
    return MLP(l1=s4.nn.Dense(3, 4, seed=0), l2=s4.nn.Dense(4, 2, seed=1))


def make_tower():
    return Tower(blocks=[s4.nn.Dense(3, 3, seed=2), s4.nn.Dense(3, 3, seed=3)],
                 heads={"a": s4.nn.Dense(3, 1, seed=4), "b": s4.nn.Dense(3, 1, seed=5)},
                 pair=(s4.ones((3,)), s4.zeros((3,))), scales=[s4.ones(())],
                 counts=s4.Tensor([1, 2, 3]))


X = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)


def loss_of(x):
    return lambda m: (m(x) ** 2).mean()


def snapshot(model) -> dict:
    return {k: v.numpy().copy() for k, v in model.named_parameters()}


# ---- value semantics ---------------------------------------------------------------------------

def test_update_changes_the_model_in_place_and_leaves_held_tensors_alone():
    model = make_mlp()
    x = s4.Tensor(X)
    opt = optimizers.Adam(for_=model, learning_rate=0.1)
    l1 = model.l1
    held = model.l1.weight                  # the same Python object as the model's field
    held_value = held.numpy().copy()
    copied = model.l2.bias.copy()
    before = snapshot(model)
    g = s4.gradient(at=model, of=loss_of(x))
    out = opt.update(model, along=g)
    assert out is model and model.l1 is l1            # in place, in the Python-object sense
    assert model.l1.weight is not held
    np.testing.assert_array_equal(held.numpy(), held_value)   # value semantics
    np.testing.assert_array_equal(copied.numpy(), before["l2.bias"])
    after = snapshot(model)
    for k in before:
        assert np.abs(after[k] - before[k]).max() > 1e-3, k
    # ... and the tensors kept elsewhere still compute with their old values
    np.testing.assert_allclose((held * 2.0).numpy(), 2 * held_value)


def test_gradient_tensors_are_not_changed_by_the_update():
    params = to_s4(initial_params())
    g = to_s4(grad_sequence(1)[0])
    g_before = to_np(g)
    opt = optimizers.SGD(for_=params, learning_rate=0.5, momentum=0.9, weight_decay=0.1,
                         clip_norm=0.1)
    opt.update(params, along=g)
    for k in g_before:
        np.testing.assert_array_equal(g[k].numpy(), g_before[k])


def test_nested_layers_lists_dicts_and_tuples():
    model = make_tower()
    x = s4.Tensor(X)
    blocks, heads, head_a, scales = model.blocks, model.heads, model.heads["a"], model.scales
    before = snapshot(model)
    opt = optimizers.RMSProp(for_=model, learning_rate=0.05)
    g = s4.gradient(at=model, of=loss_of(x))
    opt.update(model, along=g)
    after = snapshot(model)
    assert set(after) == set(before)
    assert {"blocks.0.weight", "heads.b.bias", "pair.0", "pair.1", "scales.0"} <= set(after)
    for k in before:
        assert np.abs(after[k] - before[k]).max() > 1e-4, k
    # layers are updated in place (so are the lists and dicts that hold them); a container of
    # tensors is rebuilt, so a list that something else still holds keeps its values
    assert model.heads is heads and model.heads["a"] is head_a and model.blocks is blocks
    assert isinstance(model.pair, tuple) and model.scales is not scales
    assert scales[0].item() == 1.0 and model.scales[0].item() != 1.0
    # no_derivative fields are not parameters and are left alone
    assert model.counts.tolist() == [1, 2, 3] and model.name == "tower"
    keys = opt.state_dict()
    assert "mean_square.blocks.1.weight" in keys and "mean_square.counts" not in keys


def test_plain_pytrees_list_dict_tuple_and_a_single_tensor():
    g = grad_sequence(1)[0]
    # a list is updated in place
    params = [s4.Tensor(initial_params()["w"]), s4.Tensor(initial_params()["b"])]
    held = params[0]
    opt = optimizers.SGD(for_=params, learning_rate=1.0)
    out = opt.update(params, along=[s4.Tensor(g["w"]), s4.Tensor(g["b"])])
    assert out is params
    np.testing.assert_allclose(params[0].numpy(), initial_params()["w"] - g["w"])
    np.testing.assert_array_equal(held.numpy(), initial_params()["w"])
    # a dict, with gradients given as a dict
    d = to_s4(initial_params())
    opt = optimizers.SGD(for_=d, learning_rate=1.0)
    assert opt.update(d, along=to_s4(g)) is d
    np.testing.assert_allclose(d["b"].numpy(), initial_params()["b"] - g["b"])
    # a tuple cannot change: update returns the new one, the old one keeps its values
    t = (s4.Tensor(initial_params()["w"]), s4.Tensor(initial_params()["b"]))
    opt = optimizers.SGD(for_=t, learning_rate=1.0)
    t2 = opt.update(t, along=(s4.Tensor(g["w"]), s4.Tensor(g["b"])))
    assert isinstance(t2, tuple) and t2 is not t
    np.testing.assert_allclose(t2[1].numpy(), initial_params()["b"] - g["b"])
    np.testing.assert_array_equal(t[1].numpy(), initial_params()["b"])
    # a single Tensor: the key path is "", the slot key is the slot name
    w = s4.Tensor([1.0, 2.0])
    opt = optimizers.Adam(for_=w, learning_rate=0.5)
    w2 = opt.update(w, along=s4.Tensor([1.0, -1.0]))
    assert w.tolist() == [1.0, 2.0]
    np.testing.assert_allclose(w2.numpy(), [0.5, 2.5], rtol=1e-6)
    assert {"step", "first_moments", "second_moments"} <= set(opt.state_dict())


def test_a_layer_model_accepts_gradients_as_nested_dicts():
    model = make_mlp()
    opt = optimizers.SGD(for_=model, learning_rate=1.0)
    w0 = model.l2.weight.numpy().copy()
    ones = {k: s4.ones(v.shape) for k, v in model.named_parameters()}
    g = {"l1": {"weight": ones["l1.weight"], "bias": ones["l1.bias"]},
         "l2": {"weight": ones["l2.weight"], "bias": ones["l2.bias"]}}
    opt.update(model, along=g)
    np.testing.assert_allclose(model.l2.weight.numpy(), w0 - 1.0)


def test_a_none_gradient_leaves_that_parameter_and_its_state_alone():
    params = to_s4(initial_params())
    opt = optimizers.Adam(for_=params, learning_rate=0.1)
    g = to_s4(grad_sequence(1)[0])
    opt.update(params, along={"w": g["w"], "b": None})
    np.testing.assert_array_equal(params["b"].numpy(), initial_params()["b"])
    assert not np.any(opt.state["first_moments"]["b"].numpy())
    assert np.any(opt.state["first_moments"]["w"].numpy())
    assert opt.step == 1


def test_float32_parameters_keep_their_dtype_and_gradients_are_cast():
    params = {"w": s4.ones((2,), dtype=s4.float32)}
    opt = optimizers.Adam(for_=params, learning_rate=s4.Tensor(0.1, dtype=s4.float64))
    opt.update(params, along={"w": s4.ones((2,), dtype=s4.float64)})
    assert params["w"].dtype == s4.float32
    assert all(t.dtype == s4.float32 for t in opt.state["first_moments"].values())
    np.testing.assert_allclose(params["w"].numpy(), [0.9, 0.9], rtol=1e-6)


# ---- errors ----------------------------------------------------------------------------------

def test_gradient_missing_an_entry_names_the_key_path():
    model = make_mlp()
    opt = optimizers.Adam(for_=model)
    g = {"l1": {"weight": s4.ones((3, 4)), "bias": s4.ones((4,))},
         "l2": {"weight": s4.ones((4, 2))}}
    with pytest.raises(ValueError, match=r"'l2\.bias'"):
        opt.update(model, along=g)


def test_gradient_of_the_wrong_shape_names_the_key_path_and_shapes():
    params = to_s4(initial_params())
    opt = optimizers.SGD(for_=params)
    with pytest.raises(ValueError,
                       match=r"'w' has shape \(4, 3\), the parameter has shape \(3, 4\)"):
        opt.update(params, along={"w": s4.ones((4, 3)), "b": s4.ones((4,))})


def test_gradient_with_an_extra_entry_is_an_error():
    params = to_s4(initial_params())
    opt = optimizers.SGD(for_=params)
    g = {"w": s4.ones((3, 4)), "b": s4.ones((4,)), "c": s4.ones((1,))}
    with pytest.raises(ValueError, match=r"no parameter: 'c'"):
        opt.update(params, along=g)


def test_gradient_entry_that_is_not_a_tensor():
    params = to_s4(initial_params())
    opt = optimizers.SGD(for_=params)
    with pytest.raises(TypeError, match=r"parameter 'b' must be a floating-point Tensor"):
        opt.update(params, along={"w": s4.ones((3, 4)), "b": np.ones(4)})


def test_a_different_model_is_an_error_that_lists_the_differences():
    opt = optimizers.Adam(for_=make_mlp())
    other = {"l1": {"weight": s4.ones((3, 4))}}
    with pytest.raises(ValueError, match=r"missing 'l1\.bias'.*'l2\.weight'"):
        opt.update(other, along=other)
    wider = MLP(l1=s4.nn.Dense(3, 5, seed=0), l2=s4.nn.Dense(5, 2, seed=1))
    with pytest.raises(ValueError, match=r"'l1\.weight' is f32\[3, 5\].*f32\[3, 4\]"):
        opt.update(wider, along=s4.gradient(at=wider, of=loss_of(s4.Tensor(X))))


@pytest.mark.parametrize("bad, err", [(-0.1, ValueError), (float("nan"), ValueError),
                                      ("fast", TypeError), (True, TypeError),
                                      (s4.ones((2,)), ValueError)])
def test_bad_learning_rates(bad, err):
    with pytest.raises(err, match="learning_rate"):
        optimizers.SGD(for_=to_s4(initial_params()), learning_rate=bad)


def test_unhashable_schedule_is_refused():
    class Sched:
        __hash__ = None

        def __call__(self, step):
            return 0.1
    with pytest.raises(TypeError, match="hashable"):
        optimizers.SGD(for_=to_s4(initial_params()), learning_rate=Sched())


@pytest.mark.parametrize("make", [
    lambda p: optimizers.Adam(for_=p, beta1=1.5),
    lambda p: optimizers.SGD(for_=p, momentum=-1.0),
    lambda p: optimizers.SGD(for_=p, nesterov=True),
    lambda p: optimizers.AdaDelta(for_=p, rho=2.0),
    lambda p: optimizers.Adam(for_=p, clip_norm=0.0),
    lambda p: optimizers.RMSProp(for_=p, decay=-1.0),
])
def test_bad_hyperparameters(make):
    with pytest.raises(ValueError):
        make(to_s4(initial_params()))


def test_a_model_without_parameters():
    with pytest.raises(ValueError, match="no floating-point Tensor parameters"):
        optimizers.Adam(for_={"n": s4.Tensor([1, 2])})


# ---- state: step count, state_dict, devices ------------------------------------------------------

def _run(opt, params, grads):
    for g in grads:
        opt.update(params, along=to_s4(g))


def test_state_dict_round_trip_continues_the_run_exactly():
    grads = grad_sequence(6)
    full = to_s4(initial_params())
    opt = optimizers.AMSGrad(for_=full, learning_rate=0.05, decay=0.1)
    _run(opt, full, grads)

    first = to_s4(initial_params())
    opt1 = optimizers.AMSGrad(for_=first, learning_rate=0.05, decay=0.1)
    _run(opt1, first, grads[:3])
    opt1.learning_rate = 0.05
    # what a checkpoint would hold: numpy arrays and numbers
    saved = {k: (np.array(v) if isinstance(v, s4.Tensor) else v)
             for k, v in opt1.state_dict().items()}
    saved_params = to_np(first)
    assert saved["step"] == 3 and saved["learning_rate"] == 0.05 and saved["decay"] == 0.1
    assert set(saved) >= {"first_moments.w", "second_moments.b", "max_second_moments.w"}

    resumed = to_s4(saved_params)
    opt2 = optimizers.AMSGrad(for_=resumed, learning_rate=1.0)     # restored from the dict
    opt2.load_state_dict(saved)
    assert opt2.step == 3 and opt2.learning_rate == 0.05
    _run(opt2, resumed, grads[3:])
    for k in full:
        np.testing.assert_array_equal(resumed[k].numpy(), full[k].numpy())


def test_load_state_dict_reports_missing_unexpected_and_mismatched_keys():
    params = to_s4(initial_params())
    opt = optimizers.Adam(for_=params)
    d = dict(opt.state_dict())
    del d["first_moments.w"]
    d["first_moments.zzz"] = np.zeros(3)
    with pytest.raises(KeyError, match=r"missing keys: first_moments\.w.*unexpected keys: "
                                       r"first_moments\.zzz"):
        opt.load_state_dict(d)
    opt.load_state_dict(d, strict=False)          # loads what matches
    d = dict(opt.state_dict())
    d["second_moments.b"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"'second_moments\.b' has shape \(5,\)"):
        opt.load_state_dict(d)


def test_optimizer_state_is_a_pytree_of_tensors():
    params = to_s4(initial_params())
    opt = optimizers.Adam(for_=params, learning_rate=0.01)
    leaves, td = s4.tree.flatten(opt)
    tensors = [x for x in leaves if isinstance(x, s4.Tensor)]
    assert len(tensors) == 1 + 2 * 2
    assert [x for x in leaves if not isinstance(x, s4.Tensor)] == [0.01]
    rebuilt = s4.tree.unflatten(td, leaves)
    assert type(rebuilt) is optimizers.Adam and rebuilt.beta2 == 0.999
    assert rebuilt.learning_rate == 0.01


def test_move_to_a_device():
    src, ref = PROCESS_DEFAULT_DEVICE, s4.Device("reference")
    params = {k: v.to(src) for k, v in to_s4(initial_params()).items()}
    opt = optimizers.Adam(for_=params, learning_rate=0.1)
    assert opt.state["step"].device == src
    opt.update(params, along={k: v.to(src) for k, v in to_s4(grad_sequence(1)[0]).items()})
    assert opt.move(to=ref) is opt
    assert {t.device for t in s4.tree.flatten(opt.state)[0]} == {ref}
    params = {k: v.to(ref) for k, v in params.items()}
    opt.update(params, along=to_s4(grad_sequence(2)[1]))
    assert params["w"].device == ref and opt.step == 2


def test_current_learning_rate_applies_schedule_and_decay():
    opt = optimizers.SGD(for_=to_s4(initial_params()),
                         learning_rate=optimizers.StepDecay(1.0, step_size=1, gamma=0.5),
                         decay=1.0)
    assert opt.current_learning_rate == 0.5          # 1.0 / (1 + 1 * 1)
    opt.update(to_s4(initial_params()), along=to_s4(grad_sequence(1)[0]))
    assert opt.current_learning_rate == 0.5 / 3
    assert "learning_rate" not in opt.state_dict()   # a schedule is code, not state


def test_turning_momentum_on_later_creates_its_state():
    params = to_s4(initial_params())
    opt = optimizers.SGD(for_=params, learning_rate=0.1)
    opt.update(params, along=to_s4(grad_sequence(1)[0]))
    assert "velocity" not in opt.state
    opt.momentum = 0.9
    opt.update(params, along=to_s4(grad_sequence(1)[0]))
    assert "velocity.w" in opt.state_dict()


def test_an_unknown_option_names_the_optimizer_and_its_hyperparameters():
    with pytest.raises(TypeError, match=r"Adam\(\) got an unexpected keyword argument "
                                        r"'momentum'.*beta1"):
        optimizers.Adam(for_=to_s4(initial_params()), momentum=0.9)


def test_a_new_optimizer_needs_only_its_update_rule():
    class SignSGD(optimizers.Optimizer):
        """p -= lr * sign(g + previous g), with one slot."""
        slots = ("previous",)

        def __init__(self, for_, learning_rate=0.1, **options):
            super().__init__(for_, learning_rate, **options)

        def _update_param(self, p, g, s, ctx, path):
            return p - ctx.lr(p.dtype) * s4.sign(g + s["previous"]), {"previous": g}

    params = {"a": s4.Tensor([1.0, 1.0]), "b": [s4.Tensor([0.0])]}
    opt = SignSGD(for_=params, weight_decay=0.0)
    opt.update(params, along={"a": s4.Tensor([2.0, -3.0]), "b": [s4.Tensor([1.0])]})
    opt.update(params, along={"a": s4.Tensor([-1.0, -1.0]), "b": [s4.Tensor([1.0])]})
    np.testing.assert_allclose(params["a"].numpy(), [0.8, 1.2])
    np.testing.assert_allclose(params["b"][0].numpy(), [-0.2])
    leaves, td = s4.tree.flatten(opt)                 # registered as a pytree on definition
    assert type(s4.tree.unflatten(td, leaves)) is SignSGD
    assert sorted(opt.state_dict()) == ["decay", "learning_rate", "previous.a", "previous.b.0",
                                        "step", "weight_decay"]

    with pytest.raises(TypeError, match="must differ"):
        class Clash(optimizers.Optimizer):  # noqa: F841 - defining it is the test
            slots = ("beta1",)
            hyperparameters = ("beta1",)
