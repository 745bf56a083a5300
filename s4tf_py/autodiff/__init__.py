"""Automatic differentiation: derivative operators, custom derivatives, differentiable structs."""
from .api import (DifferentiableFunction, differentiable, gradient, jvp, pullback,
                  value_with_differential, value_with_gradient, value_with_pullback)
from .check import check_grads
from .core import DifferentiationError
from .custom import (derivative, differentiable_function, with_derivative,
                     with_recomputation_in_pullbacks, without_derivative)
from .structs import (Differentiable, TangentVectorBase, differentiable_struct, no_derivative,
                      zero_tangent)

__all__ = ["DifferentiableFunction", "differentiable", "gradient", "jvp", "pullback",
           "value_with_differential", "value_with_gradient", "value_with_pullback",
           "check_grads", "DifferentiationError", "derivative", "differentiable_function",
           "with_derivative", "with_recomputation_in_pullbacks", "without_derivative",
           "Differentiable", "TangentVectorBase", "differentiable_struct", "no_derivative",
           "zero_tangent"]
