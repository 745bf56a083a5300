"""Per-coordinate adaptive optimizers without bias correction: RMSProp, AdaGrad, AdaDelta."""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .base import Optimizer, StepContext, _require

__all__ = ["RMSProp", "AdaGrad", "AdaDelta"]


class RMSProp(Optimizer):
    """RMSProp (Hinton's lecture 6e): divide the gradient by a running RMS of its recent values.

    ``RMSProp(for_=model, learning_rate=1e-3, rho=0.9, epsilon=1e-8, decay=0.0, momentum=0.0,
    centered=False)`` (S4TF's defaults; ``momentum`` and ``centered`` as in PyTorch's
    ``RMSprop``, whose ``alpha`` is ``rho``)::

        mean_square = rho * mean_square + (1 - rho) * g**2
        denom = sqrt(mean_square) + epsilon      (centered: sqrt(mean_square - mean_grad**2))
        p = p - lr * g / denom                   (momentum: through a buffer, as in PyTorch)

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = [s4.Tensor([1.0])]
    >>> opt = optimizers.RMSProp(for_=params, learning_rate=0.01)
    >>> _ = opt.update(params, along=[s4.Tensor([2.0])])
    >>> round(params[0].item(), 6)     # 1 - 0.01 * 2 / sqrt(0.1 * 4)
    0.968377
    """

    slots = ("mean_square", "mean_grad", "momentum_buffer")
    hyperparameters = ("rho", "epsilon", "momentum", "centered")

    def __init__(self, for_, learning_rate: Any = 1e-3, rho: float = 0.9, epsilon: float = 1e-8,
                 decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 **options: Any):
        _require(rho >= 0, f"RMSProp: rho must be >= 0, got {rho}")
        _require(momentum >= 0, f"RMSProp: momentum must be >= 0, got {momentum}")
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        self.momentum = float(momentum)
        self.centered = bool(centered)
        super().__init__(for_, learning_rate, decay=decay, **options)

    def slot_names(self) -> tuple[str, ...]:
        return (("mean_square",) + (("mean_grad",) if self.centered else ())
                + (("momentum_buffer",) if self.momentum else ()))

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        from ..ops import sqrt
        lr = ctx.lr(p.dtype)
        out = {}
        ms = out["mean_square"] = self.rho * s["mean_square"] + (1.0 - self.rho) * (g * g)
        if self.centered:
            mg = out["mean_grad"] = self.rho * s["mean_grad"] + (1.0 - self.rho) * g
            denom = sqrt(ms - mg * mg) + self.epsilon
        else:
            denom = sqrt(ms) + self.epsilon
        if self.momentum:
            buf = out["momentum_buffer"] = self.momentum * s["momentum_buffer"] + g / denom
            return p - lr * buf, out
        return p - lr * (g / denom), out


class AdaGrad(Optimizer):
    """AdaGrad (Duchi, Hazan and Singer, 2011): scale each coordinate by the inverse root of the
    sum of its squared gradients so far.

    ``AdaGrad(for_=model, learning_rate=1e-3, initial_accumulator_value=0.1, epsilon=1e-8)``
    (S4TF's defaults)::

        accumulator = accumulator + g**2
        p = p - lr * g / (sqrt(accumulator) + epsilon)

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = [s4.Tensor([1.0])]
    >>> opt = optimizers.AdaGrad(for_=params, learning_rate=0.1)
    >>> _ = opt.update(params, along=[s4.Tensor([0.3])])
    >>> round(params[0].item(), 6)     # 1 - 0.1 * 0.3 / sqrt(0.1 + 0.09)
    0.931175
    """

    slots = ("accumulator",)
    hyperparameters = ("initial_accumulator_value", "epsilon")

    def __init__(self, for_, learning_rate: Any = 1e-3, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-8, **options: Any):
        _require(initial_accumulator_value >= 0, "AdaGrad: initial_accumulator_value must be "
                 f">= 0, got {initial_accumulator_value}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)
        super().__init__(for_, learning_rate, **options)

    def _init_slot(self, slot: str, param: Tensor) -> Tensor:
        from ..ops import full_like
        return full_like(param, self.initial_accumulator_value)

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        from ..ops import sqrt
        acc = s["accumulator"] + g * g
        return p - ctx.lr(p.dtype) * (g / (sqrt(acc) + self.epsilon)), {"accumulator": acc}


class AdaDelta(Optimizer):
    """ADADELTA (Zeiler, 2012): AdaGrad with a decaying window, in units of the parameters.

    ``AdaDelta(for_=model, learning_rate=1.0, rho=0.95, epsilon=1e-6, decay=0.0)`` (S4TF's
    defaults)::

        average_squared = rho * average_squared + (1 - rho) * g**2
        delta = g * sqrt(accumulated_delta + epsilon) / sqrt(average_squared + epsilon)
        p = p - lr * delta
        accumulated_delta = rho * accumulated_delta + (1 - rho) * delta**2

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = [s4.Tensor([1.0])]
    >>> opt = optimizers.AdaDelta(for_=params)
    >>> _ = opt.update(params, along=[s4.Tensor([1.0])])
    >>> round(params[0].item(), 6)     # 1 - sqrt(1e-6) / sqrt(0.05 + 1e-6)
    0.995528
    """

    slots = ("average_squared", "accumulated_delta")
    hyperparameters = ("rho", "epsilon")

    def __init__(self, for_, learning_rate: Any = 1.0, rho: float = 0.95, epsilon: float = 1e-6,
                 decay: float = 0.0, **options: Any):
        _require(0 <= rho <= 1, f"AdaDelta: rho must be in [0, 1], got {rho}")
        _require(epsilon >= 0, f"AdaDelta: epsilon must be >= 0, got {epsilon}")
        self.rho = float(rho)
        self.epsilon = float(epsilon)
        super().__init__(for_, learning_rate, decay=decay, **options)

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        from ..ops import sqrt
        rho, eps = self.rho, self.epsilon
        avg_sq = rho * s["average_squared"] + (1.0 - rho) * (g * g)
        delta = sqrt(s["accumulated_delta"] + eps) / sqrt(avg_sq + eps) * g
        acc = rho * s["accumulated_delta"] + (1.0 - rho) * (delta * delta)
        return (p - ctx.lr(p.dtype) * delta,
                {"average_squared": avg_sq, "accumulated_delta": acc})
