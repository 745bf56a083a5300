"""llvmlite plumbing: one target machine for the host CPU, the optimization pipeline, the JIT.

Every executable's kernels are built as ONE module, optimized with the new pass manager at
speed level 3 (loop and SLP vectorization and interleaving on, unrolling off, host CPU features, so plain loops become 16-wide
AVX-512 on Zen 4) and added to a shared MCJIT engine. Compiled objects are cached on disk
(:mod:`.cache`), so a fresh process that has seen a graph before compiles nothing.
"""
from __future__ import annotations

import threading

import llvmlite.binding as llvm

_lock = threading.Lock()
_state: dict = {}


def _init():
    if _state:
        return _state
    with _lock:
        if _state:
            return _state
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features().flatten()
        if "+avx512f" in features.split(","):
            # LLVM tunes many AVX-512 Intel CPUs to prefer 256-bit vectors; full-width vectors
            # made the exp kernel 1.35x faster on a Xeon with AVX-512 (Zen 4 uses them already)
            features += ",-prefer-256-bit"
        tm = target.create_target_machine(cpu=cpu, features=features, opt=3,
                                          reloc="default", codemodel="jitdefault")
        backing = llvm.parse_assembly("")
        engine = llvm.create_mcjit_compiler(backing, tm)
        from ... import runtime
        if runtime.available():
            runtime.register_with_llvm()
        _state.update(target=target, tm=tm, engine=engine, cpu=cpu, features=features,
                      triple=target.triple if hasattr(target, "triple") else llvm.get_default_triple())
        return _state


def target_machine():
    return _init()["tm"]


def host_description() -> str:
    """CPU name and features: part of every disk-cache key."""
    s = _init()
    return f"{llvm.get_default_triple()}|{s['cpu']}|{s['features']}"


def optimize(module_ref):
    """Run the O3 pipeline with loop and SLP vectorization on ``module_ref`` (in place)."""
    tm = target_machine()
    pto = llvm.PipelineTuningOptions(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # unrolling doubled optimize + codegen time (LeNet step: 0.79 -> 0.49 s without it) and
    # the object size, for no measured speed: loops are already 16-wide and interleaved
    pto.loop_unrolling = False
    pto.loop_interleaving = True
    pb = llvm.PassBuilder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(module_ref, pb)
    return module_ref


def compile_ir(llvm_ir: str, name: str = "s4tf"):
    """Parse, verify and optimize textual LLVM IR; returns the module (not yet in the engine)."""
    _init()
    mod = llvm.parse_assembly(llvm_ir)
    mod.name = name
    mod.triple = llvm.get_default_triple()
    mod.data_layout = str(target_machine().target_data)
    mod.verify()
    optimize(mod)
    return mod


def emit_object(module_ref) -> bytes:
    return target_machine().emit_object(module_ref)


def load_object(obj: bytes) -> None:
    """Add a compiled object file to the engine (its functions become callable)."""
    s = _init()
    with _lock:
        s["engine"].add_object_file(llvm.ObjectFileRef.from_data(obj))
        s["engine"].finalize_object()


def add_module(module_ref) -> None:
    s = _init()
    with _lock:
        s["engine"].add_module(module_ref)
        s["engine"].finalize_object()


def function_address(name: str) -> int:
    addr = _init()["engine"].get_function_address(name)
    if not addr:
        raise RuntimeError(f"the LLVM engine has no function {name!r}")
    return addr
