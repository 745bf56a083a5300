"""The Adam family: Adam, AMSGrad, AdamW, AdaMax and RAdam (bias-corrected moments)."""
from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .base import Optimizer, StepContext, _require

__all__ = ["Adam", "AMSGrad", "AdamW", "AdaMax", "RAdam"]


def _check_betas(name: str, beta1: float, beta2: float) -> None:
    _require(0 <= beta1 < 1, f"{name}: beta1 must be in [0, 1), got {beta1}")
    _require(0 <= beta2 < 1, f"{name}: beta2 must be in [0, 1), got {beta2}")


class Adam(Optimizer):
    """Adam (Kingma and Ba, 2014, Algorithm 1), as PyTorch's ``Adam`` computes it::

        first_moments = beta1 * first_moments + (1 - beta1) * g
        second_moments = beta2 * second_moments + (1 - beta2) * g**2
        p = p - lr / (1 - beta1**t) * first_moments
                / (sqrt(second_moments) / sqrt(1 - beta2**t) + epsilon)

    ``Adam(for_=model, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, decay=0.0,
    amsgrad=False)`` (S4TF's defaults). With ``amsgrad=True`` the denominator uses the running
    maximum of ``second_moments`` (that is :class:`AMSGrad`).

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = {"w": s4.Tensor([1.0, -1.0])}
    >>> opt = optimizers.Adam(for_=params, learning_rate=0.1)
    >>> _ = opt.update(params, along={"w": s4.Tensor([0.5, -2.0])})
    >>> [round(v, 5) for v in params["w"].tolist()]      # the first step moves by lr * sign(g)
    [0.9, -0.9]
    """

    slots = ("first_moments", "second_moments", "max_second_moments")
    hyperparameters = ("beta1", "beta2", "epsilon", "amsgrad")

    def __init__(self, for_, learning_rate: Any = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, decay: float = 0.0, amsgrad: bool = False,
                 **options: Any):
        _check_betas(type(self).__name__, beta1, beta2)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)
        super().__init__(for_, learning_rate, decay=decay, **options)

    def slot_names(self) -> tuple[str, ...]:
        return ("first_moments", "second_moments") + (("max_second_moments",)
                                                      if self.amsgrad else ())

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        from ..ops import maximum, sqrt
        b1, b2 = self.beta1, self.beta2
        lr = ctx.lr(p.dtype)
        out = {}
        m = out["first_moments"] = b1 * s["first_moments"] + (1.0 - b1) * g
        v = out["second_moments"] = b2 * s["second_moments"] + (1.0 - b2) * (g * g)
        if self.amsgrad:
            v = out["max_second_moments"] = maximum(s["max_second_moments"], v)
        bc1 = ctx.scalar("bias_correction1", p.dtype, lambda t: 1.0 - b1 ** t)
        sqrt_bc2 = ctx.scalar("sqrt_bias_correction2", p.dtype, lambda t: sqrt(1.0 - b2 ** t))
        p = self._decay_weights(p, lr)
        denom = sqrt(v) / sqrt_bc2 + self.epsilon
        return p - (lr / bc1) * (m / denom), out

    def _decay_weights(self, p: Tensor, lr) -> Tensor:
        return p


class AMSGrad(Adam):
    """AMSGrad (Reddi, Kale and Kumar, 2018): Adam whose denominator uses the running maximum
    of the second moments, so the effective step size never grows. PyTorch's
    ``Adam(amsgrad=True)``; S4TF's defaults (``learning_rate=1e-3``, betas 0.9/0.999).

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = [s4.Tensor([1.0])]
    >>> opt = optimizers.AMSGrad(for_=params, learning_rate=0.1)
    >>> _ = opt.update(params, along=[s4.Tensor([3.0])])
    >>> sorted(opt.state)
    ['first_moments', 'max_second_moments', 'second_moments', 'step']
    """

    def __init__(self, for_, learning_rate: Any = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, decay: float = 0.0, **options: Any):
        super().__init__(for_, learning_rate, beta1, beta2, epsilon, decay, amsgrad=True,
                         **options)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter, 2019), as PyTorch's ``AdamW``:
    before the Adam step, ``p = p * (1 - lr * weight_decay)``; the gradient is not changed.

    ``AdamW(for_=model, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8,
    weight_decay=0.01, amsgrad=False)``.

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = [s4.Tensor([2.0])]
    >>> opt = optimizers.AdamW(for_=params, learning_rate=0.1, weight_decay=0.5)
    >>> _ = opt.update(params, along=[s4.Tensor([0.0])])     # no gradient: only the decay
    >>> round(params[0].item(), 6)
    1.9
    """

    _coupled_weight_decay = False

    def __init__(self, for_, learning_rate: Any = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, weight_decay: float = 0.01, amsgrad: bool = False,
                 **options: Any):
        super().__init__(for_, learning_rate, beta1, beta2, epsilon, amsgrad=amsgrad,
                         weight_decay=weight_decay, **options)

    def _decay_weights(self, p: Tensor, lr) -> Tensor:
        if not self.weight_decay:
            return p
        return p * (1.0 - lr * self.weight_decay)


class AdaMax(Optimizer):
    """AdaMax (Kingma and Ba, 2014, section 7): Adam with the infinity norm, as PyTorch's
    ``Adamax`` computes it::

        first_moments = beta1 * first_moments + (1 - beta1) * g
        infinity_norm = maximum(beta2 * infinity_norm, abs(g) + epsilon)
        p = p - lr / (1 - beta1**t) * first_moments / infinity_norm

    ``AdaMax(for_=model, learning_rate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8,
    decay=0.0)`` (S4TF's defaults, which follow the paper).

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = [s4.Tensor([1.0])]
    >>> opt = optimizers.AdaMax(for_=params, learning_rate=0.1)
    >>> _ = opt.update(params, along=[s4.Tensor([-4.0])])
    >>> round(params[0].item(), 6)
    1.1
    """

    slots = ("first_moments", "infinity_norm")
    hyperparameters = ("beta1", "beta2", "epsilon")

    def __init__(self, for_, learning_rate: Any = 0.002, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, decay: float = 0.0, **options: Any):
        _check_betas("AdaMax", beta1, beta2)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)
        super().__init__(for_, learning_rate, decay=decay, **options)

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        from ..ops import abs as abs_, maximum
        b1 = self.beta1
        m = b1 * s["first_moments"] + (1.0 - b1) * g
        u = maximum(self.beta2 * s["infinity_norm"], abs_(g) + self.epsilon)
        clr = ctx.lr(p.dtype) / ctx.scalar("bias_correction1", p.dtype, lambda t: 1.0 - b1 ** t)
        return p - clr * (m / u), {"first_moments": m, "infinity_norm": u}


class RAdam(Optimizer):
    """Rectified Adam (Liu et al., 2020), as PyTorch's ``RAdam`` computes it: while the
    variance of the adaptive rate is intractable (``rho_t <= 5``) the step is momentum SGD with
    a bias-corrected first moment; afterwards it is Adam's step times the rectification term::

        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2**t / (1 - beta2**t)
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        p = p - lr * m_hat * r_t * sqrt(1 - beta2**t) / (sqrt(v) + epsilon)   if rho_t > 5
        p = p - lr * m_hat                                                     otherwise

    ``RAdam(for_=model, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-8, decay=0.0)``
    (S4TF's defaults). The branch is a ``where`` on the step count, so it compiles to one graph.

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = [s4.Tensor([1.0])]
    >>> opt = optimizers.RAdam(for_=params, learning_rate=0.1)
    >>> _ = opt.update(params, along=[s4.Tensor([5.0])])
    >>> round(params[0].item(), 6)     # the first steps: lr * bias-corrected first moment
    0.5
    """

    slots = ("first_moments", "second_moments")
    hyperparameters = ("beta1", "beta2", "epsilon")

    def __init__(self, for_, learning_rate: Any = 1e-3, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, decay: float = 0.0, **options: Any):
        _check_betas("RAdam", beta1, beta2)
        self.beta1 = float(beta1)
        self.beta2 = float(beta2)
        self.epsilon = float(epsilon)
        super().__init__(for_, learning_rate, decay=decay, **options)

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        from ..ops import maximum, sqrt, where
        b1, b2 = self.beta1, self.beta2
        lr = ctx.lr(p.dtype)
        m = b1 * s["first_moments"] + (1.0 - b1) * g
        v = b2 * s["second_moments"] + (1.0 - b2) * (g * g)

        def terms(t):
            bc1 = 1.0 - b1 ** t
            b2t = b2 ** t
            bc2 = 1.0 - b2t
            rho_inf = 2.0 / (1.0 - b2) - 1.0
            rho_t = rho_inf - 2.0 * t * b2t / bc2
            rect = sqrt(maximum((rho_t - 4.0) * (rho_t - 2.0) * rho_inf
                                / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t), 0.0))
            return bc1, sqrt(bc2), rect, rho_t > 5.0

        bc1, sqrt_bc2, rect, rectify = ctx.scalar("radam", None, terms)
        bc1, sqrt_bc2, rect = (x.astype(p.dtype) if x.dtype != p.dtype else x
                               for x in (bc1, sqrt_bc2, rect))
        m_hat = m / bc1
        adaptive = sqrt_bc2 / (sqrt(v) + self.epsilon)
        rectified = m_hat * lr * adaptive * rect
        plain = m_hat * lr
        return p - where(rectify, rectified, plain), {"first_moments": m, "second_moments": v}
