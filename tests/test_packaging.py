"""The package as installed: metadata, the console script, s4tf_models, the native modules, and
a regular (non-editable) wheel that carries its compiled parts."""
import importlib
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_console_script_entry_point_is_declared():
    eps = [ep for ep in md.entry_points(group="console_scripts") if ep.name == "s4tf"]
    assert len(eps) == 1
    assert eps[0].value == "s4tf_py.cli:main"
    assert eps[0].load() is importlib.import_module("s4tf_py.cli").main


def test_console_script_runs():
    exe = shutil.which("s4tf", path=os.path.dirname(sys.executable))
    assert exe is not None, "pip install did not create the s4tf script next to python"
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip().startswith("s4tf_py ")


def test_s4tf_models_imports():
    import s4tf_models
    assert "Gemma" in s4tf_models.__doc__
    assert os.path.samefile(os.path.dirname(s4tf_models.__file__), os.path.join(ROOT, "models"))


def test_native_modules_import():
    from s4tf_py import _native, _runtime, runtime
    assert runtime.available()
    assert _runtime.lib.s4tf_runtime_abi_version() == 1
    assert isinstance(_native.version(), str)


def test_metadata_pins_and_extras():
    meta = md.metadata("s4tf_py")
    reqs = meta.get_all("Requires-Dist")
    plain = [r for r in reqs if "extra ==" not in r]
    for name in ("numpy", "ml_dtypes", "scipy", "llvmlite", "cffi", "safetensors", "tqdm",
                 "scikit-learn"):
        assert any(r.lower().replace("_", "-").startswith(name.replace("_", "-")) for r in plain), name
    test_extra = [r.split(";")[0].replace(" ", "") for r in reqs if "extra == \"test\"" in r]
    assert "torch==2.13.0" in test_extra          # exactly: never a CUDA build
    for name in ("pytest", "pytest-xdist", "hypothesis", "transformers", "jax", "jaxlib"):
        assert any(r.startswith(name) for r in test_extra), name
    # every optional runtime extra is inside the test extra, so no test skips
    extras = set(meta.get_all("Provides-Extra"))
    assert {"xla", "test", "bench"} <= extras
    for extra in extras - {"test", "bench"}:
        for r in reqs:
            if f'extra == "{extra}"' in r:
                assert r.split(";")[0].replace(" ", "") in test_extra, (extra, r)


def test_build_system_table():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        bs = tomllib.load(f)["build-system"]
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip() for r in bs["requires"]}
    assert {"setuptools", "wheel", "cffi", "pybind11"} <= names
    assert bs["build-backend"] == "setuptools.build_meta"


def test_a_regular_wheel_carries_the_native_modules(tmp_path):
    """Build a non-editable wheel from a clean copy of the sources, install it into a fresh
    directory, and import everything from there (not from the editable checkout)."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "build", "*.egg-info", ".venv",
                                    "results")
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md"):
        if os.path.exists(os.path.join(ROOT, name)):
            shutil.copy(os.path.join(ROOT, name), src / name)
    for d in ("s4tf_py", "models", "runtime", "csrc"):
        shutil.copytree(os.path.join(ROOT, d), src / d, ignore=ignore)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", "-q", "-w", str(wheels), str(src)],
                   check=True, cwd=tmp_path)
    (whl,) = wheels.glob("s4tf_py-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert any(n.startswith("s4tf_py/_native") and n.endswith(".so") for n in names)
    assert any(n.startswith("s4tf_py/_runtime") and n.endswith(".so") for n in names)
    assert "s4tf_models/__init__.py" in names
    assert not any(n.endswith((".c", ".cpp", ".o")) for n in names)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile",
                    "--disable-pip-version-check", "-q", "--target", str(site), str(whl)],
                   check=True)
    code = ("import s4tf_py, s4tf_py._native as n, s4tf_py.runtime as r, s4tf_models; "
            "print(s4tf_py.__file__); print(n.fnv1a_64(b'a')); print(r.available())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(site))).stdout.split()
    assert out[0].startswith(str(site))
    assert out[1:] == [str(0xaf63dc4c8601ec8c), "True"]
