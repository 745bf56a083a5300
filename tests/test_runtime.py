"""The native parts: the C runtime (thread pool, aligned allocator, symbol addresses) and the
C++ extension s4tf_py._native (stable key hashing)."""
import os
import struct
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s4tf_py import _native, runtime
from s4tf_py._runtime import ffi, lib


@pytest.fixture
def threads4():
    """Four pool threads whatever the machine has, restored afterwards."""
    runtime.set_num_threads(4)
    yield 4
    runtime.set_num_threads(None)


# ---- thread pool ------------------------------------------------------------------------------

def test_parallel_for_runs_the_callback_over_the_whole_range_on_several_threads(threads4):
    calls = []
    lock = threading.Lock()

    @ffi.callback("void(void *, int64_t, int64_t)")
    def body(ctx, begin, end):
        time.sleep(0.05)     # long parts: every worker wakes and claims its own in time
        with lock:
            calls.append((begin, end, threading.get_ident(), lib.s4tf_thread_index(),
                          int(ffi.cast("intptr_t", ctx))))

    for n in (1, 3, 4, 10, 1001):
        calls.clear()
        lib.s4tf_parallel_for(n, body, ffi.cast("void *", 1234))
        covered = sorted(i for b, e, *_ in calls for i in range(b, e))
        assert covered == list(range(n)), n                     # every index exactly once
        assert all(c[4] == 1234 for c in calls)                 # ctx passed through
        parts = min(n, threads4)
        assert len(calls) == parts
        assert len({c[2] for c in calls}) == parts               # distinct OS threads
        assert sorted(c[3] for c in calls) == list(range(parts))  # caller is 0, workers 1..
        sizes = [e - b for b, e, *_ in calls]
        assert max(sizes) - min(sizes) <= 1                       # balanced contiguous ranges


def _parts(n, parts):
    q, r = divmod(n, parts)
    bounds, b = [], 0
    for p in range(parts):
        e = b + q + (1 if p < r else 0)
        bounds.append((b, e))
        b = e
    return bounds


def _check_parts(who, parts):
    """Each contiguous part was run whole by one thread: its worker, or the caller (0), who
    takes over the parts whose worker has not started when its own part is done."""
    for p, (b, e) in enumerate(_parts(len(who), parts)):
        runners = set(np.unique(who[b:e]).tolist())
        assert len(runners) == 1 and runners <= {p, 0}, (p, runners)


def test_parallel_for_from_c_code_without_the_gil(threads4):
    n = 100_003
    out = np.full(n, -1, dtype=np.int64)
    who = np.full(n, -1, dtype=np.int32)
    lib.s4tf_parallel_iota(n, ffi.from_buffer("int64_t[]", out), ffi.from_buffer("int32_t[]", who))
    assert np.array_equal(out, np.arange(n))
    _check_parts(who, 4)


def test_short_parts_are_each_run_whole_by_their_worker_or_the_caller(threads4):
    """With parts shorter than a worker's wake-up, the caller takes over the parts whose
    worker has not started (a busy core must not stall the loop): every part still runs
    exactly once, whole, on one thread."""
    calls = []
    lock = threading.Lock()

    @ffi.callback("void(void *, int64_t, int64_t)")
    def body(ctx, begin, end):
        with lock:
            calls.append((begin, end, lib.s4tf_thread_index()))
    for n in (4, 1001):
        for _ in range(20):
            calls.clear()
            lib.s4tf_parallel_for(n, body, ffi.NULL)
            assert sorted(i for b, e, _ in calls for i in range(b, e)) == list(range(n))
            assert sorted((b, e) for b, e, _ in calls) == _parts(n, 4)
            assert all(who in (0, p) for p, (_, _, who) in
                       enumerate(sorted(calls)))


def test_grain_limits_the_number_of_ranges(threads4):
    seen = []
    runtime.parallel_for(10, lambda b, e: seen.append((b, e)), grain=4)
    assert sorted(seen) == [(0, 5), (5, 10)]
    seen.clear()
    runtime.parallel_for(3, lambda b, e: seen.append((b, e)), grain=100)
    assert seen == [(0, 3)]
    seen.clear()
    runtime.parallel_for(0, lambda b, e: seen.append((b, e)))
    assert seen == []


def test_nested_parallel_for_runs_serially_and_does_not_deadlock(threads4):
    inner = []
    lock = threading.Lock()

    def outer(b, e):
        def body(ib, ie):
            with lock:
                inner.append((b, ib, ie))
        runtime.parallel_for(6, body)

    runtime.parallel_for(4, outer)
    assert len(inner) == 4 and all(x[1:] == (0, 6) for x in inner)


def test_exceptions_in_the_body_reach_the_caller(threads4):
    def body(b, e):
        if b == 0:
            raise KeyError("boom")
    with pytest.raises(KeyError, match="boom"):
        runtime.parallel_for(8, body)
    # the pool still works afterwards
    seen = []
    runtime.parallel_for(8, lambda b, e: seen.extend(range(b, e)))
    assert sorted(seen) == list(range(8))


def test_set_num_threads():
    try:
        runtime.set_num_threads(1)
        assert runtime.num_threads() == 1
        seen = []
        runtime.parallel_for(100, lambda b, e: seen.append((b, e)))
        assert seen == [(0, 100)]
        runtime.set_num_threads(3)
        assert runtime.num_threads() == 3
        seen.clear()
        runtime.parallel_for(9, lambda b, e: seen.append((b, e)))
        assert sorted(seen) == [(0, 3), (3, 6), (6, 9)]
    finally:
        runtime.set_num_threads(None)
    assert runtime.num_threads() == runtime.default_num_threads() >= 1
    with pytest.raises(ValueError):
        runtime.set_num_threads(-1)


def test_default_thread_count_follows_the_environment():
    import subprocess
    code = "from s4tf_py import runtime; print(runtime.num_threads())"
    env = dict(os.environ, S4TF_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "3"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_the_pool_works_in_a_forked_child(threads4):
    runtime.parallel_for(8, lambda b, e: None)        # start the workers before forking
    pid = os.fork()
    if pid == 0:
        ok = 1
        try:
            seen = []
            runtime.parallel_for(8, lambda b, e: seen.extend(range(b, e)))
            ok = 0 if sorted(seen) == list(range(8)) else 1
        finally:
            os._exit(ok)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


# ---- aligned allocator ------------------------------------------------------------------------

def test_aligned_allocations_are_64_byte_aligned_and_counted():
    base = runtime.live_bytes()
    ptrs = [lib.s4tf_aligned_alloc(n) for n in (0, 1, 3, 63, 64, 65, 1000, 1 << 20)]
    assert all(p != ffi.NULL for p in ptrs)
    addrs = [int(ffi.cast("uintptr_t", p)) for p in ptrs]
    assert all(a % 64 == 0 for a in addrs)
    assert len(set(addrs)) == len(addrs)
    assert runtime.live_bytes() - base == sum((0, 1, 3, 63, 64, 65, 1000, 1 << 20))
    for p in ptrs:
        lib.s4tf_aligned_free(p)
    lib.s4tf_aligned_free(ffi.NULL)
    assert runtime.live_bytes() == base
    assert lib.s4tf_alignment() == runtime.ALIGNMENT == 64


def test_aligned_arrays_are_aligned_writable_and_freed_with_their_last_view():
    import gc
    base = runtime.live_bytes()
    for shape, dtype in [((7,), "float32"), ((3, 5), "float64"), ((0,), "int8"),
                         ((2, 3, 4), "int64"), (9, "uint8")]:
        a = runtime.aligned_empty(shape, dtype)
        assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.flags.writeable
        a[...] = 1
        assert np.all(a == 1)
        z = runtime.aligned_zeros(shape, dtype)
        assert z.ctypes.data % 64 == 0 and not np.any(z)
    del a, z
    gc.collect()
    assert runtime.live_bytes() == base
    a = runtime.aligned_zeros((100,), "float32")
    view = a[10:20]
    del a
    gc.collect()
    assert runtime.live_bytes() == base + 400      # the view keeps the memory alive
    view[:] = 3.0
    del view
    gc.collect()
    assert runtime.live_bytes() == base


# ---- addresses for JIT code -------------------------------------------------------------------

def test_symbols_are_callable_addresses():
    syms = runtime.symbols()
    assert set(syms) == set(runtime.FUNCTIONS)
    assert all(isinstance(v, int) and v != 0 for v in syms.values())
    num_threads = ffi.cast("int(*)(void)", syms["s4tf_num_threads"])
    assert num_threads() == runtime.num_threads()
    assert ffi.cast("int(*)(void)", syms["s4tf_runtime_abi_version"])() == 1


def test_llvm_jit_code_calls_the_thread_pool(threads4):
    """What the LLVM backend will do: JIT a kernel that hands its body to s4tf_parallel_for."""
    import ctypes

    import llvmlite.binding as llvm
    try:
        llvm.initialize()
    except RuntimeError:
        pass  # newer llvmlite initializes itself
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    runtime.register_with_llvm()
    ir_text = r"""
    declare void @s4tf_parallel_for(i64, ptr, ptr)
    declare i32 @s4tf_thread_index()

    define void @body(ptr %ctx, i64 %begin, i64 %end) {
    entry:
      %who = call i32 @s4tf_thread_index()
      %who64 = sext i32 %who to i64
      %tag = mul i64 %who64, 1000000
      br label %loop
    loop:
      %i = phi i64 [ %begin, %entry ], [ %next, %loop ]
      %p = getelementptr i64, ptr %ctx, i64 %i
      %v = add i64 %i, %tag
      store i64 %v, ptr %p
      %next = add i64 %i, 1
      %done = icmp sge i64 %next, %end
      br i1 %done, label %exit, label %loop
    exit:
      ret void
    }

    define void @kernel(ptr %out, i64 %n) {
      call void @s4tf_parallel_for(i64 %n, ptr @body, ptr %out)
      ret void
    }
    """
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    tm = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    kernel = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64)(
        engine.get_function_address("kernel"))
    n = 10_000
    out = np.zeros(n, dtype=np.int64)
    kernel(out.ctypes.data, n)
    assert np.array_equal(out % 1_000_000, np.arange(n))
    _check_parts(out // 1_000_000, 4)


def test_blas_symbols_point_at_scipy_blas():
    import ctypes
    syms = runtime.blas_symbols(("ddot",))
    ddot = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.POINTER(ctypes.c_int), ctypes.c_void_p,
                            ctypes.POINTER(ctypes.c_int), ctypes.c_void_p,
                            ctypes.POINTER(ctypes.c_int))(syms["ddot"])
    x = np.arange(5, dtype=np.float64)
    y = np.ones(5, dtype=np.float64)
    one, n = ctypes.c_int(1), ctypes.c_int(5)
    assert ddot(ctypes.byref(n), x.ctypes.data, ctypes.byref(one), y.ctypes.data,
                ctypes.byref(one)) == 10.0


# ---- s4tf_py._native --------------------------------------------------------------------------

def test_native_version():
    import s4tf_py
    assert _native.version() == s4tf_py.__version__


@pytest.mark.parametrize("data, expected", [
    (b"", 0xcbf29ce484222325),
    (b"a", 0xaf63dc4c8601ec8c),
    (b"foobar", 0x85944171f73967e8),
])
def test_fnv1a_64_known_vectors(data, expected):
    assert _native.fnv1a_64(data) == expected
    assert _native.fnv1a_64(bytearray(data)) == expected
    assert _native.fnv1a_64(memoryview(data)) == expected


def _fnv_py(data: bytes, h: int = 0xcbf29ce484222325) -> int:
    for byte in data:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def test_fnv1a_64_of_buffers_and_seeds():
    arr = np.arange(1000, dtype=np.float32)
    assert _native.fnv1a_64(arr) == _fnv_py(arr.tobytes())
    assert _native.fnv1a_64(b"bar", seed=_native.fnv1a_64(b"foo")) == _native.fnv1a_64(b"foobar")
    with pytest.raises(TypeError):
        _native.fnv1a_64("a str is not bytes")


def _encode_py(obj, default=None) -> bytes:
    """The reference of csrc/native.cpp's key encoding."""
    u64 = lambda v: struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)  # noqa: E731
    if obj is None:
        return b"N"
    if obj is True:
        return b"T"
    if obj is False:
        return b"F"
    if isinstance(obj, (tuple, list)):
        return (b"(" if isinstance(obj, tuple) else b"[") + u64(len(obj)) + b"".join(
            _encode_py(o, default) for o in obj)
    if isinstance(obj, str):
        raw = obj.encode("utf-8")
        return b"s" + u64(len(raw)) + raw
    if isinstance(obj, float):
        return b"f" + struct.pack("<d", obj)
    if isinstance(obj, int) or hasattr(obj, "__index__"):
        v = obj.__index__()
        if -2**63 <= v < 2**63:
            return b"i" + u64(v)
        digits = str(v).encode()
        return b"I" + u64(len(digits)) + digits
    if isinstance(obj, (bytes, bytearray)):
        return b"b" + u64(len(obj)) + bytes(obj)
    return b"o" + _encode_py(default(obj), default)


keys = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.lists(children, max_size=4).map(tuple),
    max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(keys)
def test_hash_key_is_fnv1a_of_the_documented_encoding(key):
    enc = _native.encode_key(key)
    assert enc == _encode_py(key)
    assert _native.hash_key(key) == _native.fnv1a_64(enc) == _fnv_py(enc)


def test_hash_key_tells_apart_what_a_cache_key_must():
    h = _native.hash_key
    distinct = [1, True, 1.0, "1", b"1", (1,), [1], ((1,),), (1, 2), ((1,), 2), (1, (2,)),
                0.0, -0.0, None, (), "", b""]
    assert len({h(k) for k in distinct}) == len(distinct)
    assert h(("add", (4,), "float32")) == h(("add", (4,), "float32"))


def test_hash_key_is_stable_across_processes():
    # a golden value: the on-disk cache depends on it never changing
    key = ("dot_general", (("lhs_contract", (1,)), ("rhs_contract", (0,))), (4, 8), "f32",
           1.5, None, True, 2**80, b"\x00\xff")
    assert _native.hash_key(key) == 0x1151df0788d82aa2


def test_hash_key_default_maps_other_objects():
    class Prim:
        def __init__(self, name):
            self.name = name
    key = (Prim("add"), (4,))
    assert _native.encode_key(key, default=lambda o: o.name) == _encode_py(
        key, default=lambda o: o.name)
    # an object mapped by default() differs from the value it maps to
    assert _native.hash_key(key, default=lambda o: o.name) != _native.hash_key(("add", (4,)))
    with pytest.raises(TypeError, match="Prim"):
        _native.hash_key(key)
    with pytest.raises(TypeError, match="unchanged"):
        _native.hash_key(key, default=lambda o: o)
    with pytest.raises(ZeroDivisionError):
        _native.hash_key(key, default=lambda o: 1 / 0)
    # numpy integers hash as the Python int they stand for; numpy dtypes need a default
    assert _native.hash_key(np.int64(7)) == _native.hash_key(7)
    assert _native.hash_key(np.dtype("float32"), default=str) == _native.hash_key(
        np.dtype("float32"), default=lambda d: d.name)


def test_hash_key_refuses_absurd_nesting():
    k = ()
    for _ in range(600):
        k = (k,)
    with pytest.raises(ValueError, match="nested"):
        _native.hash_key(k)


_POOL_SCRIPT = """
import numpy as np
from s4tf_py import runtime
runtime.set_num_threads(2)
n = 10_007
out = np.full(n, -1, dtype=np.int64)
who = np.full(n, -1, dtype=np.int32)
for _ in range(50):
    runtime.lib.s4tf_parallel_iota(n, runtime.ffi.from_buffer("int64_t[]", out),
                                   runtime.ffi.from_buffer("int32_t[]", who))
    assert np.array_equal(out, np.arange(n))
print("ok")
"""


@pytest.mark.parametrize("env", [{"S4TF_SPIN_US": "0"}, {"S4TF_SPIN_US": "50000"},
                                 {"S4TF_PIN_THREADS": "0"}, {"S4TF_PIN_THREADS": "1"}])
def test_the_pool_s_spin_and_cpu_placement_settings_keep_it_correct(env):
    """Workers that sleep at once, spin long, stay where the scheduler put them or move off
    the caller's CPU: the loop still covers every index exactly once."""
    import subprocess
    r = subprocess.run([sys.executable, "-c", _POOL_SCRIPT], env=dict(os.environ, **env),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
