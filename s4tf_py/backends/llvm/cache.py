"""The persistent compile cache: compiled object files on disk, keyed by everything they depend on.

Key: the optimized s4tf IR of the executable (its structure, shapes and dtypes), the thread
count it was planned for, a hash of the backend's own source files (so a changed code generator
never loads an object an older one compiled), the LLVM version, the host CPU name and features,
and the s4tf_py version. Keying on the s4tf IR rather than the LLVM IR lets a warm process skip
code generation entirely: on a hit it loads the object and looks its kernels up by name.
Entries live under ``S4TF_CACHE_DIR`` (default: ``~/.cache/s4tf_py``) as ``<key>.o``, written to
a temporary file and renamed, so a reader never sees half an object and several processes can
share the directory; a corrupt entry is recompiled with a warning. A fresh process that has
seen a graph compiles nothing.
"""
from __future__ import annotations

import hashlib
import os
import threading
import warnings

import llvmlite.binding as llvm

from . import jit

_loaded: set[str] = set()
_lock = threading.Lock()
#: objects loaded from / compiled to disk, damaged entries; plans (executable.py) loaded from
#: disk or made here
stats = {"disk_hits": 0, "disk_misses": 0, "corrupt": 0, "plan_hits": 0, "plan_misses": 0}


def cache_dir() -> str | None:
    """The cache directory, or None when disabled (``S4TF_CACHE_DIR=""``)."""
    from ...caching import cache_root
    return cache_root()


_SOURCES = ("blas.py", "cache.py", "codegen.py", "conv.py", "executable.py", "jit.py",
            "lowering.py", "mathlib.py", "plan.py")
_source_digest: list = []


def source_digest() -> str:
    """A hash of the code generator's source files (computed once per process)."""
    if not _source_digest:
        h = hashlib.sha256()
        here = os.path.dirname(os.path.abspath(__file__))
        for name in _SOURCES:
            with open(os.path.join(here, name), "rb") as f:
                h.update(f.read())
        _source_digest.append(h.hexdigest())
    return _source_digest[0]


def cache_key(text: str) -> str:
    """The disk key of an executable described by ``text`` (its s4tf IR and plan inputs)."""
    from ... import __version__
    h = hashlib.sha256()
    for part in (text, ".".join(map(str, llvm.llvm_version_info)), jit.host_description(),
                 __version__, source_digest()):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def compile_cached(key_text: str, digest: str, build) -> None:
    """Make the functions of the module ``build()`` returns (LLVM IR text) callable: from
    memory, from disk (without calling ``build``), or by compiling it."""
    with _lock:
        if digest in _loaded:
            return
        key = cache_key(key_text)
        d = cache_dir()
        path = os.path.join(d, key + ".o") if d else None
        if path and os.path.exists(path):
            try:
                with open(path, "rb") as f:
                    obj = f.read()
                if not obj.startswith(b"\x7fELF"):
                    raise ValueError("not an object file")
                jit.load_object(obj)
                stats["disk_hits"] += 1
                _loaded.add(digest)
                return
            except Exception as e:  # noqa: BLE001 - any damage means: compile again
                stats["corrupt"] += 1
                warnings.warn(f"s4tf_py: ignoring a corrupt compile-cache entry {path} ({e}); "
                              "recompiling", RuntimeWarning, stacklevel=3)
        stats["disk_misses"] += 1
        mod = jit.compile_ir(build())
        obj = jit.emit_object(mod)
        if path:
            _write_atomically(d, path, obj)
        jit.load_object(obj)
        _loaded.add(digest)


def _write_atomically(d: str, path: str, data: bytes) -> None:
    from ...caching import atomic_write_bytes
    try:
        atomic_write_bytes(path, data)
    except OSError as e:
        warnings.warn(f"s4tf_py: could not write the compile cache at {d} ({e})", RuntimeWarning,
                      stacklevel=4)


_code_objects: dict = {}


def compiled_python(source: str, filename: str):
    """``compile(source, filename, "exec")``, cached in memory and on disk (``marshal``, keyed
    by the source and the Python version): a large executable's generated driver took
    ~0.08 s to compile, a third of a warm process's start."""
    import marshal
    import sys
    import types
    key = hashlib.sha256(f"{sys.version}\0{filename}\0{source}".encode()).hexdigest()
    code = _code_objects.get(key)
    if code is not None:
        return code
    from ... import caching

    def load(data: bytes):
        code = marshal.loads(data)
        if not isinstance(code, types.CodeType):
            raise ValueError("not a code object")
        return code
    name = key[:32] + ".marshal"
    code = caching.load_entry("drivers", name, load)
    if code is None:
        code = compile(source, filename, "exec")
        caching.store_entry("drivers", name, marshal.dumps(code))
    _code_objects[key] = code
    return code

