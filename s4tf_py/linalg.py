"""``s4.linalg``: the array API linear-algebra extension (see :mod:`s4tf_py.ops.linalg`)."""
from .ops.linalg import *  # noqa: F401,F403
from .ops.linalg import __all__  # noqa: F401
