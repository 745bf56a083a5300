"""cffi build script for s4tf_py's C runtime: builds the extension ``s4tf_py._runtime``.

setup.py names it in ``cffi_modules``; ``python runtime/build_runtime.py`` builds it in place
(for working on the C code without reinstalling). The extension exposes the C functions
through ``lib`` and their addresses through ``ffi.addressof(lib, name)``; the Python side is
``s4tf_py/runtime.py``.
"""
import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _rel(path):
    # setuptools wants source paths relative to the project root (the working directory of a
    # build); fall back to the absolute path when run from elsewhere.
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _cdef():
    """The declarations of s4tf_runtime.h, minus preprocessor lines and extern "C" guards."""
    with open(os.path.join(HERE, "s4tf_runtime.h")) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = []
    skip = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#ifdef __cplusplus"):
            skip = 1
            continue
        if skip:
            if s.startswith("#endif"):
                skip = 0
            continue
        if s.startswith("#define S4TF_ALIGNMENT") or s.startswith("#define S4TF_RUNTIME_ABI"):
            name = s.split()[1]
            lines.append(f"#define {name} ...")
            continue
        if s.startswith("#"):
            continue
        lines.append(line)
    return "\n".join(lines)


def make_builder(absolute=False):
    """The FFI builder; ``absolute`` paths for a build outside setuptools (cffi's compile()
    runs the compiler inside its temporary directory)."""
    where = (lambda p: p) if absolute else _rel
    builder = FFI()
    builder.cdef(_cdef())
    builder.set_source(
        "s4tf_py._runtime",
        '#include "s4tf_runtime.h"\n',
        sources=[where(os.path.join(HERE, "s4tf_runtime.c"))],
        include_dirs=[where(HERE)],
        extra_compile_args=["-O3", "-std=c11", "-pthread"],
        extra_link_args=["-pthread"],
    )
    return builder


#: what setup.py's cffi_modules names
ffibuilder = make_builder()

if __name__ == "__main__":
    # build in place: s4tf_py/_runtime*.so next to the package sources, the generated C
    # source and object files under build/
    import glob
    import shutil
    os.chdir(os.path.dirname(HERE))
    tmp = os.path.join("build", "runtime")
    os.makedirs(tmp, exist_ok=True)
    built = make_builder(absolute=True).compile(tmpdir=tmp, verbose=True)
    for so in glob.glob(os.path.join("s4tf_py", "_runtime.*.so")):
        os.remove(so)
    shutil.copy(built, os.path.join("s4tf_py", os.path.basename(built)))
    print("built", os.path.join("s4tf_py", os.path.basename(built)))
