"""``s4.nn.functional``: convolutions, pooling, softmax and friends (see :mod:`s4tf_py.ops.nn`)."""
from ..ops.nn import *  # noqa: F401,F403
from ..ops.nn import __all__  # noqa: F401
