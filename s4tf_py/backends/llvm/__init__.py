"""The LLVM CPU backend (the default device): fused, vectorized, multithreaded kernels.

``s4.Device("llvm")``. :mod:`.plan` decides which equations become fused loop-nest kernels,
gemm kernels or convolution kernels and which stay host steps; :mod:`.executable` builds and
runs them; :mod:`.codegen` emits the loop nests, :mod:`.lowering` the primitives' scalar
lowerings, :mod:`.mathlib` the vectorizable transcendental functions, :mod:`.blas` the gemm
kernels (MKL or scipy's OpenBLAS), :mod:`.conv` the direct convolution kernels, and
:mod:`.cache` keeps compiled objects on disk.
"""
from __future__ import annotations

import numpy as np


class LLVMBackend:
    name = "llvm"

    def __init__(self):
        from . import lowering  # noqa: F401  (fills the primitives' llvm slots)
        from ... import runtime
        if not runtime.available():
            raise RuntimeError("the llvm backend needs s4tf_py's C runtime; reinstall s4tf_py "
                               "(pip install -e .) so that it is built")

    def compile(self, fn):
        from .executable import LLVMExecutable
        return LLVMExecutable(fn)

    def load(self, source_key: str, donated=()):
        """The executable planned for the traced function ``source_key`` names, from the disk
        cache (None on a miss): a warm process then neither optimizes nor plans."""
        from .executable import LLVMExecutable
        return LLVMExecutable.from_cache(source_key, donated)

    def from_host(self, array: np.ndarray):
        return array

    def to_host(self, buffer) -> np.ndarray:
        return buffer
