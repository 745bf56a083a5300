"""Contractions on the CPU: ``dot_general`` as JIT code that calls BLAS ``sgemm``/``dgemm``.

A ``dot_general`` whose operands are float32 or float64 becomes a kernel with the signature of
every other kernel, ``void k(i8** buffers, i64 begin, i64 end)``, that calls BLAS (Fortran ABI,
registered with the JIT as ``s4tf_sgemm``/``s4tf_dgemm`` so that cached objects resolve it in
any process, whichever library provides it). The library: Intel MKL when the ``mkl`` package
is installed (``pip install 's4tf_py[mkl]'``), else the OpenBLAS that scipy ships;
``S4TF_BLAS=auto|mkl|openblas`` chooses, :func:`library` tells. The layout is decided at plan time from the dimension numbers —
our buffers are C-contiguous — so a transposed operand costs nothing: it becomes BLAS's
``'T'`` flag and a leading dimension.

Threading: BLAS runs single-threaded inside our own thread pool. A product is split into row
blocks (or its batch) and each pool thread makes ONE ``gemm`` call over its contiguous range of
blocks. A second threaded BLAS pool would otherwise spin on the cores our kernels need next
(measured: the elementwise kernel after a threaded ``sgemm`` ran 1.6-2x slower). This is the
one threading policy of the backend: ``s4.runtime.set_num_threads`` governs both.

Row-major ``C[m,n] = A[m,k] B[k,n]`` is column-major ``C^T = B^T A^T``: the call passes B first.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from . import codegen

I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I8P = I8.as_pointer()

#: below this many multiply-adds (~40 us of work) a product runs on the calling thread: a
#: parallel call costs more than it saves (measured: 512x128x10 took 0.09 ms split, 0.03 not)
PARALLEL_FLOPS = 1 << 22
#: ... or when an operand is this large: a product with few rows (a decode step's m = 1)
#: streams its weight matrix from memory, and two cores stream twice as fast
PARALLEL_BYTES = 1 << 17
#: rows per block when a product is split across threads
MIN_BLOCK = 16

_GEMM = {np.dtype(np.float32): ("s4tf_sgemm", "sgemm", ir.FloatType()),
         np.dtype(np.float64): ("s4tf_dgemm", "dgemm", ir.DoubleType())}
_lock = threading.Lock()
_registered: dict = {}
#: JIT symbol of "set the calling thread's BLAS thread count" (MKL's thread-local setter, a
#: no-op for OpenBLAS, whose private copy scipy ships is set to one thread process-wide)
_LOCAL_THREADS = "s4tf_blas_threads_local"


@dataclass(frozen=True)
class DotSpec:
    """A batched GEMM over C-contiguous buffers: ``C[b] = op(A[b]) @ op(B[b])`` (row-major)."""
    name: str
    dtype: np.dtype
    batch: int
    m: int
    n: int
    k: int
    trans_a: bool          # A is stored (k, m) per batch element
    trans_b: bool          # B is stored (n, k)
    stride_a: int          # elements between batch elements
    stride_b: int
    block: int             # rows (or columns) of C per block (batch == 1); 0: over the batch
    split_cols: bool = False   # blocks are column ranges of C (when C is wider than tall)

    @property
    def iterations(self) -> int:
        if self.block:
            return -(-(self.n if self.split_cols else self.m) // self.block)
        return self.batch

    @property
    def parallel(self) -> bool:
        if self.iterations <= 1:
            return False
        size = np.dtype(self.dtype).itemsize * self.batch * max(self.m, self.n) * self.k
        return self.batch * self.m * self.n * self.k >= PARALLEL_FLOPS or size >= PARALLEL_BYTES


def supported(eqn) -> bool:
    """Whether ``eqn`` (a ``dot_general``) lowers to BLAS (else numpy runs it on the host)."""
    a, b = eqn.inputs
    p = eqn.params_dict()
    if a.aval.dtype not in _GEMM or b.aval.dtype != a.aval.dtype:
        return False
    if p.get("preferred") not in (None, a.aval.dtype):
        return False
    return _layout(a.aval.shape, b.aval.shape, p) is not None and _symbols_ok()


def _layout(sa, sb, p):
    """(batch, m, n, k, trans_a, trans_b) when each operand is a (batch, rows, cols) block of
    its C-contiguous buffer with the batch dims leading, in the same order on both sides."""
    lb, rb = tuple(p["lhs_batch"]), tuple(p["rhs_batch"])
    lc, rc = tuple(p["lhs_contract"]), tuple(p["rhs_contract"])
    nb = len(lb)
    if lb != tuple(range(nb)) or rb != tuple(range(nb)):
        return None
    fa = [i for i in range(len(sa)) if i not in lc and i not in lb]
    fb = [i for i in range(len(sb)) if i not in rc and i not in rb]

    def side(free, contract, nd):
        # the non-batch dims must be [free..., contract...] or [contract..., free...], each run
        # contiguous and in order, for the block to be a matrix (or its transpose) in memory
        rest = list(range(nb, nd))
        if rest == list(free) + list(contract):
            return False
        if rest == list(contract) + list(free):
            return True
        return None

    ta = side(fa, lc, len(sa))
    tb = side(rc, fb, len(sb))          # B is "normal" when stored [contract, free]
    if ta is None or tb is None:
        return None
    if sorted(lc) != list(lc) or sorted(rc) != list(rc):
        return None                    # contracting pairs must flatten in the same order
    batch = int(np.prod([sa[i] for i in lb], dtype=np.int64))
    m = int(np.prod([sa[i] for i in fa], dtype=np.int64))
    n = int(np.prod([sb[i] for i in fb], dtype=np.int64))
    k = int(np.prod([sa[i] for i in lc], dtype=np.int64))
    if min(m, n, k) == 0 or max(m, n, k) >= 2 ** 31:
        return None
    return batch, m, n, k, ta, tb


def make_spec(eqn, name: str, threads: int) -> DotSpec:
    a, b = eqn.inputs
    batch, m, n, k, ta, tb = _layout(a.aval.shape, b.aval.shape, eqn.params_dict())
    block, cols = 0, False
    if batch == 1:
        # split the longer side of C: each thread then packs only its share of the other
        # operand (splitting the short side made every thread pack all of the long one)
        cols = n > m
        extent = n if cols else m
        # blocks small enough to give every thread work, big enough for BLAS to be efficient
        block = max(MIN_BLOCK, -(-extent // max(1, 2 * threads)))
        block = -(-block // 8) * 8
    return DotSpec(name, a.aval.dtype, batch, m, n, k, ta, tb, m * k, k * n, block, cols)


def build_dot_kernel(module: ir.Module, spec: DotSpec) -> str:
    """Emit ``spec`` as ``void name(i8** bufs, i64 begin, i64 end)`` calling BLAS gemm."""
    sym, _, ft = _GEMM[spec.dtype]
    fp = ft.as_pointer()
    ip = I32.as_pointer()
    gemm_ty = ir.FunctionType(ir.VoidType(), [I8P, I8P, ip, ip, ip, fp, fp, ip, fp, ip, fp,
                                              fp, ip])
    gemm = module.globals.get(sym) or ir.Function(module, gemm_ty, sym)
    local = module.globals.get(_LOCAL_THREADS) or ir.Function(
        module, ir.FunctionType(I32, [I32]), _LOCAL_THREADS)
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I8P.as_pointer(), I64, I64]),
                     spec.name)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    bufs, begin, end = fn.args
    # this thread's gemm runs on this thread only; the previous setting is restored after
    # (MKL's thread-local state is shared with any other MKL user in the process, e.g. torch)
    previous = b.call(local, [I32(1)])
    A, B, C = (b.bitcast(b.load(b.gep(bufs, [I64(i)], inbounds=True)), fp) for i in range(3))

    def slot(ty, value):
        s = b.alloca(ty)
        b.store(value, s)
        return s

    # column-major view: C^T (n x rows) = op(B^T) (n x k) @ op(A^T) (k x rows)
    t_first = slot(I8, I8(ord("T" if spec.trans_b else "N")))
    t_second = slot(I8, I8(ord("T" if spec.trans_a else "N")))
    n_ = slot(I32, I32(spec.n))
    k_ = slot(I32, I32(spec.k))
    rows = b.alloca(I32)
    alpha = slot(ft, ir.Constant(ft, 1.0))
    beta = slot(ft, ir.Constant(ft, 0.0))
    ld_b = slot(I32, I32(spec.k if spec.trans_b else spec.n))
    ld_a = slot(I32, I32(spec.m if spec.trans_a else spec.k))
    ld_c = slot(I32, I32(spec.n))
    if spec.block and spec.split_cols:
        # one call for this thread's whole range of column blocks: C^T rows c0..c1
        c0 = b.mul(begin, I64(spec.block))
        c1 = b.mul(end, I64(spec.block))
        c1 = b.select(b.icmp_signed(">", c1, I64(spec.n)), I64(spec.n), c1)
        cols = slot(I32, b.trunc(b.sub(c1, c0), I32))
        b.store(I32(spec.m), rows)
        b_ptr = b.gep(B, [b.mul(c0, I64(spec.k)) if spec.trans_b else c0])
        c_ptr = b.gep(C, [c0])
        b.call(gemm, [t_first, t_second, cols, rows, k_, alpha, b_ptr, ld_b, A, ld_a, beta,
                      c_ptr, ld_c])
        b.call(local, [previous])
        b.ret_void()
        return spec.name
    if spec.block:
        # one call for this thread's whole range of row blocks
        r0 = b.mul(begin, I64(spec.block))
        r1 = b.mul(end, I64(spec.block))
        over = b.icmp_signed(">", r1, I64(spec.m))
        r1 = b.select(over, I64(spec.m), r1)
        b.store(b.trunc(b.sub(r1, r0), I32), rows)
        a_off = r0 if spec.trans_a else b.mul(r0, I64(spec.k))
        a_ptr = b.gep(A, [a_off])
        c_ptr = b.gep(C, [b.mul(r0, I64(spec.n))])
        b.call(gemm, [t_first, t_second, n_, rows, k_, alpha, B, ld_b, a_ptr, ld_a, beta,
                      c_ptr, ld_c])
        b.call(local, [previous])
        b.ret_void()
        return spec.name
    b.store(I32(spec.m), rows)

    def one_batch_element(i):
        a_ptr = b.gep(A, [b.mul(i, I64(spec.stride_a))])
        b_ptr = b.gep(B, [b.mul(i, I64(spec.stride_b))])
        c_ptr = b.gep(C, [b.mul(i, I64(spec.m * spec.n))])
        b.call(gemm, [t_first, t_second, n_, rows, k_, alpha, b_ptr, ld_b, a_ptr, ld_a, beta,
                      c_ptr, ld_c])
    codegen.emit_loop(b, begin, end, one_batch_element)
    b.call(local, [previous])
    b.ret_void()
    return spec.name


def _symbols_ok() -> bool:
    """Register scipy's gemm routines with the JIT (once) and make that BLAS single-threaded."""
    if _registered:
        return _registered["ok"]
    choice = os.environ.get("S4TF_BLAS", "auto").strip().lower() or "auto"
    if choice not in ("auto", "mkl", "openblas"):
        raise ValueError(f"S4TF_BLAS={choice!r} is not a BLAS choice: use auto (MKL when the "
                         "mkl package is installed, else scipy's OpenBLAS), mkl or openblas")
    with _lock:
        if _registered:
            return _registered["ok"]
        try:
            import llvmlite.binding as llvm

            from ... import runtime
            found = _mkl() if choice in ("auto", "mkl") else None
            if found is None and choice == "mkl":
                warnings.warn("S4TF_BLAS=mkl but the mkl package is not installed "
                              "(pip install 's4tf_py[mkl]'); using scipy's OpenBLAS",
                              RuntimeWarning, stacklevel=2)
            if found is None:
                found = _scipy_openblas()
            if found is not None:         # MKL, or scipy's wheel's OpenBLAS, opened directly
                addrs, set_threads, name = found
                if set_threads is not None:
                    set_threads(1)
            else:                         # any other scipy: cython_blas + threadpoolctl
                addrs, name = runtime.blas_symbols(("sgemm", "dgemm")), "scipy cython_blas"
                _single_threaded()
            addrs.setdefault("local", runtime.symbols()["s4tf_blas_threads_local_noop"])
            for sym, routine, _ in _GEMM.values():
                llvm.add_symbol(sym, addrs[routine])
            llvm.add_symbol(_LOCAL_THREADS, addrs["local"])
            _registered["ok"] = True
            _registered["library"] = name
        except Exception:  # noqa: BLE001 - no scipy BLAS: contractions stay on numpy
            _registered["ok"] = False
        return _registered["ok"]


def library() -> str | None:
    """Which BLAS the gemm kernels call (``"mkl"``, ``"scipy openblas"``...), None if none."""
    _symbols_ok()
    return _registered.get("library")


def _mkl():
    """({"sgemm", "dgemm", "local": address}, None, "mkl") from Intel MKL when the ``mkl``
    package is installed (the ``[mkl]`` extra), one thread per call (our pool threads it):
    on this project's benchmark machine it ran the MLP's products 10-15% faster than OpenBLAS
    and matches torch's matmul, which uses MKL too."""
    import ctypes
    import glob
    import sys
    # the wheel puts its libraries in <prefix>/lib; looking there first spares a warm start
    # importing importlib.metadata (~20 ms)
    paths = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        paths += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")))
    if not paths:
        import importlib.metadata as md
        try:
            dist = md.distribution("mkl")
        except md.PackageNotFoundError:
            return None
        paths = [dist.locate_file(f) for f in (dist.files or []) if "libmkl_rt" in str(f)]
    for path in paths:
        # Only MKL's thread-LOCAL setting is touched (each gemm kernel sets its own thread to
        # one BLAS thread): MKL's process-wide calls reach the MKL inside torch too, when torch
        # is loaded, and made torch's matmul single-threaded.
        try:
            lib = ctypes.CDLL(str(path))
            addrs = {"sgemm": ctypes.cast(lib.sgemm_, ctypes.c_void_p).value,
                     "dgemm": ctypes.cast(lib.dgemm_, ctypes.c_void_p).value,
                     "local": ctypes.cast(lib.MKL_Set_Num_Threads_Local, ctypes.c_void_p).value}
        except (OSError, AttributeError):
            continue
        return addrs, None, "mkl"
    return None


def _scipy_openblas():
    """({"sgemm", "dgemm": address}, set_num_threads) from the OpenBLAS that scipy's wheels
    bundle (``scipy.libs/libscipy_openblas*``), found without importing scipy (importing
    ``scipy.linalg`` costs ~0.1 s of a warm start); None when it is not there."""
    import ctypes
    import glob
    import importlib.util
    import os
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = os.path.join(os.path.dirname(spec.submodule_search_locations[0]), "scipy.libs")
    found = sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*")))
    if not found:
        return None
    lib = ctypes.CDLL(found[0])
    try:
        addrs = {"sgemm": ctypes.cast(lib.scipy_sgemm_, ctypes.c_void_p).value,
                 "dgemm": ctypes.cast(lib.scipy_dgemm_, ctypes.c_void_p).value}
        set_threads = lib.scipy_openblas_set_num_threads
    except AttributeError:
        return None
    set_threads.argtypes = [ctypes.c_int]
    set_threads.restype = None
    return addrs, set_threads, "scipy openblas"


def _single_threaded() -> None:
    """Limit scipy's BLAS (the one the kernels call) to one thread, with threadpoolctl.

    ``cython_blas`` wraps the library scipy ships (``scipy.libs/``, or scipy's own folder);
    numpy's separate copy keeps its threads for the user's numpy code."""
    import os

    import scipy
    import threadpoolctl
    pkg = os.path.realpath(os.path.dirname(scipy.__file__))
    roots = (pkg + os.sep, pkg + ".libs" + os.sep)
    for lib in threadpoolctl.ThreadpoolController().lib_controllers:
        path = os.path.realpath(lib.filepath or "")
        if lib.user_api == "blas" and path.startswith(roots):
            lib.set_num_threads(1)
