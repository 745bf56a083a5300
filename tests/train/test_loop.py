"""TrainingLoop: training, events and cancellation, the compiled (trace-once) steps, the
update_start split, eager mode, mixed precision with fp16 loss scaling, dropout keys, and the
errors for bad arguments."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py import losses, optimizers, train
from s4tf_py.data import InferenceBatches, TrainingEpochs, digits, train_validation_split
from s4tf_py.debug import NonFiniteError
from s4tf_py.nn.dropout import Dropout
from s4tf_py.train import (Callback, CancelBatch, CancelEpoch, CancelFit, Event,
                           TrainingLoop)


class MLP(s4.nn.Layer):
    l1: s4.nn.Dense
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(s4.relu(self.l1(x)))


def mlp(hidden=32, seed=0):
    return MLP(l1=s4.nn.Dense(64, hidden, seed=seed), l2=s4.nn.Dense(hidden, 10, seed=seed + 1))


def digit_data(n=None):
    d = digits()
    x, y = d.images.reshape(-1, 64), d.labels
    if n:
        x, y = x[:n], y[:n]
    return train_validation_split((x, y), 0.2, seed=0, stratify=y)


def small(n_train=64, n_valid=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_train + n_valid, 64)).astype(np.float32)
    y = rng.integers(0, 10, n_train + n_valid).astype(np.int32)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def make_loop(train_set, valid_set=None, *, batch_size=16, lr=1e-2, **kw):
    kw.setdefault("progress", False)
    return TrainingLoop(
        training=TrainingEpochs(train_set, batch_size=batch_size, seed=0, prefetch=0),
        validation=None if valid_set is None else InferenceBatches(valid_set, 32, prefetch=0),
        optimizer=lambda m: optimizers.Adam(for_=m, learning_rate=lr),
        loss_function=losses.softmax_cross_entropy, **kw)


def test_fit_trains_digits_with_compiled_steps_that_trace_once():
    train_set, valid_set = digit_data()
    model = mlp()
    first_layer = model.l1
    loop = make_loop(train_set, valid_set, batch_size=64, metrics=["accuracy"])
    before = s4.metrics()["function_traces"]
    out = loop.fit(model, epochs=4)
    assert out is model and model.l1 is first_layer  # the caller's objects hold the result
    assert loop.train_step.traces == 1
    assert loop.eval_step.traces == 2              # full validation batches and the last one
    assert s4.metrics()["function_traces"] - before == 3
    h = loop.history
    assert [r["epoch"] for r in h] == [1, 2, 3, 4] and h[-1]["step"] == 4 * 22
    assert h[-1]["train_loss"] < 0.5 * h[0]["train_loss"]
    assert h[-1]["valid_accuracy"] > 0.9
    assert set(h[0]) >= {"train_loss", "train_accuracy", "valid_loss", "valid_accuracy"}
    # the recorder's numbers are the loop's: the epoch's train loss is the mean of its steps
    np.testing.assert_allclose(h[-1]["train_loss"],
                               np.mean(loop.recorder.batch_losses[-22:]), rtol=1e-12)
    # the model is readable (no donated buffer leaked to the caller) and right
    logits = model(s4.Tensor(valid_set[0])).numpy()
    assert (logits.argmax(1) == valid_set[1]).mean() == pytest.approx(h[-1]["valid_accuracy"])
    assert loop.optimizer.step == 4 * 22


class Recorder(Callback):
    def __init__(self, update_start=False):
        self.events = []
        if update_start:
            self.on_update_start = lambda loop: self.events.append("update_start")

    def __call__(self, loop, event):
        if event is not Event.UPDATE_START:
            self.events.append(event.value)
        super().__call__(loop, event)


def _epoch(n_train, n_valid, update=False):
    batch = ["batch_start"] + (["update_start"] if update else []) + ["batch_end"]
    return (["epoch_start", "training_start"] + batch * n_train + ["training_end",
            "validation_start"] + ["batch_start", "inference_prediction_end", "batch_end"] *
            n_valid + ["validation_end", "epoch_end"])


def test_events_come_in_s4tf_order_and_update_start_only_to_who_asks():
    train_set, valid_set = small(32, 20)
    plain = Recorder()
    asking = Recorder(update_start=True)

    def fn_events(loop, event, seen=[]):               # a plain function gets everything
        seen.append(event.value)
        fn_events.seen = seen

    loop = make_loop(train_set, valid_set, callbacks=[plain, asking, fn_events])
    loop.fit(mlp(), epochs=2)
    assert plain.events == ["fit_start"] + _epoch(2, 1) * 2 + ["fit_end"]
    want = ["fit_start"] + _epoch(2, 1, update=True) * 2 + ["fit_end"]
    assert asking.events == want and fn_events.seen == want
    # asking for update_start splits the step in two compiled functions, each traced once
    assert loop.grad_step.traces == 1 and loop.update_step.traces == 1
    assert loop.train_step.traces == 0


def test_an_update_start_callback_sees_and_can_change_the_gradient():
    train_set, _ = small(32)

    class Freeze(Callback):
        def on_update_start(self, loop):
            g = loop.last_step_gradient
            assert isinstance(g, MLP.TangentVector) and g.l1.weight.shape == (64, 32)
            loop.last_step_gradient = s4.tree.map_leaves(lambda t: t * 0.0, g)

    model = mlp()
    w0 = model.l1.weight.numpy().copy()
    loop = make_loop(train_set, callbacks=[Freeze()], lr=0.0)
    loop.fit(model, epochs=1)
    # Adam with zero gradients and zero learning rate leaves the weights alone
    np.testing.assert_array_equal(model.l1.weight.numpy(), w0)
    assert loop.optimizer.step == 2


def test_cancel_batch_skips_the_update_and_its_batch_end():
    train_set, _ = small(64)

    class SkipOdd(Recorder):
        def on_batch_start(self, loop):
            if loop.is_training and loop.batch_index % 2 == 1:
                raise CancelBatch()

    cb = SkipOdd()
    loop = make_loop(train_set, callbacks=[cb])
    loop.fit(mlp(), epochs=1)
    assert loop.optimizer.step == 2 and loop.step == 2
    assert cb.events.count("batch_start") == 4 and cb.events.count("batch_end") == 2


def test_cancel_epoch_ends_the_epoch_and_the_next_one_runs():
    train_set, valid_set = small(64, 16)

    class StopEpoch0(Recorder):
        def on_batch_end(self, loop):
            if loop.is_training and loop.epoch_index == 0 and loop.batch_index == 1:
                raise CancelEpoch()

    cb = StopEpoch0()
    loop = make_loop(train_set, valid_set, callbacks=[cb])
    loop.fit(mlp(), epochs=2)
    first = cb.events[:cb.events.index("epoch_end") + 1]
    assert first == ["fit_start", "epoch_start", "training_start"] + \
        ["batch_start", "batch_end"] * 2 + ["epoch_end"]       # no validation in epoch 0
    assert loop.step == 2 + 4 and len(loop.history) == 2


@pytest.mark.parametrize("how", ["raise", "flag"])
def test_cancel_fit_or_request_stop_ends_the_fit_with_fit_end(how):
    train_set, _ = small(64)

    class Stop(Recorder):
        def on_batch_end(self, loop):
            if loop.step == 3:
                if how == "raise":
                    raise CancelFit()
                loop.request_stop("enough")

    cb = Stop()
    loop = make_loop(train_set, callbacks=[cb])
    loop.fit(mlp(), epochs=5)
    assert loop.step == 3 and cb.events[-1] == "fit_end"
    assert "training_end" not in cb.events
    assert loop.stop_requested == (how == "flag")


def test_eager_mode_matches_the_compiled_step():
    train_set, _ = small(48)
    eager = make_loop(train_set, compile=False)
    m1 = eager.fit(mlp(), epochs=2)
    compiled = make_loop(train_set)
    m2 = compiled.fit(mlp(), epochs=2)
    np.testing.assert_allclose(eager.recorder.batch_losses, compiled.recorder.batch_losses,
                               rtol=1e-5)
    np.testing.assert_allclose(m1.l2.weight.numpy(), m2.l2.weight.numpy(), rtol=1e-4,
                               atol=1e-6)


def test_the_learning_rate_changes_without_recompiling():
    train_set, _ = small(64)

    class Halve(Callback):
        def on_batch_start(self, loop):
            loop.optimizer.learning_rate = 0.01 * 0.5 ** loop.step

    loop = make_loop(train_set, callbacks=[Halve()])
    loop.fit(mlp(), epochs=2)
    assert loop.train_step.traces == 1
    assert loop.recorder.learning_rates == pytest.approx([0.01 * 0.5 ** k for k in range(8)])


def test_bf16_mixed_precision_trains_with_float32_master_weights():
    train_set, valid_set = digit_data(600)
    model = mlp()
    loop = make_loop(train_set, valid_set, batch_size=32, mixed_precision="bf16",
                     metrics=["accuracy"])
    loop.fit(model, epochs=3)
    losses_ = [h["train_loss"] for h in loop.history]
    assert losses_[2] < losses_[1] < losses_[0] and losses_[2] < 0.6 * losses_[0]
    assert loop.history[-1]["valid_accuracy"] > 0.75
    assert model.l1.weight.dtype == s4.float32 and loop.optimizer.state["first_moments"][
        "l1.weight"].dtype == s4.float32
    assert loop.last_step_output.dtype == s4.float32           # the loss ran in float32
    # the step computes in bfloat16: its IR casts the weights and the inputs
    x, y = s4.Tensor(train_set[0][:4]), s4.Tensor(train_set[1][:4])
    ir = str(s4.trace(loop.train_step.fn, model, loop.optimizer, x, y, loop._rng(), None))
    assert "bf16[64,32]" in ir and "bf16[4,64]" in ir


def test_fp16_loss_scaling_skips_an_overflowing_step_and_backs_off():
    train_set, _ = small(96)
    model = mlp()
    w0 = model.l1.weight.numpy().copy()
    scaler = train.DynamicLossScale(initial=2.0 ** 40, growth_interval=3)
    seen = []

    class Watch(Callback):
        def on_batch_end(self, loop):
            seen.append((loop.loss_scale, loop.skipped_steps,
                         loop.model.l1.weight.numpy().copy(), loop.optimizer.step))

    loop = make_loop(train_set, mixed_precision="fp16", loss_scale=scaler,
                     callbacks=[Watch()])
    loop.fit(model, epochs=4)
    scale1, skipped1, w1, opt_step1 = seen[0]
    # 2**40 times the loss overflows float16 gradients: step 1 is skipped...
    assert skipped1 == 1 and opt_step1 == 0 and scale1 == 2.0 ** 39
    np.testing.assert_array_equal(w1, w0)
    # ...as are the next ones, each halving the scale, until it fits float16
    skipped = [s[1] for s in seen]
    k = next(i for i in range(1, len(seen)) if skipped[i] == skipped[i - 1])   # 1st good step
    assert 10 < k < 24 and skipped[:k] == list(range(1, k + 1))
    assert seen[k - 1][0] == 2.0 ** (40 - k) and seen[k][3] == 1
    assert seen[k + 1][0] == 2.0 ** (40 - k)
    assert seen[k + 2][0] == 2.0 ** (41 - k)          # after 3 good steps the scale doubles
    assert loop.optimizer.step == loop.step - loop.skipped_steps
    assert not np.array_equal(model.l1.weight.numpy(), w0)
    assert np.isfinite(loop.recorder.batch_losses).all()
    assert loop.train_step.traces == 1


def test_dropout_gets_a_fresh_key_every_step_and_the_run_is_reproducible():
    class Dropper(s4.nn.Layer):
        dense: s4.nn.Dense
        drop: Dropout

        def __call__(self, x):
            return self.drop(self.dense(x))

    x = np.ones((8, 64), np.float32)
    y = np.zeros(8, np.int32)
    batches = [(x, y)] * 4

    def run(seed):
        model = Dropper(dense=s4.nn.Dense(64, 10, seed=0), drop=Dropout(probability=0.5))
        loop = TrainingLoop(training=batches, optimizer=optimizers.SGD(for_=model,
                                                                       learning_rate=0.0),
                            loss_function=losses.softmax_cross_entropy, progress=False,
                            seed=seed)
        loop.fit(model, epochs=1)
        return loop.recorder.batch_losses, loop.train_step.traces

    a, traces = run(0)
    assert traces == 1
    assert len(set(a)) == 4            # same batch, same weights: only the masks differ
    assert run(0)[0] == a and run(1)[0] != a


def test_a_non_finite_loss_stops_the_fit():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    bad = x.copy()
    bad[3, 5] = np.nan
    loop = TrainingLoop(training=[(x, y), (bad, y), (x, y)],
                        optimizer=lambda m: optimizers.SGD(for_=m),
                        loss_function=losses.softmax_cross_entropy, progress=False)
    with pytest.raises(NonFiniteError, match=r"loss is nan at epoch 1, batch 1 "
                                                      r"\(step 2\).*debug_nans=True"):
        loop.fit(mlp(), epochs=1)
    assert loop.step == 2


def test_batches_as_lists_dicts_and_pytrees():
    class TwoInputs(s4.nn.Layer):
        a: s4.nn.Dense
        b: s4.nn.Dense

        def __call__(self, x):
            return self.a(x["left"]) + self.b(x["right"])

    rng = np.random.default_rng(1)
    left = rng.standard_normal((8, 3)).astype(np.float32)
    right = rng.standard_normal((8, 5)).astype(np.float32)
    y = rng.integers(0, 2, 8).astype(np.int32)
    model = TwoInputs(a=s4.nn.Dense(3, 2, seed=0), b=s4.nn.Dense(5, 2, seed=1))
    loop = TrainingLoop(training=[{"inputs": {"left": left, "right": right}, "targets": y}],
                        validation=[[{"left": left, "right": right}, s4.Tensor(y)]],
                        optimizer=optimizers.SGD(for_=model, learning_rate=0.5),
                        loss_function="softmax_cross_entropy", metrics=["accuracy"],
                        progress=False)
    loop.fit(model, epochs=15)
    assert loop.history[-1]["train_loss"] < loop.history[0]["train_loss"]
    assert loop.history[-1]["valid_accuracy"] > 0.7


def test_bad_arguments_give_clear_errors():
    train_set, _ = small(32)
    opt = lambda m: optimizers.SGD(for_=m)   # noqa: E731
    with pytest.raises(ValueError, match="s4.losses has no loss named 'nope'"):
        TrainingLoop(training=[], optimizer=opt, loss_function="nope")
    with pytest.raises(ValueError, match="mixed_precision must be None, 'bf16' or 'fp16'"):
        TrainingLoop(training=[], optimizer=opt, loss_function="l2", mixed_precision="fp8")
    with pytest.raises(ValueError, match="loss_scale is for mixed_precision='fp16' only"):
        TrainingLoop(training=[], optimizer=opt, loss_function="l2", loss_scale=8.0)
    with pytest.raises(ValueError, match="checkpoint_every needs checkpoint_dir"):
        TrainingLoop(training=[], optimizer=opt, loss_function="l2", checkpoint_every=3)
    loop = TrainingLoop(training=[(train_set[0],)], optimizer=opt,
                        loss_function="softmax_cross_entropy", progress=False)
    with pytest.raises(ValueError, match=r"a batch must be \(inputs, targets\); got a tuple "
                                         r"of 1"):
        loop.fit(mlp(), epochs=1)
    loop = TrainingLoop(training=iter([train_set]), optimizer=opt,
                        loss_function="softmax_cross_entropy", progress=False)
    with pytest.raises(TypeError, match="training= is an iterator"):
        loop.fit(mlp(), epochs=1)
    with pytest.raises(ValueError, match="epochs must be an int >= 0"):
        loop.fit(mlp(), epochs=-1)


def _address(t):
    return t._node.value.__array_interface__["data"][0]


def test_donation_updates_in_place_yet_tensors_held_elsewhere_keep_their_values():
    train_set, _ = small(64)
    model = mlp()
    before = model.l1.weight.copy()                 # a copy taken before fit (shares storage)
    held = model.l2.bias
    want_before, want_held = before.numpy().copy(), held.numpy().copy()
    addresses = []

    class Watch(Callback):
        def on_batch_start(self, loop):
            addresses.append(_address(loop.model.l1.weight))

        def on_epoch_end(self, loop):
            self.kept = loop.model.l1.weight          # kept by a callback across steps

    watch = Watch()
    loop = make_loop(train_set, callbacks=[watch])
    loop.fit(model, epochs=2, device=s4.Device("llvm"))
    np.testing.assert_array_equal(before.numpy(), want_before)
    np.testing.assert_array_equal(held.numpy(), want_held)
    assert np.isfinite(watch.kept.numpy()).all()
    # after the first step (which copies: the caller still held the buffers), in place
    assert len(set(addresses[1:4])) == 1 and addresses[0] != addresses[1]
    assert not np.array_equal(model.l1.weight.numpy(), want_before)


def test_fit_on_another_device_moves_the_model_the_optimizer_and_the_batches():
    train_set, _ = small(32)
    ref = s4.Device("reference")
    seen = []

    class Where(Callback):
        def on_batch_end(self, loop):
            seen.append((loop.last_step_input.device, loop.model.l1.weight.device))

    loop = make_loop(train_set, callbacks=[Where()])
    model = loop.fit(mlp(), epochs=1, device=ref)
    assert seen == [(ref, ref)] * 2
    assert model.l2.bias.device is ref and loop.optimizer.state["step"].device is ref


def test_batchnorm_state_is_updated_in_float32_under_mixed_precision():
    from s4tf_py.nn.normalization import BatchNorm

    class Net(s4.nn.Layer):
        dense: s4.nn.Dense
        bn: BatchNorm

        def __call__(self, x):
            return self.bn(self.dense(x))

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((64, 4)) * 3 + 5).astype(np.float32)
    y = rng.integers(0, 3, 64).astype(np.int32)
    stats = {}
    for mp in (None, "bf16"):
        model = Net(dense=s4.nn.Dense(4, 3, seed=0), bn=BatchNorm(feature_count=3))
        loop = TrainingLoop(training=[(x[:32], y[:32]), (x[32:], y[32:])],
                            optimizer=optimizers.SGD(for_=model, learning_rate=0.01),
                            loss_function="softmax_cross_entropy", progress=False,
                            mixed_precision=mp)
        loop.fit(model, epochs=3)
        assert model.bn.running_mean.dtype == s4.float32 and loop.train_step.traces == 1
        stats[mp] = model.bn.running_mean.numpy()
    assert np.abs(stats[None]).max() > 0.05                  # the statistics moved
    np.testing.assert_allclose(stats["bf16"], stats[None], rtol=2e-2, atol=2e-3)


def test_a_fixed_fp16_loss_scale_stays_put():
    train_set, _ = small(64)
    loop = make_loop(train_set, mixed_precision="fp16", loss_scale=1024.0)
    loop.fit(mlp(), epochs=2)
    assert loop.loss_scale == 1024.0 and loop.skipped_steps == 0
    assert loop.recorder.batch_losses[-1] < loop.recorder.batch_losses[0]
