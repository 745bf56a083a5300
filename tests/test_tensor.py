"""The Tensor type: constructors, creation functions, numpy interop, Python protocols, operators."""
from __future__ import annotations

import math
import operator

import ml_dtypes
import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py import dtypes as dt

SUPPORTED = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
             np.uint64, np.float16, ml_dtypes.bfloat16, np.float32, np.float64]


# ---- constructors -----------------------------------------------------------------------------

@pytest.mark.parametrize("value,dtype,shape", [
    (1.5, np.float32, ()), (3, np.int32, ()), (True, np.bool_, ()), (2 ** 40, np.int64, ()),
    (-2 ** 31, np.int32, ()), (2 ** 31, np.int64, ()),
    ([1.0, 2.0], np.float32, (2,)), ([1, 2], np.int32, (2,)), ([True, False], np.bool_, (2,)),
    ([1, 2.5], np.float32, (2,)), ([[1, 2], [3, 4]], np.int32, (2, 2)), ((1, 2, 3), np.int32, (3,)),
    ([[[1.0]]], np.float32, (1, 1, 1)), ([], np.float32, (0,)), ([[], []], np.float32, (2, 0)),
    ([True, 2], np.int32, (2,)), ([1, 2 ** 33], np.int64, (2,)),
])
def test_python_values_use_the_default_types(value, dtype, shape):
    t = s4.Tensor(value)
    assert t.dtype == dtype and t.shape == shape and t.ndim == len(shape)
    a = t.numpy()
    assert a.dtype == dtype and a.shape == shape
    np.testing.assert_array_equal(a, np.asarray(value, dtype=dtype).reshape(shape))
    assert t.size == int(np.prod(shape))


@pytest.mark.parametrize("np_dtype", SUPPORTED, ids=lambda d: np.dtype(d).name)
def test_numpy_arrays_of_every_supported_dtype(np_dtype):
    a = (np.arange(6) % 3).reshape(2, 3).astype(np_dtype)
    t = s4.Tensor(a)
    assert t.dtype == np.dtype(np_dtype) and t.shape == (2, 3)
    b = t.numpy()
    assert b.dtype == np.dtype(np_dtype)
    np.testing.assert_array_equal(b, a)
    assert t.tolist() == a.tolist()
    # numpy scalars keep their dtype too
    s = s4.Tensor(a[0, 1])
    assert s.dtype == np.dtype(np_dtype) and s.shape == ()


@pytest.mark.parametrize("target", ["float16", "bfloat16", "float64", "int8", "uint8", "int64",
                                    "bool", s4.float32, np.int16, np.dtype("uint32")])
def test_dtype_argument(target):
    t = s4.Tensor([[0, 1], [2, 3]], dtype=target)
    want = dt.canonical(target)
    assert t.dtype == want and t.numpy().dtype == want
    np.testing.assert_array_equal(t.numpy().astype(np.float64), [[0, 1], [2, 3]] if want != np.bool_
                                  else [[0, 1], [1, 1]])


def test_dtypes_are_numpy_dtypes():
    assert s4.float32 == np.float32 and s4.int32 == np.dtype("int32")
    assert s4.bfloat16 == np.dtype(ml_dtypes.bfloat16)
    assert s4.bool_ == np.bool_ and s4.bool == np.bool_
    for name in ("float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
                 "uint8", "uint16", "uint32", "uint64"):
        assert str(getattr(s4, name)) == name


def test_constructor_from_a_tensor_is_o1_and_casts_on_request():
    x = s4.Tensor([1.5, 2.5])
    y = s4.Tensor(x)
    assert y._node is x._node
    z = s4.Tensor(x, dtype=s4.int32)
    assert z.dtype == np.int32
    np.testing.assert_array_equal(z.numpy(), [1, 2])


def test_constructor_rejects_non_numeric_things():
    with pytest.raises(TypeError):
        s4.Tensor()
    with pytest.raises(TypeError, match="str"):
        s4.Tensor(["a", "b"])
    with pytest.raises(TypeError):
        s4.Tensor({"a": 1})
    with pytest.raises(ValueError, match="non-finite"):
        s4.Tensor([1.0, float("nan")], dtype=s4.int32)


def test_constructor_from_torch_and_objects_with_array_interface():
    import torch
    t = s4.Tensor(torch.arange(4, dtype=torch.float32))
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t.numpy(), [0, 1, 2, 3])

    class HasArray:
        def __array__(self, dtype=None, copy=None):
            return np.array([[1, 2]], dtype=np.int16)

    h = s4.Tensor(HasArray())
    assert h.dtype == np.int16 and h.shape == (1, 2)


# ---- creation functions ---------------------------------------------------------------------------

def test_zeros_ones_full_and_like():
    z = s4.zeros((2, 3))
    assert z.dtype == np.float32 and z.shape == (2, 3)
    np.testing.assert_array_equal(z.numpy(), np.zeros((2, 3)))
    o = s4.ones(4, dtype=s4.int64)
    assert o.dtype == np.int64 and o.shape == (4,)
    np.testing.assert_array_equal(o.numpy(), np.ones(4))
    f = s4.full((2,), 7)
    assert f.dtype == np.int32 and f.tolist() == [7, 7]
    f = s4.full((2, 1), 2.5)
    assert f.dtype == np.float32 and f.tolist() == [[2.5], [2.5]]
    f = s4.full((), True)
    assert f.dtype == np.bool_ and f.item() is True
    f = s4.full((3,), 2.5, dtype=s4.bfloat16)
    assert f.dtype == s4.bfloat16 and f.numpy().dtype == s4.bfloat16
    x = s4.Tensor(np.ones((2, 2), np.float16))
    for g, v in ((s4.zeros_like, 0), (s4.ones_like, 1), (lambda t: s4.full_like(t, 3.5), 3.5),
                 (s4.empty_like, 0)):
        r = g(x)
        assert r.dtype == np.float16 and r.shape == (2, 2)
        np.testing.assert_array_equal(r.numpy(), np.full((2, 2), v, np.float16))
    assert s4.zeros_like(x, dtype=s4.int8).dtype == np.int8
    assert s4.empty((3,)).shape == (3,)
    assert s4.zeros(()).shape == () and s4.zeros(()).item() == 0.0
    assert s4.zeros((0, 2)).numpy().shape == (0, 2)


def test_arange():
    for args, kw in [((5,), {}), ((2, 7), {}), ((0, 1, 0.25), {}), ((5, 0, -2), {}), ((1.5,), {}),
                     ((3,), {"dtype": s4.float64}), ((-3, 3, 2), {"dtype": s4.int64}), ((0,), {}),
                     ((3, 1), {})]:
        r = s4.arange(*args, **kw)
        want = np.arange(*args, **{k: v for k, v in kw.items()})
        np.testing.assert_allclose(r.numpy(), want)
        expected_dtype = kw.get("dtype") or (np.float32 if any(isinstance(a, float) for a in args)
                                             else np.int32)
        assert r.dtype == expected_dtype, (args, r.dtype)
        assert r.shape == want.shape
    with pytest.raises(ValueError):
        s4.arange(0, 5, 0)


def test_linspace():
    for start, stop, num in [(0, 1, 5), (-2.0, 3.0, 7), (1, 1, 3), (0, 10, 1), (0, 1, 0)]:
        r = s4.linspace(start, stop, num)
        assert r.dtype == np.float32 and r.shape == (num,)
        np.testing.assert_allclose(r.numpy(), np.linspace(start, stop, num), rtol=1e-6, atol=1e-6)
    r = s4.linspace(0.0, 1.0, 4, endpoint=False)
    np.testing.assert_allclose(r.numpy(), np.linspace(0.0, 1.0, 4, endpoint=False), rtol=1e-6)
    r = s4.linspace(0.0, 1.0, 11)
    assert r.numpy()[-1] == 1.0           # the endpoint exactly
    r = s4.linspace(0, 1, 3, dtype=s4.float64)
    assert r.dtype == np.float64


def test_eye():
    for args, kw in [((3,), {}), ((2, 4), {}), ((4, 3), {"k": 1}), ((3,), {"k": -1}),
                     ((3,), {"dtype": s4.int32}), ((0,), {})]:
        r = s4.eye(*args, **kw)
        want = np.eye(*args, **{k: v for k, v in kw.items() if k == "k"})
        assert r.dtype == kw.get("dtype", np.float32)
        np.testing.assert_array_equal(r.numpy(), want)


def test_asarray_and_from_dlpack():
    a = np.arange(3, dtype=np.int16)
    t = s4.asarray(a)
    assert t.dtype == np.int16
    u = s4.asarray(t)
    assert u._node is t._node
    assert s4.asarray([1.0, 2.0], dtype=s4.float64).dtype == np.float64
    d = s4.from_dlpack(np.arange(4.0))
    assert d.dtype == np.float64 and d.tolist() == [0, 1, 2, 3]


# ---- numpy interop ---------------------------------------------------------------------------------

def test_numpy_interop_read_only_views_and_writable_copies():
    t = s4.Tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and not a.flags.writeable
    with pytest.raises(ValueError):
        a[0, 0] = 9.0
    c = np.array(t)
    assert c.flags.writeable
    c[0, 0] = 9.0
    assert t.numpy()[0, 0] == 1.0
    n = t.numpy()
    assert not n.flags.writeable
    np.testing.assert_array_equal(n, [[1, 2], [3, 4]])
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    assert np.array(t, copy=True).flags.writeable


def test_dlpack():
    """``__dlpack__`` exports a copy of the value (consumers such as torch ignore DLPack's
    read-only flag), so what a consumer gets is writable and independent of the Tensor."""
    t = s4.Tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.from_dlpack(t)
    np.testing.assert_array_equal(a, [[1, 2], [3, 4]])
    assert a.dtype == np.float32 and a.shape == (2, 2)
    assert a.flags.writeable
    assert a.__array_interface__["data"][0] != t._node.value.__array_interface__["data"][0]
    a[0, 0] = 9.0                                         # writing into the export ...
    np.testing.assert_array_equal(t.numpy(), [[1, 2], [3, 4]])   # ... leaves t alone
    b = np.from_dlpack(t)                                 # every export is a fresh copy
    assert b[0, 0] == 1.0
    assert t.__dlpack_device__() == (1, 0)
    i = np.from_dlpack(s4.Tensor(np.arange(3, dtype=np.int64)))
    assert i.dtype == np.int64
    np.testing.assert_array_equal(i, [0, 1, 2])
    c = np.from_dlpack(t, copy=True)
    assert c.flags.writeable
    assert np.from_dlpack(s4.Tensor(2.5)).shape == ()
    p = s4.Tensor([1.0, 2.0]) * 2.0                       # a pending value materializes first
    np.testing.assert_array_equal(np.from_dlpack(p), [2, 4])


def test_dlpack_export_to_torch_is_independent():
    import torch
    t = s4.Tensor([[1.0, 2.0], [3.0, 4.0]])
    x = torch.from_dlpack(t)
    assert tuple(x.shape) == (2, 2) and x.dtype == torch.float32
    x[0, 0] = 7.0                                         # torch writes into what it got
    x.add_(1.0)
    np.testing.assert_array_equal(t.numpy(), [[1, 2], [3, 4]])
    assert torch.from_dlpack(t)[0, 0].item() == 1.0


def test_item_tolist_and_scalar_conversions():
    assert s4.Tensor(2.5).item() == 2.5 and isinstance(s4.Tensor(2.5).item(), float)
    assert s4.Tensor([[3]]).item() == 3 and isinstance(s4.Tensor([[3]]).item(), int)
    assert s4.Tensor(True).item() is True
    with pytest.raises(ValueError, match="one element"):
        s4.Tensor([1.0, 2.0]).item()
    assert s4.Tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert s4.Tensor(1.5).tolist() == 1.5
    assert float(s4.Tensor([2.5])) == 2.5
    assert int(s4.Tensor(7.9)) == 7
    assert complex(s4.Tensor(1.0)) == 1 + 0j
    assert [10, 20, 30][s4.Tensor(1)] == 20                       # __index__
    with pytest.raises(TypeError):
        [10, 20][s4.Tensor(1.0)]
    assert f"{s4.Tensor(2.5):.3f}" == "2.500"
    assert math.isclose(math.sqrt(s4.Tensor(4.0)), 2.0)


def test_repr_and_str_show_values():
    r = repr(s4.Tensor([[1.0, 2.5]]))
    assert r.startswith("Tensor(") and "1." in r and "2.5" in r
    assert "dtype" not in r                                      # default dtype: not repeated
    r = repr(s4.Tensor(np.array([1, 2], np.int16)))
    assert "dtype=int16" in r and "1" in r
    assert "bfloat16" in repr(s4.Tensor([1.0], dtype=s4.bfloat16))
    assert str(s4.Tensor([1.0, 2.0])) == str(np.array([1.0, 2.0], np.float32))
    p = s4.Tensor([1.0]) * 3.0
    assert "3." in repr(p)                                       # repr materializes


def test_len_iter_bool():
    t = s4.Tensor([[1, 2], [3, 4], [5, 6]])
    assert len(t) == 3
    rows = list(t)
    assert len(rows) == 3 and all(isinstance(r, s4.Tensor) for r in rows)
    assert [r.tolist() for r in rows] == [[1, 2], [3, 4], [5, 6]]
    assert [int(v) for v in s4.Tensor([4, 5])] == [4, 5]
    with pytest.raises(TypeError):
        len(s4.Tensor(1.0))
    with pytest.raises(TypeError):
        iter(s4.Tensor(1.0))
    assert bool(s4.Tensor([1.0])) is True
    assert bool(s4.Tensor(0)) is False
    with pytest.raises(ValueError, match="ambiguous"):
        bool(s4.Tensor([1, 2]))
    assert (1 if s4.Tensor(3) > 2 else 0) == 1
    with pytest.raises(TypeError):
        hash(s4.Tensor(1))


def test_properties():
    t = s4.Tensor(np.zeros((2, 3, 4), np.float16))
    assert t.shape == (2, 3, 4) and t.ndim == 3 and t.size == 24 and t.dtype == np.float16
    assert t.device == s4.get_default_device()
    m = s4.Tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(m.T.numpy(), np.arange(6.0).reshape(2, 3).T)
    np.testing.assert_array_equal(t.mT.numpy(), np.swapaxes(np.zeros((2, 3, 4)), -1, -2))
    assert t.mT.shape == (2, 4, 3)
    with pytest.raises(s4.ShapeError):
        s4.Tensor([1.0]).T


# ---- operators -------------------------------------------------------------------------------------

_A = np.array([[1.5, -2.0, 3.0], [0.5, 4.0, -1.0]], np.float32)
_B = np.array([2.0, -0.5, 1.25], np.float32)

_BINOPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
           operator.mod, operator.pow, operator.lt, operator.le, operator.gt, operator.ge,
           operator.eq, operator.ne]


@pytest.mark.parametrize("op", _BINOPS, ids=lambda o: o.__name__)
def test_binary_operators_tensor_tensor_scalar_and_reflected(op):
    pa = np.abs(_A) + 0.5 if op is operator.pow else _A
    ta, tb = s4.Tensor(pa), s4.Tensor(_B)
    with np.errstate(all="ignore"):
        for got, want in [(op(ta, tb), op(pa, _B)), (op(ta, 2.0), op(pa, np.float32(2.0))),
                          (op(3.0, ta), op(np.float32(3.0), pa)), (op(tb, ta), op(_B, pa))]:
            assert isinstance(got, s4.Tensor), type(got)
            assert got.dtype == want.dtype, (got.dtype, want.dtype)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("op", _BINOPS, ids=lambda o: o.__name__)
def test_binary_operators_with_numpy_array_operands(op):
    pa = np.abs(_A) + 0.5 if op is operator.pow else _A
    ta = s4.Tensor(pa)
    with np.errstate(all="ignore"):
        for got, want in [(op(ta, _B), op(pa, _B)), (op(_B, ta), op(_B, pa))]:
            assert isinstance(got, s4.Tensor), type(got)
            assert got.dtype == want.dtype, (got.dtype, want.dtype)
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)


def test_floor_divide_of_integer_tensors_and_numpy_arrays():
    a = np.array([7, -7, 5, -5], np.int32)
    b = np.array([2, 2, -3, -3], np.int32)
    t = s4.Tensor(a)
    for got, want in [(t // b, a // b), (b // t, b // a), (t // s4.Tensor(b), a // b)]:
        assert isinstance(got, s4.Tensor) and got.dtype == np.int32
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("op", [operator.and_, operator.or_, operator.xor, operator.lshift,
                                operator.rshift], ids=lambda o: o.__name__)
def test_integer_operators(op):
    a = np.array([[5, 12, 7], [1, 0, 3]], np.int32)
    b = np.array([1, 2, 3], np.int32)
    ta, tb = s4.Tensor(a), s4.Tensor(b)
    for got, want in [(op(ta, tb), op(a, b)), (op(ta, 2), op(a, np.int32(2))),
                      (op(3, tb), op(np.int32(3), b))]:
        assert isinstance(got, s4.Tensor)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got.numpy(), want)


def test_unary_operators():
    a = s4.Tensor(_A)
    np.testing.assert_array_equal((-a).numpy(), -_A)
    np.testing.assert_array_equal((+a).numpy(), _A)
    np.testing.assert_array_equal(abs(a).numpy(), np.abs(_A))
    i = s4.Tensor(np.array([0, 5, -3], np.int32))
    np.testing.assert_array_equal((~i).numpy(), ~np.array([0, 5, -3], np.int32))
    b = s4.Tensor([True, False])
    np.testing.assert_array_equal((~b).numpy(), [False, True])


def test_matmul_operator():
    a = s4.Tensor(_A)
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    r = a @ s4.Tensor(m)
    assert r.shape == (2, 4) and r.dtype == np.float32
    np.testing.assert_allclose(r.numpy(), _A @ m, rtol=1e-6)
    np.testing.assert_allclose((a @ m).numpy(), _A @ m, rtol=1e-6)
    np.testing.assert_allclose((_A.T @ a).numpy(), _A.T @ _A, rtol=1e-6)
    v = s4.Tensor([1, 2, 3]) @ s4.Tensor([4, 5, 6])
    assert v.dtype == np.int32 and v.item() == 32


def test_comparisons_with_numpy_on_the_left_return_tensors():
    t = s4.Tensor(_B)
    r = _B < t
    assert isinstance(r, s4.Tensor) and r.dtype == np.bool_
    r = np.float32(1.0) + t
    assert isinstance(r, s4.Tensor)


def test_methods_mirror_functions():
    t = s4.Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_allclose(t.sum(axis=1).numpy(), a.sum(axis=1))
    np.testing.assert_allclose(t.mean().numpy(), a.mean())
    np.testing.assert_allclose(t.max(axis=0, keepdims=True).numpy(), a.max(axis=0, keepdims=True))
    np.testing.assert_allclose(t.min().numpy(), a.min())
    np.testing.assert_allclose(t.prod(axis=0).numpy(), a.prod(axis=0))
    np.testing.assert_allclose(t.var(axis=1, correction=1).numpy(), a.var(axis=1, ddof=1), rtol=1e-6)
    np.testing.assert_allclose(t.std().numpy(), a.std(), rtol=1e-6)
    assert t.argmax(axis=1).tolist() == [2, 2]
    assert t.argmin(axis=0, keepdims=True).tolist() == [[0, 0, 0]]
    assert t.reshape(3, 2).shape == (3, 2) and t.reshape((6,)).shape == (6,)
    assert t.transpose().shape == (3, 2) and t.transpose(1, 0).shape == (3, 2)
    assert t.flatten().tolist() == list(range(6))
    assert t.reshape(1, 2, 3).squeeze(0).shape == (2, 3)
    assert t.expand_dims(1).shape == (2, 1, 3)
    assert t.broadcast_to((4, 2, 3)).shape == (4, 2, 3)
    assert t.astype(s4.int8).dtype == np.int8
    np.testing.assert_array_equal(t.clip(1, 4).numpy(), np.clip(a, 1, 4))
    assert (t > 2).any().item() is True and (t > 2).all(axis=1).tolist() == [False, True]


def test_devices_are_interned_and_survive_pickling():
    import copy
    import pickle
    assert s4.Device("llvm") is s4.Device("llvm")
    assert s4.Device("xla", kind="gpu", ordinal=1) is s4.Device("xla", kind="gpu", ordinal=1)
    assert s4.Device("xla", kind="gpu") != s4.Device("xla") != s4.Device("llvm")
    d = s4.Device("xla", kind="gpu", ordinal=1)
    assert pickle.loads(pickle.dumps(d)) is d and copy.deepcopy(d) is d
    assert {s4.Device("reference"): 1}[s4.Device("reference")] == 1
    with pytest.raises(ValueError, match="unknown device"):
        s4.Device("tpu")
