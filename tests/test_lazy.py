"""Laziness, hash-consing, barrier, the executable cache, compile logging, s4.compile, s4.trace.

Counters are process-wide (other tests run in the same worker), so every check compares
``s4.metrics()`` before and after, never absolute values.
"""
from __future__ import annotations

import gc
import logging
import os
import weakref

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py.ir import graph


def _m():
    return dict(s4.metrics())


def _delta(before, *keys):
    after = s4.metrics()
    return tuple(after[k] - before[k] for k in keys)


def _t(values, dtype=np.float32):
    return s4.Tensor(np.asarray(values, dtype=dtype))


# ---- nothing runs until read ---------------------------------------------------------------------

def test_recording_ops_runs_nothing():
    x = _t([1.0, 2.0, 3.0])
    before = _m()
    y = s4.exp(x) * 2.5 + x
    z = (y @ y) - s4.sum(y)
    w = z.reshape((1,))
    w2 = s4.concatenate([w, w])
    assert _delta(before, "materializations", "traces", "cache_hits", "cache_misses") == (0, 0, 0, 0)
    assert y._node.value is None and z._node.value is None and w2._node.value is None
    assert w2.shape == (2,) and w2.dtype == np.float32       # types are known without running
    v = float(z)
    assert _delta(before, "materializations") == (1,)
    ref = np.exp([1.0, 2.0, 3.0]) * 2.5 + [1.0, 2.0, 3.0]
    assert v == pytest.approx(ref @ ref - ref.sum(), rel=1e-5)


def test_reading_runs_only_the_slice_that_is_needed():
    x = _t([1.0, 2.0])
    a = x * 3.0
    b = s4.sin(x)            # not needed to read a
    a.numpy()
    assert a._node.value is not None
    assert b._node.value is None


def test_shape_and_dtype_queries_do_not_materialize():
    x = _t(np.ones((2, 3)))
    before = _m()
    y = s4.transpose(x * 2.0)
    _ = (y.shape, y.dtype, y.ndim, y.size, len(y), y.device)
    assert _delta(before, "materializations") == (0,)


# ---- hash-consing ---------------------------------------------------------------------------------

def test_hash_consing_same_op_same_inputs_same_node():
    x, y = _t([1.0, 2.0]), _t([3.0, 4.0])
    assert (x + y)._node is (x + y)._node
    assert s4.exp(x)._node is s4.exp(x)._node
    assert (x * 1)._node is (x * 1)._node                  # special scalar: a shared constant
    assert s4.sum(x, axis=0)._node is s4.sum(x, axis=0)._node
    assert (x + y)._node is not (y + x)._node              # different wiring
    assert s4.sum(x * y)._node is s4.sum(x * y)._node       # whole subexpressions are shared
    assert (x + y)._node is not (x - y)._node


def test_hash_consed_nodes_are_computed_once():
    x = _t([1.0, 2.0])
    a = s4.exp(x) + 1.0
    b = s4.exp(x) * 2.0
    _, ops, _ = __import__("s4tf_py.ir.function", fromlist=["collect"]).collect([a._node, b._node])
    assert [n.prim.name for n in ops].count("exp") == 1


def test_a_materialized_node_leaves_the_table():
    x = _t([1.0, 2.0])
    a = s4.exp(x)
    a.numpy()
    b = s4.exp(x)
    assert b._node is not a._node and b._node.value is None
    np.testing.assert_array_equal(b.numpy(), a.numpy())


# ---- barrier ---------------------------------------------------------------------------------------

@pytest.fixture
def no_leftover_pending_tensors():
    """Tensors that earlier tests left in reference cycles (an exception's traceback holding
    its frame) stay pending until the cyclic collector runs, and a barrier would compute them
    (one such is a deliberately failing cast): collect them first."""
    gc.collect()


@pytest.mark.usefixtures("no_leftover_pending_tensors")
def test_barrier_materializes_every_live_pending_tensor():
    s4.barrier()              # what earlier tests left pending (on any device) is not ours
    x = _t([1.0, 2.0, 3.0])
    a = x * 2.0
    b = s4.exp(x)
    c = (a + b).sum()
    before = _m()
    s4.barrier()
    assert all(t._node.value is not None for t in (a, b, c))
    assert _delta(before, "materializations") == (1,)     # one graph for all of them
    before = _m()
    a.numpy(), b.numpy(), c.item()
    assert _delta(before, "materializations") == (0,)
    np.testing.assert_allclose(c.item(), np.sum(np.arange(1, 4) * 2 + np.exp(np.arange(1, 4))),
                               rtol=1e-6)


@pytest.mark.usefixtures("no_leftover_pending_tensors")
def test_barrier_with_nothing_pending_runs_nothing():
    s4.barrier()
    before = _m()
    s4.barrier()
    assert _delta(before, "materializations") == (0,)


@pytest.mark.usefixtures("no_leftover_pending_tensors")
def test_barrier_leaves_no_live_pending_nodes():
    x = _t([1.0, 2.0])
    keep = [x + float(k) for k in range(5)]
    s4.barrier()
    live_pending = [n for n in graph.pending_nodes() if any(n is t._node for t in keep)]
    assert not live_pending


# ---- intermediates held by live tensors come back with the target ------------------------------

def test_held_intermediates_are_returned_with_the_target():
    x = _t([1.0, 2.0, 3.0])
    h = s4.tanh(x) * 3.0                  # held by a live Tensor
    loss = s4.sum(h * h)
    before = _m()
    loss.item()
    assert _delta(before, "materializations") == (1,)
    assert h._node.value is not None      # computed as a by-product
    before = _m()
    np.testing.assert_allclose(h.numpy(), np.tanh([1.0, 2.0, 3.0]) * 3.0, rtol=1e-6)
    assert _delta(before, "materializations") == (0,)    # no recompute


def test_dead_intermediates_are_not_kept():
    x = _t([1.0, 2.0])
    loss = s4.sum(s4.exp(x) * 2.0)
    mid = weakref.ref(loss._node.inputs[0])
    assert mid() is not None and mid().value is None
    loss.item()
    assert loss._node.inputs == ()        # the graph above a materialized node is freed
    assert mid() is None                  # nobody held it: not returned, and now gone


# ---- the executable cache --------------------------------------------------------------------------

def _step(x, w):
    return s4.sum(s4.tanh(x @ w) * 0.5)


def test_same_step_traced_twice_hits_the_cache():
    rng = np.random.default_rng(0)
    x1, w1 = _t(rng.normal(size=(3, 4))), _t(rng.normal(size=(4, 2)))
    x2, w2 = _t(rng.normal(size=(3, 4))), _t(rng.normal(size=(4, 2)))
    _step(x1, w1).item()
    before = _m()
    v = _step(x2, w2).item()              # new objects, same structure
    assert _delta(before, "cache_hits", "cache_misses") == (1, 0)
    assert v == pytest.approx(np.sum(np.tanh(x2.numpy() @ w2.numpy()) * 0.5), rel=1e-5)
    before = _m()
    _step(_t(rng.normal(size=(5, 4))), w1).item()      # a new shape compiles
    assert _delta(before, "cache_misses") == (1,)


def test_python_scalar_learning_rates_are_inputs():
    w, g = _t([1.0, 2.0]), _t([0.5, -0.5])
    (w - 0.125 * g).numpy()
    before = _m()
    r1 = (w - 0.25 * g).numpy()
    r2 = (w - 0.375 * g).numpy()
    assert _delta(before, "cache_hits", "cache_misses") == (2, 0)
    np.testing.assert_allclose(r1, [0.875, 2.125])
    np.testing.assert_allclose(r2, [0.8125, 2.1875])


def test_special_scalars_zero_and_one_are_constants():
    x = _t([1.0, 2.0])
    text = str(s4.trace(lambda a: a * 1 + 0, x))
    assert text.count("constant(") == 2
    assert "%1:" not in text                       # no scalar parameter
    text = str(s4.trace(lambda a: a * 2.5, x))
    assert "constant(" not in text
    assert "%1: f32[]~" in text                    # the scalar is a weakly typed input
    # x*1 and x*2 are different graphs; x*2 and x*3 are the same graph
    (x * 2.0).numpy()
    before = _m()
    (x * 3.0).numpy()
    assert _delta(before, "cache_hits", "cache_misses") == (1, 0)
    before = _m()
    (x * 1.0).numpy()
    assert _delta(before, "cache_misses") == (1,)


def test_clear_caches_forces_a_compile():
    x = _t([1.0, 2.0])
    s4.cosh(x).numpy()
    s4.clear_caches()
    before = _m()
    s4.cosh(x).numpy()
    assert _delta(before, "cache_misses") == (1,)


# ---- S4TF_LOG_COMPILES -------------------------------------------------------------------------

def test_log_compiles_names_the_reason(monkeypatch, caplog):
    monkeypatch.setenv("S4TF_LOG_COMPILES", "1")
    s4.clear_caches()
    caplog.set_level(logging.WARNING, logger="s4tf_py.compile")

    def f(x):       # a structure no other test builds
        return s4.atanh(s4.tanh(s4.asinh(x)) * 0.5)

    f(_t([0.1, 0.2])).numpy()
    recs = [r for r in caplog.records if r.name == "s4tf_py.compile"]
    assert len(recs) == 1
    assert "first compile" in recs[0].getMessage()
    assert s4.get_default_device().backend in recs[0].getMessage()
    caplog.clear()
    f(_t([0.3, 0.4])).numpy()             # cache hit: no log
    assert not [r for r in caplog.records if r.name == "s4tf_py.compile"]
    f(_t([0.1, 0.2, 0.3])).numpy()
    msgs = [r.getMessage() for r in caplog.records if r.name == "s4tf_py.compile"]
    assert len(msgs) == 1
    assert "input %0 changed from f32[2] to f32[3]" in msgs[0]
    caplog.clear()
    f(_t([0.1, 0.2, 0.3], np.float64)).numpy()
    msgs = [r.getMessage() for r in caplog.records if r.name == "s4tf_py.compile"]
    assert len(msgs) == 1 and "from f32[3] to f64[3]" in msgs[0]


def test_no_compile_log_without_the_variable(monkeypatch, caplog):
    monkeypatch.delenv("S4TF_LOG_COMPILES", raising=False)
    s4.clear_caches()
    caplog.set_level(logging.DEBUG, logger="s4tf_py.compile")
    s4.acosh(_t([1.5, 2.5]) + 0.25).numpy()
    assert not [r for r in caplog.records if r.name == "s4tf_py.compile"]
    assert os.environ.get("S4TF_LOG_COMPILES") is None


# ---- s4.compile --------------------------------------------------------------------------------

def test_compile_runs_the_body_once_per_signature():
    calls = []

    @s4.compile
    def f(x, y):
        calls.append(1)
        return s4.sum(x * y) + 1.0

    a, b = _t([1.0, 2.0]), _t([3.0, 4.0])
    assert f(a, b).item() == pytest.approx(12.0)
    assert f(_t([2.0, 2.0]), b).item() == pytest.approx(15.0)
    assert len(calls) == 1 and f.traces == 1
    assert f(_t([1.0, 2.0, 3.0]), _t([1.0, 1.0, 1.0])).item() == pytest.approx(7.0)   # new shape
    assert len(calls) == 2 and f.traces == 2
    f(_t([1.0, 2.0], np.float64), _t([1.0, 1.0], np.float64))                            # new dtype
    assert len(calls) == 3
    f(a, b)
    assert len(calls) == 3


def test_compile_static_ints_are_part_of_the_key_floats_are_dynamic():
    calls = []

    @s4.compile
    def f(x, n, scale):
        calls.append(n)
        y = x
        for _ in range(n):
            y = y * 2.0
        return y * scale

    x = _t([1.0, 3.0])
    np.testing.assert_allclose(f(x, 2, 0.5).numpy(), [2.0, 6.0])
    np.testing.assert_allclose(f(x, 3, 0.5).numpy(), [4.0, 12.0])
    assert calls == [2, 3]
    np.testing.assert_allclose(f(x, 2, 0.25).numpy(), [1.0, 3.0])   # float: same executable
    np.testing.assert_allclose(f(x, 3, 2.0).numpy(), [16.0, 48.0])
    assert calls == [2, 3]


def test_compile_pytrees_in_and_out():
    @s4.compile
    def f(params, batch):
        w, b = params["w"], params["b"]
        y = batch[0] @ w + b
        return {"y": y, "stats": (s4.sum(y), s4.max(y)), "n": 3}

    params = {"w": _t(np.eye(2) * 2), "b": _t([1.0, -1.0])}
    out = f(params, (_t([[1.0, 2.0]]), None))
    assert set(out) == {"y", "stats", "n"}
    assert out["n"] == 3
    np.testing.assert_allclose(out["y"].numpy(), [[3.0, 3.0]])
    assert isinstance(out["stats"], tuple)
    assert out["stats"][0].item() == pytest.approx(6.0)
    assert out["stats"][1].item() == pytest.approx(3.0)


def test_compile_closures_over_captured_tensors():
    w = _t([[1.0, 2.0], [3.0, 4.0]])
    bias = _t([10.0, 20.0])

    @s4.compile
    def f(x):
        return x @ w + bias

    np.testing.assert_allclose(f(_t([[1.0, 0.0]])).numpy(), [[11.0, 22.0]])
    np.testing.assert_allclose(f(_t([[0.0, 1.0]])).numpy(), [[13.0, 24.0]])
    assert f.traces == 1


def test_compile_outputs_are_ordinary_values():
    @s4.compile
    def f(x):
        return x * 2.0

    y = f(_t([1.0, 2.0]))
    z = y.copy()
    y[0] = -1.0
    np.testing.assert_array_equal(z.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal((y + 1.0).numpy(), [0.0, 5.0])


def test_reading_a_traced_value_raises_concretization_error():
    @s4.compile
    def f(x):
        if s4.sum(x) > 0:          # Python control flow on a traced value
            return x
        return -x

    with pytest.raises(s4.ConcretizationError) as ei:
        f(_t([1.0, 2.0]))
    msg = str(ei.value)
    assert "traced" in msg
    assert "s4.where" in msg or "static" in msg
    assert os.path.basename(__file__) in msg           # points at the user's line

    with pytest.raises(s4.ConcretizationError):
        s4.trace(lambda x: x.numpy(), _t([1.0]))
    with pytest.raises(s4.ConcretizationError):
        s4.trace(lambda x: x.item(), _t([1.0]))


def test_trace_text_has_the_ops():
    text = str(s4.trace(lambda a: (a * a).sum(), _t(np.ones((2, 2)))))
    assert "mul(%0, %0)" in text
    assert "reduce_sum(" in text
    assert "f32[2,2]" in text
    fn = s4.trace(lambda a: (a * a).sum(), _t(np.ones((2, 2))))
    assert [e.prim.name for e in fn.eqns] == ["mul", "reduce_sum"]
    assert len(fn.params) == 1 and len(fn.outputs) == 1


def test_trace_runs_nothing():
    before = _m()
    s4.trace(lambda a, b: s4.exp(a) @ b, _t(np.ones((2, 3))), _t(np.ones((3, 2))))
    assert _delta(before, "materializations") == (0,)


def test_metrics_have_the_documented_keys():
    _t([1.0]).__add__(0.5).numpy()
    m = s4.metrics()
    for k in ("traces", "cache_hits", "cache_misses", "function_traces", "inplace_updates",
              "update_copies", "buffer_donations", "materializations", "compile_seconds",
              "trace_seconds"):
        assert k in m, k
    b = m["backends"][s4.get_default_device().backend]
    for k in ("traces", "cache_hits", "cache_misses", "compile_seconds", "execute_seconds"):
        assert k in b, k
    assert b["traces"] >= 1
    assert s4.get_default_device().backend in str(m)


def test_function_traces_counter_counts_compile_traces():
    @s4.compile
    def f(x):
        return x + 1.0

    before = _m()
    f(_t([1.0]))
    f(_t([2.0]))
    assert _delta(before, "function_traces") == (1,)


def test_trace_seconds_counts_the_body_not_the_compile():
    import time as _time
    s4.reset_metrics()

    @s4.compile
    def slow(x):
        _time.sleep(0.05)               # the Python body: runs once, while tracing
        return x * 2.0 + 1.0
    slow(_t([1.0, 2.0]))
    m = s4.metrics()
    assert 0.05 <= m["trace_seconds"] < 0.05 + 2.0
    before = m["trace_seconds"]
    slow(_t([3.0, 4.0]))                # cached: no trace
    assert s4.metrics()["trace_seconds"] == before
