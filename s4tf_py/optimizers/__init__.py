"""``s4.optimizers``: S4TF's optimizers, AdamW and LARS, learning-rate schedules, clipping.

Every optimizer is made for a model (an ``s4.nn.Layer`` or a plain pytree of Tensors) and
updates it along a gradient with S4TF's names::

    opt = s4.optimizers.Adam(for_=model, learning_rate=1e-3)
    opt.update(model, along=grads)

>>> import s4tf_py as s4
>>> import s4tf_py.optimizers as optimizers
>>> model = s4.nn.Dense(2, 1, seed=0)
>>> opt = optimizers.SGD(for_=model, learning_rate=0.1)
>>> x, y = s4.Tensor([[1.0, 2.0]]), s4.Tensor([[1.0]])
>>> loss = lambda m: ((m(x) - y) ** 2).mean()
>>> before = loss(model).item()
>>> for _ in range(20):
...     _ = opt.update(model, along=s4.gradient(at=model, of=loss))
>>> loss(model).item() < before * 1e-3
True

Optimizers: :class:`SGD`, :class:`RMSProp`, :class:`AdaGrad`, :class:`AdaDelta`, :class:`Adam`,
:class:`AdaMax`, :class:`AMSGrad`, :class:`RAdam`, :class:`AdamW`, :class:`LARS` (S4TF's
defaults). Schedules (a float or any ``step -> lr`` callable is a learning rate):
:class:`Constant`, :class:`LinearWarmup`, :class:`CosineDecay`, :class:`WarmupCosineDecay`,
:class:`StepDecay`, :class:`ExponentialDecay`. Clipping: :func:`clip_by_global_norm`,
:func:`clip_by_value`, :func:`global_norm`, and every optimizer's ``clip_norm=`` and
``clip_value=`` options.
"""
from . import schedules
from .adam import AdaMax, Adam, AdamW, AMSGrad, RAdam
from .adaptive import AdaDelta, AdaGrad, RMSProp
from .base import Optimizer, StepContext
from .clipping import clip_by_global_norm, clip_by_value, global_norm
from .schedules import (Constant, CosineDecay, ExponentialDecay, LinearWarmup, Schedule,
                        StepDecay, WarmupCosineDecay)
from .sgd import LARS, SGD

__all__ = ["Optimizer", "StepContext", "SGD", "RMSProp", "AdaGrad", "AdaDelta", "Adam",
           "AdaMax", "AMSGrad", "RAdam", "AdamW", "LARS", "schedules", "Schedule", "Constant",
           "LinearWarmup", "CosineDecay", "WarmupCosineDecay", "StepDecay", "ExponentialDecay",
           "clip_by_global_norm", "clip_by_value", "global_norm"]
