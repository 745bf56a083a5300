"""The optimizer base class: the tree walk, the state, clipping, schedules, checkpoints.

An optimizer is made for a model and then updates it along gradients, as in S4TF::

    opt = s4.optimizers.Adam(for_=model, learning_rate=1e-3)
    opt.update(model, along=grads)

``update`` replaces the model's parameters with new Tensors (layers are updated in place, in
the Python-object sense); a Tensor that anything else holds keeps its old value, which is S4TF's
value semantics. It also returns the model, which matters only when the model is a tuple or a
single Tensor (Python cannot change those in place).

The optimizer's state (the step count and per-parameter slots such as Adam's moments) is a dict
of Tensors, and the optimizer itself is a pytree (``s4.tree``) whose leaves are that state and
the learning rate. So a compiled train step takes the optimizer as an argument and returns it;
the learning rate is an input of the step, not a constant, so changing it does not recompile:

>>> import s4tf_py as s4
>>> import s4tf_py.optimizers as optimizers
>>> model = s4.nn.Dense(3, 1, seed=0)
>>> opt = optimizers.Adam(for_=model, learning_rate=0.01)
>>> @s4.compile
... def train_step(model, opt, x, y):
...     loss, g = s4.value_with_gradient(at=model, of=lambda m: ((m(x) - y) ** 2).mean())
...     opt.update(model, along=g)
...     return model, opt, loss
>>> x, y = s4.ones((4, 3)), s4.zeros((4, 1))
>>> for i in range(3):
...     opt.learning_rate = 0.01 * 0.5 ** i
...     model, opt, loss = train_step(model, opt, x, y)
>>> train_step.traces, opt.step, opt.learning_rate
(1, 3, 0.0025)

(Inside a compiled step, the model and optimizer the body sees are stand-ins for the
arguments: return them, and rebind the results as above.)
"""
from __future__ import annotations

import math
from typing import Any, Callable, ClassVar, Mapping, TypeVar

import numpy as np

from .. import dtypes as dt
from .. import tree
from ..tensor import Tensor
from . import _paths
from .clipping import clip_by_global_norm, clip_by_value

__all__ = ["Optimizer", "StepContext"]

M = TypeVar("M")

#: the options every optimizer takes (keyword arguments, static parts of a compiled signature)
COMMON_OPTIONS = ("decay", "weight_decay", "clip_norm", "clip_value")


def _float_from_f32(t: Tensor) -> float:
    """A float32 scalar back as the Python float with the same shortest repr (so a learning rate
    of 1e-3 that went through a compiled step reads back as 1e-3, not 0.0010000000474974513)."""
    v = np.asarray(t.numpy())
    if v.dtype == np.float32:
        return float(str(v[()]))
    return float(v)


def _keep(new: Tensor, like: Tensor) -> Tensor:
    return new if new.dtype == like.dtype else new.astype(like.dtype)


#: per-step scalars (step count, bias corrections, scheduled rates) are computed in float64,
#: as PyTorch computes them in Python floats, and cast to each parameter's dtype: in float32,
#: ``1 - 0.999 ** t`` alone would be off by 1e-5 relative
SCALAR_DTYPE = dt.float64


class StepContext:
    """Per-update scalars shared by all parameters: the step count, the learning rate and
    whatever a rule derives from the step count (bias corrections), each computed once in
    float64 and cast once to each parameter dtype that uses it."""

    def __init__(self, opt: "Optimizer", step: Tensor):
        self.opt = opt
        self.step = step            # int32: updates made before this one
        self._t = None
        self._cache: dict = {}

    def count(self) -> Tensor:
        """This update's 1-based step number ``t``, a float64 scalar."""
        if self._t is None:
            self._t = (self.step + 1).astype(SCALAR_DTYPE)
        return self._t

    def scalar(self, key, dtype, fn: Callable[[Tensor], Any]) -> Any:
        """``fn(t)`` (a float64 scalar function of the step count ``t``), computed once per
        update for ``key`` and cast to ``dtype`` (``None``: not cast)."""
        v = self._cache.get(key)
        if v is None:
            v = self._cache[key] = fn(self.count())
        if dtype is None or not isinstance(v, Tensor) or v.dtype == dtype:
            return v
        ck = (key, dtype)
        c = self._cache.get(ck)
        if c is None:
            c = self._cache[ck] = v.astype(dtype)
        return c

    def lr(self, dtype) -> Any:
        """The learning rate of this update, for parameters of ``dtype``: the float (a weak
        scalar, exact in any dtype), Tensor or ``schedule(step)``, divided by
        ``1 + decay * t`` when the optimizer has S4TF's learning-rate ``decay``."""
        opt = self.opt
        if opt._lr_kind == "float" and not opt.decay:
            return opt._lr

        def compute(t):
            lr = opt._lr
            if opt._lr_kind == "schedule":
                lr = lr(self.step.astype(SCALAR_DTYPE))
            if opt.decay:
                lr = lr / (1.0 + opt.decay * t)
            return lr
        return self.scalar("learning_rate", dtype, compute)


class Optimizer:
    """Base class of optimizers: walks the model and the gradient by key path, keeps the state,
    applies clipping, weight decay and the learning-rate schedule; a subclass writes the update
    rule of one parameter (:meth:`_update_param`) and names its state slots.

    Options every optimizer takes as keyword arguments (all off by default):

    - ``decay``: S4TF's learning-rate decay, ``lr / (1 + decay * t)`` at the ``t``-th update.
    - ``weight_decay``: L2 penalty added to the gradient, ``g + weight_decay * p`` (PyTorch's
      ``weight_decay``). ``AdamW`` and ``LARS`` apply theirs in their own way.
    - ``clip_norm``: clip the gradient by its global norm first (:func:`clip_by_global_norm`).
    - ``clip_value``: clamp each gradient element to ``[-clip_value, clip_value]`` first.

    The learning rate is a float, a scalar Tensor, or a schedule (a callable ``step -> lr``, see
    :mod:`s4tf_py.optimizers.schedules`) evaluated at the number of updates made so far.
    """

    #: names of the per-parameter state slots (see :meth:`slot_names`)
    slots: ClassVar[tuple[str, ...]] = ()
    #: names of this optimizer's own hyperparameters (attributes), besides the learning rate
    hyperparameters: ClassVar[tuple[str, ...]] = ()
    #: whether ``weight_decay`` is the L2 penalty added to the gradient
    _coupled_weight_decay: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        names = set(cls.hyperparameters) | set(COMMON_OPTIONS) | {"learning_rate"}
        clash = (set(cls.slots) & names) | ({"step"} & (names | set(cls.slots)))
        if clash:
            raise TypeError(f"{cls.__name__}: state slot and hyperparameter names must differ "
                            f"(and not be 'step'): {sorted(clash)}")
        tree.register(cls, Optimizer._tree_flatten,
                      lambda aux, children, cls=cls: cls._tree_unflatten(aux, children))

    def __init__(self, for_, learning_rate, *, decay: float = 0.0, weight_decay: float = 0.0,
                 clip_norm: float | None = None, clip_value: float | None = None,
                 **unknown: Any):
        name = type(self).__name__
        if unknown:
            raise TypeError(f"{name}() got an unexpected keyword argument "
                            f"{next(iter(unknown))!r}; its hyperparameters are learning_rate, "
                            f"{', '.join(self._hyper_names())}")
        _require(decay >= 0, f"{name}: decay must be >= 0, got {decay}")
        _require(weight_decay >= 0, f"{name}: weight_decay must be >= 0, got {weight_decay}")
        _require(clip_norm is None or clip_norm > 0,
                 f"{name}: clip_norm must be > 0 or None, got {clip_norm}")
        _require(clip_value is None or clip_value > 0,
                 f"{name}: clip_value must be > 0 or None, got {clip_value}")
        self.decay = float(decay)
        self.weight_decay = float(weight_decay)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.clip_value = None if clip_value is None else float(clip_value)
        self.learning_rate = learning_rate
        params, _ = _paths.parameters(for_)
        if not params:
            raise ValueError(f"{name}: the model has no floating-point Tensor parameters "
                             f"(got a {type(for_).__name__})")
        self._specs = tuple((path, p.shape, p.dtype) for path, (_, p) in params.items())
        first = next(iter(params.values()))[1]
        state: dict = {"step": Tensor(np.asarray(0, dtype=np.int32), device=first.device)}
        for slot in self.slot_names():
            state[slot] = {path: self._init_slot(slot, p) for path, (_, p) in params.items()}
        self.state = state
        from ..lazy import is_tracing
        self._created_in_trace = is_tracing()

    # ---- what a subclass writes ------------------------------------------------------------------
    def slot_names(self) -> tuple[str, ...]:
        """The state slots this configuration uses (default: :attr:`slots`)."""
        return self.slots

    def _init_slot(self, slot: str, param: Tensor) -> Tensor:
        """The initial value of ``slot`` for ``param`` (default: zeros)."""
        from ..ops import zeros_like
        return zeros_like(param)

    def _update_param(self, p: Tensor, g: Tensor, s: dict[str, Tensor], ctx: StepContext,
                      path: str) -> tuple[Tensor, dict[str, Tensor]]:
        """The new value of parameter ``p`` (key path ``path``) and of its slots ``s``, given its
        gradient ``g`` (already clipped and, for coupled weight decay, decayed)."""
        raise NotImplementedError(f"{type(self).__name__} must define _update_param")

    # ---- the learning rate -----------------------------------------------------------------------
    @property
    def learning_rate(self):
        """The learning rate: a float, a scalar Tensor or a schedule (``step -> lr``)."""
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        name = type(self).__name__
        if isinstance(value, bool):
            raise TypeError(f"{name}: learning_rate must be a number, a Tensor or a schedule, "
                            "got a bool")
        if isinstance(value, (int, float, np.floating, np.integer)):
            value = float(value)
            _require(value >= 0 and math.isfinite(value),
                     f"{name}: learning_rate must be a finite number >= 0, got {value}")
            self._lr, self._lr_kind = value, "float"
        elif isinstance(value, Tensor):
            if value.shape != () or not dt.is_floating(value.dtype):
                raise ValueError(f"{name}: a Tensor learning_rate must be a floating-point "
                                 f"scalar, got shape {value.shape} dtype {value.dtype}")
            # a weakly typed scalar is a Python float in traced form (a compiled step's float
            # argument): it stays a float, so the step's signature does not change
            self._lr, self._lr_kind = value, ("float" if value._node.weak else "tensor")
        elif callable(value):
            try:
                hash(value)
            except TypeError:
                raise TypeError(f"{name}: a learning-rate schedule must be hashable (it is part "
                                "of a compiled step's signature); use a function or a frozen "
                                "dataclass") from None
            self._lr, self._lr_kind = value, "schedule"
        else:
            raise TypeError(f"{name}: learning_rate must be a number, a Tensor or a schedule "
                            f"(a callable step -> lr), got a {type(value).__name__}")

    @property
    def step(self) -> int:
        """The number of updates made so far."""
        return int(self.state["step"].item())

    @property
    def current_learning_rate(self) -> float:
        """The learning rate the next update will use, as a float (schedule and ``decay``
        applied)."""
        k = self.step
        lr = self._lr(k) if self._lr_kind == "schedule" else self._lr
        lr = float(lr)
        if self.decay:
            lr = lr / (1.0 + self.decay * (k + 1))
        return lr

    # ---- the update ------------------------------------------------------------------------------
    def update(self, model: M, along) -> M:
        """Move ``model``'s parameters along the gradient ``along`` (S4TF's
        ``update(&model, along:)``) and advance the state by one step.

        ``along`` has the model's structure: its ``TangentVector`` (what ``s4.gradient``
        returns), or the same lists and dicts for a plain pytree model; a ``None`` entry leaves
        that parameter (and its state) unchanged. Returns ``model`` (a new object only when the
        model is a tuple or a single Tensor, which Python cannot change in place).
        """
        where = f"{type(self).__name__}.update"
        params, leaves = _paths.parameters(model)
        self._check_model(params, where)
        extra = _paths.extra_entries(along, leaves)
        if extra:
            raise ValueError(f"{where}: the gradient has entries where the model has no "
                             f"parameter: {', '.join(_paths.display(e) for e in extra)}")
        self._check_not_captured(params, where)
        grads: dict[str, Tensor] = {}
        for path, (keys, p) in params.items():
            g = _paths.lookup(along, keys, where)
            if g is None:
                continue
            if not isinstance(g, Tensor) or not dt.is_floating(g.dtype):
                raise TypeError(f"{where}: the gradient of the parameter {_paths.display(path)} "
                                f"must be a floating-point Tensor or None, got "
                                f"{_describe(g)}")
            if g.shape != p.shape:
                raise ValueError(f"{where}: the gradient of the parameter {_paths.display(path)} "
                                 f"has shape {g.shape}, the parameter has shape {p.shape}")
            grads[path] = g if g.dtype == p.dtype else g.astype(p.dtype)
        if grads and self.clip_value is not None:
            grads = clip_by_value(grads, self.clip_value)
        if grads and self.clip_norm is not None:
            grads = clip_by_global_norm(grads, self.clip_norm)

        self._ensure_slots(params)
        step = self.state["step"]
        ctx = StepContext(self, step)
        slot_names = self.slot_names()
        new_state: dict = {"step": step + 1}
        for slot in slot_names:
            new_state[slot] = dict(self.state[slot])
        new_params: dict[str, Tensor] = {}
        for path, g in grads.items():
            p = params[path][1]
            if self.weight_decay and self._coupled_weight_decay:
                g = g + self.weight_decay * p
            s = {slot: self.state[slot][path] for slot in slot_names}
            new_p, new_s = self._update_param(p, g, s, ctx, path)
            new_params[path] = _keep(new_p, p)
            for slot in slot_names:
                new_state[slot][path] = _keep(new_s[slot], s[slot])
        for slot in self.state:                  # slots a previous configuration used
            if slot not in new_state:
                new_state[slot] = self.state[slot]
        self.state = new_state
        return _paths.write_back(model, new_params)

    def _ensure_slots(self, params) -> None:
        """Create slots that a changed configuration (momentum turned on...) now needs."""
        missing = [s for s in self.slot_names() if s not in self.state]
        if missing:
            state = dict(self.state)
            for slot in missing:
                state[slot] = {path: self._init_slot(slot, p) for path, (_, p) in params.items()}
            self.state = state

    def _check_model(self, params, where: str) -> None:
        want = {path: (shape, dtype) for path, shape, dtype in self._specs}
        missing = [p for p in want if p not in params]
        unexpected = [p for p in params if p not in want]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append("missing " + ", ".join(_paths.display(p) for p in missing))
            if unexpected:
                parts.append("unexpected " + ", ".join(_paths.display(p) for p in unexpected))
            raise ValueError(f"{where}: the model's parameters are not the ones this optimizer "
                             f"was made for: {'; '.join(parts)}")
        for path, (_, p) in params.items():
            shape, dtype = want[path]
            if p.shape != shape or p.dtype != dtype:
                raise ValueError(f"{where}: the parameter {_paths.display(path)} is "
                                 f"{dt.SHORT_NAME.get(p.dtype, p.dtype)}{list(p.shape)}, but the "
                                 f"optimizer was made for {dt.SHORT_NAME.get(dtype, dtype)}"
                                 f"{list(shape)}; make a new optimizer for the changed model")

    def _check_not_captured(self, params, where: str) -> None:
        """Inside ``s4.compile``, refuse an optimizer or model the body captured instead of
        taking it as an argument: updating it would leak traced stand-ins into it."""
        from ..lazy import is_tracing
        if not is_tracing() or self._created_in_trace:
            return
        state_leaves = [t for t in tree.flatten(self.state)[0] if isinstance(t, Tensor)]
        if not all(_paths.depends_on_trace_input(t) for t in state_leaves):
            raise RuntimeError(
                f"{where} inside s4.compile: this optimizer is not an argument of the compiled "
                "function (the body captured it). Pass it in and return it, e.g.\n"
                "    def step(model, opt, x, y): ...; opt.update(model, along=g); "
                "return model, opt, loss\n    model, opt, loss = step(model, opt, x, y)")
        if not all(_paths.depends_on_trace_input(p) for _, p in params.values()):
            raise RuntimeError(
                f"{where} inside s4.compile: the model is not an argument of the compiled "
                "function (the body captured it). Pass it in and return it, e.g.\n"
                "    def step(model, opt, x, y): ...; opt.update(model, along=g); "
                "return model, opt, loss\n    model, opt, loss = step(model, opt, x, y)")

    # ---- devices, checkpoints --------------------------------------------------------------------
    def move(self, *, to) -> "Optimizer":
        """Move the state (and a Tensor learning rate) to the device ``to``; returns self."""
        leaves, td = tree.flatten(self.state)
        self.state = tree.unflatten(td, [t.to(to) if isinstance(t, Tensor) else t
                                         for t in leaves])
        if self._lr_kind == "tensor":
            self._lr = self._lr.to(to)
        return self

    def _hyper_names(self) -> tuple[str, ...]:
        return tuple(self.hyperparameters) + COMMON_OPTIONS

    def state_dict(self) -> dict[str, Any]:
        """The state as a flat mapping: ``"step"`` and ``"<slot>.<key path>"`` to Tensors (e.g.
        ``"first_moments.l1.weight"``), and each numeric hyperparameter (``"learning_rate"``,
        ``"beta1"`` ...) to its number. A schedule is code, not state: it is left out, and so
        are options that are off (``None``).

        >>> import s4tf_py as s4
        >>> import s4tf_py.optimizers as optimizers
        >>> opt = optimizers.SGD(for_={"w": s4.ones((2,))}, momentum=0.9)
        >>> sorted(opt.state_dict())
        ['decay', 'learning_rate', 'momentum', 'nesterov', 'step', 'velocity.w', 'weight_decay']
        >>> [k for k in opt.state_dict() if isinstance(opt.state_dict()[k], s4.Tensor)]
        ['step', 'velocity.w']
        """
        d: dict[str, Any] = {"step": self.state["step"]}
        for slot in self.slot_names():
            for path, t in self.state[slot].items():
                d[_state_key(slot, path)] = t
        if self._lr_kind != "schedule":
            d["learning_rate"] = self._lr
        for name in self._hyper_names():
            v = getattr(self, name)
            if isinstance(v, (bool, int, float)):        # None (an option that is off) is left out
                d[name] = v
        return d

    def load_state_dict(self, d: Mapping[str, Any], strict: bool = True) -> None:
        """Restore what :meth:`state_dict` returned (Tensors, numpy arrays or numbers).

        With ``strict`` (the default) a missing or unexpected key is an error that lists them
        all; with ``strict=False`` the keys that match are loaded and the rest ignored. A
        tensor whose shape differs is always an error.
        """
        where = f"{type(self).__name__}.load_state_dict"
        current = self.state_dict()
        tensor_keys = [k for k, v in current.items()
                       if isinstance(v, Tensor) and k != "learning_rate"]
        missing = [k for k in tensor_keys if k not in d]
        unexpected = [k for k in d if k not in current
                      and not (k == "learning_rate" and self._lr_kind == "schedule")]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys: {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected keys: {', '.join(unexpected)}")
            raise KeyError(f"{where}: the state does not match this optimizer; "
                           + "; ".join(parts))
        loaded: dict[str, Tensor] = {}
        for k in tensor_keys:
            if k not in d:
                continue
            cur = current[k]
            v = d[k]
            t = v if isinstance(v, Tensor) else Tensor(np.asarray(v), device=cur.device)
            if t.shape != cur.shape:
                raise ValueError(f"{where}: {k!r} has shape {t.shape}, this optimizer's state "
                                 f"has shape {cur.shape}")
            if t.dtype != cur.dtype:
                t = t.astype(cur.dtype)
            if t.device != cur.device:
                t = t.to(cur.device)
            loaded[k] = t
        state = {"step": loaded.get("step", self.state["step"])}
        for slot in self.state:
            if slot == "step":
                continue
            state[slot] = {path: loaded.get(_state_key(slot, path), t)
                           for path, t in self.state[slot].items()}
        self.state = state
        for name in self._hyper_names():
            if name in d:
                v = d[name]
                if isinstance(v, Tensor):
                    v = v.item()
                setattr(self, name, None if v is None else
                        (bool(v) if isinstance(getattr(self, name), bool) else float(v)))
        if "learning_rate" in d and self._lr_kind != "schedule":
            v = d["learning_rate"]
            self.learning_rate = v if isinstance(v, Tensor) else float(np.asarray(v))

    # ---- pytree ----------------------------------------------------------------------------------
    def _tree_flatten(self):
        lr_leaf = None if self._lr_kind == "schedule" else self._lr
        aux = (tuple((n, getattr(self, n)) for n in self._hyper_names()), self._specs,
               self._lr_kind, self._lr if self._lr_kind == "schedule" else None)
        return [self.state, lr_leaf], aux

    @classmethod
    def _tree_unflatten(cls, aux, children):
        hyper, specs, kind, schedule = aux
        obj = object.__new__(cls)
        for n, v in hyper:
            setattr(obj, n, v)
        obj._specs = specs
        obj.state = children[0]
        lr = children[1]
        if kind == "schedule":
            lr = schedule
        elif kind == "float" and isinstance(lr, Tensor) and lr._node.value is not None:
            lr = _float_from_f32(lr)       # back from a compiled step: a float again
        obj._lr, obj._lr_kind = lr, kind
        obj._created_in_trace = False
        return obj

    def __repr__(self) -> str:
        lr = self._lr if self._lr_kind != "tensor" else "<Tensor>"
        parts = [f"learning_rate={lr!r}"]
        for n in self._hyper_names():
            v = getattr(self, n)
            if n in COMMON_OPTIONS and not v:
                continue
            parts.append(f"{n}={v!r}")
        return f"{type(self).__name__}({', '.join(parts)}, parameters={len(self._specs)})"


def _state_key(slot: str, path: str) -> str:
    return f"{slot}.{path}" if path else slot


def _describe(v) -> str:
    if isinstance(v, Tensor):
        return f"a {v.dtype} Tensor"
    return f"a {type(v).__name__}"


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)
