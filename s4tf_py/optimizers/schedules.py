"""Learning-rate schedules: callables ``step -> learning rate``.

A schedule is any callable that maps the number of updates already made (``0`` for the first
update) to a learning rate. The ones here are small frozen dataclasses, so they are hashable
(an optimizer's schedule is part of a compiled step's signature) and compare by value. Each
accepts a Python number (and returns a Python float, handy for plotting or logging) or a
scalar Tensor (and returns a Tensor, which is how an optimizer evaluates it inside a traced or
compiled step, so the schedule never forces a recompile).

Pass one as an optimizer's ``learning_rate`` instead of a float:

>>> import s4tf_py as s4
>>> import s4tf_py.optimizers as optimizers
>>> sched = optimizers.WarmupCosineDecay(peak_value=0.1, warmup_steps=2, decay_steps=6)
>>> [round(sched(k), 4) for k in range(7)]
[0.0, 0.05, 0.1, 0.0854, 0.05, 0.0146, 0.0]
>>> params = {"w": s4.ones((2,))}
>>> opt = optimizers.SGD(for_=params, learning_rate=sched)
>>> opt.current_learning_rate
0.0

Write your own with any function of the step that works on Python numbers and on Tensors (use
``s4`` ops, not ``math``), or subclass :class:`Schedule`.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Union

from ..tensor import Tensor

__all__ = ["Schedule", "Constant", "LinearWarmup", "CosineDecay", "WarmupCosineDecay",
           "StepDecay", "ExponentialDecay", "LearningRate"]


# ---- scalar helpers that work on Python numbers and on Tensors ---------------------------------

def _is_t(*xs) -> bool:
    return any(isinstance(x, Tensor) for x in xs)


def _minimum(a, b):
    if _is_t(a, b):
        from ..ops import minimum
        return minimum(a, b)
    return min(a, b)


def _maximum(a, b):
    if _is_t(a, b):
        from ..ops import maximum
        return maximum(a, b)
    return max(a, b)


def _cos(x):
    if _is_t(x):
        from ..ops import cos
        return cos(x)
    return math.cos(x)


def _floor(x):
    if _is_t(x):
        from ..ops import floor
        return floor(x)
    return float(math.floor(x))


def _where(cond, a, b):
    if _is_t(cond, a, b):
        from ..ops import where
        return where(cond, a, b)
    return a if cond else b


def _as_step(step):
    """A float step (Python float, or a floating Tensor: integer steps are cast to float32)."""
    if isinstance(step, Tensor):
        from .. import dtypes as dt
        return step if dt.is_floating(step.dtype) else step.astype(dt.float32)
    return float(step)


def _value(v, step):
    """``v`` evaluated at ``step``: a float stays a float, a schedule is called."""
    return v(step) if callable(v) else v


class Schedule:
    """Base class of learning-rate schedules: ``schedule(step)`` is the learning rate of the
    update made after ``step`` earlier updates."""

    def __call__(self, step):  # pragma: no cover - subclasses define it
        raise NotImplementedError

    def values(self, steps: int) -> list[float]:
        """The first ``steps`` learning rates, as Python floats.

        >>> import s4tf_py.optimizers as optimizers
        >>> optimizers.StepDecay(1.0, step_size=2, gamma=0.5).values(5)
        [1.0, 1.0, 0.5, 0.5, 0.25]
        """
        return [float(self(k)) for k in range(steps)]


@dataclasses.dataclass(frozen=True)
class Constant(Schedule):
    """The same learning rate at every step.

    >>> import s4tf_py.optimizers as optimizers
    >>> optimizers.Constant(0.1)(1000)
    0.1
    """

    value: float

    def __call__(self, step):
        return self.value


@dataclasses.dataclass(frozen=True)
class LinearWarmup(Schedule):
    """Rise linearly from ``init_value`` to the value of ``after`` over ``warmup_steps`` updates,
    then follow ``after`` (a float, or a schedule called with the steps since warmup ended).

    This is PyTorch's ``LinearLR(start_factor=init_value / peak, total_iters=warmup_steps)``
    when ``after`` is a float.

    >>> import s4tf_py.optimizers as optimizers
    >>> [round(v, 6) for v in optimizers.LinearWarmup(warmup_steps=4, after=0.1).values(6)]
    [0.0, 0.025, 0.05, 0.075, 0.1, 0.1]
    >>> warm_then_decay = optimizers.LinearWarmup(
    ...     warmup_steps=2, after=optimizers.ExponentialDecay(1.0, decay_rate=0.5))
    >>> warm_then_decay.values(5)
    [0.0, 0.5, 1.0, 0.5, 0.25]
    """

    warmup_steps: int
    after: Union[float, Callable] = 1.0
    init_value: float = 0.0

    def __post_init__(self):
        if self.warmup_steps < 0:
            raise ValueError(f"LinearWarmup: warmup_steps must be >= 0, got {self.warmup_steps}")

    def __call__(self, step):
        s = _as_step(step)
        peak = float(_value(self.after, 0))
        if self.warmup_steps == 0:
            return _value(self.after, s)
        frac = _minimum(s, float(self.warmup_steps)) / float(self.warmup_steps)
        warm = self.init_value + (peak - self.init_value) * frac
        if not callable(self.after):
            return warm
        rest = self.after(_maximum(s - float(self.warmup_steps), 0.0))
        return _where(s < float(self.warmup_steps), warm, rest)


@dataclasses.dataclass(frozen=True)
class CosineDecay(Schedule):
    """Cosine decay from ``init_value`` to ``alpha * init_value`` over ``decay_steps`` updates,
    constant afterwards (SGDR without restarts; PyTorch's ``CosineAnnealingLR(T_max=decay_steps,
    eta_min=alpha * init_value)`` for the first ``decay_steps`` steps).

    >>> import s4tf_py.optimizers as optimizers
    >>> optimizers.CosineDecay(1.0, decay_steps=4).values(6)
    [1.0, 0.8535533905932737, 0.5, 0.14644660940672627, 0.0, 0.0]
    """

    init_value: float
    decay_steps: int
    alpha: float = 0.0

    def __post_init__(self):
        if self.decay_steps <= 0:
            raise ValueError(f"CosineDecay: decay_steps must be > 0, got {self.decay_steps}")

    def __call__(self, step):
        s = _as_step(step)
        frac = _minimum(s, float(self.decay_steps)) / float(self.decay_steps)
        cosine = 0.5 * (1.0 + _cos(math.pi * frac))
        return self.init_value * ((1.0 - self.alpha) * cosine + self.alpha)


@dataclasses.dataclass(frozen=True)
class WarmupCosineDecay(Schedule):
    """Linear warmup from ``init_value`` to ``peak_value`` over ``warmup_steps`` updates, then
    cosine decay to ``end_value`` at step ``decay_steps`` (which counts the warmup, as in optax's
    ``warmup_cosine_decay_schedule``), constant afterwards.

    >>> import s4tf_py.optimizers as optimizers
    >>> s = optimizers.WarmupCosineDecay(peak_value=1.0, warmup_steps=1, decay_steps=3,
    ...                                  end_value=0.5)
    >>> s.values(5)
    [0.0, 1.0, 0.75, 0.5, 0.5]
    """

    peak_value: float
    warmup_steps: int
    decay_steps: int
    init_value: float = 0.0
    end_value: float = 0.0

    def __post_init__(self):
        if not 0 <= self.warmup_steps < self.decay_steps:
            raise ValueError("WarmupCosineDecay: needs 0 <= warmup_steps < decay_steps, got "
                             f"warmup_steps={self.warmup_steps}, decay_steps={self.decay_steps}")

    def __call__(self, step):
        alpha = self.end_value / self.peak_value if self.peak_value else 0.0
        cosine = CosineDecay(self.peak_value, self.decay_steps - self.warmup_steps, alpha)
        return LinearWarmup(self.warmup_steps, cosine, self.init_value)(step)


@dataclasses.dataclass(frozen=True)
class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` updates (PyTorch's ``StepLR``).

    >>> import s4tf_py.optimizers as optimizers
    >>> [round(v, 6) for v in optimizers.StepDecay(0.1, step_size=3, gamma=0.1).values(7)]
    [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001]
    """

    init_value: float
    step_size: int
    gamma: float = 0.1

    def __post_init__(self):
        if self.step_size <= 0:
            raise ValueError(f"StepDecay: step_size must be > 0, got {self.step_size}")

    def __call__(self, step):
        s = _as_step(step)
        return self.init_value * self.gamma ** _floor(s / float(self.step_size))


@dataclasses.dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """``init_value * decay_rate ** (step / decay_steps)`` (with ``staircase=True`` the exponent
    is floored). ``decay_steps=1`` is PyTorch's ``ExponentialLR(gamma=decay_rate)``.

    >>> import s4tf_py.optimizers as optimizers
    >>> optimizers.ExponentialDecay(1.0, decay_rate=0.5).values(4)
    [1.0, 0.5, 0.25, 0.125]
    >>> optimizers.ExponentialDecay(1.0, decay_rate=0.5, decay_steps=2, staircase=True).values(4)
    [1.0, 1.0, 0.5, 0.5]
    """

    init_value: float
    decay_rate: float
    decay_steps: int = 1
    staircase: bool = False

    def __post_init__(self):
        if self.decay_steps <= 0:
            raise ValueError(f"ExponentialDecay: decay_steps must be > 0, got {self.decay_steps}")

    def __call__(self, step):
        e = _as_step(step) / float(self.decay_steps)
        if self.staircase:
            e = _floor(e)
        return self.init_value * self.decay_rate ** e


#: what an optimizer's ``learning_rate`` accepts
LearningRate = Union[float, Tensor, Callable]
