"""The op table's backend-parity column: every row, forward and backward, on LLVM vs reference.

Each row's function runs on tensors placed on ``s4.Device("llvm")`` and on the reference
backend; results must agree (integers and bools exactly; floats within the row's tolerance,
float32 1e-5 relative unless the row says more). The gradient part runs each differentiable
row's VJP (with a fixed random cotangent) on both backends.
"""
from __future__ import annotations

import zlib

import ml_dtypes  # noqa: F401
import numpy as np
import pytest

import optable
import s4tf_py as s4
from s4tf_py import dtypes as dt

ROWS = optable.load_all_rows()
LLVM = s4.Device("llvm")
REF = s4.Device("reference")


def _has_float_result(r, si, dtype) -> bool:
    rng = np.random.default_rng(0)
    arrays = [np.asarray(optable.draw(r, rng, s, dtype, i)) for i, s in enumerate(r.shapes[si])]
    out = r.fn(*[s4.Tensor(a) for a in arrays])
    out = out[0] if isinstance(out, (tuple, list)) else out
    return dt.is_floating(out.dtype)


def _cases(grad=False):
    for r in ROWS:
        for si, _ in enumerate(r.shapes):
            dtypes = r.dtypes if not grad else [d for d in r.dtypes if d in ("float32", "float64")][:1]
            if grad and (not r.differentiable or not dtypes or
                         not _has_float_result(r, si, dtypes[0])):
                continue   # a bool/int result (signbit...) has no gradient to compare
            for d in dtypes:
                yield pytest.param(r, si, d, id=f"{r.name}-{si}-{d}")


def _run(r, arrays, device):
    with s4.default_device(device):
        out = r.fn(*[s4.Tensor(a) for a in arrays])
    out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    return [np.asarray(o.numpy()) for o in out]


def _close(got, want, r, dtype, what):
    assert got.shape == want.shape and got.dtype == want.dtype, what
    if not dt.is_floating(want.dtype):
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    rtol, atol = optable.tolerances(r, dtype if dt.is_floating(np.dtype(dtype)) else "float32")
    rtol, atol = max(rtol, 1e-5), max(atol, 1e-6)
    if want.dtype in (dt.float16, dt.bfloat16):
        rtol, atol = max(rtol, 1e-2), max(atol, 1e-2)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol,
                               atol=atol, err_msg=what, equal_nan=True)


@pytest.mark.parametrize("r,si,dtype", list(_cases()))
def test_forward_llvm_matches_reference(r, si, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{r.name}|{si}|{dtype}|parity".encode()))
    arrays = [np.asarray(optable.draw(r, rng, s, dtype, i)) for i, s in enumerate(r.shapes[si])]
    want = _run(r, arrays, REF)
    got = _run(r, arrays, LLVM)
    for k, (g, w) in enumerate(zip(got, want)):
        _close(g, w, r, dtype, f"{r.name} result {k} on llvm vs reference")


@pytest.mark.parametrize("r,si,dtype", list(_cases(grad=True)))
def test_gradient_llvm_matches_reference(r, si, dtype):
    rng = np.random.default_rng(zlib.crc32(f"{r.name}|{si}|{dtype}|grad-parity".encode()))
    arrays = [np.asarray(optable.draw(r, rng, s, dtype, i)) for i, s in enumerate(r.shapes[si])]
    float_pos = list(r.extra.get("grad_args", [i for i, a in enumerate(arrays)
                                                 if dt.is_floating(a.dtype)]))
    if not float_pos:
        pytest.fail(f"{r.name} is differentiable but has no floating operand")
    results = []
    for device in (REF, LLVM):
        with s4.default_device(device):
            ts = [s4.Tensor(a) for a in arrays]

            def f(*xs):
                args = list(ts)
                for p, x in zip(float_pos, xs):
                    args[p] = x
                out = r.fn(*args)
                out = out[0] if isinstance(out, (tuple, list)) else out
                return out
            at = tuple(ts[p] for p in float_pos)
            out, pb = s4.value_with_pullback(at if len(at) > 1 else at[0], f)
            if not dt.is_floating(out.dtype):
                pytest.fail(f"{r.name}: first result is not floating")
            ct = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
            g = pb(s4.Tensor(ct))
            g = g if isinstance(g, tuple) else (g,)
            results.append([np.asarray(x.numpy()) for x in g])
    for k, (w, g) in enumerate(zip(*results)):
        _close(g, w, r, dtype, f"{r.name} gradient {k} on llvm vs reference")


def test_llvm_is_really_used():
    """The parity above means something only if kernels were compiled and run."""
    s4.reset_metrics()
    with s4.default_device(LLVM):
        x = s4.Tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
        y = (s4.tanh(x * 0.5) + 1.0).sum(axis=1)
        y.numpy()
    m = s4.metrics()
    assert m["backends"]["llvm"]["cache_misses"] + m["backends"]["llvm"]["cache_hits"] >= 1
    from s4tf_py.backends.llvm import executable
    from s4tf_py.lazy.materialize import _EXECUTABLES
    exes = [e for e in _EXECUTABLES["llvm"].values()
            if any(q.prim.name == "tanh" for q in e.fn.eqns)]
    assert exes and all(isinstance(e, executable.LLVMExecutable) for e in exes)
    assert all(any(step[0] == "kernel" for step in e.prog) for e in exes)