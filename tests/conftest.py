import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))   # tests/optable.py and tests/op_rows/

# compiled kernels go to a private cache, never the user's ~/.cache
os.environ.setdefault("S4TF_CACHE_DIR", tempfile.mkdtemp(prefix="s4tf-test-cache-"))
