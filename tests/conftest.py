import atexit
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))   # tests/optable.py and tests/op_rows/

# compiled kernels go to a private cache (removed at exit), never the user's ~/.cache
if "S4TF_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="s4tf-test-cache-")
    os.environ["S4TF_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
