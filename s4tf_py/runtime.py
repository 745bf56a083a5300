"""The C runtime that compiled kernels call (``runtime/``), seen from Python.

The runtime is a small C library with a plain C ABI, built by cffi into ``s4tf_py._runtime``
when the package is installed:

* a **thread pool**: ``s4tf_parallel_for(n, fn, ctx)`` splits ``[0, n)`` into contiguous
  ranges, one per thread, and calls ``fn(ctx, begin, end)`` on each (the calling thread runs
  the first range). Kernels that the LLVM backend JIT-compiles call it by address;
* a **64-byte aligned allocator** (cache lines, AVX-512 vectors) with a live-bytes count;
* the **thread count**: ``S4TF_NUM_THREADS`` at start-up, else the CPUs this process may use;
  :func:`set_num_threads` changes it. An idle worker spins for ``S4TF_SPIN_US`` microseconds
  (default 2000, yielding its core to any other runnable thread) before it sleeps: a step's
  parallel kernels come microseconds apart and waking a sleeping thread costs ~50 us.

:func:`symbols` gives the address of every runtime function, ready for
``llvmlite.binding.add_symbol`` (:func:`register_with_llvm` does that), and
:func:`blas_symbols` the addresses of scipy's BLAS routines (Fortran ABI) for contractions.

>>> from s4tf_py import runtime
>>> runtime.num_threads() >= 1
True
>>> a = runtime.aligned_empty((3, 5), "float32")
>>> a.ctypes.data % 64
0
>>> seen = []
>>> runtime.parallel_for(10, lambda b, e: seen.extend(range(b, e)))
>>> sorted(seen) == list(range(10))
True
"""
from __future__ import annotations

import os
import threading

import numpy as np

try:
    from ._runtime import ffi as _ffi, lib as _lib
    _IMPORT_ERROR: Exception | None = None
except ImportError as e:  # not built: a source tree without `pip install -e .`
    _ffi = _lib = None
    _IMPORT_ERROR = e

__all__ = ["available", "num_threads", "set_num_threads", "default_num_threads", "thread_index",
           "parallel_for", "aligned_empty", "aligned_zeros", "live_bytes", "ALIGNMENT",
           "symbols", "register_with_llvm", "blas_symbols", "ffi", "lib"]

#: every function of the C ABI (runtime/s4tf_runtime.h), by name
FUNCTIONS = ("s4tf_runtime_abi_version", "s4tf_aligned_alloc", "s4tf_aligned_calloc",
             "s4tf_aligned_free", "s4tf_alignment", "s4tf_live_bytes", "s4tf_num_threads",
             "s4tf_set_num_threads", "s4tf_default_num_threads", "s4tf_thread_index",
             "s4tf_parallel_for", "s4tf_parallel_for_grain", "s4tf_parallel_iota", "s4tf_run_steps",
             "s4tf_scatter", "s4tf_copy_regions",
             "s4tf_blas_threads_local_noop")

ALIGNMENT = 64


def available() -> bool:
    """Whether the compiled runtime could be imported."""
    return _lib is not None


def _need():
    if _lib is None:
        raise ImportError(
            "s4tf_py's C runtime (s4tf_py._runtime) is not built. Install the package with "
            "`pip install -e .` (or `make test`), or build it in place with "
            f"`python runtime/build_runtime.py`. ({_IMPORT_ERROR})")
    return _ffi, _lib


def __getattr__(name):
    if name in ("ffi", "lib"):
        return _need()[0 if name == "ffi" else 1]
    raise AttributeError(f"module 's4tf_py.runtime' has no attribute {name!r}")


# ---- threads ----------------------------------------------------------------------------------

def num_threads() -> int:
    """How many threads ``parallel_for`` uses (the calling thread included)."""
    return int(_need()[1].s4tf_num_threads())


def default_num_threads() -> int:
    """``S4TF_NUM_THREADS`` if set, else the number of CPUs this process may run on."""
    return int(_need()[1].s4tf_default_num_threads())


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (``None`` or 0: back to the default)."""
    n = 0 if n is None else int(n)
    if n < 0:
        raise ValueError(f"set_num_threads: expected a non-negative count, got {n}")
    _need()[1].s4tf_set_num_threads(n)


def thread_index() -> int:
    """0 on a thread outside the pool, 1.. on the pool's workers."""
    return int(_need()[1].s4tf_thread_index())


def parallel_for(n: int, body, *, grain: int = 1) -> None:
    """Call ``body(begin, end)`` on contiguous ranges covering ``[0, n)``, in parallel.

    Meant for tests and tools: a Python body holds the GIL, so it runs one range at a time;
    compiled kernels pass a C function to ``lib.s4tf_parallel_for`` instead. The first
    exception a body raises is re-raised here after every range has finished.
    """
    ffi, lib = _need()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def trampoline(_ctx, begin, end):
        try:
            body(int(begin), int(end))
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            with lock:
                errors.append(e)

    cb = ffi.callback("void(void *, int64_t, int64_t)", trampoline)
    lib.s4tf_parallel_for_grain(int(n), int(grain), cb, ffi.NULL)
    if errors:
        raise errors[0]


# ---- memory -----------------------------------------------------------------------------------

def aligned_empty(shape, dtype="float32") -> np.ndarray:
    """An uninitialized C-contiguous array whose data starts on a 64-byte boundary.

    The memory comes from the runtime's allocator and is freed when the array (and every view
    of it) is gone.
    """
    return _aligned(shape, dtype, zero=False)


def aligned_zeros(shape, dtype="float32") -> np.ndarray:
    """As :func:`aligned_empty`, filled with zeros."""
    return _aligned(shape, dtype, zero=True)


def _aligned(shape, dtype, zero):
    ffi, lib = _need()
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"negative dimension in shape {shape}")
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    p = (lib.s4tf_aligned_calloc if zero else lib.s4tf_aligned_alloc)(nbytes)
    if p == ffi.NULL:
        raise MemoryError(f"s4tf_aligned_alloc: cannot allocate {nbytes} bytes")
    owner = ffi.gc(p, lib.s4tf_aligned_free, size=nbytes)
    # the buffer object keeps `owner` alive, and the array keeps the buffer alive
    return np.frombuffer(ffi.buffer(owner, nbytes), dtype=dtype).reshape(shape)


def live_bytes() -> int:
    """Bytes currently held by the runtime's allocator."""
    return int(_need()[1].s4tf_live_bytes())


# ---- addresses for JIT code -------------------------------------------------------------------

def symbols() -> dict[str, int]:
    """``{name: address}`` of every runtime function (see ``runtime/s4tf_runtime.h``)."""
    ffi, lib = _need()
    return {name: int(ffi.cast("uintptr_t", ffi.addressof(lib, name))) for name in FUNCTIONS}


def register_with_llvm() -> dict[str, int]:
    """Make the runtime's functions resolvable by name in llvmlite's JIT; returns symbols()."""
    import llvmlite.binding as llvm
    syms = symbols()
    for name, addr in syms.items():
        llvm.add_symbol(name, addr)
    return syms


def _cython_blas():
    """``scipy.linalg.cython_blas``, loaded without importing ``scipy.linalg`` (~0.1 s)."""
    import importlib.util
    import sys
    mod = sys.modules.get("scipy.linalg.cython_blas")
    if mod is not None:
        return mod
    spec = importlib.util.find_spec("scipy")
    folder = os.path.join(spec.submodule_search_locations[0], "linalg")
    for name in sorted(os.listdir(folder)):
        if name.startswith("cython_blas.") and name.endswith((".so", ".pyd")):
            s = importlib.util.spec_from_file_location("scipy.linalg.cython_blas",
                                                       os.path.join(folder, name))
            mod = importlib.util.module_from_spec(s)
            s.loader.exec_module(mod)
            return mod
    from scipy.linalg import cython_blas     # an unusual layout: the ordinary import
    return cython_blas


def blas_symbols(names=("sgemm", "dgemm", "sgemv", "dgemv", "saxpy", "daxpy", "sdot", "ddot")):
    """``{name: address}`` of scipy's BLAS routines (Fortran ABI: every argument by pointer).

    The addresses come from ``scipy.linalg.cython_blas``, so compiled kernels use the BLAS
    that scipy ships with, with no link step.
    """
    import ctypes

    capi = _cython_blas().__pyx_capi__
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype = ctypes.c_void_p
    get_ptr.argtypes = [ctypes.py_object, ctypes.c_char_p]
    out = {}
    for name in names:
        cap = capi[name]
        out[name] = int(get_ptr(cap, get_name(cap)))
    return out
