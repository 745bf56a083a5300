"""The Layer protocol: Sequential and sequenced, key paths, copy/move value semantics, summary,
state (no_derivative tensors) through gradients and compiled steps, Flatten/Reshape/Function,
and wrong-input errors that name the layer's key path, the shapes and the caller's line."""
from __future__ import annotations

import copy
import os
import pickle

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py.nn import Dense, Flatten, Function, Reshape, Sequential

THIS_FILE = os.path.basename(__file__)
RNG = np.random.default_rng(0)


def t64(a) -> s4.Tensor:
    return s4.Tensor(np.asarray(a, dtype=np.float64))


def dense64(i, o, seed):
    return Dense(i, o, seed=seed, dtype=s4.float64)


def npv(t) -> np.ndarray:
    return np.asarray(t.numpy(), dtype=np.float64)


class Stats(s4.nn.Layer):
    """A BatchNorm-style layer: a parameter and a running mean (state) updated in training."""
    scale: s4.Tensor
    running_mean: s4.Tensor = s4.no_derivative(default=None)
    momentum: float = s4.no_derivative(default=0.5)

    def __call__(self, x):
        if s4.nn.is_training():
            batch = s4.without_derivative(x.mean(axis=0))
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * batch
            return (x - x.mean(axis=0)) * self.scale
        return (x - self.running_mean) * self.scale


def stats(n, dtype=s4.float32):
    return Stats(scale=s4.ones((n,), dtype=dtype), running_mean=s4.zeros((n,), dtype=dtype))


class Inner(s4.nn.Layer):
    dense: Dense

    def __call__(self, x):
        return s4.tanh(self.dense(x))


class Net(s4.nn.Layer):
    block: Sequential
    head: Dense

    def __call__(self, x):
        return self.head(self.block(x))


def _net(dtype=s4.float32):
    return Net(block=Sequential(Flatten(), Inner(dense=Dense(6, 4, seed=0, dtype=dtype)),
                                stats(4, dtype)),
               head=Dense(4, 2, seed=1, dtype=dtype))


# ---- Sequential ----------------------------------------------------------------------------------

def test_sequential_applies_layers_in_order_and_names_them_by_position():
    l1, l2 = dense64(3, 4, 0), dense64(4, 2, 1)
    model = Sequential(l1, s4.relu, l2)
    x = t64(RNG.standard_normal((5, 3)))
    want = npv(l2(s4.relu(l1(x))))
    np.testing.assert_allclose(npv(model(x)), want, rtol=1e-12)
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                        "2.bias"]
    assert model[0] is l1 and model[-1] is l2 and len(model) == 3
    assert isinstance(model[1], Function) and model[1].body is s4.relu
    assert [type(layer).__name__ for layer in model] == ["Dense", "Function", "Dense"]
    tail = model[1:]
    assert isinstance(tail, Sequential) and len(tail) == 2 and tail[1] is l2
    assert isinstance(model, Sequential) and type(model).__name__ == "Sequential"
    # one class per length: the structure, not the object, is what a compiled step keys on
    assert type(Sequential(dense64(2, 2, 3), dense64(2, 2, 4), s4.tanh)) is type(model)


def test_sequential_rejects_nothing_and_non_callables():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential()
    with pytest.raises(TypeError, match="argument 1 is a int"):
        Sequential(Flatten(), 3)


def test_nested_key_paths_in_parameters_and_state_dict():
    net = _net()
    assert [n for n, _ in net.named_parameters()] == [
        "block.1.dense.weight", "block.1.dense.bias", "block.2.scale", "head.weight",
        "head.bias"]
    sd = net.state_dict()
    assert list(sd) == ["block.1.dense.weight", "block.1.dense.bias", "block.2.scale",
                        "block.2.running_mean", "head.weight", "head.bias"]
    assert sd["block.2.running_mean"] is net.block[2].running_mean
    inner = Sequential(Sequential(dense64(2, 2, 0)), dense64(2, 1, 1))
    assert [n for n, _ in inner.named_parameters()][:2] == ["0.0.weight", "0.0.bias"]


def test_sequential_gradient_is_its_tangent_vector_and_matches_the_composition():
    l1, l2 = dense64(3, 4, 0), dense64(4, 2, 1)
    model = Sequential(l1, s4.tanh, l2)
    x = t64(RNG.standard_normal((5, 3)))
    g = s4.gradient(at=model, of=lambda m: (m(x) ** 2).sum())
    assert type(g) is type(model).TangentVector
    assert type(g).__qualname__ == "Sequential.TangentVector" and len(g) == 3
    assert isinstance(g, Sequential.TangentVector)
    z = type(g).zero(like=model)
    assert type(z) is type(g) and npv(z[0].weight).tolist() == [[0.0] * 4] * 3
    gw1, gb1, gw2, gb2 = s4.gradient(
        at=(l1.weight, l1.bias, l2.weight, l2.bias),
        of=lambda w1, b1, w2, b2: (((s4.tanh(x @ w1 + b1)) @ w2 + b2) ** 2).sum())
    for got, want in [(g[0].weight, gw1), (g[0].bias, gb1), (g[2].weight, gw2),
                      (g[2].bias, gb2)]:
        np.testing.assert_allclose(npv(got), npv(want), rtol=1e-12)
    # the vector space and move(along=) work on it like on any tangent vector
    before = (model(x) ** 2).sum().item()
    model.move(along=-0.01 * g)
    assert (model(x) ** 2).sum().item() < before


def test_sequential_derivatives_match_finite_differences(on_the_reference_backend):
    x = t64(RNG.standard_normal((2, 3)))
    w1, b1 = t64(RNG.standard_normal((3, 4))), t64(RNG.standard_normal(4))
    w2, b2 = t64(RNG.standard_normal((4, 2))), t64(RNG.standard_normal(2))

    def f(x, w1, b1, w2, b2):
        model = Sequential(Dense(weight=w1, bias=b1), s4.tanh, Flatten(),
                           Dense(weight=w2, bias=b2), Reshape((-1,)))
        return model(x)
    s4.check_grads(f, (x, w1, b1, w2, b2), order=2)


def test_optimizer_updates_a_sequential_and_a_compiled_step_traces_once():
    model = Sequential(Dense(3, 8, seed=0), s4.relu, Dense(8, 1, seed=1))
    eager = model.copy()
    x = s4.Tensor(RNG.standard_normal((16, 3)).astype(np.float32))
    y = s4.Tensor(RNG.standard_normal((16, 1)).astype(np.float32))
    opt = s4.optimizers.SGD(for_=model, learning_rate=0.05)
    eager_opt = s4.optimizers.SGD(for_=eager, learning_rate=0.05)

    def loss_fn(m):
        return ((m(x) - y) ** 2).mean()

    @s4.compile
    def step(model, opt):
        loss, g = s4.value_with_gradient(at=model, of=loss_fn)
        opt.update(model, along=g)
        return model, opt, loss
    losses = []
    for _ in range(4):
        model, opt, loss = step(model, opt)
        losses.append(loss.item())
        eager_opt.update(eager, along=s4.gradient(at=eager, of=loss_fn))
    assert step.traces == 1
    assert losses[-1] < losses[0]
    assert isinstance(model, Sequential) and len(model) == 3
    for (n, a), (_, b) in zip(model.named_parameters(), eager.named_parameters()):
        np.testing.assert_allclose(npv(a), npv(b), rtol=1e-5, atol=1e-6, err_msg=n)


def test_sequenced_passes_through_the_layers():
    l1, l2 = dense64(3, 4, 0), dense64(4, 2, 1)
    x = t64(RNG.standard_normal((2, 3)))
    got = s4.nn.sequenced(x, through=[l1, s4.relu, l2])
    np.testing.assert_allclose(npv(got), npv(l2(s4.relu(l1(x)))), rtol=1e-12)
    assert s4.nn.sequenced(x, through=l1).shape == (2, 4)
    with pytest.raises(TypeError):
        s4.nn.sequenced(x, [l1])        # through= is a keyword, as S4TF's label


def test_sequential_pickles_and_deep_copies():
    model = Sequential(Dense(2, 3, seed=0), Flatten())
    for other in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert type(other) is type(model)
        np.testing.assert_array_equal(npv(other[0].weight), npv(model[0].weight))


# ---- copy and move -------------------------------------------------------------------------------

def test_copy_is_an_independent_value():
    net = _net()
    twin = net.copy()
    assert type(twin) is Net and twin is not net and twin.block is not net.block
    assert type(twin.block) is type(net.block)
    assert twin.block[1].dense is not net.block[1].dense
    assert twin.head.activation is net.head.activation      # configuration is shared
    before = {k: npv(v).copy() for k, v in net.state_dict().items()}
    twin.head.weight[0, 0] = 123.0                          # an in-place write on the copy
    twin.block[2].running_mean = s4.ones((4,))              # new state on the copy
    twin.move(along=s4.gradient(at=twin, of=lambda m: m(s4.ones((3, 2, 3))).sum()))
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(npv(v), before[k], err_msg=k)
    assert twin.head.weight[0, 0].item() != before["head.weight"][0, 0]
    assert npv(twin.block[2].running_mean).tolist() == [1.0] * 4


def test_copy_keeps_tied_layers_tied():
    shared = Dense(2, 2, seed=0)
    model = Sequential(shared, shared)
    twin = model.copy()
    assert twin[0] is twin[1] and twin[0] is not shared


def test_move_to_a_device_moves_parameters_and_state_in_place():
    net = _net()
    held = net.head.weight
    ref = s4.Device("reference")
    assert net.move(to=ref) is net
    assert {v.device for v in net.state_dict().values()} == {ref}
    assert net.block[2].running_mean.device == ref
    np.testing.assert_array_equal(npv(net.head.weight), npv(held))
    moved = _net().copy(to=ref)
    assert {v.device for v in moved.state_dict().values()} == {ref}
    with pytest.raises(TypeError, match="one of along="):
        net.move()
    with pytest.raises(TypeError, match="one of along="):
        net.move(along=s4.gradient(at=net, of=lambda m: m(s4.ones((1, 6), device=ref)).sum()),
                 to=ref)
    with pytest.raises(TypeError, match="s4.Device"):
        net.move(to="reference")


# ---- state ---------------------------------------------------------------------------------------

def test_state_is_saved_copied_and_not_differentiated():
    layer = stats(3)
    assert [n for n, _ in layer.named_parameters()] == ["scale"]
    assert list(layer.state_dict()) == ["scale", "running_mean"]
    g = s4.gradient(at=layer, of=lambda m: m(s4.ones((2, 3))).sum())
    assert type(g).__s4_fields__ == ("scale",)


def test_a_derivative_operators_copy_writes_state_back_to_the_model():
    layer = stats(2)
    x = s4.Tensor(np.array([[1.0, 2.0], [3.0, 6.0]], dtype=np.float32))
    with s4.learning_phase("training"):
        s4.gradient(at=layer, of=lambda m: (m(x) ** 2).sum())
    assert npv(layer.running_mean).tolist() == [1.0, 2.0]        # 0.5 * 0 + 0.5 * mean
    # an independent copy does not write back
    twin = layer.copy()
    with s4.learning_phase("training"):
        twin(x)
    assert npv(layer.running_mean).tolist() == [1.0, 2.0]
    assert npv(twin.running_mean).tolist() == [1.5, 3.0]


def test_a_compiled_step_takes_and_returns_state():
    net = _net()
    eager = net.copy()
    x = s4.Tensor(RNG.standard_normal((8, 2, 3)).astype(np.float32))
    opt = s4.optimizers.SGD(for_=net, learning_rate=0.1)
    eager_opt = s4.optimizers.SGD(for_=eager, learning_rate=0.1)

    def loss_fn(m):
        return (m(x) ** 2).mean()

    @s4.compile
    def step(model, opt):
        with s4.learning_phase("training"):
            loss, g = s4.value_with_gradient(at=model, of=loss_fn)
        opt.update(model, along=g)
        return model, opt, loss
    first = net
    for _ in range(3):
        net, opt, _ = step(net, opt)
        with s4.learning_phase("training"):
            g = s4.gradient(at=eager, of=loss_fn)
        eager_opt.update(eager, along=g)
    assert step.traces == 1
    np.testing.assert_allclose(npv(net.block[2].running_mean),
                               npv(eager.block[2].running_mean), rtol=1e-5, atol=1e-6)
    assert np.any(npv(net.block[2].running_mean) != 0)
    # the model passed in keeps its state: the trace's writes stay inside the step
    assert npv(first.block[2].running_mean).tolist() == [0.0] * 4
    # inference with the learned state, compiled and eager, agree
    f = s4.compile(lambda m, x: m(x))
    np.testing.assert_allclose(npv(f(net, x)), npv(net(x)), rtol=1e-5, atol=1e-6)


class Masked(s4.nn.Layer):
    w: s4.Tensor
    mask: s4.Tensor = s4.no_derivative(default=None)      # integer state: a constant

    def __call__(self, x):
        return x * self.w * self.mask.astype(x.dtype)


def test_integer_state_is_a_constant_of_gradients_and_compiled_steps():
    m = Masked(w=s4.ones((3,)), mask=s4.Tensor(np.array([1, 0, 1], dtype=np.int32)))
    g = s4.gradient(at=m, of=lambda m: m(s4.ones((2, 3))).sum())
    assert g.w.tolist() == [2.0, 0.0, 2.0]
    f = s4.compile(lambda m, x: m(x))
    x = s4.ones((1, 3))
    assert f(m, x).tolist() == [[1.0, 0.0, 1.0]]
    same = Masked(w=s4.ones((3,)), mask=s4.Tensor(np.array([1, 0, 1], dtype=np.int32)))
    assert f(same, x).tolist() == [[1.0, 0.0, 1.0]] and f.traces == 1
    other = Masked(w=s4.ones((3,)), mask=s4.Tensor(np.array([0, 1, 1], dtype=np.int32)))
    assert f(other, x).tolist() == [[0.0, 1.0, 1.0]] and f.traces == 2
    assert list(m.state_dict()) == ["w", "mask"]


def test_checkpoints_hold_parameters_and_state_by_key_path(tmp_path):
    net = _net()
    with s4.learning_phase("training"):
        s4.gradient(at=net, of=lambda m: m(s4.ones((3, 2, 3)) * 2.0).sum())
    assert np.any(npv(net.block[2].running_mean) != 0)
    path = str(tmp_path / "net.safetensors")
    s4.save(net, path)
    assert sorted(s4.load(path)) == sorted(net.state_dict())
    fresh = _net()
    assert fresh.load_state(path).ok
    for (k, a), (_, b) in zip(fresh.state_dict().items(), net.state_dict().items()):
        np.testing.assert_array_equal(npv(a), npv(b), err_msg=k)
    # copy.copy of a derivative's copy is not linked to the model
    copies = []
    s4.gradient(at=net, of=lambda m: copies.append(m) or m(s4.ones((1, 6))).sum())
    shallow = copy.copy(copies[0].block[2])
    shallow.running_mean = s4.full((4,), 7.0)
    assert 7.0 not in npv(net.block[2].running_mean).tolist()
    copies[0].block[2].running_mean = s4.full((4,), 5.0)     # ... while the copy itself is
    assert npv(net.block[2].running_mean).tolist() == [5.0] * 4


# ---- summary -------------------------------------------------------------------------------------

def _mlp():
    return Sequential(Reshape((-1, 4, 7)), Flatten(), Dense(28, 16, seed=0, activation=s4.relu),
                      Sequential(Dense(16, 8, seed=1), Dense(8, 3, seed=2)))


def test_summary_lists_key_paths_types_output_shapes_and_counts():
    model = _mlp()
    before = s4.metrics()
    s = model.summary(input_shape=(2, 28))
    after = s4.metrics()
    assert [r.path for r in s.rows] == ["0", "1", "2", "3", "3.0", "3.1"]
    assert [r.type for r in s.rows] == ["Reshape", "Flatten", "Dense", "Sequential", "Dense",
                                        "Dense"]
    assert [r.output_shape for r in s.rows] == [(2, 4, 7), (2, 28), (2, 16), (2, 3), (2, 8),
                                                (2, 3)]
    assert [r.parameters for r in s.rows] == [0, 0, 28 * 16 + 16, 16 * 8 + 8 + 8 * 3 + 3,
                                              16 * 8 + 8, 8 * 3 + 3]
    assert s.total_parameters == 28 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3 == 627
    assert s.total_state == 0 and s.output_shape == (2, 3)
    assert s.input_shapes == [((2, 28), "float32")]
    text = str(s)
    for piece in ["Sequential: input (2, 28) float32", "Reshape", "(2, 4, 7)", "3.1", "627",
                  "Output: (2, 3)"]:
        assert piece in text, (piece, text)
    assert repr(s) == text
    # traced, not run
    assert after["materializations"] == before["materializations"]
    assert after["cache_misses"] == before["cache_misses"]


def test_summary_counts_state_and_works_without_an_input():
    net = _net()
    s = net.summary()
    assert [r.path for r in s.rows] == ["block", "block.0", "block.1", "block.1.dense",
                                        "block.2", "head"]
    assert all(r.output_shape is None for r in s.rows)
    assert s.total_parameters == 6 * 4 + 4 + 4 + 4 * 2 + 2
    assert s.total_state == 4 and s.rows[4].state == 4
    assert "State" in str(s) and "Output shape" not in str(s)
    traced = net.summary(input_shape=(5, 2, 3))
    assert traced.rows[1].output_shape == (5, 6) and traced.output_shape == (5, 2)


def test_summary_of_a_layer_with_several_inputs():
    class Pair(s4.nn.Layer):
        a: Dense
        b: Dense

        def __call__(self, x, y):
            return self.a(x) + self.b(y)
    s = Pair(a=Dense(3, 2, seed=0), b=Dense(5, 2, seed=1)).summary(input_shape=[(4, 3), (4, 5)])
    assert [r.output_shape for r in s.rows] == [(4, 2), (4, 2)]
    assert s.output_shape == (4, 2)


# ---- errors name the key path --------------------------------------------------------------------

def test_wrong_input_shape_names_the_key_path_shapes_and_this_file():
    net = _net()
    with pytest.raises(s4.ShapeError) as info:
        net(s4.ones((2, 10)))                  # flattens to 10 features, block.1.dense wants 6
    msg = str(info.value)
    assert "layer block.1.dense (Dense) of Net" in msg, msg
    assert "expects inputs with 6 features" in msg and "got shape (2, 10)" in msg, msg
    assert THIS_FILE in msg, msg
    assert info.value.layer_path == "block.1.dense" and info.value.layer_type == "Dense"
    assert msg.count("layer block.1.dense") == 1          # rewritten once per level, not stacked


def test_key_path_error_inside_compile_and_gradient():
    net = _net()
    f = s4.compile(lambda m, x: m(x))
    for run in (lambda: f(net, s4.ones((2, 10))),
                lambda: s4.gradient(at=net, of=lambda m: m(s4.ones((2, 10))).sum())):
        with pytest.raises(s4.ShapeError) as info:
            run()
        msg = str(info.value)
        assert "layer block.1.dense (Dense) of Net" in msg and "got shape (2, 10)" in msg, msg
        assert THIS_FILE in msg, msg


def test_key_path_error_of_a_library_layer_and_of_a_layer_called_past_its_parent():
    model = Sequential(Flatten(), Reshape((-1, 5)), Dense(5, 1, seed=0))
    with pytest.raises(s4.ShapeError) as info:
        model(s4.ones((2, 3)))
    msg = str(info.value)
    assert msg.startswith("layer 1 (Reshape) of Sequential: expects an input that fills "
                          "shape (-1, 5), got shape (2, 3)"), msg
    assert f"{THIS_FILE}:" in msg

    class Skipper(s4.nn.Layer):
        block: Sequential

        def __call__(self, x):
            return self.block[1](x)            # the Sequential itself is never called
    with pytest.raises(s4.ShapeError, match=r"layer block\.1 \(Dense\) of Skipper"):
        Skipper(block=Sequential(Flatten(), Dense(3, 1, seed=0)))(s4.ones((2, 4)))
    with pytest.raises(s4.ShapeError, match=r"layer 2 \(Dense\) of sequenced"):
        s4.nn.sequenced(s4.ones((2, 3)), through=[Flatten(), s4.relu, Dense(4, 1, seed=0)])


def test_an_error_of_the_called_layer_itself_is_unchanged():
    with pytest.raises(s4.ShapeError) as info:
        Dense(3, 1, seed=0)(s4.ones((2, 4)))
    assert str(info.value).startswith("Dense: expects inputs with 3 features")
    assert info.value.layer_path == ""


def test_user_layer_error_reports_both_lines():
    class Adder(s4.nn.Layer):
        bias: s4.Tensor

        def __call__(self, x):
            return x + self.bias                   # the op error's line is here

    class Outer(s4.nn.Layer):
        inner: Adder

        def __call__(self, x):
            return self.inner(x)
    with pytest.raises(s4.ShapeError) as info:
        Outer(inner=Adder(bias=s4.zeros((3,))))(s4.ones((2, 4)))
    msg = str(info.value)
    assert msg.startswith("layer inner (Adder) of Outer: add:"), msg
    assert "Outer called at" in msg and msg.count(THIS_FILE) == 2, msg


# ---- Flatten, Reshape, Function ------------------------------------------------------------------

def test_flatten_keeps_the_batch_dimension():
    x = s4.Tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    np.testing.assert_array_equal(npv(Flatten()(x)), np.arange(24).reshape(2, 12))
    assert Flatten()(s4.ones((5,))).shape == (5, 1)
    assert Flatten()(s4.zeros((0, 3, 2))).shape == (0, 6)
    with pytest.raises(s4.ShapeError, match="Flatten"):
        Flatten()(s4.Tensor(1.0))


def test_reshape_uses_the_whole_shape_as_s4tf():
    x = s4.Tensor(np.arange(12, dtype=np.float32).reshape(2, 6))
    np.testing.assert_array_equal(npv(Reshape((-1, 3, 2))(x)), np.arange(12).reshape(2, 3, 2))
    np.testing.assert_array_equal(npv(Reshape((3, 4))(x)), np.arange(12).reshape(3, 4))
    assert Reshape(12)(x).shape == (12,)
    assert Reshape([4, 3]).shape == (4, 3)
    with pytest.raises(ValueError, match="one -1"):
        Reshape((-1, -1))
    with pytest.raises(s4.ShapeError, match=r"fills shape \(5, -1\), got shape \(2, 6\)"):
        Reshape((5, -1))(x)


def test_function_wraps_a_closure_and_is_differentiable(on_the_reference_backend):
    w = t64([2.0, 3.0])
    layer = Function(lambda x: s4.sin(x) * w)
    assert layer.parameters() == [] and list(layer.state_dict()) == []
    s4.check_grads(lambda x: layer(x), (t64([0.3, -0.4]),), order=1)
    with pytest.raises(TypeError, match="callable"):
        Function(3)
    pair = Function(lambda a, b: a * b)
    assert pair(t64([2.0]), t64([4.0])).tolist() == [8.0]


# ---- the wrapper is transparent ------------------------------------------------------------------

def test_the_call_wrapper_keeps_name_doc_and_custom_derivatives():
    class Scale(s4.nn.Layer):
        w: s4.Tensor

        @s4.differentiable
        def __call__(self, x):
            """Multiplies by w."""
            return x * self.w

    @s4.derivative(of=Scale.__call__)
    def _vjp(self, x):
        return x * self.w, lambda ct: (Scale.TangentVector(w=3.0 * ct.sum(0)), ct)

    class Plain(s4.nn.Layer):
        def __call__(self, inputs):
            """Doc."""
            return inputs
    assert Plain.__call__.__name__ == "__call__" and Plain.__call__.__doc__ == "Doc."
    assert Plain()(inputs=s4.ones((1,))).tolist() == [1.0]     # its own parameter name
    assert Scale.__call__.__doc__ == "Multiplies by w."
    g = s4.gradient(at=Scale(w=s4.ones((2,))), of=lambda m: m(s4.ones((4, 2))).sum())
    assert g.w.tolist() == [12.0, 12.0]
