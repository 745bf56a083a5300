"""Broadcasting and type promotion (DESIGN §4 "Type promotion"), with hypothesis.

* broadcasting agrees with numpy for random shapes, and shapes numpy refuses raise ShapeError;
* the promotion table is symmetric, associative where the array API requires it (within one
  kind), and agrees with the array API standard's table for every pair the standard defines;
* across kinds promotion follows JAX's lattice: signed + uint64 is a *weak* float32, so that
  any grouping of tensor operands gives one dtype (``(i8 + u64) + f16`` is float16);
* Python scalars are weak: ``x_f16 * 2.0`` stays float16, ``x_i8 + 1`` stays int8, an integer
  tensor meeting a Python float gives float32, and nothing becomes float64 unless an operand is
  float64;
* ``s4.result_type`` and the ops agree with the table.
"""
from __future__ import annotations

import itertools
import operator

import ml_dtypes  # noqa: F401
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import s4tf_py as s4
from s4tf_py import dtypes as dt

SETTINGS = settings(max_examples=60, deadline=None)

ALL = dt.ALL_DTYPES
NUMERIC = tuple(d for d in ALL if d != dt.bool_)
SIGNED, UNSIGNED, FLOATING = dt.SIGNED, dt.UNSIGNED, dt.FLOATING


def _tensor(shape, dtype, rng=None):
    rng = rng or np.random.default_rng(0)
    if dtype == dt.bool_:
        a = rng.random(shape) < 0.5
    elif dt.is_integer(dtype):
        a = rng.integers(0, 5, size=shape).astype(dtype)
    else:
        a = rng.uniform(-2, 2, size=shape).astype(dtype)
    return s4.Tensor(a), a


# ---- broadcasting --------------------------------------------------------------------------------

@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0,
                                         max_side=4))
def test_broadcasting_agrees_with_numpy(shapes):
    (sa, sb), want = shapes
    ta, a = _tensor(sa, dt.float32, np.random.default_rng(1))
    tb, b = _tensor(sb, dt.float32, np.random.default_rng(2))
    for op in (operator.add, operator.mul, operator.sub, s4.maximum):
        ref_op = np.maximum if op is s4.maximum else op
        r = op(ta, tb)
        assert r.shape == want == np.broadcast_shapes(sa, sb)
        np.testing.assert_allclose(r.numpy(), ref_op(a, b), rtol=1e-6)


@SETTINGS
@given(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, min_side=1,
                                         max_side=3))
def test_where_broadcasts_three_operands_like_numpy(shapes):
    (sc, sa, sb), want = shapes
    c = np.random.default_rng(0).random(sc) < 0.5
    ta, a = _tensor(sa, dt.float32)
    tb, b = _tensor(sb, dt.float32, np.random.default_rng(5))
    r = s4.where(s4.Tensor(c), ta, tb)
    assert r.shape == want
    np.testing.assert_array_equal(r.numpy(), np.where(c, a, b))


@st.composite
def _incompatible_shapes(draw):
    base = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    k = draw(st.integers(0, len(base) - 1))
    other = list(base)
    other[k] = draw(st.integers(2, 5).filter(lambda n: n != base[k]))
    if base[k] == 1:
        base[k] = 3 if other[k] != 3 else 2
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    return tuple(lead + base), tuple(other)


@SETTINGS
@given(_incompatible_shapes())
def test_shapes_numpy_refuses_raise_shape_error(shapes):
    sa, sb = shapes
    with pytest.raises(ValueError):
        np.broadcast_shapes(sa, sb)
    ta, _ = _tensor(sa, dt.float32)
    tb, _ = _tensor(sb, dt.float32)
    with pytest.raises(s4.ShapeError, match="cannot be broadcast"):
        ta + tb
    with pytest.raises(s4.ShapeError):
        s4.broadcast_to(ta, sb)


def test_broadcast_to_a_smaller_rank_is_an_error():
    t, _ = _tensor((2, 3), dt.float32)
    with pytest.raises(s4.ShapeError):
        s4.broadcast_to(t, (3,))


# ---- the promotion table -----------------------------------------------------------------------

def test_table_is_symmetric_and_complete():
    for a, b in itertools.product(ALL, ALL):
        assert dt.PROMOTION_TABLE[a, b] == dt.PROMOTION_TABLE[b, a], (a, b)
        assert dt.PROMOTION_TABLE[a, b] in ALL
    for a in ALL:
        assert dt.PROMOTION_TABLE[a, a] == a
        assert dt.PROMOTION_TABLE[a, dt.bool_] == a


# The array API standard (2023.12) "type promotion" table: every pair it defines.
_I = {1: dt.int8, 2: dt.int16, 4: dt.int32, 8: dt.int64}
_U = {1: dt.uint8, 2: dt.uint16, 4: dt.uint32, 8: dt.uint64}
ARRAY_API_TABLE = {(dt.bool_, dt.bool_): dt.bool_,
                   (dt.float32, dt.float64): dt.float64,
                   (dt.float32, dt.float32): dt.float32, (dt.float64, dt.float64): dt.float64}
for i, j in itertools.product(_I, _I):
    ARRAY_API_TABLE[_I[i], _I[j]] = _I[max(i, j)]
    ARRAY_API_TABLE[_U[i], _U[j]] = _U[max(i, j)]
for i, j in itertools.product(_I, (1, 2, 4)):          # signed × unsigned (uint64 × signed: none)
    ARRAY_API_TABLE[_I[i], _U[j]] = _I[i] if i > j else _I[2 * j]


def test_agrees_with_the_array_api_table():
    wrong = [(str(a), str(b), str(dt.PROMOTION_TABLE[a, b]), str(want))
             for (a, b), want in ARRAY_API_TABLE.items()
             if dt.PROMOTION_TABLE[a, b] != want or dt.PROMOTION_TABLE[b, a] != want]
    assert not wrong, wrong
    assert len(ARRAY_API_TABLE) == 4 + 16 + 16 + 12


@pytest.mark.parametrize("kind", ["signed", "unsigned", "int", "float"])
def test_associative_within_a_kind(kind):
    group = {"signed": SIGNED, "unsigned": UNSIGNED, "float": FLOATING,
             # integers of both signs, leaving out uint64 (which has no signed partner)
             "int": SIGNED + UNSIGNED[:3]}[kind] + (dt.bool_,)
    T = dt.PROMOTION_TABLE
    for a, b, c in itertools.product(group, repeat=3):
        assert T[T[a, b], c] == T[a, T[b, c]], (a, b, c)


# ---- associativity across kinds (JAX's lattice) ----------------------------------------------------

#: every typed value: a tensor of each dtype (strong) and the Python scalars bool, int, float
STRONG = [(d, False) for d in ALL]
WEAK = [(dt.bool_, True), (dt.int32, True), (dt.float32, True)]


def _join(x, y):
    return dt.promote(x[0], x[1], y[0], y[1])


def _groupings(xs):
    """The (dtype, weak) of every bracketing of ``xs`` combined left to right in order."""
    if len(xs) == 1:
        yield xs[0]
        return
    for k in range(1, len(xs)):
        for left in _groupings(xs[:k]):
            for right in _groupings(xs[k:]):
                yield _join(left, right)


def _disagreements(values, n, key):
    bad = []
    for xs in itertools.product(values, repeat=n):
        got = {key(r) for r in _groupings(list(xs))}
        if len(got) > 1:
            bad.append(([f"{d}{'~' if w else ''}" for d, w in xs], sorted(map(str, got))))
    return bad


def test_signed_with_uint64_is_a_weak_float32():
    for s in SIGNED:
        assert dt.promote(s, False, dt.uint64, False) == (dt.float32, True)
        assert dt.promote(dt.uint64, False, s, False) == (dt.float32, True)
    i8 = s4.Tensor(np.array([-3, 4], np.int8))
    u64 = s4.Tensor(np.array([5, 6], np.uint64))
    f16 = s4.Tensor(np.array([0.5, 0.25], np.float16))
    r = i8 + u64
    assert r.dtype == dt.float32 and r._node.weak
    assert r.numpy().dtype == dt.float32
    np.testing.assert_array_equal(r.numpy(), [2.0, 10.0])
    # weak: a float operand decides, as if the join had been a Python float
    assert (r + f16).dtype == dt.float16 and (r + f16).numpy().dtype == dt.float16
    assert (r * s4.Tensor(np.array([1, 1], s4.bfloat16))).dtype == dt.bfloat16
    assert (r - s4.Tensor(np.ones(2, np.float64))).dtype == dt.float64
    assert ((i8 + u64) + f16).dtype == (i8 + (u64 + f16)).dtype == dt.float16
    assert s4.result_type(i8, u64, f16) == s4.result_type(f16, u64, i8) == dt.float16
    assert s4.result_type(s4.int8, s4.uint64) == dt.float32


def test_three_tensors_promote_alike_in_either_grouping():
    """(a ∨ b) ∨ c and a ∨ (b ∨ c) have one dtype for every triple of tensor dtypes."""
    bad = _disagreements(STRONG, 3, key=lambda r: r[0])
    assert not bad, (len(bad), bad[:5])


@SETTINGS
@given(st.lists(st.sampled_from(ALL), min_size=3, max_size=3))
def test_three_tensor_ops_promote_alike_in_either_grouping(dtypes):
    """The same through the ops (``where`` promotes its two value operands and accepts bool)."""
    m = s4.Tensor(np.array([True, False]))
    a, b, c = (_tensor((2,), d, np.random.default_rng(k))[0] for k, d in enumerate(dtypes))
    left = s4.where(m, s4.where(m, a, b), c)
    right = s4.where(m, a, s4.where(m, b, c))
    assert left.dtype == right.dtype == s4.result_type(a, b, c), dtypes
    assert left.numpy().dtype == left.dtype


def test_any_grouping_of_up_to_four_operands_promotes_alike():
    """JAX's lattice is a lattice: the join is associative, weakness included, for tensors
    and Python scalars alike, so every bracketing of a chain gives one (dtype, weak)."""
    for n in (3, 4):
        bad = _disagreements(STRONG + WEAK, n, key=lambda r: r)
        assert not bad, (n, len(bad), bad[:5])


def test_low_precision_and_mixed_kind_entries():
    T = dt.PROMOTION_TABLE
    assert T[dt.float16, dt.bfloat16] == dt.float32
    assert T[dt.bfloat16, dt.float32] == dt.float32
    assert T[dt.int64, dt.float16] == dt.float16      # integers never widen a float
    assert T[dt.uint8, dt.bfloat16] == dt.bfloat16
    assert T[dt.int8, dt.uint8] == dt.int16
    assert T[dt.uint64, dt.int8] == dt.float32
    for a, b in itertools.product(ALL, ALL):
        if dt.float64 not in (a, b):
            assert T[a, b] != dt.float64, (a, b)


@SETTINGS
@given(st.sampled_from(ALL), st.sampled_from(ALL))
def test_ops_and_result_type_follow_the_table(da, db):
    ta, a = _tensor((2, 3), da, np.random.default_rng(3))
    tb, b = _tensor((3,), db, np.random.default_rng(4))
    want = dt.PROMOTION_TABLE[da, db]
    assert s4.result_type(da, db) == want
    assert s4.result_type(ta, tb) == want
    assert s4.can_cast(da, want)
    if want != dt.bool_:
        r = ta + tb
        assert r.dtype == want
        got = r.numpy()
        assert got.dtype == want
        ref = a.astype(np.float64) + b.astype(np.float64)
        np.testing.assert_allclose(got.astype(np.float64), ref, rtol=1e-2 if want in
                                   dt.LOW_PRECISION else 1e-6)
    # comparisons promote, then give bool
    c = ta == tb
    assert c.dtype == dt.bool_
    np.testing.assert_array_equal(c.numpy(), a.astype(np.float64) == b.astype(np.float64))
    m = s4.maximum(ta, tb) if want != dt.bool_ else None
    if m is not None:
        assert m.dtype == want
    w = s4.where(s4.Tensor(np.array([True, False, True])), ta, tb)
    assert w.dtype == want


def test_concatenate_and_stack_promote():
    a, _ = _tensor((2,), dt.int8)
    b, _ = _tensor((2,), dt.float16)
    assert s4.concatenate([a, b]).dtype == dt.float16
    assert s4.concatenate([a, b]).numpy().dtype == dt.float16
    c, _ = _tensor((2,), dt.uint8)
    assert s4.concatenate([a, c]).dtype == dt.int16


# ---- weak Python scalars --------------------------------------------------------------------------

def test_weak_scalars_the_design_examples():
    x16 = s4.Tensor(np.array([1.5, -2.0], np.float16))
    assert (x16 * 2.0).dtype == dt.float16
    assert (2.0 * x16).dtype == dt.float16
    assert (x16 * 2.0).numpy().dtype == dt.float16
    np.testing.assert_array_equal((x16 * 2.0).numpy(), np.array([3.0, -4.0], np.float16))
    i8 = s4.Tensor(np.array([1, -3, 100], np.int8))
    r = i8 + 1
    assert r.dtype == dt.int8 and r.numpy().dtype == dt.int8
    np.testing.assert_array_equal(r.numpy(), np.array([2, -2, 101], np.int8))
    i32 = s4.Tensor(np.array([1, 2], np.int32))
    r = i32 + 1.5
    assert r.dtype == dt.float32
    np.testing.assert_array_equal(r.numpy(), np.array([2.5, 3.5], np.float32))
    assert (1.5 * i32).dtype == dt.float32
    i64 = s4.Tensor(np.array([1, 2], np.int64))
    assert (i64 * 0.5).dtype == dt.float32
    b = s4.Tensor([True, False])
    assert (b + 1).dtype == dt.int32
    assert (b * 2.5).dtype == dt.float32
    bf = s4.Tensor(np.array([1.0], s4.bfloat16))
    assert (bf - 3.0).dtype == dt.bfloat16 and (3.0 - bf).dtype == dt.bfloat16


def test_weak_scalar_out_of_range_for_the_tensor_dtype_is_an_error():
    i8 = s4.Tensor(np.array([1], np.int8))
    with pytest.raises(s4.DTypeError, match="out of range"):
        i8 + 300
    u8 = s4.Tensor(np.array([1], np.uint8))
    with pytest.raises(s4.DTypeError, match="out of range"):
        u8 - (-1)


_SCALARS = st.one_of(st.integers(-3, 3), st.floats(-4, 4, allow_nan=False, width=16),
                     st.booleans())
_OPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
        s4.maximum, s4.minimum, operator.lt, operator.eq]


@SETTINGS
@given(st.sampled_from(ALL), _SCALARS, st.sampled_from(_OPS), st.booleans())
def test_weak_scalars_never_widen(dtype, scalar, op, reflected):
    t, a = _tensor((3,), dtype)
    if op is operator.pow and (dt.is_integer(dtype) or dtype == dt.bool_):
        scalar = abs(scalar) if isinstance(scalar, int) else scalar
    try:
        r = op(scalar, t) if reflected else op(t, scalar)
    except s4.DTypeError as e:
        if "out of range" in str(e):     # a weak int must fit the tensor's integer type
            info = np.iinfo(dtype)
            assert dt.is_integer(dtype) and not info.min <= scalar <= info.max, e
            return
        # bool tensors reject arithmetic, as the array API does
        assert dtype == dt.bool_, e
        return
    except ZeroDivisionError:
        return
    assert r.dtype != dt.float64 or dtype == dt.float64, (dtype, scalar, op)
    if op in (operator.lt, operator.eq):
        assert r.dtype == dt.bool_
        return
    if op is operator.truediv:
        want = dtype if dt.is_floating(dtype) else dt.float32
    elif isinstance(scalar, float) and not isinstance(scalar, bool):
        want = dtype if dt.is_floating(dtype) else dt.float32
    elif isinstance(scalar, bool):
        want = dtype
    else:   # a Python int
        want = dt.int32 if dtype == dt.bool_ else dtype
    assert r.dtype == want, (dtype, scalar, op, r.dtype)
    assert r.numpy().dtype == want


def test_float64_appears_only_with_a_float64_operand():
    x32 = s4.Tensor(np.ones(3, np.float32))
    i32 = s4.Tensor(np.ones(3, np.int32))
    for r in (x32 * 1e300, i32 / i32, s4.mean(i32), s4.sqrt(i32), i32 * 0.1, s4.exp(i32),
              x32 + True, s4.Tensor(0.1) * x32, s4.var(i32), s4.linspace(0.0, 1.0, 3)):
        assert r.dtype == dt.float32, r
    x64 = s4.Tensor(np.ones(3, np.float64))
    assert (x64 * 2).dtype == dt.float64 and (x64 + x32).dtype == dt.float64


def test_python_scalars_on_both_sides_use_default_types():
    # with no tensor at all the defaults apply
    assert s4.result_type(2.0, 3) == dt.float32
    assert s4.result_type(1, 2) == dt.int32
    assert s4.result_type(True, False) == dt.bool_
    assert s4.result_type(dt.float16, 2.0) == dt.float16
    assert s4.result_type(dt.int8, 1) == dt.int8
    assert s4.result_type(dt.int8, 1.0) == dt.float32


def test_weak_type_survives_only_while_no_strong_operand_is_seen():
    s = s4.Tensor(np.array([1, 2], np.int16))
    r = (s + 1) * 2 - 3
    assert r.dtype == dt.int16
    r = s4.where(s4.Tensor([True, False]), 1.5, s4.Tensor(np.array([1, 2], np.float16)))
    assert r.dtype == dt.float16
