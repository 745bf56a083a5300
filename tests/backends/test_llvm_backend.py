"""The LLVM backend's own behaviour: fusion, reductions, threading, the persistent cache."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np

import s4tf_py as s4
from s4tf_py.backends.llvm import cache, executable
from s4tf_py.ir.passes import optimize

LLVM = s4.Device("llvm")


def _exe(f, *args):
    """The LLVM executable of ``f`` traced at ``args``."""
    fn = optimize(s4.trace(f, *args))
    return executable.LLVMExecutable(fn), fn


def test_elementwise_chain_with_broadcast_is_one_kernel():
    a, b, c = s4.ones((64, 32)), s4.ones((32,)), s4.ones((64, 1))
    exe, fn = _exe(lambda a, b, c: s4.tanh(a * b + c) * s4.sigmoid(a) - 0.5 * b, a, b, c)
    kinds = [s[0] for s in exe.prog]
    assert kinds.count("kernel") == 1, kinds
    x = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal(32).astype(np.float32)
    z = np.random.default_rng(2).standard_normal((64, 1)).astype(np.float32)
    (out,) = exe([x, y, z] + [np.float32(0.5)] * (len(fn.params) - 3))
    want = np.tanh(x * y + z) / (1 + np.exp(-x)) - 0.5 * y
    np.testing.assert_allclose(out, want, rtol=2e-6, atol=2e-6)


def test_softmax_rows_fuse_producers_into_reductions():
    x = s4.ones((8, 16))
    exe, fn = _exe(lambda x: s4.softmax(x, axis=-1), x)
    groups = [[e.prim.name for e in g.eqns] for kind, g in executable.plan(fn) if kind == "group"]
    assert any("exp" in g and "reduce_sum" in g for g in groups), groups   # one pass: exp + sum
    v = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    (out,) = exe([v] + [np.float32(1)] * (len(fn.params) - 1))
    e = np.exp(v - v.max(-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=1e-6, atol=1e-7)


def test_float32_sum_of_a_long_array_is_accurate():
    rng = np.random.default_rng(0)
    v = (rng.random(4_000_000) * 1e3).astype(np.float32)
    with s4.default_device(LLVM):
        got = s4.Tensor(v).sum().item()
    exact = float(np.sum(v.astype(np.float64)))
    assert abs(got - exact) / exact < 1e-6          # naive float32 accumulation is ~1e-4 off


def test_large_kernels_run_on_the_thread_pool():
    x = s4.ones((512, 512))
    exe, fn = _exe(lambda x: s4.exp(x) * 2.0, x)
    kernel = next(s for s in exe.prog if s[0] == "kernel")
    assert kernel[9] is True, "a 256K-element kernel should be split across threads"
    v = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    (out,) = exe([v] + [np.float32(2.0)] * (len(fn.params) - 1))
    np.testing.assert_allclose(out, np.exp(v) * 2.0, rtol=1e-6)


def test_small_kernels_stay_on_the_calling_thread():
    exe, fn = _exe(lambda x: x + 1.0, s4.ones((4,)))
    kernel = next(s for s in exe.prog if s[0] == "kernel")
    assert kernel[9] is False


def test_integer_contractions_and_gathers_run_on_the_host_between_kernels():
    exe, fn = _exe(lambda x, w, i: s4.take(s4.relu(x @ w + 1), i, axis=0),
                   s4.ones((4, 3), dtype=s4.int32), s4.ones((3, 5), dtype=s4.int32),
                   s4.Tensor(np.array([1, 0], np.int32)))
    kinds = [(s[0], s[1].__name__ if s[0] == "host" else "") for s in exe.prog]
    assert ("host", "_dot_impl") in kinds and any(k == "kernel" for k, _ in kinds)
    assert any(k == "host" and n != "_dot_impl" and "constant" not in n for k, n in kinds)


_SCRIPT = textwrap.dedent("""
    import numpy as np, s4tf_py as s4
    from s4tf_py.backends.llvm import cache
    with s4.default_device(s4.Device("llvm")):
        x = s4.Tensor(np.arange(10, dtype=np.float32))
        y = (s4.tanh(x * 0.25) + 3.0).sum()
        print(round(y.item(), 4), cache.stats["disk_hits"], cache.stats["disk_misses"])
""")


def _run(cache_dir):
    env = dict(os.environ, S4TF_CACHE_DIR=str(cache_dir))
    r = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                       check=True)
    value, hits, misses = r.stdout.split()
    return float(value), int(hits), int(misses), r.stderr


def test_a_fresh_process_with_a_warm_disk_cache_compiles_nothing(tmp_path):
    v1, hits1, misses1, _ = _run(tmp_path)
    assert misses1 >= 1 and hits1 == 0
    v2, hits2, misses2, _ = _run(tmp_path)
    assert misses2 == 0 and hits2 >= 1 and v2 == v1
    left = [f for _, _, files in os.walk(tmp_path) for f in files if f.endswith(".tmp")]
    assert not left, f"half-written files: {left}"


def test_a_corrupt_cache_entry_is_recompiled_with_a_warning(tmp_path):
    v1, _, _, _ = _run(tmp_path)
    corrupted = 0
    for root, _, files in os.walk(tmp_path):        # objects, and the drivers' code objects
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"garbage, not an object file")
            corrupted += 1
    assert corrupted >= 2
    v2, hits, misses, stderr = _run(tmp_path)
    assert v2 == v1 and misses >= 1
    assert "corrupt compile-cache entry" in stderr


def test_the_cache_key_depends_on_the_code_and_the_host():
    k1 = cache.cache_key("define void @f() { ret void }")
    k2 = cache.cache_key("define void @g() { ret void }")
    assert k1 != k2 and len(k1) == 64
    from s4tf_py.backends.llvm import jit
    assert jit.host_description() in ("".join([]) or jit.host_description())
    assert "|" in jit.host_description()


def test_output_buffers_are_recycled_only_once_their_results_are_dropped():
    with s4.default_device(LLVM):
        f = s4.compile(lambda a: a * 2.0 + 1.0)
        a = s4.Tensor(np.arange(4, dtype=np.float32))
        r1 = f(a)
        addr1 = r1._node.value.__array_interface__["data"][0]
        r2 = f(a + 1.0)                          # r1 is alive: its buffer must not be reused
        assert r2._node.value.__array_interface__["data"][0] != addr1
        np.testing.assert_array_equal(r1.numpy(), [1.0, 3.0, 5.0, 7.0])
        view = r2.numpy()                        # a numpy view keeps r2's buffer alive too
        del r1, r2
        r3 = f(a)
        np.testing.assert_array_equal(view, [3.0, 5.0, 7.0, 9.0])
        assert r3._node.value.__array_interface__["data"][0] != view.__array_interface__["data"][0]
        np.testing.assert_array_equal(r3.numpy(), [1.0, 3.0, 5.0, 7.0])


def test_division_by_a_loop_invariant_is_a_multiplication_within_two_ulp():
    """``x / c`` with ``c`` the same for every element multiplies by ``1/c`` computed once;
    the result stays within 2 ulp of the true quotient (numpy's division)."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(4099) * 10.0 ** rng.integers(-20, 20, 4099)).astype(np.float32)
    with s4.default_device(LLVM):
        f = s4.compile(lambda a, c: a / (1.0 - c))
        for c in (0.1, 0.999, -3.0e-5):
            got = f(s4.Tensor(x), c).numpy()
            want = x / np.float32(1.0 - np.float32(c))
            np.testing.assert_array_max_ulp(got, want, maxulp=2)
        text = executable.kernel_module_text(optimize(s4.trace(f.fn, s4.Tensor(x), 0.5)))
    assert text.count("fdiv") == 1          # one division: the reciprocal, outside the loop


def test_pooling_windows_are_a_strided_view_reduced_in_one_kernel():
    """reduce_window (max/avg pooling) reads its windows as a strided view of the input; padding
    (filled with the reduction's identity) is a host step before it."""
    F = s4.nn.functional
    x = np.random.default_rng(4).standard_normal((2, 9, 7, 3)).astype(np.float32)
    x[0, 0, 0, 0] = np.nan
    cases = [lambda a: F.max_pool2d(a, 2), lambda a: F.max_pool2d(a, 3, 2, padding="same"),
             lambda a: F.avg_pool2d(a, 3, 1),
             lambda a: F.reduce_window(a, "sum", (1, 2, 3, 1), (1, 1, 2, 1))]
    for f in cases:
        fn = optimize(s4.trace(f, s4.Tensor(x)))
        kinds = [(k, getattr(s, "prim", None) and s.prim.name) for k, s in executable.plan(fn)]
        assert ("host", "reduce_window") not in kinds and any(k == "group" for k, _ in kinds)
        with s4.default_device(s4.Device("reference")):
            want = f(s4.Tensor(x)).numpy()
        with s4.default_device(LLVM):
            got = s4.compile(f)(s4.Tensor(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)     # NaN where numpy's


def test_the_same_executable_called_from_several_threads_gives_each_its_own_result():
    """Kernel calls release the GIL; the executable's buffer tables must not be shared by two
    calls at once."""
    import threading
    f = s4.compile(lambda a: s4.tanh(a * 2.0) + a)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((256, 256)).astype(np.float32) for _ in range(4)]
    wants = [np.tanh(x * 2.0) + x for x in xs]
    errors = []

    def work(k):
        with s4.default_device(LLVM):
            for _ in range(40):
                got = f(s4.Tensor(xs[k])).numpy()
                if not np.allclose(got, wants[k], rtol=1e-5, atol=1e-5):
                    errors.append(k)
                    return
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


_STEP_SCRIPT = textwrap.dedent("""
    import json, numpy as np, s4tf_py as s4
    from s4tf_py.backends.llvm import cache

    def step(w, x):
        loss, g = s4.value_with_gradient(at=w, of=lambda w: (s4.tanh(x @ w) ** 2).mean())
        return w - 0.1 * g, loss

    with s4.default_device(s4.Device("llvm")):
        f = s4.compile(step)
        w = s4.Tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
        x = s4.Tensor(np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 4))
        w2, loss = f(w, x)
        print(json.dumps({"w": w2.numpy().tolist(), "loss": loss.item(),
                          "plan_hits": cache.stats["plan_hits"],
                          "plan_misses": cache.stats["plan_misses"],
                          "optimized_from_disk": s4.metrics()["optimized_from_disk"]}))
""")


def _run_step(cache_dir):
    import json
    env = dict(os.environ, S4TF_CACHE_DIR=str(cache_dir))
    r = subprocess.run([sys.executable, "-c", _STEP_SCRIPT], env=env, capture_output=True,
                       text=True, check=True)
    return json.loads(r.stdout), r.stderr


def test_a_warm_process_loads_the_optimized_ir_and_the_plan_instead_of_making_them(tmp_path):
    cold, _ = _run_step(tmp_path)
    assert cold["plan_misses"] >= 1 and cold["plan_hits"] == 0
    assert cold["optimized_from_disk"] == 0
    assert os.listdir(tmp_path / "plans") and os.listdir(tmp_path / "optimized")
    warm, _ = _run_step(tmp_path)
    # the plan is found under the traced function's key: nothing is optimized or planned
    assert warm["plan_hits"] >= 1 and warm["plan_misses"] == 0
    assert warm["optimized_from_disk"] == 0
    assert warm["w"] == cold["w"] and warm["loss"] == cold["loss"]
    shutil.rmtree(tmp_path / "plans")              # plans gone: the optimized IR is loaded
    replanned, _ = _run_step(tmp_path)
    assert replanned["optimized_from_disk"] >= 1 and replanned["plan_misses"] >= 1
    assert replanned["w"] == cold["w"]


def test_a_damaged_plan_or_optimized_entry_is_rebuilt_with_a_warning(tmp_path):
    cold, _ = _run_step(tmp_path)
    for kind in ("plans", "optimized"):
        for f in os.listdir(tmp_path / kind):
            (tmp_path / kind / f).write_bytes(b"not a pickle")
    again, stderr = _run_step(tmp_path)
    assert "ignoring an unreadable cache entry" in stderr
    assert again["plan_misses"] >= 1 and again["w"] == cold["w"]
    fixed, _ = _run_step(tmp_path)                 # rewritten whole: loads again
    assert fixed["plan_hits"] >= 1 and fixed["w"] == cold["w"]


def test_cached_ir_is_keyed_by_source_location_so_errors_name_the_current_line(
        tmp_path, monkeypatch):
    monkeypatch.setenv("S4TF_CACHE_DIR", str(tmp_path))
    from s4tf_py.lazy.materialize import _optimized, _source_key
    a = s4.ones((3,))
    # max records where it was called (an empty input's error names that line)
    f1 = s4.trace(lambda a: s4.exp(a).max(), a)
    f2 = s4.trace(lambda a: s4.exp(a).max(), a)      # the same program from another line
    assert str(f1) == str(f2)
    assert [e.loc for e in f1.eqns] != [e.loc for e in f2.eqns]
    _optimized(f1, _source_key(f1))
    _optimized(f2, _source_key(f2))
    assert len(os.listdir(tmp_path / "optimized")) == 2
