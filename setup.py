"""Build and install s4tf_py.

Installs the packages ``s4tf_py`` (every subpackage) and ``s4tf_models`` (from ``models/``), the
``s4tf`` console script, and two native extensions built on the installing machine (only a C/C++
compiler and the Python headers are needed):

* ``s4tf_py._runtime`` — the C runtime in ``runtime/`` (aligned allocator, thread pool) via cffi;
* ``s4tf_py._native``  — C++ helpers in ``csrc/`` via pybind11.

``pip install -e '.[test]'`` is what ``make test`` runs; ``pip install .`` builds a regular wheel.
"""
import os

from setuptools import find_packages, setup

try:
    from pybind11.setup_helpers import Pybind11Extension, build_ext
except ImportError as e:  # pragma: no cover - pip installs the build requirements first
    raise SystemExit("building s4tf_py needs pybind11 (pip installs it from pyproject.toml's "
                     "[build-system] requires; run `pip install .` rather than setup.py)") from e

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "0.1.0"


def _readme():
    try:
        with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


TORCH = "torch==2.13.0"            # exactly: a looser pin would pull a CUDA build
XLA = ["jax>=0.4.30", "jaxlib>=0.4.30"]

# Intel MKL: the gemm kernels call it instead of scipy's OpenBLAS when it is installed (10-15%
# faster products here, on par with torch, which links MKL too)
MKL = ["mkl>=2024"]
extras = {
    "xla": XLA,
    "mkl": MKL,
    "plot": ["matplotlib>=3.8"],     # the training loop's loss-curve PNG
    "bench": [TORCH, *XLA, *MKL],
}
# the test extra holds every optional runtime extra, so that no test skips, and the build
# requirements, so that tests can build a regular wheel without network (--no-build-isolation)
BUILD = ["setuptools>=68", "wheel", "pybind11>=2.11", "cffi>=1.16"]
extras["test"] = sorted({
    "pytest>=7.4", "pytest-xdist>=3.5", "hypothesis>=6.90", TORCH, "transformers>=4.44",
    "safetensors>=0.8",   # the checkpoint tests cross-check our files with the library's API
    "protobuf>=3.20",     # transformers reads a bare tokenizer.model through it
    *extras["xla"], *extras["mkl"], *extras["plot"], *BUILD,
})

native = [
    Pybind11Extension(
        "s4tf_py._native",
        ["csrc/native.cpp"],
        cxx_std=17,
        define_macros=[("S4TF_NATIVE_VERSION", f'"{VERSION}"')],
        extra_compile_args=["-O3"],
    ),
]

setup(
    name="s4tf_py",
    version=VERSION,
    description="Swift for TensorFlow's ideas in Python: value-semantics tensors, lazy tracing "
                "to an IR of our own, automatic differentiation, LLVM and XLA backends",
    long_description=_readme(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=(find_packages(include=["s4tf_py", "s4tf_py.*"])
              + ["s4tf_models"]
              + ["s4tf_models." + p for p in find_packages(where="models")]),
    package_dir={"s4tf_models": "models"},
    include_package_data=False,
    package_data={"s4tf_models.gemma": ["assets/*.model"]},
    install_requires=[
        "numpy>=1.26,<3",
        "ml_dtypes>=0.4",
        "scipy>=1.11",
        "llvmlite>=0.43",
        "cffi>=1.16",
        "safetensors>=0.4",
        "tqdm>=4.66",
        "scikit-learn>=1.3",
        "pillow>=10.0",
        "sentencepiece>=0.2",
        "threadpoolctl>=3.1",
    ],
    extras_require=extras,
    entry_points={"console_scripts": ["s4tf = s4tf_py.cli:main"]},
    cffi_modules=["runtime/build_runtime.py:ffibuilder"],
    ext_modules=native,
    cmdclass={"build_ext": build_ext},
    zip_safe=False,
)
