import atexit
import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))   # tests/optable.py and tests/op_rows/

# compiled kernels go to a private cache (removed at exit), never the user's ~/.cache
if "S4TF_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="s4tf-test-cache-")
    os.environ["S4TF_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


@pytest.fixture
def on_the_reference_backend():
    """Run a test on the interpreter. Finite-difference derivative checks use it: an order-2
    check's many small graphs cost nothing to compile there, and that the LLVM backend
    computes the same gradients is tests/test_backend_parity.py's job (every row, forward
    and VJP)."""
    import s4tf_py as s4
    with s4.default_device(s4.Device("reference")):
        yield
