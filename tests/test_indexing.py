"""numpy-style indexing, reading and writing, against numpy (hypothesis).

Index expressions mix ints (negative too), slices (any start/stop, negative steps), None,
Ellipsis, integer arrays (lists, numpy arrays, Tensors, with negative entries) and boolean
masks. Reads must equal numpy's result (values, shape, dtype); writes ``t[idx] = v`` must equal
numpy's assignment. Integer-array writes use indices that address every element at most once:
numpy's last-write-wins on duplicates is not part of s4tf_py's contract.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import s4tf_py as s4

SETTINGS = settings(max_examples=150, deadline=None)

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


def _slices(n):
    bound = st.one_of(st.none(), st.integers(-n - 2, n + 2))
    step = st.one_of(st.none(), st.integers(-3, 3).filter(lambda s: s != 0))
    return st.builds(slice, bound, bound, step)


def _as_kind(a: np.ndarray, kind: str):
    if kind == "list":
        return a.tolist()
    if kind == "tensor":
        return s4.Tensor(a)
    return a


@st.composite
def index_exprs(draw, shape, advanced=True, masks=True, none=True):
    """(numpy index, s4 index) for an array of ``shape``."""
    ndim = len(shape)
    parts = []                 # (numpy part, s4 part)
    d = 0
    adv_shape = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple))   # () too
    n_masks = 0
    while d < ndim:
        n = shape[d]
        options = ["int", "slice", "slice", "full"]
        if advanced:
            options += ["array", "array"]
        if masks and n_masks == 0:
            options += ["mask"]
        kind = draw(st.sampled_from(options))
        if kind == "int":
            i = draw(st.integers(-n, n - 1))
            parts.append((i, i))
            d += 1
        elif kind in ("slice", "full"):
            s = draw(_slices(n)) if kind == "slice" else slice(None)
            parts.append((s, s))
            d += 1
        elif kind == "array":
            a = np.asarray(draw(st.lists(st.integers(-n, n - 1), min_size=int(np.prod(adv_shape)),
                                         max_size=int(np.prod(adv_shape))))).reshape(adv_shape)
            a = a.astype(draw(st.sampled_from([np.int32, np.int64])))
            parts.append((a, _as_kind(a, draw(st.sampled_from(["list", "numpy", "tensor"])))))
            d += 1
        else:
            k = draw(st.integers(1, ndim - d))
            m = np.asarray(draw(st.lists(st.booleans(), min_size=int(np.prod(shape[d:d + k])),
                                         max_size=int(np.prod(shape[d:d + k]))))
                           ).reshape(shape[d:d + k])
            parts.append((m, _as_kind(m, draw(st.sampled_from(["numpy", "tensor"])))))
            n_masks += 1
            d += k
        if none and draw(st.integers(0, 5)) == 0:
            parts.append((None, None))
    # drop trailing full slices (numpy fills them in) or fold a run of them into an Ellipsis
    dropped = False
    if draw(st.booleans()):
        while parts and isinstance(parts[-1][0], slice) and parts[-1][0] == slice(None):
            parts.pop()
            dropped = True
    fulls = [k for k, (p, _) in enumerate(parts) if isinstance(p, slice) and p == slice(None)]
    if fulls and not dropped and draw(st.booleans()):
        k = draw(st.sampled_from(fulls))
        j = k
        while j + 1 < len(parts) and isinstance(parts[j + 1][0], slice) and parts[j + 1][0] == slice(None):
            j += 1
        parts[k:j + 1] = [(Ellipsis, Ellipsis)]
    elif draw(st.integers(0, 3)) == 0:
        parts.append((Ellipsis, Ellipsis))
    np_idx = tuple(p for p, _ in parts)
    s4_idx = tuple(q for _, q in parts)
    if len(parts) == 1 and draw(st.booleans()):
        np_idx, s4_idx = np_idx[0], s4_idx[0]
    return np_idx, s4_idx


def _array(shape, seed=0, dtype=np.float32):
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) * 1.5 - 7


@SETTINGS
@given(st.data())
def test_read_agrees_with_numpy(data):
    shape = data.draw(shapes)
    a = _array(shape)
    np_idx, s4_idx = data.draw(index_exprs(shape))
    try:
        want = a[np_idx]
    except IndexError:
        assume(False)     # e.g. advanced index shapes that do not broadcast together
    t = s4.Tensor(a)
    got = t[s4_idx]
    assert isinstance(got, s4.Tensor)
    assert got.shape == want.shape, (np_idx, got.shape, want.shape)
    assert got.dtype == want.dtype
    g = got.numpy()
    assert g.shape == want.shape and g.dtype == want.dtype
    np.testing.assert_array_equal(g, want)
    np.testing.assert_array_equal(t.numpy(), a)          # reading never changes the source


@SETTINGS
@given(st.data())
def test_basic_read_of_an_integer_tensor(data):
    shape = data.draw(shapes)
    a = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    np_idx, s4_idx = data.draw(index_exprs(shape, advanced=False, masks=False))
    want = a[np_idx]
    t = s4.Tensor(a)
    got = t[s4_idx]
    assert got.dtype == np.int64 and got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


def _addresses(shape, idx):
    return np.arange(int(np.prod(shape))).reshape(shape)[idx]


@SETTINGS
@given(st.data())
def test_write_agrees_with_numpy(data):
    shape = data.draw(shapes)
    a = _array(shape)
    # None combined with integer arrays in an assignment: see test_setitem_none_with_array
    np_idx, s4_idx = data.draw(index_exprs(shape, none=data.draw(st.booleans())))
    try:
        region = a[np_idx]
        addr = np.asarray(_addresses(shape, np_idx)).reshape(-1)
    except IndexError:
        assume(False)
    assume(len(np.unique(addr)) == addr.size)     # every element written at most once
    has_adv = any(isinstance(p, (np.ndarray, list)) for p in
                  (np_idx if isinstance(np_idx, tuple) else (np_idx,)))
    parts = np_idx if isinstance(np_idx, tuple) else (np_idx,)
    has_none = any(p is None for p in parts)
    assume(not (has_adv and has_none))
    how = data.draw(st.sampled_from(["scalar", "full", "trailing"]))
    if how == "scalar":
        v_np = v_s4 = 100.25
    else:
        vshape = np.shape(region)
        if how == "trailing":
            vshape = vshape[data.draw(st.integers(0, len(vshape))):]
        v_np = (np.arange(int(np.prod(vshape)), dtype=np.float32).reshape(vshape) + 1000)
        v_s4 = s4.Tensor(v_np) if data.draw(st.booleans()) else v_np
    want = a.copy()
    want[np_idx] = v_np
    t = s4.Tensor(a)
    before = t.copy()
    t[s4_idx] = v_s4
    assert t.shape == a.shape and t.dtype == a.dtype
    np.testing.assert_array_equal(t.numpy(), want)
    np.testing.assert_array_equal(before.numpy(), a)     # the copy keeps the old value


def test_0d_integer_array_index():
    """0-d index arrays gather a 0-d result: shape () both declared and materialized."""
    a = _array((3, 4))
    t = s4.Tensor(a)
    for idx in ((np.array(1), np.array(2)), (np.array(-2), np.array(-1)),
                (s4.Tensor(np.array(1)), np.array(2))):
        r = t[idx]
        want = a[tuple(np.asarray(i) for i in idx)]
        assert r.shape == () and r.numpy().shape == () and r.numpy().dtype == a.dtype
        assert r.item() == want
    r = t[np.array(1)]                       # a single 0-d index array selects a row
    assert r.shape == (4,)
    np.testing.assert_array_equal(r.numpy(), a[np.array(1)])


def test_write_mask_after_other_indices():
    """A boolean mask anywhere in an assignment's index, not only in the first position."""
    a = _array((3, 4))
    want = a.copy()
    want[:, np.array([True, False, True, False])] = 0.0
    want[1, np.array([False, True, True, False])] = 9.0
    t = s4.Tensor(a)
    t[:, np.array([True, False, True, False])] = 0.0
    t[1, np.array([False, True, True, False])] = 9.0
    np.testing.assert_array_equal(t.numpy(), want)
    b = _array((2, 3, 4))
    want = b.copy()
    want[..., np.array([True, True, False, True])] = -3.0
    want[1, 1:, s4.Tensor(np.array([False, True, False, True])).numpy()] = np.float32(5.0)
    u = s4.Tensor(b)
    u[..., np.array([True, True, False, True])] = -3.0
    u[1, 1:, s4.Tensor(np.array([False, True, False, True]))] = 5.0
    np.testing.assert_array_equal(u.numpy(), want)


def test_setitem_none_with_array():
    """numpy accepts ``x[None, [0, 2]] = v`` (None adds an axis of the value's index)."""
    a = np.zeros((3, 2), np.float32)
    want = a.copy()
    want[None, [0, 2]] = np.array([[5.0, 6.0], [7.0, 8.0]])
    t = s4.Tensor(a)
    t[None, [0, 2]] = np.array([[5.0, 6.0], [7.0, 8.0]], np.float32)
    np.testing.assert_array_equal(t.numpy(), want)


# ---- fixed cases that the generators reach only by chance --------------------------------------

CASES = [
    (slice(None, None, -1),), (slice(10, -10, -3),), (Ellipsis, 0), (0, Ellipsis, None),
    (None, None), (slice(3, 1),), ([0, -1, 0],), ([[0, 1], [2, 0]], slice(None, None, -1)),
    (slice(None), [1, 0], [2, 2]), ([1, 0], slice(None), [0, 3]), (1, [0, 2], slice(1, None)),
    (Ellipsis, [3, 0]), (np.array([True, False, True]),), (np.array([True, False, True]), 1),
    (slice(None), np.array([True, False, True, True])), (np.zeros((3, 4), bool),),
    (np.array([], dtype=np.int64),), (-3, -4), (2, slice(-1, None)),
]


@pytest.mark.parametrize("idx", CASES, ids=[repr(c)[:40] for c in CASES])
def test_read_fixed_cases(idx):
    a = _array((3, 4, 5))
    t = s4.Tensor(a)
    got = t[idx]
    np.testing.assert_array_equal(got.numpy(), a[idx])
    assert got.shape == a[idx].shape


@pytest.mark.parametrize("idx", CASES, ids=[repr(c)[:40] for c in CASES])
def test_write_fixed_cases(idx):
    a = _array((3, 4, 5))
    want = a.copy()
    want[idx] = -1.0
    t = s4.Tensor(a)
    t[idx] = -1.0
    np.testing.assert_array_equal(t.numpy(), want)


def test_index_with_a_0d_integer_tensor_and_numpy_integers():
    a = _array((4, 3))
    t = s4.Tensor(a)
    np.testing.assert_array_equal(t[s4.Tensor(2)].numpy(), a[2])
    np.testing.assert_array_equal(t[np.int64(-1), np.int32(1)].numpy(), a[-1, 1])
    t[s4.Tensor(1)] = 0.0
    a[1] = 0.0
    np.testing.assert_array_equal(t.numpy(), a)


def test_index_with_a_pending_tensor_of_indices():
    a = _array((6,))
    t = s4.Tensor(a)
    idx = s4.Tensor([1, 2, 3]) * 2 - 1          # lazy: values not known when indexing records
    np.testing.assert_array_equal(t[idx].numpy(), a[[1, 3, 5]])


def test_writes_broadcast_and_convert_the_value():
    t = s4.Tensor(np.zeros((2, 3), np.int32))
    t[:, 1] = 7.9                                 # a Python float into an int tensor: cast
    t[0] = s4.Tensor(np.array([1, 2, 3], np.int64))
    assert t.dtype == np.int32
    np.testing.assert_array_equal(t.numpy(), [[1, 2, 3], [0, 7, 0]])
    h = s4.Tensor(np.zeros(3, np.float16))
    h[1] = 2.5
    assert h.dtype == np.float16 and h.numpy()[1] == np.float16(2.5)


def test_write_value_of_a_wrong_shape_is_a_shape_error():
    t = s4.Tensor(np.zeros((3, 4), np.float32))
    with pytest.raises(s4.ShapeError, match="setitem"):
        t[0:2] = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(t.numpy(), np.zeros((3, 4)))


def test_index_errors():
    t = s4.Tensor(np.zeros((3, 4), np.float32))
    for bad in ((3,), (0, 4), (-4,), ([0, 3],), (0, 0, 0), (Ellipsis, Ellipsis)):
        with pytest.raises(IndexError):
            t[bad]
    with pytest.raises(IndexError):
        t[[0, 5]] = 1.0
    with pytest.raises(IndexError):
        t[True]


def test_tensor_indices_out_of_range_are_checked_when_known():
    t = s4.Tensor(np.zeros((3,), np.float32))
    with pytest.raises(IndexError, match="out of bounds"):
        t[s4.Tensor([0, 7])]


def test_take_along_axis_and_gather_helpers():
    a = np.array([[3.0, 1.0, 2.0], [0.5, 9.0, -1.0]], np.float32)
    t = s4.Tensor(a)
    order = s4.argsort(t, axis=1)
    np.testing.assert_array_equal(s4.take_along_axis(t, order, axis=1).numpy(), np.sort(a, axis=1))
    np.testing.assert_array_equal(s4.take(t, [2, 0], axis=1).numpy(), a[:, [2, 0]])
    nz = s4.nonzero(s4.Tensor([0, 3, 0, 4]))
    assert len(nz) == 1 and nz[0].dtype == np.int32
    np.testing.assert_array_equal(nz[0].numpy(), [1, 3])
