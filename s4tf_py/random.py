"""``s4.random``: stateless, splittable random numbers (see :mod:`s4tf_py.ops.random`)."""
from .ops.random import *  # noqa: F401,F403
from .ops.random import __all__  # noqa: F401
