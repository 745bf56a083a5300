"""Momentum SGD (S4TF's ``SGD``) and LARS (layer-wise adaptive rate scaling)."""
from __future__ import annotations

from typing import Any, Callable, Optional

from ..tensor import Tensor
from .base import Optimizer, StepContext, _require

__all__ = ["SGD", "LARS"]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and Nesterov momentum.

    ``SGD(for_=model, learning_rate=0.01, momentum=0.0, decay=0.0, nesterov=False)`` (S4TF's
    defaults; ``decay`` is S4TF's learning-rate decay, see :class:`Optimizer` for it and the
    other options). With momentum ``m`` the update is PyTorch's::

        velocity = m * velocity + g
        p = p - lr * (g + m * velocity if nesterov else velocity)

    which is S4TF's ``velocity = m * velocity - lr * g; p += velocity`` with the learning rate
    kept out of the velocity (the two agree while the learning rate is constant).

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = {"w": s4.Tensor([1.0, 2.0])}
    >>> opt = optimizers.SGD(for_=params, learning_rate=0.1, momentum=0.9)
    >>> g = {"w": s4.Tensor([1.0, 1.0])}
    >>> _ = opt.update(params, along=g)
    >>> _ = opt.update(params, along=g)
    >>> [round(v, 4) for v in params["w"].tolist()]
    [0.71, 1.71]
    """

    slots = ("velocity",)
    hyperparameters = ("momentum", "nesterov")

    def __init__(self, for_, learning_rate: Any = 0.01, momentum: float = 0.0,
                 decay: float = 0.0, nesterov: bool = False, **options: Any):
        _require(momentum >= 0, f"SGD: momentum must be >= 0, got {momentum}")
        _require(not nesterov or momentum > 0, "SGD: nesterov=True needs momentum > 0")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        super().__init__(for_, learning_rate, decay=decay, **options)

    def slot_names(self) -> tuple[str, ...]:
        return ("velocity",) if self.momentum else ()

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        lr = ctx.lr(p.dtype)
        if not self.momentum:
            return p - lr * g, {}
        v = self.momentum * s["velocity"] + g
        d = g + self.momentum * v if self.nesterov else v
        return p - lr * d, {"velocity": v}


class LARS(Optimizer):
    """Layer-wise Adaptive Rate Scaling (You, Gitman and Ginsburg, 2017, Algorithm 1), with
    momentum: for each parameter tensor ``w`` (one "layer") with gradient ``g``::

        local_lr = trust_coefficient * ||w|| / (||g|| + weight_decay * ||w|| + epsilon)
                   (1 where ||w|| or ||g|| is 0)
        velocity = momentum * velocity + lr * local_lr * (g + weight_decay * w)
        w = w - velocity          (nesterov: w - (momentum * velocity + lr * local_lr * (...)))

    ``LARS(for_=model, learning_rate=1.0, momentum=0.9, weight_decay=1e-4,
    trust_coefficient=1e-3, epsilon=1e-9, nesterov=False, exclude=None)``. ``exclude`` is a
    function of a parameter's key path; parameters it accepts (biases and normalization scales,
    usually) get neither the trust ratio nor weight decay: plain momentum SGD. PyTorch has no
    LARS; tests check it against the paper's formula.

    >>> import s4tf_py as s4
    >>> import s4tf_py.optimizers as optimizers
    >>> params = {"w": s4.Tensor([3.0, 4.0])}
    >>> opt = optimizers.LARS(for_=params, learning_rate=1.0, weight_decay=0.0)
    >>> _ = opt.update(params, along={"w": s4.Tensor([0.0, 10.0])})
    >>> [round(v, 6) for v in params["w"].tolist()]      # local lr 1e-3 * 5 / 10
    [3.0, 3.995]
    """

    slots = ("velocity",)
    hyperparameters = ("momentum", "trust_coefficient", "epsilon", "nesterov", "exclude")
    _coupled_weight_decay = False

    def __init__(self, for_, learning_rate: Any = 1.0, momentum: float = 0.9,
                 weight_decay: float = 1e-4, trust_coefficient: float = 1e-3,
                 epsilon: float = 1e-9, nesterov: bool = False,
                 exclude: Optional[Callable[[str], bool]] = None, **options: Any):
        _require(momentum >= 0, f"LARS: momentum must be >= 0, got {momentum}")
        _require(trust_coefficient > 0,
                 f"LARS: trust_coefficient must be > 0, got {trust_coefficient}")
        self.momentum = float(momentum)
        self.trust_coefficient = float(trust_coefficient)
        self.epsilon = float(epsilon)
        self.nesterov = bool(nesterov)
        self.exclude = exclude
        super().__init__(for_, learning_rate, weight_decay=weight_decay, **options)

    def _update_param(self, p: Tensor, g: Tensor, s: dict, ctx: StepContext, path: str):
        from ..ops import logical_and, sqrt, where
        lr = ctx.lr(p.dtype)
        if self.exclude is not None and self.exclude(path):
            scaled = lr * g
        else:
            wd = self.weight_decay
            w_norm = sqrt((p * p).sum())
            g_norm = sqrt((g * g).sum())
            trust = self.trust_coefficient * w_norm / (g_norm + wd * w_norm + self.epsilon)
            trust = where(logical_and(w_norm > 0, g_norm > 0), trust, 1.0)
            scaled = (lr * trust) * (g + wd * p if wd else g)
        v = self.momentum * s["velocity"] + scaled
        step = self.momentum * v + scaled if self.nesterov else v
        return p - step, {"velocity": v}
