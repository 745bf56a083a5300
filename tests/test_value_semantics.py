"""Value semantics (DESIGN §4): no two Tensor objects ever share mutable state.

* a random program of copies, writes, ``+=`` rebindings, slices, reshapes, reads, barriers
  and held numpy views never changes any other value — checked against a numpy model in
  which every Tensor is an independent ``np.array``;
* ``copy()`` is O(1): the copy shares the node, and a write records an update lazily;
* a write to a uniquely held, materialized buffer happens in place (same buffer address,
  ``inplace_updates`` counted, no ``update_copies``); while a copy or a numpy view of the old
  value is alive the write copies and the other holder keeps the old value;
* a DLPack export is a copy: writable, independent, and it does not pin the buffer;
* ``b = a; b += 1`` leaves ``a`` alone; slices, reshapes and transposes are new values.
"""
from __future__ import annotations

import copy as _copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import s4tf_py as s4

SETTINGS = settings(max_examples=80, deadline=None)


def _addr(t: s4.Tensor) -> int:
    return t._node.value.__array_interface__["data"][0]


def _counters():
    m = s4.metrics()
    return m["inplace_updates"], m["update_copies"]


def _fresh(shape=(8,), start=0.0):
    return s4.Tensor(np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + start)


# ---- the model-based property test -----------------------------------------------------------

SHAPE = (4, 3)

_basic_index = st.one_of(
    st.integers(-4, 3),
    st.tuples(st.integers(-4, 3), st.integers(-3, 2)),
    st.builds(slice, st.none() | st.integers(-5, 5), st.none() | st.integers(-5, 5),
              st.sampled_from([None, 1, 2, -1, -2])),
    st.tuples(st.builds(slice, st.none() | st.integers(0, 4), st.none()), st.integers(0, 2)),
    st.permutations([0, 1, 2, 3]).map(lambda p: list(p[:2])),        # unique integer arrays
)

_step = st.one_of(
    st.tuples(st.just("copy"), st.integers(0, 99)),
    st.tuples(st.just("write"), st.integers(0, 99), _basic_index, st.floats(-9, 9, width=16)),
    st.tuples(st.just("iadd"), st.integers(0, 99), st.floats(-3, 3, width=16)),
    st.tuples(st.just("alias_iadd"), st.integers(0, 99), st.floats(-3, 3, width=16)),
    st.tuples(st.just("read"), st.integers(0, 99)),
    st.tuples(st.just("view"), st.integers(0, 99)),
    st.tuples(st.just("slice"), st.integers(0, 99)),
    st.tuples(st.just("reshape"), st.integers(0, 99)),
    st.tuples(st.just("transpose"), st.integers(0, 99)),
    st.tuples(st.just("scale"), st.integers(0, 99)),
    st.tuples(st.just("barrier"),),
    st.tuples(st.just("drop"), st.integers(0, 99)),
)


@SETTINGS
@given(st.lists(_step, min_size=1, max_size=30))
def test_random_programs_of_copies_and_writes(steps):
    base = np.arange(12, dtype=np.float32).reshape(SHAPE)
    pool = [s4.Tensor(base)]
    model = [base.copy()]
    views = []            # (numpy array from t.numpy(), the value it had when taken)
    for step in steps:
        kind = step[0]
        if kind == "barrier":
            s4.barrier()
            continue
        i = step[1] % len(pool)
        t = pool[i]
        if kind == "copy":
            pool.append(t.copy())
            model.append(model[i].copy())
        elif kind == "write":
            idx, v = step[2], float(step[3])
            m = model[i]
            try:
                m2 = m.copy()
                m2[idx] = v
            except IndexError:
                continue
            t[idx] = v
            model[i] = m2
        elif kind == "iadd":
            t += float(step[2])
            pool[i] = t
            model[i] = model[i] + np.float32(step[2])
        elif kind == "alias_iadd":               # b = a; b += x  leaves a alone
            b = t
            b += float(step[2])
            assert b is not t
            pool.append(b)
            model.append(model[i] + np.float32(step[2]))
        elif kind == "read":
            np.testing.assert_array_equal(t.numpy(), model[i])
        elif kind == "view":
            views.append((t.numpy(), model[i].copy()))
        elif kind == "slice":
            if model[i].ndim == 0 or model[i].shape[0] < 2:
                continue
            pool.append(t[1:])
            model.append(model[i][1:].copy())
        elif kind == "reshape":
            pool.append(t.reshape(-1))
            model.append(model[i].reshape(-1).copy())
        elif kind == "transpose":
            if model[i].ndim != 2:
                continue
            pool.append(t.T)
            model.append(model[i].T.copy())
        elif kind == "scale":
            pool.append(t * 2.0)
            model.append(model[i] * np.float32(2.0))
        elif kind == "drop" and len(pool) > 1:
            del pool[i], model[i]
        del t
    for t, m in zip(pool, model):
        assert t.shape == m.shape
        np.testing.assert_array_equal(t.numpy(), m)
    for v, m in views:
        assert not v.flags.writeable
        np.testing.assert_array_equal(v, m)


# ---- copy() is O(1) --------------------------------------------------------------------------------

def test_copy_shares_the_node_until_a_write():
    t = _fresh()
    t.numpy()
    u = t.copy()
    assert u is not t
    assert u._node is t._node                 # O(1): no buffer was touched
    node, addr = t._node, _addr(t)
    u[0] = 5.0
    assert t._node is node and _addr(t) == addr
    assert u._node is not node
    assert u._node.value is None              # the write is recorded, not executed eagerly
    assert u._node.inputs[0] is node          # ... as a functional update of the shared value
    np.testing.assert_array_equal(t.numpy(), np.arange(8))
    assert u.numpy()[0] == 5.0 and t.numpy()[0] == 0.0


def test_copy_module_and_constructor_copies_are_values_too():
    t = _fresh()
    for u in (_copy.copy(t), _copy.deepcopy(t), s4.Tensor(t), s4.asarray(t), +t):
        assert u._node is t._node
        u[1] = -1.0
        assert t.numpy()[1] == 1.0 and u.numpy()[1] == -1.0


# ---- in place when uniquely held ----------------------------------------------------------------

def test_write_to_a_uniquely_held_buffer_is_in_place():
    t = _fresh()
    t.numpy()                                  # materialized: a buffer of its own
    addr = _addr(t)
    inplace0, copies0 = _counters()
    t[3] = 1.0
    s4.barrier()
    assert t._node.value is not None
    assert _addr(t) == addr                    # the same buffer was updated
    inplace1, copies1 = _counters()
    assert inplace1 - inplace0 == 1
    assert copies1 - copies0 == 0
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 1, 4, 5, 6, 7])


def test_write_in_place_when_the_value_is_read_instead_of_barrier():
    t = _fresh()
    t.numpy()
    addr = _addr(t)
    inplace0, copies0 = _counters()
    t[2:4] = s4.Tensor([9.0, 9.0])
    t.numpy()
    assert _addr(t) == addr
    assert _counters() == (inplace0 + 1, copies0)


def test_a_chain_of_writes_runs_in_place():
    t = _fresh()
    t.numpy()
    addr = _addr(t)
    inplace0, copies0 = _counters()
    for k in range(5):
        t[k] = 10.0 + k
    np.testing.assert_array_equal(t.numpy(), [10, 11, 12, 13, 14, 5, 6, 7])
    assert _addr(t) == addr
    inplace1, copies1 = _counters()
    assert (inplace1 - inplace0, copies1 - copies0) == (5, 0)


def test_scatter_write_is_in_place_too():
    t = _fresh()
    t.numpy()
    addr = _addr(t)
    inplace0, copies0 = _counters()
    t[[1, 6]] = 0.5
    t.numpy()
    assert _addr(t) == addr
    assert _counters() == (inplace0 + 1, copies0)


def test_write_copies_while_a_copy_is_alive():
    t = _fresh()
    t.numpy()
    u = t.copy()
    addr = _addr(u)
    inplace0, copies0 = _counters()
    t[3] = 1.0
    s4.barrier()
    assert _counters() == (inplace0, copies0 + 1)
    assert _addr(t) != addr and _addr(u) == addr
    np.testing.assert_array_equal(u.numpy(), np.arange(8))
    assert t.numpy()[3] == 1.0


@pytest.mark.parametrize("how", ["numpy", "asarray"])
def test_write_copies_while_a_numpy_view_is_alive(how):
    t = _fresh()
    if how == "numpy":
        view = t.numpy()
    else:
        view = np.asarray(t)
    addr = _addr(t)
    inplace0, copies0 = _counters()
    t[3] = 100.0
    np.testing.assert_array_equal(t.numpy()[3], 100.0)
    np.testing.assert_array_equal(view, np.arange(8))     # the view keeps the old value
    assert _addr(t) != addr
    assert _counters() == (inplace0, copies0 + 1)


def test_a_dlpack_export_is_a_copy_and_does_not_pin_the_buffer():
    """``__dlpack__`` exports a copy (torch ignores DLPack's read-only flag): the export is
    writable and independent, and holding it does not stop an in-place write to ``t``."""
    t = _fresh()
    export = np.from_dlpack(t)
    addr = _addr(t)
    assert export.flags.writeable
    assert export.__array_interface__["data"][0] != addr
    export[0] = -5.0                                       # writing into the export ...
    np.testing.assert_array_equal(t.numpy(), np.arange(8))  # ... never changes t
    inplace0, copies0 = _counters()
    t[3] = 100.0                      # (a non-0/1 scalar: see test_write_to_a_uniquely_held...)
    np.testing.assert_array_equal(t.numpy()[3], 100.0)
    expected = np.arange(8, dtype=np.float32)
    expected[0] = -5.0
    np.testing.assert_array_equal(export, expected)        # the export keeps its own value
    assert _addr(t) == addr                                # t's buffer was updated in place
    assert _counters() == (inplace0 + 1, copies0)


def test_after_the_copy_dies_writes_are_in_place_again():
    t = _fresh()
    t.numpy()
    u = t.copy()
    t[0] = 1.0
    t.numpy()                 # copied (u holds the old buffer)
    del u
    addr = _addr(t)
    inplace0, copies0 = _counters()
    t[1] = 2.0
    t.numpy()
    assert _addr(t) == addr and _counters() == (inplace0 + 1, copies0)


def test_a_pending_value_held_by_a_copy_is_not_overwritten():
    x = _fresh()
    y = x * 2.0                 # pending
    z = y.copy()                # a second holder of the pending value
    y[0] = -1.0
    np.testing.assert_array_equal(y.numpy(), [-1, 2, 4, 6, 8, 10, 12, 14])
    np.testing.assert_array_equal(z.numpy(), np.arange(8) * 2)
    np.testing.assert_array_equal(x.numpy(), np.arange(8))


def test_pending_intermediate_written_twice_from_two_copies():
    x = _fresh()
    y = x + 1.0
    a, b = y.copy(), y.copy()
    a[0] = 100.0
    b[1] = 200.0
    del y
    s4.barrier()
    np.testing.assert_array_equal(a.numpy(), [100, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(b.numpy(), [1, 200, 3, 4, 5, 6, 7, 8])


# ---- rebinding, derived values ---------------------------------------------------------------------

def test_augmented_assignment_rebinds():
    a = _fresh()
    b = a
    b += 1
    assert b is not a
    np.testing.assert_array_equal(a.numpy(), np.arange(8))
    np.testing.assert_array_equal(b.numpy(), np.arange(8) + 1)
    c = a
    for op in ("-=", "*=", "/=", "**=", "//=", "%="):
        c = a
        exec(f"c {op} 2.0")
    np.testing.assert_array_equal(a.numpy(), np.arange(8))
    m = s4.Tensor(np.eye(2, dtype=np.float32))
    n = m
    n @= s4.Tensor(np.full((2, 2), 2.0, np.float32))
    np.testing.assert_array_equal(m.numpy(), np.eye(2))


@pytest.mark.parametrize("derive", [
    lambda t: t[1:5], lambda t: t[::-1], lambda t: t.reshape(2, 4), lambda t: t.reshape(2, 4).T,
    lambda t: s4.transpose(t.reshape(2, 4)), lambda t: t[[1, 2]], lambda t: t.flatten(),
    lambda t: s4.squeeze(s4.expand_dims(t, 0)), lambda t: s4.broadcast_to(t, (2, 8)),
    lambda t: s4.concatenate([t]), lambda t: s4.asarray(t), lambda t: t.astype(s4.float32),
], ids=["slice", "reverse", "reshape", "reshape_T", "transpose", "gather", "flatten",
        "expand_squeeze", "broadcast", "concat1", "asarray", "astype_same"])
def test_derived_values_are_new_values(derive):
    t = _fresh()
    t.numpy()
    d = derive(t)
    d_before = d.numpy().copy()
    d[0] = 1000.0 if d.ndim == 1 else d[0] * 0 + 1000.0
    np.testing.assert_array_equal(t.numpy(), np.arange(8))       # writing d leaves t alone
    d2 = derive(t)
    t[0] = -5.0
    t[7] = -5.0
    np.testing.assert_array_equal(d2.numpy(), d_before)           # writing t leaves d2 alone


def test_constructing_from_numpy_never_aliases_the_users_array():
    a = np.arange(4, dtype=np.float32)
    t = s4.Tensor(a)
    a[0] = 99.0
    assert t.numpy()[0] == 0.0
    t[1] = -1.0
    assert a[1] == 1.0


def test_numpy_views_are_read_only_and_np_array_is_a_writable_copy():
    t = _fresh()
    v = t.numpy()
    with pytest.raises(ValueError):
        v[0] = 1.0
    w = np.asarray(t)
    assert not w.flags.writeable
    c = np.array(t)
    assert c.flags.writeable
    c[0] = 42.0
    assert t.numpy()[0] == 0.0


def test_a_write_does_not_leak_into_a_hash_consed_twin():
    x = _fresh()
    a = x + x
    b = x + x                 # hash-consed: the same node
    assert a._node is b._node
    a[0] = 123.0
    np.testing.assert_array_equal(b.numpy(), np.arange(8) * 2)
    assert a.numpy()[0] == 123.0


def test_tensors_in_containers_and_setitem_with_tensor_value():
    x = _fresh()
    row = x[2:4]
    x[0:2] = row            # the value is read from the old x
    np.testing.assert_array_equal(x.numpy(), [2, 3, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(row.numpy(), [2, 3])
    y = _fresh()
    y[1:] = y[:-1]          # overlapping self-assignment reads the old value
    np.testing.assert_array_equal(y.numpy(), [0, 0, 1, 2, 3, 4, 5, 6])
