"""The LLVM CPU backend: fused, vectorized, multithreaded kernels; numpy/BLAS for the rest.

``s4.Device("llvm")``. See :mod:`.executable` for how a function is planned into fused LLVM
kernels and host steps, :mod:`.codegen` for the loop nests, :mod:`.lowering` for the
primitives' scalar lowerings, :mod:`.mathlib` for the vectorizable transcendental functions and
:mod:`.cache` for the persistent compile cache.
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

    def from_host(self, array: np.ndarray):
        return array

    def to_host(self, buffer) -> np.ndarray:
        return buffer
