"""The LLVM backend's contractions (BLAS gemm kernels), buffer reuse and plan scheduling."""
from __future__ import annotations

import ast
import gc
import weakref

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py.backends.llvm import blas, executable
from s4tf_py.ir.passes import optimize

LLVM = s4.Device("llvm")


def _plan_kinds(f, *args):
    fn = optimize(s4.trace(f, *args))
    return [k for k, _ in executable.plan(fn)], fn


def _rand(shape, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# lhs shape, rhs shape, contracting, batch  -- every operand layout BLAS takes without a copy
LAYOUTS = [
    ((5, 7), (7, 3), ((1,), (0,)), ((), ())),              # A B
    ((7, 5), (7, 3), ((0,), (0,)), ((), ())),              # A^T B
    ((5, 7), (3, 7), ((1,), (1,)), ((), ())),              # A B^T
    ((7, 5), (3, 7), ((0,), (1,)), ((), ())),              # A^T B^T
    ((4, 5, 7), (4, 7, 3), ((2,), (1,)), ((0,), (0,))),    # batched
    ((4, 7, 5), (4, 3, 7), ((1,), (2,)), ((0,), (0,))),    # batched, both transposed
    ((2, 3, 5, 7), (2, 3, 7, 6), ((3,), (2,)), ((0, 1), (0, 1))),   # two batch dims
    ((5, 2, 7), (2, 7, 3), ((1, 2), (0, 1)), ((), ())),    # two contracting dims
    ((300, 64), (64, 200), ((1,), (0,)), ((), ())),        # split across threads, ragged blocks
    ((1, 9), (9, 1), ((1,), (0,)), ((), ())),              # a dot product
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sa,sb,contract,batch", LAYOUTS)
def test_dot_general_layouts_run_as_gemm_and_match_numpy(sa, sb, contract, batch, dtype):
    a, b = _rand(sa, dtype, 1), _rand(sb, dtype, 2)
    with s4.default_device(LLVM):
        ta, tb = s4.Tensor(a), s4.Tensor(b)
        f = lambda x, y: s4.dot_general(x, y, contract, batch)  # noqa: E731
        kinds, _ = _plan_kinds(f, ta, tb)
        assert "dot" in kinds, kinds
        got = f(ta, tb).numpy()
    want = s4.ops.contraction._dot_impl(a.astype(np.float64), b.astype(np.float64),
                                        lhs_contract=contract[0], rhs_contract=contract[1],
                                        lhs_batch=batch[0], rhs_batch=batch[1])
    tol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_a_large_product_is_split_across_the_pool_and_matches_numpy():
    a, b = _rand((517, 300)), _rand((300, 129), seed=3)
    with s4.default_device(LLVM):
        fn = optimize(s4.trace(lambda x, y: x @ y, s4.Tensor(a), s4.Tensor(b)))
        exe = executable.LLVMExecutable(fn)
        kernel = next(s for s in exe.prog if s[0] == "kernel")
        assert kernel[9] is True and kernel[8] > 1      # parallel, several row blocks
        (out,) = exe([a, b])
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_integer_products_stay_on_numpy_and_half_precision_ones_widen_to_float32():
    x = s4.ones((3, 4), dtype=s4.int32)
    kinds, _ = _plan_kinds(lambda a, b: a @ b, x, s4.ones((4, 2), dtype=s4.int32))
    assert "dot" not in kinds and "host" in kinds
    for dtype in (s4.float16, s4.bfloat16):
        x = s4.ones((3, 4), dtype=dtype)
        kinds, _ = _plan_kinds(lambda a, b: a @ b, x, s4.ones((4, 2), dtype=dtype))
        assert "dot" in kinds and "host" not in kinds, kinds


_OPENBLAS_THREADS = """
import os, scipy, threadpoolctl
from s4tf_py.backends.llvm import blas
assert blas._symbols_ok() and blas.library() == "scipy openblas"
pkg = os.path.realpath(os.path.dirname(scipy.__file__))
libs = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas" and
        os.path.realpath(i["filepath"]).startswith((pkg + os.sep, pkg + ".libs"))]
print(len(libs), [i["num_threads"] for i in libs])
"""


def test_scipy_s_openblas_runs_single_threaded_inside_our_pool(tmp_path):
    """With OpenBLAS, the private copy scipy ships is set to one thread (our pool threads the
    products); numpy's own copy keeps its threads for the user's numpy code."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, S4TF_BLAS="openblas", S4TF_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", _OPENBLAS_THREADS], env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    count, threads = r.stdout.split(" ", 1)
    assert int(count) >= 1 and set(ast.literal_eval(threads)) == {1}, r.stdout


def test_transposes_feeding_or_leaving_a_product_are_folded_into_it():
    x, w, g = s4.ones((8, 5)), s4.ones((5, 3)), s4.ones((8, 3))

    def f(x, w, g):
        return (s4.permute_dims(x, (1, 0)) @ g), s4.permute_dims(x @ w, (1, 0))
    fn = optimize(s4.trace(f, x, w, g))
    names = [e.prim.name for e in fn.eqns]
    assert "transpose" not in names and names.count("dot_general") == 2, names
    a, b, c = _rand((8, 5)), _rand((5, 3), seed=1), _rand((8, 3), seed=2)
    with s4.default_device(LLVM):
        r1, r2 = s4.compile(f)(s4.Tensor(a), s4.Tensor(b), s4.Tensor(c))
    np.testing.assert_allclose(r1.numpy(), a.T @ c, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r2.numpy(), (a @ b).T, rtol=1e-5, atol=1e-5)


def test_a_transpose_of_a_product_that_is_also_read_elsewhere_is_kept():
    def f(x, w):
        y = x @ w
        return s4.permute_dims(y, (1, 0)), y * 2.0
    fn = optimize(s4.trace(f, s4.ones((4, 3)), s4.ones((3, 2))))
    names = [e.prim.name for e in fn.eqns]
    assert names.count("dot_general") == 1 and "transpose" in names


def test_fed_back_outputs_alternate_between_two_buffers():
    """A training step's outputs are its next inputs: the call before last's buffers are free
    again, so a steady loop allocates nothing (double buffering)."""
    with s4.default_device(LLVM):
        step = s4.compile(lambda p, g: (p - 0.1 * g, g * 0.5))
        p, g = s4.Tensor(_rand((64, 64))), s4.Tensor(_rand((64, 64), seed=1))
        want_p, want_g = p.numpy().copy(), g.numpy().copy()
        seen = set()
        for _ in range(6):
            p, g = step(p, g)
            want_p, want_g = want_p - np.float32(0.1) * want_g, want_g * np.float32(0.5)
            seen.add(p._node.value.__array_interface__["data"][0])
        assert len(seen) <= 2, f"{len(seen)} distinct buffers for 6 calls"
        np.testing.assert_allclose(p.numpy(), want_p, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g.numpy(), want_g, rtol=1e-6)


def test_flattening_a_call_s_arguments_leaves_no_reference_cycle():
    """Arguments must die by reference counting alone (the buffer reuse above relies on it)."""
    was = gc.isenabled()
    gc.disable()
    try:
        t = s4.Tensor(np.ones(3, np.float32))
        ref = weakref.ref(t)
        leaves, td = s4.tree.flatten(([t, {"a": t}], (t,)))
        s4.tree.unflatten(td, leaves)
        del t, leaves, td
        assert ref() is None
    finally:
        if was:
            gc.enable()


def test_a_scalar_feeding_groups_of_two_shapes_is_planned_before_both():
    """Regression: splitting a group must not schedule a reader before the value it reads."""
    with s4.default_device(LLVM):
        g = s4.compile(lambda a, b, t: (a * a / (1 - t), b * b / (1 - t)))
        a, b = _rand((5, 3)), _rand((3,), seed=1)
        r1, r2 = g(s4.Tensor(a), s4.Tensor(b), 2.0)
    np.testing.assert_allclose(r1.numpy(), a * a / -1.0, rtol=1e-6)
    np.testing.assert_allclose(r2.numpy(), b * b / -1.0, rtol=1e-6)


def test_an_elementwise_op_on_inputs_only_joins_the_chain_it_feeds():
    """``0.9 * m`` computed before a product joins the fused update after it (one kernel)."""
    def f(x, w, m):
        early = m * 0.9
        y = x @ w
        return early + y * 0.1
    x, w, m = s4.ones((4, 6)), s4.ones((6, 5)), s4.ones((4, 5))
    kinds, _ = _plan_kinds(f, x, w, m)
    assert kinds.count("group") == 1 and kinds.count("dot") == 1, kinds


_BLAS_SCRIPT = """
import numpy as np, s4tf_py as s4
from s4tf_py.backends.llvm import blas
a = np.arange(12, dtype=np.float32).reshape(3, 4)
with s4.default_device(s4.Device("llvm")):
    r = s4.compile(lambda x, y: x @ y)(s4.Tensor(a), s4.Tensor(a.T.copy())).numpy()
assert np.allclose(r, a @ a.T)
print(blas.library())
"""


@pytest.mark.parametrize("choice,library", [("auto", "mkl"), ("mkl", "mkl"),
                                            ("openblas", "scipy openblas")])
def test_s4tf_blas_chooses_the_library_the_gemm_kernels_call(choice, library, tmp_path):
    """MKL is a test extra, so ``auto`` finds it; ``openblas`` forces scipy's OpenBLAS."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, S4TF_BLAS=choice, S4TF_CACHE_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", _BLAS_SCRIPT], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1:] == library.split()[-1:] and library in r.stdout


def test_an_unknown_s4tf_blas_is_an_error_naming_the_choices(monkeypatch):
    monkeypatch.setenv("S4TF_BLAS", "atlas")
    monkeypatch.setattr(blas, "_registered", {})
    with pytest.raises(ValueError, match="auto.*mkl.*openblas"):
        blas._symbols_ok()


def test_gemm_kernels_leave_mkl_thread_settings_of_the_calling_thread_alone():
    """MKL's thread-local count is shared with every MKL user in the process (torch links
    MKL): a kernel sets it to 1 around its call and restores it, so torch keeps its threads."""
    import ctypes
    assert blas.library() == "mkl"
    import importlib.metadata as md
    dist = md.distribution("mkl")
    path = next(dist.locate_file(f) for f in dist.files if "libmkl_rt" in str(f))
    mkl = ctypes.CDLL(str(path))
    before = mkl.MKL_Get_Max_Threads()
    a = _rand((300, 300))
    with s4.default_device(LLVM):
        s4.compile(lambda x: x @ x)(s4.Tensor(a)).numpy()
    assert mkl.MKL_Get_Max_Threads() == before


def test_a_sum_over_leading_axes_runs_as_a_product_with_ones():
    """A bias gradient: BLAS reads the rows contiguously (the strided reduction walked each
    column); a very long sum stays a float64-accumulating reduction kernel."""
    x = _rand((128, 3, 7))
    kinds, _ = _plan_kinds(lambda a: (a * 2.0).sum(axis=0), s4.Tensor(x))
    assert "dot" in kinds
    with s4.default_device(LLVM):
        got = s4.compile(lambda a: (a * 2.0).sum(axis=(0, 1), keepdims=True))(s4.Tensor(x))
        np.testing.assert_allclose(got.numpy(), (x.astype(np.float64) * 2).sum((0, 1),
                                                                            keepdims=True),
                                   rtol=1e-5)
    long = np.random.default_rng(5).random((executable.GEMV_MAX_ROWS * 4, 2)).astype(np.float32)
    kinds, _ = _plan_kinds(lambda a: a.sum(axis=0), s4.Tensor(long))
    assert "dot" not in kinds
    with s4.default_device(LLVM):
        got = s4.compile(lambda a: a.sum(axis=0))(s4.Tensor(long)).numpy()
    np.testing.assert_allclose(got, long.astype(np.float64).sum(0), rtol=1e-6)
