"""NaN hunting: ``find_nonfinite``, ``with debug_nans():`` (eager reads and compiled functions)
and ``TrainingLoop(debug_nans=True)`` report the first op that made a NaN or an Inf, its
inputs' statistics and the user's file:line, by replaying op by op on the reference backend."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py import losses, optimizers, train
from s4tf_py.debug import (NonFiniteError, debug_nans, enabled, find_nonfinite,
                           recording_locations)
from s4tf_py.ir.registry import all_primitives

HERE = __file__


def line_of(fn, text: str) -> int:
    """The line number of the first line of ``fn``'s source that contains ``text``."""
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, l in enumerate(lines) if text in l)


def blows_up(x, w):
    h = x @ w
    shifted = h - 4.0
    r = s4.sqrt(shifted)            # NaN where h < 4
    return (r * 2.0).sum()


def test_find_nonfinite_names_the_first_op_its_inputs_and_the_line():
    x = s4.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    w = s4.Tensor(np.eye(2, dtype=np.float32))
    report = find_nonfinite(blows_up, x, w, arg_names=["x", "w"])
    assert report.op == "sqrt" and report.kind == "nan"
    assert report.location[0] == HERE and report.location[1] == line_of(blows_up, "s4.sqrt(")
    (inp,) = report.inputs
    assert (inp.min, inp.max, inp.nans, inp.infs) == (-3.0, 0.0, 0, 0)
    assert inp.mean == pytest.approx(-1.5) and not inp.has_nan
    assert report.output.nans == 3 and report.output.has_nan
    text = str(report)
    assert "first NaN: op #" in text and "'sqrt'" in text
    assert f"{HERE}:{line_of(blows_up, 's4.sqrt(')}" in text
    assert "min -3, max 0, mean -1.5; no NaN/Inf" in text and "3 NaN" in text
    # all finite: no report
    assert find_nonfinite(blows_up, x * 10.0, w) is None


def test_an_inf_that_turns_into_a_nan_reports_both_and_an_input_nan_is_named():
    def f(x):
        big = s4.exp(x)             # overflows to Inf
        return big - big            # Inf - Inf = NaN

    report = find_nonfinite(f, s4.Tensor([1.0, 100.0]))
    assert report.op == "exp" and report.kind == "inf"
    assert report.location[1] == line_of(f, "s4.exp(")
    assert report.first_nan.op == "sub" and report.first_nan.location[1] == line_of(f, "big -")
    assert report.first_nan.inputs[0].infs == 1
    bad = s4.Tensor([1.0, float("nan")])
    report = find_nonfinite(lambda a, b: a + b, s4.ones((2,)), bad, arg_names=["a", "b"])
    assert report.op is None and report.input_name == "b" and report.output.nans == 1
    assert "the input b of lambda already holds NaN" in str(report)


def test_debug_nans_block_catches_an_eager_read_and_reports_the_line():
    x = s4.Tensor([4.0, -1.0])
    assert not enabled()
    with debug_nans():
        assert enabled()
        y = s4.sqrt(x) + 1.0                                   # the NaN is born here
        z = y * 3.0
        with pytest.raises(NonFiniteError) as ei:
            z.numpy()
    report = ei.value.report
    assert report.op == "sqrt"
    assert report.location == (HERE, line_of(test_debug_nans_block_catches_an_eager_read_and_reports_the_line, "y = s4.sqrt"), "test_debug_nans_block_catches_an_eager_read_and_reports_the_line")
    assert report.inputs[0].min == -1.0
    assert "s4.debug_nans: first NaN" in str(ei.value)
    # outside the block nothing is checked, and ops record no locations again
    assert not enabled()
    assert np.isnan((s4.sqrt(x) * 3.0).numpy()[1])
    assert not all(p.record_location for p in all_primitives())
    with recording_locations():
        assert all(p.record_location for p in all_primitives())


def test_debug_nans_block_checks_compiled_functions_and_retraces_them():
    @s4.compile
    def step(w, x):
        logits = x @ w
        return s4.log(logits).mean()            # log of a negative number

    w = s4.Tensor(np.array([[1.0], [-1.0]], np.float32))
    good = s4.Tensor(np.array([[2.0, 1.0]], np.float32))
    bad = s4.Tensor(np.array([[1.0, 2.0]], np.float32))
    step(w, bad)                                # outside the block: a NaN, silently
    assert step.traces == 1
    with debug_nans():
        assert step(w, good).item() == 0.0
        with pytest.raises(NonFiniteError) as ei:
            step(w, bad)
    assert step.traces == 2                     # traced again inside the block
    r = ei.value.report
    assert r.op == "log" and r.location[1] == line_of(step.fn, "s4.log(")
    assert r.inputs[0].min == -1.0


class Net(s4.nn.Layer):
    dense: s4.nn.Dense

    def __call__(self, x):
        h = s4.log(x)                           # Inf where x == 0
        return self.dense(h * 0.5)


def _net_loop(x, y, **kw):
    model = Net(dense=s4.nn.Dense(4, 3, seed=0))
    loop = train.TrainingLoop(training=[(x[:16], y[:16]), (x[16:], y[16:])],
                              optimizer=optimizers.SGD(for_=model, learning_rate=0.1),
                              loss_function=losses.softmax_cross_entropy, progress=False, **kw)
    return loop, model


def _net_data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.5, 1.0, (32, 4)).astype(np.float32)
    x[20:, 0] = 0.0                             # the second batch holds zeros
    return x, rng.integers(0, 3, 32)


def test_training_loop_debug_nans_stops_at_the_step_with_the_report():
    x, y = _net_data()
    loop, model = _net_loop(x, y, debug_nans=True)
    w_after_step1 = None

    class Keep(train.Callback):
        def on_batch_end(self, loop):
            nonlocal w_after_step1
            w_after_step1 = loop.model.dense.weight.numpy().copy()

    loop.callbacks.append(Keep())
    with pytest.raises(NonFiniteError) as ei:
        loop.fit(model, epochs=3)
    assert loop.step == 2                        # stopped at once, not after three epochs
    r = ei.value.report
    assert r.op == "log" and r.kind == "inf"
    assert r.location == (HERE, line_of(Net.__call__, "s4.log(x)"), "__call__")
    assert r.inputs[0].min == 0.0 and r.inputs[0].infs == 0
    assert r.first_nan is not None                # where the Inf became the NaN loss
    msg = str(ei.value)
    assert "the training loss is nan at epoch 1, batch 1 (step 2)" in msg and "'log'" in msg
    assert w_after_step1 is not None and np.isfinite(w_after_step1).all()


def test_debug_nans_finds_a_nan_born_in_the_backward_pass():
    # sqrt(x * x) has a finite value at 0 but an infinite derivative: the loss stays finite
    # and the weights turn NaN; debug mode catches the weights and names the backward op
    class Norm(s4.nn.Layer):
        dense: s4.nn.Dense

        def __call__(self, x):
            h = self.dense(x)
            return s4.sqrt(h * h)

    x = np.zeros((4, 2), np.float32)
    y = np.zeros((4, 3), np.float32)
    model = Norm(dense=s4.nn.Dense(2, 3, seed=0))
    loop = train.TrainingLoop(training=[(x, y)], optimizer=optimizers.SGD(for_=model),
                              loss_function=losses.mean_squared_error, progress=False,
                              debug_nans=True)
    with pytest.raises(NonFiniteError, match="the weight 'dense.*' became non-finite") as ei:
        loop.fit(model, epochs=1)
    r = ei.value.report
    # the derivative of sqrt at 0 divides by zero
    assert r.op == "div" and r.kind == "inf" and r.inputs[1].max == 0.0
    # a backward op carries the line that asked for the gradient: here, the fit call
    assert r.location[0] == HERE
    assert r.first_nan is not None and r.first_nan.output.nans > 0


def test_inside_a_debug_nans_block_the_loop_is_checked_too():
    x, y = _net_data()
    loop, model = _net_loop(x, y)
    with debug_nans():
        with pytest.raises(NonFiniteError) as ei:
            loop.fit(model, epochs=1)
    assert ei.value.report.op == "log"
    assert ei.value.report.location[1] == line_of(Net.__call__, "s4.log(x)")
