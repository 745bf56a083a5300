"""The op families. Each module defines its primitives (registry rows) and user functions."""
from ._core import stop_gradient, to_tensor
from .control import cond, scan, while_loop
from .contraction import dot_general, einsum, matmul, outer, tensordot, vecdot
from .creation import (arange, asarray, empty, empty_like, eye, from_dlpack, full, full_like, iota,
                       linspace, meshgrid, ones, ones_like, tril, triu, zeros, zeros_like)
from .indexing import (argsort, gather, getitem, index_update, nonzero, one_hot, scatter_add,
                       searchsorted, setitem, sort, take, take_along_axis, top_k, unique_all,
                       unique_counts, unique_inverse, unique_values)
from .nn import log_softmax, softmax
from .math import (abs, acos, acosh, add, arccos, arccosh, arcsin, arcsinh, arctan, arctan2,
                   arctanh, asin, asinh, astype, atan, atan2, atanh, bitwise_and, bitwise_invert,
                   bitwise_left_shift, bitwise_or, bitwise_right_shift, bitwise_xor, cbrt, ceil,
                   clip, copysign, cos, cosh, digamma, divide, elu, equal, erf, erfinv, exp, exp2,
                   expm1, floor, floor_divide, gelu, greater, greater_equal, hard_sigmoid,
                   hard_swish, hypot, isfinite, isinf, isnan, leaky_relu, less, less_equal, lgamma,
                   log, log1p, log2, log10, log_sigmoid, logaddexp, logical_and, logical_not,
                   logical_or, logical_xor, maximum, minimum, mish, multiply, negative, nextafter,
                   not_equal, positive, pow, power, reciprocal, relu, relu6, remainder, round,
                   rsqrt, selu, sigmoid, sign, signbit, silu, sin, sinh, softplus, softsign, sqrt,
                   square, subtract, swish, tan, tanh, trunc, where)
from .reduction import (all, amax, amin, any, argmax, argmin, count_nonzero, cummax, cummin,
                        cumprod, cumsum, cumulative_sum, logsumexp, max, mean, min, prod, std,
                        sum, var)
from .shape import (atleast_1d, broadcast_arrays, broadcast_to, concat, concatenate, expand_dims,
                    flip, matrix_transpose, moveaxis, pad, permute_dims, repeat, reshape, roll,
                    slice, split, squeeze, stack, swapaxes, tile, transpose, unstack)

import types as _types

#: every public op (modules such as ``ops.nn`` are namespaces of their own: s4.nn, s4.linalg)
__all__ = sorted(k for k, v in dict(globals()).items()
                 if not k.startswith("_") and not isinstance(v, _types.ModuleType))
