"""``s4.train.TrainingLoop``: S4TF's training loop (modelled on fastai's ``Learner``).

::

    loop = s4.train.TrainingLoop(training=epochs, validation=batches, optimizer=opt,
                                 loss_function=s4.losses.softmax_cross_entropy,
                                 metrics=["accuracy"], callbacks=[...])
    model = loop.fit(model, epochs=10, device=s4.Device("llvm"))

What one training step does, by default, is one call of a compiled function (``s4.compile``):
forward pass, loss, gradient and optimizer update traced once and then run without Python,
with the model's and optimizer's buffers donated so that the update happens in place. The
learning rate is an input of that function (a Python float), so schedules never recompile.
Validation runs a second compiled function under ``s4.learning_phase("inference")``.

Events and cancellation are S4TF's (see :mod:`s4tf_py.train.callbacks`). A callback that
defines ``on_update_start`` makes the loop split the step into a compiled gradient and a
compiled update, with the event (and ``loop.last_step_gradient``) in between.

Options:

* ``mixed_precision="bf16"`` or ``"fp16"``: the forward and backward passes run in bfloat16 /
  float16 on a cast of the model, while the optimizer updates float32 master weights (the cast
  is inside the differentiated function, so gradients arrive in float32). The loss is computed
  in float32. With fp16, dynamic loss scaling (``loss_scale``, a :class:`DynamicLossScale`)
  multiplies the loss before the backward pass, and a step whose gradients hold an Inf or NaN
  is skipped (weights and optimizer state unchanged) and halves the scale; the scale doubles
  after ``growth_interval`` good steps. ``loop.skipped_steps`` counts skipped steps.
* ``debug_nans=True`` (or running inside ``with s4.debug_nans():``): after every step the loss
  and the new weights are checked; the first step that makes a NaN or an Inf is replayed op by
  op on the reference backend and the fit stops with :class:`~s4tf_py.debug.NonFiniteError`,
  whose ``report`` names the first op that produced it, its inputs' statistics and the source
  line. (Without it, a non-finite training loss also stops the fit, with a shorter message.)
* ``checkpoint_dir`` / ``checkpoint_every`` / ``keep_checkpoints``: a
  :class:`~s4tf_py.train.callbacks.Checkpointer`; ``fit`` resumes from its newest checkpoint
  (``resume="auto"``), restoring the weights, the optimizer state, the step count, the data
  position (epoch and batch), the random key and the callbacks' state, so a run killed at any
  point ends exactly (bit for bit on the same backend) as an uninterrupted one.
* ``seed``: the random key of the run. When the layers use ``s4.random.key_scope`` (dropout),
  each step gets the key ``fold_in(key(seed), step)`` as an input of the compiled step.

>>> import numpy as np
>>> import s4tf_py as s4
>>> from s4tf_py import losses, optimizers
>>> from s4tf_py.data import TrainingEpochs
>>> rng = np.random.default_rng(0)
>>> x = rng.standard_normal((64, 3)).astype(np.float32)
>>> y = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)
>>> model = s4.nn.Dense(3, 1, seed=0)
>>> loop = TrainingLoop(training=TrainingEpochs((x, y), batch_size=16, seed=0),
...                     optimizer=optimizers.Adam(for_=model, learning_rate=0.05),
...                     loss_function=losses.mean_squared_error, progress=False)
>>> model = loop.fit(model, epochs=20)
>>> loop.history[-1]["train_loss"] < 0.05 * loop.history[0]["train_loss"], loop.train_step.traces
(True, 1)
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes as dt
from .. import tree
from ..debug import NonFiniteError, find_nonfinite
from ..tensor import Tensor
from .callbacks import (Callback, CancelBatch, CancelEpoch, CancelFit, Checkpointer, Event,
                        ProgressBar, StatisticsRecorder, wants_update_start)

__all__ = ["TrainingLoop", "DynamicLossScale"]

_CHECKPOINT_FORMAT = "s4tf_py.TrainingLoop/1"


@dataclasses.dataclass(frozen=True)
class DynamicLossScale:
    """fp16 dynamic loss scaling (as PyTorch's ``GradScaler``): start at ``initial``; on a step
    whose gradients overflow, skip it and multiply the scale by ``backoff_factor``; after
    ``growth_interval`` steps without overflow, multiply it by ``growth_factor``."""

    initial: float = 2.0 ** 15
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000

    def __post_init__(self):
        if not (self.initial > 0 and math.isfinite(self.initial)):
            raise ValueError(f"DynamicLossScale: initial must be a finite number > 0, got "
                             f"{self.initial!r}")
        if not self.growth_factor >= 1.0 or not 0.0 < self.backoff_factor < 1.0:
            raise ValueError("DynamicLossScale: growth_factor must be >= 1 and backoff_factor "
                             "in (0, 1)")
        if not isinstance(self.growth_interval, int) or self.growth_interval < 1:
            raise ValueError(f"DynamicLossScale: growth_interval must be a positive int, got "
                             f"{self.growth_interval!r}")


_PRECISIONS = {None: None, "fp32": None, "float32": None,
               "bf16": dt.bfloat16, "bfloat16": dt.bfloat16,
               "fp16": dt.float16, "float16": dt.float16}


def _cast_floating(obj, dtype):
    """``obj`` (a model, an input batch: any pytree) with its floating-point tensors cast to
    ``dtype`` (differentiable: the cotangents come back in the original dtype)."""
    leaves, td = tree.flatten(obj)
    return tree.unflatten(td, [v.astype(dtype) if isinstance(v, Tensor) and
                               dt.is_floating(v.dtype) and v.dtype != dtype else v
                               for v in leaves])


def _copy_state_back(model, low, before: set) -> None:
    """Set the ``no_derivative`` tensor fields of ``model`` that the forward pass replaced on
    its cast copy ``low`` (ids not in ``before``), cast back to ``model``'s dtypes."""
    if isinstance(model, (list, tuple)) and isinstance(low, (list, tuple)):
        for a, b in zip(model, low):
            _copy_state_back(a, b, before)
        return
    if isinstance(model, dict) and isinstance(low, dict):
        for k in model:
            if k in low:
                _copy_state_back(model[k], low[k], before)
        return
    cls = type(model)
    if type(low) is not cls or not hasattr(cls, "__s4_diff_fields__"):
        return
    for name in cls.__s4_diff_fields__:
        _copy_state_back(getattr(model, name), getattr(low, name), before)
    for name in cls.__s4_nodiff_fields__:
        new, old = getattr(low, name), getattr(model, name)
        if isinstance(new, Tensor) and id(new) not in before and isinstance(old, Tensor):
            setattr(model, name, new.astype(old.dtype) if new.dtype != old.dtype else new)
        elif hasattr(type(new), "__s4_diff_fields__"):
            _copy_state_back(old, new, before)


def _all_finite(grads) -> Tensor:
    from ..ops import all as all_, isfinite, logical_and
    ok = None
    for g in tree.flatten(grads)[0]:
        if isinstance(g, Tensor):
            f = all_(isfinite(g))
            ok = f if ok is None else logical_and(ok, f)
    if ok is None:
        from ..ops import asarray
        ok = asarray(True)
    return ok


def _select(cond: Tensor, new, old):
    """``new`` where ``cond`` else ``old``, leaf by leaf (same structure)."""
    from ..ops import where
    n_leaves, td = tree.flatten(new)
    o_leaves, _ = tree.flatten(old)
    return tree.unflatten(td, [where(cond, n, o) if isinstance(n, Tensor) else n
                               for n, o in zip(n_leaves, o_leaves)])


def _adopt(dst, src):
    """Make ``dst`` (the caller's model or optimizer object) hold ``src``'s values in place
    where Python allows it, and return the object to use from now on."""
    if dst is src:
        return dst
    if type(dst) is type(src) and hasattr(type(dst), "__s4_diff_fields__"):
        # a layer: field by field, sub-layers in place too (as Optimizer.update does), so a
        # sub-layer the caller holds (model.encoder) sees the new weights as well
        for name, new in vars(src).items():
            if name.startswith("_s4_"):          # bookkeeping of derivative copies
                continue
            old = vars(dst).get(name)
            if old is not new:
                object.__setattr__(dst, name, _adopt(old, new) if type(old) is type(new) and
                                   hasattr(type(new), "__s4_diff_fields__") else new)
        return dst
    if type(dst) is type(src) and hasattr(dst, "__dict__") and not isinstance(dst, type):
        vars(dst).update(vars(src))                  # an optimizer
        return dst
    if isinstance(dst, dict) and isinstance(src, dict):
        dst.clear()
        dst.update(src)
        return dst
    if isinstance(dst, list) and isinstance(src, list):
        dst[:] = src
        return dst
    return src


def _shell(obj):
    """A new object of ``obj``'s structure over the same (immutable) tensors."""
    leaves, td = tree.flatten(obj)
    return tree.unflatten(td, leaves)


def _own(obj):
    """``obj`` over new tensor objects that share the buffers but not the graph nodes.

    Donation marks a *node* as given away; passing the loop's own nodes keeps tensors that
    someone else holds (a copy taken before ``fit``, ``loop.model.weight`` kept by a callback)
    readable: their node still references the buffer, so the compiled call sees it shared and
    copies it first. When nobody else holds it, the update happens in place."""
    from ..ir import graph
    from ..lazy.materialize import check_not_donated, materialize
    from ..tensor import wrap
    leaves, td = tree.flatten(obj)
    out = []
    for v in leaves:
        if isinstance(v, Tensor):
            n = v._node
            if n.value is None:
                materialize([n])
            check_not_donated(n)
            v = wrap(graph.leaf(n.value, n.shape, n.dtype, n.weak, n.device))
        out.append(v)
    return tree.unflatten(td, out)


def _to_device(obj, device):
    leaves, td = tree.flatten(obj)
    if not any(isinstance(v, Tensor) and v.device is not device for v in leaves):
        return obj
    return tree.unflatten(td, [v.to(device) if isinstance(v, Tensor) and v.device is not device
                               else v for v in leaves])


def _key_scope():
    """``s4.random.key_scope`` when the dropout layers provide it, else None."""
    from .. import random as _random
    return getattr(_random, "key_scope", None)


class _Stop(Exception):
    """Internal: the stop flag was seen at a boundary."""


class TrainingLoop:
    """S4TF's ``TrainingLoop`` (see the module docstring for the whole story).

    Arguments:

    * ``training``: the training data. A :class:`~s4tf_py.data.TrainingEpochs` (epoch ``k``
      is ``training[k]``: shuffled, seeded, resumable), or a sequence or re-iterable of
      batches used every epoch. A batch is ``(inputs, targets)`` (tuples, lists, named tuples,
      or a dict with ``inputs``/``targets``, ``x``/``y`` or ``data``/``label`` keys) of numpy
      arrays or Tensors; inputs may be a pytree.
    * ``validation``: batches for validation (e.g. :class:`~s4tf_py.data.InferenceBatches`),
      run after every epoch; None for none.
    * ``optimizer``: an optimizer made for the model (``Adam(for_=model)``), or a function
      ``model -> optimizer``.
    * ``loss_function``: ``loss_function(outputs, targets) -> scalar``, or the name of a
      function in ``s4.losses``.
    * ``metrics``: names or Metric objects measured besides the loss (``["accuracy"]``).
    * ``callbacks``: :class:`~s4tf_py.train.callbacks.Callback` objects or functions
      ``(loop, event)``.
    * ``mixed_precision``, ``loss_scale``, ``debug_nans``, ``checkpoint_dir``,
      ``checkpoint_every``, ``keep_checkpoints``, ``seed``: see the module docstring.
    * ``compile``: run steps as compiled functions (default); False runs them op by op
      (lazily, with ``s4.barrier()`` after each step), for debugging with Python.
    * ``donate``: let a compiled step reuse the model's and optimizer's buffers for their new
      values (default True; off under ``debug_nans``, which keeps them to replay a step).
      Tensors of an older model (a copy taken by a callback) are then unreadable: take host
      copies (``.numpy()``) instead.
    * ``progress``: add a :class:`~s4tf_py.train.callbacks.ProgressBar` (default True).

    State that callbacks read (S4TF's names in snake_case): ``model``, ``optimizer``,
    ``epoch_index``/``epoch_count``, ``batch_index``/``batch_count``, ``step`` (training steps
    done), ``is_training``, ``last_step_input``, ``last_step_target``, ``last_step_output``,
    ``last_step_loss`` (a float), ``last_step_gradient`` (when split), ``logs`` (this epoch's
    values), ``history``, ``recorder``, ``learning_rate``, ``loss_scale``, ``skipped_steps``,
    ``event``; ``request_stop()``.
    """

    def __init__(self, *, training, validation=None, optimizer, loss_function,
                 metrics: Sequence = (), callbacks: Sequence = (),
                 mixed_precision: str | None = None,
                 loss_scale: DynamicLossScale | float | None = None,
                 debug_nans: bool = False, compile: bool = True, donate: bool = True,  # noqa: A002
                 checkpoint_dir: str | os.PathLike | None = None,
                 checkpoint_every: int | None = None, keep_checkpoints: int = 3,
                 seed: int = 0, progress: bool = True) -> None:
        if training is None:
            raise TypeError("TrainingLoop: training= is required (a TrainingEpochs or batches)")
        self.training = training
        self.validation = validation
        self._optimizer_arg = optimizer
        if isinstance(loss_function, str):
            from .. import losses
            fn = getattr(losses, loss_function, None)
            if not callable(fn):
                raise ValueError(f"TrainingLoop: s4.losses has no loss named {loss_function!r}")
            loss_function = fn
        if not callable(loss_function):
            raise TypeError(f"TrainingLoop: loss_function must be callable (outputs, targets) "
                            f"-> loss, got {loss_function!r}")
        self.loss_function = loss_function
        if mixed_precision not in _PRECISIONS:
            raise ValueError(f"TrainingLoop: mixed_precision must be None, 'bf16' or 'fp16', "
                             f"got {mixed_precision!r}")
        self.mixed_precision = mixed_precision
        self._compute_dtype = _PRECISIONS[mixed_precision]
        self._static_scale = False
        if self._compute_dtype == dt.float16:
            if loss_scale is None:
                loss_scale = DynamicLossScale()
            elif isinstance(loss_scale, (int, float)) and not isinstance(loss_scale, bool):
                # a fixed scale: it never changes (steps that overflow are still skipped)
                loss_scale = DynamicLossScale(float(loss_scale))
                self._static_scale = True
            elif not isinstance(loss_scale, DynamicLossScale):
                raise TypeError(f"TrainingLoop: loss_scale must be a DynamicLossScale or a "
                                f"number, got {loss_scale!r}")
        elif loss_scale is not None:
            raise ValueError("TrainingLoop: loss_scale is for mixed_precision='fp16' only")
        self.loss_scale_config: DynamicLossScale | None = loss_scale
        self.debug_nans = bool(debug_nans)
        self.compile = bool(compile)
        self.donate = bool(donate)
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"TrainingLoop: seed must be a non-negative int, got {seed!r}")
        self.seed = int(seed)

        cbs = list(callbacks)
        for cb in cbs:
            if not callable(cb):
                raise TypeError(f"TrainingLoop: a callback must be a Callback or a function "
                                f"(loop, event), got {cb!r}")
        if not any(isinstance(cb, StatisticsRecorder) for cb in cbs):
            cbs.append(StatisticsRecorder(metrics))
        elif metrics:
            raise ValueError("TrainingLoop: give metrics= or a StatisticsRecorder in "
                             "callbacks=, not both")
        if progress and not any(isinstance(cb, ProgressBar) for cb in cbs):
            cbs.append(ProgressBar())
        if checkpoint_dir is not None:
            cbs.append(Checkpointer(checkpoint_dir, checkpoint_every, keep=keep_checkpoints))
        elif checkpoint_every is not None:
            raise ValueError("TrainingLoop: checkpoint_every needs checkpoint_dir")
        # stable sort: equal orders keep the given order
        self.callbacks: list = sorted(cbs, key=lambda c: getattr(c, "order", 0))
        self.recorder: StatisticsRecorder = next(c for c in self.callbacks
                                                 if isinstance(c, StatisticsRecorder))
        self.metrics = self.recorder.specs

        # state that callbacks read
        self.model = None
        self.optimizer = None
        self.epoch_index = 0
        self.epoch_count = 0
        self.start_epoch = 0
        self.batch_index = 0
        self.batch_count: int | None = None
        self.step = 0
        self.is_training = False
        self.event: Event | None = None
        self.logs: dict = {}
        self.last_step_input = None
        self.last_step_target = None
        self.last_step_output = None
        self.last_step_loss: float = math.nan
        self.last_step_gradient = None
        self.skipped_steps = 0
        self.resumed_from: str | None = None
        self.stop_reason: str | None = None
        self._stop = False
        self._scaler = None
        self._base_key = None
        self.train_step = None          # the compiled step(s), built by the first fit
        self.grad_step = None
        self.update_step = None
        self.eval_step = None
        self._built_for = None

    # ---- what callbacks use ------------------------------------------------------------------
    @property
    def history(self) -> list[dict]:
        """One dict of logged values per finished epoch (the recorder's history)."""
        return self.recorder.history

    @property
    def learning_rate(self) -> float:
        """The optimizer's current learning rate, as a float."""
        opt = self.optimizer
        if opt is None:
            return math.nan
        try:
            return float(opt.current_learning_rate)
        except Exception:  # noqa: BLE001 - an optimizer of another kind
            lr = getattr(opt, "learning_rate", math.nan)
            return float(lr.item() if isinstance(lr, Tensor) else lr)

    @property
    def loss_scale(self) -> float | None:
        """The current fp16 loss scale (None without fp16)."""
        return None if self._scaler is None else float(self._scaler["scale"].item())

    def request_stop(self, reason: str | None = None) -> None:
        """Ask the loop to end the fit after the current batch (or epoch end); ``fit_end``
        still comes. ``reason`` is kept as ``loop.stop_reason``."""
        self._stop = True
        self.stop_reason = reason

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def set_weights(self, weights: dict) -> None:
        """Set the model's tensors from a dict of key path -> array (``Layer.load_state``)."""
        from ..checkpoint import load_state
        load_state(self.model, weights)

    # ---- events ------------------------------------------------------------------------------
    def _fire(self, event: Event) -> None:
        self.event = event
        for cb in self.callbacks:
            if event is Event.UPDATE_START and not wants_update_start(cb):
                continue
            cb(self, event)

    def _check_stop(self) -> None:
        if self._stop:
            raise _Stop()

    # ---- the steps ---------------------------------------------------------------------------
    def _objective_parts(self):
        """The functions the steps are made of (closures over this loop's configuration)."""
        loss_function = self.loss_function
        cdt = self._compute_dtype
        key_scope = _key_scope()

        def forward(model, x):
            if cdt is None:
                return model(x)
            low = _cast_floating(model, cdt)
            cast_leaves = {id(v) for v in tree.flatten(low)[0]}
            out = low(_cast_floating(x, cdt))
            # state the layers updated on the low-precision copy (BatchNorm's running
            # statistics) goes back to the model, in its own dtype
            _copy_state_back(model, low, cast_leaves)
            return _cast_floating(out, dt.float32)           # the loss in float32

        def gradient(model, x, y, rng, scale):
            from ..autodiff import value_with_gradient
            from ..nn.context import learning_phase
            box: dict = {}

            def objective(m):
                out = forward(m, x)
                loss = loss_function(out, y)
                box["out"], box["loss"] = out, loss
                return loss * scale if scale is not None else loss

            scope = contextlib.nullcontext()
            if rng is not None:
                from ..ops.random import fold_in
                scope = key_scope(fold_in(rng[0], rng[1]))
            with learning_phase("training"), scope:
                _, g = value_with_gradient(at=model, of=objective)
            if scale is not None:
                g = tree.map_leaves(lambda v: v / scale if isinstance(v, Tensor) else v, g)
            return box["loss"], g, box["out"]

        cfg = self.loss_scale_config
        static = self._static_scale

        def update(model, opt, g, scaler):
            if scaler is None:
                opt.update(model, along=g)
                return model, opt, None, None
            from ..ops import where
            finite = _all_finite(g)
            # opt.update rebinds the model's fields in place: keep a shell over the old leaves
            old_model = _shell(model)
            old_state = opt.state
            opt.update(model, along=g)
            model = _select(finite, model, old_model)
            opt.state = _select(finite, opt.state, old_state)
            scale, good = scaler["scale"], scaler["good_steps"]
            if static:
                return model, opt, scaler, finite
            good = where(finite, good + 1, 0)
            grow = good >= cfg.growth_interval
            scale = where(finite, where(grow, scale * cfg.growth_factor, scale),
                          scale * cfg.backoff_factor)
            good = where(grow, 0, good)
            return model, opt, {"scale": scale, "good_steps": good}, finite

        def train_step(model, opt, x, y, rng, scaler):
            scale = None if scaler is None else scaler["scale"]
            loss, g, out = gradient(model, x, y, rng, scale)
            model, opt, scaler, finite = update(model, opt, g, scaler)
            return model, opt, loss, out, scaler, finite

        def grad_step(model, x, y, rng, scaler):
            return gradient(model, x, y, rng, None if scaler is None else scaler["scale"])

        def eval_step(model, x, y):
            from ..nn.context import learning_phase
            with learning_phase("inference"):
                out = forward(model, x)
                return out, loss_function(out, y)

        return train_step, grad_step, update, eval_step

    def _build_steps(self) -> None:
        config = (self.compile, self.donate and not self._debugging(), self._split)
        if self._built_for == config:
            return
        train_step, grad_step, update, eval_step = self._objective_parts()
        self._train_body = train_step
        if self.compile:
            from ..lazy import compile as s4compile
            donate = (0, 1) if config[1] else ()
            self.train_step = s4compile(train_step, donate_argnums=donate)
            self.grad_step = s4compile(grad_step)
            self.update_step = s4compile(update, donate_argnums=donate)
            self.eval_step = s4compile(eval_step)
        else:
            self.train_step, self.grad_step, self.update_step, self.eval_step = (
                train_step, grad_step, update, eval_step)
        self._built_for = config

    def _debugging(self) -> bool:
        from .. import debug
        return self.debug_nans or debug.enabled()

    # ---- data --------------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int, first: int):
        """``(iterator over the batches of ``epoch`` from batch ``first``, batch count)``."""
        from ..data import TrainingEpochs
        from ..data.prefetching import prefetch
        src = self.training
        if isinstance(src, TrainingEpochs):
            ep = src[epoch]
            n = len(ep)
            if first == 0:
                return iter(ep), n
            gen = (ep[i] for i in range(first, n))
            return (prefetch(gen, src.prefetch) if src.prefetch else gen), n
        n = len(src) if hasattr(src, "__len__") else None
        if isinstance(src, Sequence) and first:
            return (src[i] for i in range(first, len(src))), n
        it = iter(src)
        if it is src:
            raise TypeError("TrainingLoop: training= is an iterator, which runs out after one "
                            "epoch; pass a TrainingEpochs, a list of batches or another "
                            "re-iterable")
        if first:
            it = itertools.islice(it, first, None)
        return it, n

    def _to_tensors(self, batch):
        if isinstance(batch, dict):
            for kx, ky in (("inputs", "targets"), ("x", "y"), ("data", "label"),
                           ("input", "target"), ("inputs", "labels"), ("data", "labels")):
                if kx in batch and ky in batch:
                    x, y = batch[kx], batch[ky]
                    break
            else:
                raise ValueError(f"TrainingLoop: a dict batch needs keys inputs/targets (or "
                                 f"x/y, data/label); got {sorted(batch)}")
        elif isinstance(batch, (tuple, list)) and len(batch) == 2:
            x, y = batch
        else:
            what = (f"a {type(batch).__name__} of {len(batch)}"
                    if isinstance(batch, (tuple, list)) else f"a {type(batch).__name__}")
            raise ValueError(f"TrainingLoop: a batch must be (inputs, targets); got {what}")
        dev = self._device
        conv = (lambda a: a.to(dev) if isinstance(a, Tensor) and a.device is not dev else
                a if isinstance(a, Tensor) else Tensor(np.asarray(a), device=dev))
        return (tree.map_leaves(conv, x) if not isinstance(x, np.ndarray) else conv(x),
                tree.map_leaves(conv, y) if not isinstance(y, np.ndarray) else conv(y))

    # ---- fit ---------------------------------------------------------------------------------
    def fit(self, model, epochs: int = 1, device=None, resume: bool | str = "auto"):
        """Train ``model`` for ``epochs`` epochs (S4TF's ``fit(&model, epochs:, on:)``) and
        return it. The model object (and the optimizer object) given are updated in place
        where Python allows it (layers, dicts, lists), so both the return value and the
        caller's variable hold the trained model.

        ``device``: where to train (the model, the optimizer state and every batch are moved
        there); default: the model's device. ``resume``: ``"auto"`` continues from the newest
        checkpoint of the loop's :class:`Checkpointer` if there is one, a path resumes from
        that checkpoint, False starts over. ``epochs`` counts from the start of the run, so a
        resumed ``fit(model, epochs=5)`` finishes the same five epochs.
        """
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"TrainingLoop.fit: epochs must be an int >= 0, got {epochs!r}")
        from ..device import default_device, get_default_device
        if device is None:
            leaves = [v for v in tree.flatten(model)[0] if isinstance(v, Tensor)]
            device = leaves[0].device if leaves else get_default_device()
        self._device = device
        self._split = any(wants_update_start(cb) for cb in self.callbacks)
        with default_device(device):
            return self._fit(model, int(epochs), device, resume)

    def _fit(self, model, epochs: int, device, resume):
        self._user_model = model
        self.model = _adopt(model, _to_device(model, device))
        opt = self._optimizer_arg
        if not hasattr(opt, "update"):
            if not callable(opt):
                raise TypeError(f"TrainingLoop: optimizer must be an optimizer or a function "
                                f"model -> optimizer, got {opt!r}")
            opt = opt(self.model)
            self._optimizer_arg = opt
        if hasattr(opt, "move"):
            opt.move(to=device)
        self.optimizer = opt
        self._build_steps()
        from ..ops.random import key
        self._base_key = key(self.seed, device=device)
        self._scaler = None
        if self.loss_scale_config is not None:
            self._scaler = {"scale": Tensor(np.float32(self.loss_scale_config.initial),
                                            device=device),
                            "good_steps": Tensor(np.int32(0), device=device)}
        self.epoch_count = epochs
        self.step = 0
        self.skipped_steps = 0
        self._stop, self.stop_reason = False, None
        self.logs = {}
        self.resumed_from = None
        start_epoch, start_batch, cb_states = 0, 0, None
        path = self._resume_path(resume)
        if path is not None:
            start_epoch, start_batch, cb_states = self._load_checkpoint(path)
            self.resumed_from = path
        self.start_epoch = start_epoch
        try:
            try:
                self._fire(Event.FIT_START)
                if cb_states is not None and start_batch == 0:
                    self._restore_callbacks(cb_states)      # saved at an epoch boundary
                    cb_states = None
                self._check_stop()
                for e in range(start_epoch, epochs):
                    self.epoch_index = e
                    first = start_batch if e == start_epoch else 0
                    try:
                        self.logs = {"epoch": e + 1}
                        self._fire(Event.EPOCH_START)
                        self._train_epoch(e, first, cb_states if first else None)
                        cb_states = None
                        if self.validation is not None:
                            self._validate()
                        self.logs["step"] = self.step
                        self._fire(Event.EPOCH_END)
                    except CancelEpoch:
                        self.logs["step"] = self.step
                        self._fire(Event.EPOCH_END)
                    self._check_stop()
            except (CancelFit, _Stop):
                pass
            self._fire(Event.FIT_END)
        except BaseException:
            for cb in self.callbacks:
                cleanup = getattr(cb, "cleanup", None)
                if cleanup is not None:
                    try:
                        cleanup(self)
                    except Exception:  # noqa: BLE001 - the first error is the one to see
                        pass
            raise
        finally:
            self._publish()
        from ..lazy import barrier
        barrier()
        return self.model

    def _publish(self) -> None:
        """Hand the current model and optimizer to the caller's objects."""
        self.model = _adopt(self._user_model, self.model)
        if self._optimizer_arg is not None and self.optimizer is not self._optimizer_arg:
            self.optimizer = _adopt(self._optimizer_arg, self.optimizer)

    def _train_epoch(self, epoch: int, first: int, cb_states) -> None:
        self.is_training = True
        batches, count = self._epoch_batches(epoch, first)
        self.batch_count = count
        self.batch_index = first
        try:
            self._fire(Event.TRAINING_START)
            if cb_states is not None:
                self._restore_callbacks(cb_states)          # saved in the middle of the epoch
            for i, batch in enumerate(batches, start=first):
                self.batch_index = i
                x, y = self._to_tensors(batch)
                self.last_step_input, self.last_step_target = x, y
                try:
                    self._fire(Event.BATCH_START)
                    self._run_train_step(x, y)
                    self._fire(Event.BATCH_END)
                except CancelBatch:
                    pass
                self._check_stop()
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        self._fire(Event.TRAINING_END)

    def _rng(self):
        if _key_scope() is None:
            return None
        return (self._base_key, Tensor(np.int32(self.step), device=self._device))

    def _run_train_step(self, x, y) -> None:
        debugging = self._debugging()
        if self._built_for[1]:          # donating: hand the step buffers only the loop holds
            self.model = _adopt(self.model, _own(self.model))
            self.optimizer = _adopt(self.optimizer, _own(self.optimizer))
        model, opt, scaler = self.model, self.optimizer, self._scaler
        rng = self._rng()
        # the step's inputs, to replay it (new shells: _adopt rewrites the model object)
        before = tuple(_shell(v) for v in (model, opt, x, y, rng, scaler)) if debugging else None
        self.last_step_gradient = None
        if self._split:
            loss, g, out = self.grad_step(model, x, y, rng, scaler)
            self.last_step_output = out
            self.last_step_loss = float(loss.item())
            self.last_step_gradient = g
            self._fire(Event.UPDATE_START)
            model, opt, scaler, finite = self.update_step(model, opt, self.last_step_gradient,
                                                          scaler)
        else:
            model, opt, loss, out, scaler, finite = self.train_step(model, opt, x, y, rng,
                                                                    scaler)
            self.last_step_output = out
            self.last_step_loss = float(loss.item())
        self.model = _adopt(self.model, model)
        self.optimizer = _adopt(self.optimizer, opt)
        self._scaler = scaler
        if finite is not None and not bool(finite.item()):
            self.skipped_steps += 1
        if not self.compile:
            from ..lazy import barrier
            barrier()
        self.step += 1
        if debugging:
            self._check_step(before)
        elif not math.isfinite(self.last_step_loss):
            raise NonFiniteError(
                f"TrainingLoop: the training loss is {self.last_step_loss} at epoch "
                f"{self.epoch_index + 1}, batch {self.batch_index} (step {self.step}); the fit "
                "stops instead of training on garbage. Run it with debug_nans=True (or inside "
                "`with s4.debug_nans():`) to find the op that made it.")

    def _check_step(self, before) -> None:
        """debug_nans: the loss and every new weight must be finite; otherwise replay the step
        op by op on the reference backend and stop with the report."""
        bad = None
        if not math.isfinite(self.last_step_loss):
            bad = f"the training loss is {self.last_step_loss}"
        else:
            from ..checkpoint import state_dict
            for name, t in state_dict(self.model).items():
                if isinstance(t, Tensor) and dt.is_floating(t.dtype):
                    a = np.asarray(t.numpy())
                    if not np.isfinite(a.astype(np.float32) if a.dtype.kind != "f" else a).all():
                        bad = f"the weight {name!r} became non-finite"
                        break
        if bad is None:
            return
        report = find_nonfinite(self._train_body, *before,
                                arg_names=["model", "optimizer", "x", "y", "rng", "scaler"])
        where = (f"at epoch {self.epoch_index + 1}, batch {self.batch_index} "
                 f"(step {self.step})")
        if report is None:
            raise NonFiniteError(
                f"TrainingLoop(debug_nans): {bad} {where}, but the step replayed op by op on "
                f"the reference backend stays finite: the {self._device.backend} backend "
                "disagrees with the reference (please report it)")
        raise NonFiniteError(f"TrainingLoop(debug_nans): {bad} {where}.\n{report}", report)

    def _validate(self) -> None:
        self.is_training = False
        v = self.validation
        self.batch_count = len(v) if hasattr(v, "__len__") else None
        self.batch_index = 0
        self._fire(Event.VALIDATION_START)
        batches = iter(v)
        try:
            for i, batch in enumerate(batches):
                self.batch_index = i
                x, y = self._to_tensors(batch)
                self.last_step_input, self.last_step_target = x, y
                try:
                    self._fire(Event.BATCH_START)
                    out, loss = self.eval_step(self.model, x, y)
                    self.last_step_output = out
                    self.last_step_loss = float(loss.item())
                    self._fire(Event.INFERENCE_PREDICTION_END)
                    self._fire(Event.BATCH_END)
                except CancelBatch:
                    pass
                self._check_stop()
        finally:
            close = getattr(batches, "close", None)        # a prefetch thread
            if close is not None:
                close()
        self._fire(Event.VALIDATION_END)

    # ---- checkpoints -------------------------------------------------------------------------
    def _checkpointer(self) -> Checkpointer | None:
        return next((c for c in self.callbacks if isinstance(c, Checkpointer)), None)

    def _resume_path(self, resume) -> str | None:
        if resume is False or resume is None:
            return None
        if resume is True or resume == "auto":
            ck = self._checkpointer()
            path = Checkpointer.latest(ck.directory) if ck is not None else None
            if path is None and resume is True:
                raise FileNotFoundError("TrainingLoop.fit(resume=True): no checkpoint to "
                                        "resume from (give the loop a checkpoint_dir)")
            return path
        path = os.fspath(resume)
        if not os.path.exists(path):
            raise FileNotFoundError(f"TrainingLoop.fit: no checkpoint at {path!r}")
        return path

    def _callback_keys(self) -> list[tuple[str, Any]]:
        return [(f"{i}.{type(cb).__name__}", cb) for i, cb in enumerate(self.callbacks)
                if isinstance(cb, Callback)]

    def save_checkpoint(self, path: str | os.PathLike) -> None:
        """Write the whole training state to ``path`` (atomically): model, optimizer, step,
        the position in the data (the next batch to train), the random key, the loss scale
        and the callbacks' state. ``fit(resume=path)`` continues from it."""
        from ..checkpoint import save_training_state
        if self.is_training and self.event is Event.BATCH_END:
            epoch, batch = self.epoch_index, self.batch_index + 1     # the next batch
        elif self.event is Event.EPOCH_END:
            epoch, batch = self.epoch_index + 1, 0
        else:
            epoch, batch = self.epoch_index, (self.batch_index if self.is_training else 0)
        states = {}
        for k, cb in self._callback_keys():
            s = cb.state_dict()
            if s:
                states[k] = s
        extra = {"format": _CHECKPOINT_FORMAT, "epoch": epoch, "batch": batch,
                 "step": self.step, "seed": self.seed, "skipped_steps": self.skipped_steps,
                 "stopped": self._stop, "stop_reason": self.stop_reason,
                 "scaler": self._scaler, "logs": dict(self.logs), "callbacks": states}
        save_training_state(path, model=self.model, optimizer=self.optimizer, step=self.step,
                            rng=self._base_key, extra=extra)

    def _load_checkpoint(self, path: str):
        from ..checkpoint import load_training_state, open_checkpoint
        with open_checkpoint(path) as r:             # check before changing anything
            training = r.document.get("training")
            saved = training.get("extra") if isinstance(training, dict) else None
            if not isinstance(saved, dict) or saved.get("format") != _CHECKPOINT_FORMAT:
                raise ValueError(f"TrainingLoop: {os.fspath(path)!r} was not written by a "
                                 "TrainingLoop (it lacks the loop's position in the data); "
                                 "load its weights with model.load_state(path) instead")
            if saved.get("seed") != self.seed:
                raise ValueError(f"TrainingLoop: the checkpoint {os.fspath(path)!r} comes from "
                                 f"a run with seed={saved.get('seed')}, this loop has "
                                 f"seed={self.seed}")
        st = load_training_state(path, model=self.model, optimizer=self.optimizer,
                                 device=self._device)
        extra = st.extra
        if st.model is not None:
            self.model = _adopt(self.model, st.model)
        self.step = int(extra["step"])
        self.skipped_steps = int(extra.get("skipped_steps", 0))
        if extra.get("stopped"):
            self._stop, self.stop_reason = True, extra.get("stop_reason")
        sc = extra.get("scaler")
        if sc is not None and self._scaler is not None:
            self._scaler = {k: (v if isinstance(v, Tensor) else Tensor(np.asarray(v),
                                                                       device=self._device))
                            for k, v in sc.items()}
        self._saved_logs = dict(extra.get("logs") or {})
        return int(extra["epoch"]), int(extra["batch"]), extra.get("callbacks") or {}

    def _restore_callbacks(self, states: dict) -> None:
        if getattr(self, "_saved_logs", None):
            self.logs.update(self._saved_logs)
            self._saved_logs = None
        for k, cb in self._callback_keys():
            if k in states:
                cb.load_state_dict(states[k])

