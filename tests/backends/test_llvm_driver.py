"""The LLVM executable's driver: runs of kernels as one native call, planned buffers shared by
reshapes, and slice-setting scatters run by the runtime (in place on donated buffers)."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py.backends.llvm import executable
from s4tf_py.ir.passes import optimize
from s4tf_py.ops._core import bind_op
from s4tf_py.ops.indexing import SCATTER

RNG = np.random.default_rng(0)


def _exe(f, *args, donated=()):
    fn = optimize(s4.trace(f, *args))
    fn.donated = frozenset(donated)
    return executable.LLVMExecutable(fn), fn


def _inputs(fn, values):
    """The executable's inputs: the functions here capture no constants."""
    assert len(fn.params) == len(values), fn
    return list(values)


def _scatter(x, i, u, axis):
    """The scatter primitive itself (index_update wraps negative indices before it)."""
    return bind_op(SCATTER, [x, i, u], (("axis", axis), ("combine", "set")))


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_a_slice_setting_scatter_runs_in_the_runtime_not_on_the_host(index_dtype):
    x = RNG.standard_normal((2, 3, 7, 5)).astype(np.float32)
    # duplicates (the later update wins) and indices outside [0, 7) (dropped)
    i = np.array([6, 0, 9, 0, -1], index_dtype)
    u = RNG.standard_normal((2, 3, 5, 5)).astype(np.float32)
    exe, fn = _exe(lambda x, i, u: _scatter(x + x, i, u, axis=2),
                   s4.Tensor(x), s4.Tensor(i), s4.Tensor(u))
    assert not any(s[0] == "host" and s[8].prim.name == "scatter" for s in exe.prog)
    assert any(isinstance(st[1], executable.ScatterSpec) for st in exe.program)
    (out,) = exe(_inputs(fn, [x, i, u]))
    want = x * 2.0
    want[:, :, 6] = u[:, :, 0]
    want[:, :, 0] = u[:, :, 3]
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_scatter_add_with_repeated_indices_runs_in_the_runtime(dtype):
    # an embedding's gradient: 2-D token ids, repeated ids sum, out-of-range ids are dropped
    x = RNG.standard_normal((6, 5)).astype(dtype)
    i = np.array([[1, 4, 1], [5, 1, 7]], np.int32)
    u = RNG.standard_normal((2, 3, 5)).astype(dtype)
    exe, fn = _exe(lambda x, i, u: bind_op(SCATTER, [x, i, u], (("axis", 0), ("combine", "add"))),
                   s4.Tensor(x), s4.Tensor(i), s4.Tensor(u))
    assert any(isinstance(st[1], executable.ScatterSpec) for st in exe.program)
    (out,) = exe(_inputs(fn, [x, i, u]))
    want = x.copy()
    for (r, c), k in np.ndenumerate(i):
        if k < 6:
            want[k] += u[r, c]
    np.testing.assert_allclose(out, want, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_a_bfloat16_scatter_add_stays_on_the_host():
    x = s4.zeros((4, 3), dtype=s4.bfloat16)
    i = s4.Tensor(np.array([1, 1], np.int32))
    u = s4.ones((2, 3), dtype=s4.bfloat16)
    exe, fn = _exe(lambda x, i, u: bind_op(SCATTER, [x, i, u], (("axis", 0), ("combine", "add"))),
                   x, i, u)
    assert not any(isinstance(st[1], executable.ScatterSpec) for st in exe.program)


def test_a_scatter_writes_in_place_when_nothing_else_holds_its_operand():
    from s4tf_py.lazy.metrics import counters
    x = RNG.standard_normal((1, 2, 16, 4)).astype(np.float32)
    i = np.array([5], np.int32)
    u = RNG.standard_normal((1, 2, 1, 4)).astype(np.float32)
    exe, fn = _exe(lambda x, i, u: _scatter(x, i, u, axis=2),
                   s4.Tensor(x), s4.Tensor(i), s4.Tensor(u), donated=(0,))
    inputs = _inputs(fn, [x.copy(), i, u])
    addr = inputs[0].ctypes.data
    before = counters["inplace_updates"]
    (out,) = exe(inputs)                         # the executable takes the list's references
    assert out.ctypes.data == addr               # the operand's own buffer, updated
    assert counters["inplace_updates"] == before + 1
    want = x.copy()
    want[:, :, 5] = u[:, :, 0]
    np.testing.assert_array_equal(out, want)


def test_a_scatter_copies_an_operand_that_something_else_holds():
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    i = np.array([2, 3], np.int32)
    u = RNG.standard_normal((2, 6)).astype(np.float32)
    exe, fn = _exe(lambda x, i, u: _scatter(x, i, u, axis=0), s4.Tensor(x), s4.Tensor(i),
                   s4.Tensor(u))
    before = x.copy()
    for _ in range(2):                            # pooled output buffers are reused
        (out,) = exe(_inputs(fn, [x, i, u]))
        np.testing.assert_array_equal(x, before)
        want = before.copy()
        want[2:4] = u
        np.testing.assert_array_equal(out, want)


def test_compiled_scatter_matches_the_reference_backend():
    def step(cache, slot, kv):
        return _scatter(cache, slot, s4.tanh(kv), axis=2) * 1.0

    cache = RNG.standard_normal((1, 1, 8, 4)).astype(np.float32)
    kv = RNG.standard_normal((1, 1, 1, 4)).astype(np.float32)
    outs = {}
    for dev in ("reference", "llvm"):
        f = s4.compile(step, device=s4.Device(dev))
        c = s4.Tensor(cache, device=s4.Device(dev))
        for t in range(10):                       # wraps around the 8 slots
            c = f(c, s4.Tensor(np.array([t % 8], np.int32)), s4.Tensor(kv * t))
        outs[dev] = c.numpy()
    np.testing.assert_allclose(outs["llvm"], outs["reference"], rtol=1e-6, atol=1e-7)


def test_a_reshape_between_kernels_is_an_alias_of_the_planned_buffer():
    a = RNG.standard_normal((4, 6)).astype(np.float32)
    w = RNG.standard_normal((3, 8)).astype(np.float32)

    def f(a, w):
        h = s4.tanh(a) + a                       # a kernel
        return s4.reshape(h, (8, 3)) @ w         # reshape, then a product kernel

    exe, fn = _exe(f, s4.Tensor(a), s4.Tensor(w))
    assert "alias" in [st[0] for st in exe.prog]
    assert not any(st[0] == "host" and st[8].prim.name == "reshape" for st in exe.prog)
    (out,) = exe(_inputs(fn, [a, w]))
    np.testing.assert_allclose(out, (np.tanh(a) + a).reshape(8, 3) @ w, rtol=1e-5,
                               atol=1e-5)


def test_kernel_runs_read_non_contiguous_inputs_through_a_copy():
    a = RNG.standard_normal((6, 5)).astype(np.float32)
    exe, fn = _exe(lambda a: s4.exp(a) + a, s4.Tensor(a.T.copy()))
    view = a.T                                    # Fortran-ordered view: not C-contiguous
    assert not view.flags.c_contiguous
    (out,) = exe(_inputs(fn, [view]))
    np.testing.assert_allclose(out, np.exp(view) + view, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(view, a.T)      # the caller's array is untouched


def _no_host_step(exe, name):
    return not any(st[0] == "host" and st[8].prim.name == name for st in exe.prog)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.bool_])
def test_concatenate_slice_and_pad_are_runtime_copies(dtype):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((2, 3, 4)) * 4).astype(dtype)
    b = (rng.standard_normal((2, 5, 4)) * 4).astype(dtype)

    def f(a, b):
        cat = s4.concatenate([a, b, a], axis=1)                      # [2, 11, 4]
        part = cat[:, 1:10:3, ::2]                                   # strided slice
        padded = s4.pad(part, ((1, 0), (0, 2), (3, 1)), constant_values=1)
        return cat, part, padded

    exe, fn = _exe(f, s4.Tensor(a), s4.Tensor(b))
    for name in ("concatenate", "slice", "pad"):
        assert _no_host_step(exe, name), name
    cat, part, padded = exe(_inputs(fn, [a, b]))
    want_cat = np.concatenate([a, b, a], axis=1)
    want_part = want_cat[:, 1:10:3, ::2]
    np.testing.assert_array_equal(cat, want_cat)
    np.testing.assert_array_equal(part, want_part)
    np.testing.assert_array_equal(
        padded, np.pad(want_part, ((1, 0), (0, 2), (3, 1)), constant_values=1))


def test_interior_padding_runs_in_the_runtime_and_cropping_on_the_host():
    from s4tf_py.ops.shape import PAD
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    v = np.float32(-1)

    def dilate(x, v):
        return bind_op(PAD, [x, v], (("low", (0, 1)), ("high", (1, 0)), ("interior", (1, 2))))

    exe, fn = _exe(dilate, s4.Tensor(x), s4.Tensor(v))
    assert _no_host_step(exe, "pad")
    (out,) = exe(_inputs(fn, [x, np.asarray(v)]))
    want = np.full((4, 8), -1, np.float32)
    want[0:3:2, 1::3] = x
    np.testing.assert_array_equal(out, want)

    def crop(x, v):
        return bind_op(PAD, [x, v], (("low", (-1, 0)), ("high", (0, 1)), ("interior", (0, 0))))

    exe, fn = _exe(crop, s4.Tensor(x), s4.Tensor(v))
    assert not _no_host_step(exe, "pad")
    (out,) = exe(_inputs(fn, [x, np.asarray(v)]))
    np.testing.assert_array_equal(out, [[3, 4, 5, -1]])


def test_control_flow_bodies_run_as_llvm_executables():
    from s4tf_py.ir.region import Region

    def f(c0, xs, w):
        def body(c, x):
            c = s4.tanh(c @ w + x)
            return c, c.sum()
        c, ys = s4.scan(body, c0, xs)
        big = s4.while_loop(lambda c: c.sum() < 100.0, lambda c: c * 2.0 + 1.0, c)
        return c, ys, s4.cond(ys.sum() > 0, lambda a: a * 2.0, lambda a: a - 1.0, big)

    rng = np.random.default_rng(5)
    args = [rng.standard_normal((2, 3)).astype(np.float32),
            rng.standard_normal((6, 2, 3)).astype(np.float32),
            (rng.standard_normal((3, 3)) * 0.5).astype(np.float32)]
    results = {}
    for dev in ("reference", "llvm"):
        compiled = s4.compile(f, device=s4.Device(dev))
        results[dev] = [t.numpy() for t in compiled(*[s4.Tensor(a, device=s4.Device(dev))
                                                       for a in args])]
    for got, want in zip(results["llvm"], results["reference"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    exe = next(iter(compiled._cache.values())).executable

    def flat(v):
        return [y for x in v for y in flat(x)] if isinstance(v, tuple) else [v]
    params = [x for st in exe.prog if st[0] == "host" for _, v in st[8].params for x in flat(v)]
    bodies = [v for v in params if isinstance(v, executable._CompiledRegion)]
    assert {st[8].prim.name for st in exe.prog if st[0] == "host"} >= {"scan", "while_loop",
                                                                       "cond"}
    # scan's body, while's condition and body, cond's two branches; no interpreted Region left
    assert len(bodies) == 5 and not any(isinstance(v, Region) for v in params)
    assert sum(b._exe is not None for b in bodies) >= 4     # one cond branch never ran
