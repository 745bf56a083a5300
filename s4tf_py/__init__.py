"""s4tf_py: Swift for TensorFlow's ideas in Python.

A Tensor with value semantics, programs traced lazily into an IR of our own, and that IR run
by a reference interpreter (and compiled through LLVM and XLA). ``import s4tf_py as s4``.

>>> import s4tf_py as s4
>>> x = s4.Tensor([[1.0, 2.0], [3.0, 4.0]])
>>> (x @ x).tolist()
[[7.0, 10.0], [15.0, 22.0]]
"""
from . import dtypes, ir, tree
from . import linalg, nn, random  # noqa: E402  namespaces: s4.linalg, s4.nn, s4.random
from .device import Device, default_device, get_default_device
from .dtypes import (bfloat16, bool_, can_cast, finfo, float16, float32, float64, iinfo, int8,
                     int16, int32, int64, isdtype, result_type, uint8, uint16, uint32, uint64)
from .errors import (CheckpointError, CheckpointMismatchError, ConcretizationError, DTypeError,
                     ExecutionError, IRError, S4TFError, ShapeError)
from .lazy import barrier, clear_caches, compile, metrics, reset_metrics, trace
from .tensor import Tensor
from .nn.context import learning_phase
from .array_api_info import __array_namespace_info__
from .autodiff import (Differentiable, DifferentiationError, check_grads, derivative,
                       differentiable, differentiable_function, differentiable_struct, gradient,
                       jvp, no_derivative, pullback, value_with_differential, value_with_gradient,
                       value_with_pullback, with_derivative, with_recomputation_in_pullbacks,
                       without_derivative)
from .ops import *  # noqa: F401,F403  (the op namespace; ops/__init__.py lists it explicitly)
from .ops import __all__ as _ops_all

__version__ = "0.1.0"

#: namespaces and functions imported on first use (the training library is not needed to
#: compute, and importing it up front would slow down every ``import s4tf_py``)
_LAZY = {"data": ("data", None), "losses": ("losses", None), "train": ("train", None),
         "optimizers": ("optimizers", None), "debug": ("debug", None),
         "debug_nans": ("debug", "debug_nans"),
         "checkpoint": ("checkpoint", None),
         **{f: ("checkpoint", f) for f in ("save", "load", "open_checkpoint",
                                            "save_training_state", "load_training_state")}}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 's4tf_py' has no attribute {name!r}")
    import importlib
    module, attr = _LAZY[name]
    value = importlib.import_module(f".{module}", __name__)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value
__array_api_version__ = "2023.12"
bool = bool_  # noqa: A001  array API name for the boolean dtype
e = 2.718281828459045
pi = 3.141592653589793
inf = float("inf")
nan = float("nan")
newaxis = None

__all__ = sorted(
    list(_ops_all) + ["__array_namespace_info__", "Tensor", "Device", "default_device", "get_default_device", "barrier", "compile", "trace",
       "metrics", "reset_metrics", "clear_caches", "dtypes", "ir", "tree", "linalg", "nn", "random", "bfloat16", "bool_",
       "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
       "uint32", "uint64", "result_type", "can_cast", "finfo", "iinfo", "isdtype",
       "Differentiable", "DifferentiationError", "check_grads", "derivative", "differentiable",
       "differentiable_function", "differentiable_struct", "gradient", "jvp", "no_derivative",
       "pullback", "value_with_differential", "value_with_gradient", "value_with_pullback",
       "with_derivative", "with_recomputation_in_pullbacks", "without_derivative",
       "S4TFError", "ShapeError", "DTypeError", "IRError", "ConcretizationError", "ExecutionError",
       "CheckpointError", "CheckpointMismatchError", "data", "losses", "train", "optimizers",
       "save", "load",
       "open_checkpoint", "save_training_state", "load_training_state", "learning_phase", "debug",
       "debug_nans"])
