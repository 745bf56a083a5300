"""``s4.train`` callbacks: the events of a :class:`~s4tf_py.train.TrainingLoop`, cancellation,
and the callbacks that come with it.

A callback is called as ``callback(loop, event)`` at every :class:`Event` (S4TF's
``TrainingLoopEvent``). Subclass :class:`Callback` and define the ``on_<event>(loop)`` methods
you need, or pass any function of ``(loop, event)``. A callback reads and changes the loop's
state (``loop.model``, ``loop.optimizer``, ``loop.last_step_loss``, ``loop.logs`` ...) and
cancels work by raising :class:`CancelBatch`, :class:`CancelEpoch` or :class:`CancelFit` (S4TF's
``TrainingLoopAction``), or by calling ``loop.request_stop()`` (a flag: the fit ends after the
current batch or epoch-end).

Callbacks run in ``order`` (lower first; ties keep the given order): the statistics recorder
first, so that the others see this batch's metrics, and the checkpointer last.

Included: :class:`StatisticsRecorder` (loss and metrics per phase; added by the loop),
:class:`ProgressBar` (tqdm on a terminal, plain lines otherwise; added by the loop),
:class:`CSVLogger`, :class:`JSONLinesLogger`, :class:`LRScheduler`, :class:`Checkpointer`,
:class:`EarlyStopping` and :class:`LossCurve` (a PNG, needs matplotlib: ``pip install
s4tf_py[plot]``).

>>> class CountBatches(Callback):
...     def on_fit_start(self, loop):
...         self.n = 0
...     def on_batch_end(self, loop):
...         self.n += loop.is_training
>>> cb = CountBatches()
>>> cb.on_fit_start(None); cb.n
0
>>> Event.BATCH_END.value
'batch_end'
"""
from __future__ import annotations

import copy
import csv
import enum
import io
import json
import math
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Callable, ClassVar, Sequence

import numpy as np

from . import metrics as _metrics

if TYPE_CHECKING:  # pragma: no cover
    from .loop import TrainingLoop

__all__ = ["Event", "Callback", "CancelBatch", "CancelEpoch", "CancelFit", "CancelTraining",
           "StatisticsRecorder", "ProgressBar", "CSVLogger", "JSONLinesLogger", "LRScheduler",
           "Checkpointer", "EarlyStopping", "LossCurve", "wants_update_start"]


class Event(str, enum.Enum):
    """The events of a training loop (S4TF's ``TrainingLoopEvent``), in the order they come::

        fit_start
          epoch_start
            training_start
              batch_start, [update_start], batch_end      (per training batch)
            training_end
            validation_start
              batch_start, inference_prediction_end, batch_end   (per validation batch)
            validation_end
          epoch_end
        fit_end

    ``update_start`` comes between the gradient and the optimizer's update; the loop then
    runs them as two compiled calls (see ``TrainingLoop``), so it is only sent to callbacks
    that define ``on_update_start`` (and to plain functions).
    """

    FIT_START = "fit_start"
    FIT_END = "fit_end"
    EPOCH_START = "epoch_start"
    EPOCH_END = "epoch_end"
    TRAINING_START = "training_start"
    TRAINING_END = "training_end"
    VALIDATION_START = "validation_start"
    VALIDATION_END = "validation_end"
    BATCH_START = "batch_start"
    BATCH_END = "batch_end"
    UPDATE_START = "update_start"
    INFERENCE_PREDICTION_END = "inference_prediction_end"


class CancelBatch(Exception):
    """Raised by a callback: skip the rest of this batch (no update when raised at
    ``batch_start`` or ``update_start``; no ``batch_end``)."""


class CancelEpoch(Exception):
    """Raised by a callback: end this epoch now (``epoch_end`` still comes) and go on with the
    next one."""


class CancelFit(Exception):
    """Raised by a callback: end the fit now (``fit_end`` still comes)."""


#: S4TF's name for :class:`CancelFit` (``TrainingLoopAction.cancelTraining``)
CancelTraining = CancelFit


class Callback:
    """Base class of callbacks: ``__call__(loop, event)`` calls ``self.on_<event>(loop)``.

    ``order`` (class attribute) sorts the loop's callbacks. A callback with state that a
    resumed run needs (running metrics, the best loss so far ...) returns it from
    :meth:`state_dict` (numbers, strings, lists, dicts, numpy arrays) and takes it back in
    :meth:`load_state_dict`; the loop's checkpoints store it. :meth:`cleanup` runs when a fit
    ends with an error (close files, progress bars).
    """

    order: ClassVar[int] = 0

    def __call__(self, loop: "TrainingLoop", event: Event) -> None:
        handler = getattr(self, "on_" + event.value, None)
        if handler is not None:
            handler(loop)

    def on_fit_start(self, loop: "TrainingLoop") -> None: ...
    def on_fit_end(self, loop: "TrainingLoop") -> None: ...
    def on_epoch_start(self, loop: "TrainingLoop") -> None: ...
    def on_epoch_end(self, loop: "TrainingLoop") -> None: ...
    def on_training_start(self, loop: "TrainingLoop") -> None: ...
    def on_training_end(self, loop: "TrainingLoop") -> None: ...
    def on_validation_start(self, loop: "TrainingLoop") -> None: ...
    def on_validation_end(self, loop: "TrainingLoop") -> None: ...
    def on_batch_start(self, loop: "TrainingLoop") -> None: ...
    def on_batch_end(self, loop: "TrainingLoop") -> None: ...
    def on_inference_prediction_end(self, loop: "TrainingLoop") -> None: ...

    # ``on_update_start`` is deliberately not defined here: defining it is how a callback asks
    # for the update_start event (see wants_update_start)

    def state_dict(self) -> dict:
        """What a resumed run needs to continue exactly (default: nothing)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Take back what :meth:`state_dict` returned."""

    def cleanup(self, loop: "TrainingLoop") -> None:
        """Release resources when the fit stops with an error."""


def wants_update_start(cb) -> bool:
    """Whether ``cb`` handles ``update_start`` (then the loop computes the gradient and the
    update in two calls, so the callback sees ``loop.last_step_gradient`` in between)."""
    if not isinstance(cb, Callback):
        return True                     # a plain function gets every event
    if type(cb).__call__ is not Callback.__call__:
        return True
    return callable(getattr(cb, "on_update_start", None))


# ---- helpers ----------------------------------------------------------------------------------

def _metric_state(m) -> dict:
    """The accumulators of a metric (its numeric attributes)."""
    out = {}
    for k, v in vars(m).items():
        if isinstance(v, bool) or callable(v):
            continue
        if isinstance(v, (int, float, np.ndarray)):
            out[k] = v.copy() if isinstance(v, np.ndarray) else v
    return out


def _load_metric_state(m, state: dict) -> None:
    for k, v in state.items():
        if hasattr(m, k):
            setattr(m, k, np.asarray(v).copy() if isinstance(v, np.ndarray) else v)


def _atomic_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (a killed writer
    leaves the previous file)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fmt_seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v)


def _batch_size(target) -> int:
    shape = getattr(target, "shape", None)
    if shape:
        return int(shape[0])
    try:
        return len(target)
    except TypeError:
        return 1


# ---- statistics --------------------------------------------------------------------------------

class StatisticsRecorder(Callback):
    """Measures the loss and ``metrics`` on the training and validation batches (S4TF's
    ``StatisticsRecorder``) and keeps the history.

    ``metrics``: names (``"accuracy"``, ``"top5_accuracy"``, ``"mcc"`` ... see
    :func:`s4tf_py.train.metrics.get`) or :class:`~s4tf_py.train.metrics.Metric` objects; the
    loss is always measured. After every batch, ``loop.logs`` holds the running values as
    ``train_loss``, ``train_accuracy`` ... and ``valid_loss``, ``valid_accuracy`` ...; at each
    epoch's end a copy of ``loop.logs`` is appended to :attr:`history`. :attr:`batch_losses`
    and :attr:`learning_rates` have one entry per training step. ``training`` /
    ``validation`` (default True) turn the metrics of a phase off (the loss is kept).

    The loop adds one (with its ``metrics=``) unless ``callbacks`` holds one already.
    """

    order = -100

    def __init__(self, metrics: Sequence = (), *, training: bool = True,
                 validation: bool = True) -> None:
        self.specs = list(metrics)
        self.training, self.validation = training, validation
        self.train_metrics = self._fresh(training)
        self.valid_metrics = self._fresh(validation)
        self.history: list[dict] = []
        self.batch_losses: list[float] = []
        self.learning_rates: list[float] = []

    def _fresh(self, on: bool) -> list:
        ms = [_metrics.Loss()]
        if on:
            for s in self.specs:
                # a Metric object is copied: the two phases must not share accumulators
                ms.append(copy.deepcopy(s) if isinstance(s, _metrics.Metric) else
                          _metrics.get(s))
        return ms

    def on_fit_start(self, loop) -> None:
        self.history, self.batch_losses, self.learning_rates = [], [], []

    def on_training_start(self, loop) -> None:
        for m in self.train_metrics:
            m.reset()

    def on_validation_start(self, loop) -> None:
        for m in self.valid_metrics:
            m.reset()

    def on_batch_end(self, loop) -> None:
        training = loop.is_training
        ms = self.train_metrics if training else self.valid_metrics
        prefix = "train_" if training else "valid_"
        loss = loop.last_step_loss
        for m in ms:
            if isinstance(m, _metrics.Loss):
                m.update(loss=loss)
            else:
                m.update(loop.last_step_output, loop.last_step_target)
            loop.logs[prefix + m.name] = m.result()
        if training:
            self.batch_losses.append(float(loss))
            self.learning_rates.append(loop.learning_rate)

    def _publish(self, loop, ms, prefix) -> None:
        for m in ms:
            loop.logs[prefix + m.name] = m.result()

    def on_training_end(self, loop) -> None:
        self._publish(loop, self.train_metrics, "train_")

    def on_validation_end(self, loop) -> None:
        self._publish(loop, self.valid_metrics, "valid_")

    def on_epoch_end(self, loop) -> None:
        self.history.append(dict(loop.logs))

    def state_dict(self) -> dict:
        return {"train": [_metric_state(m) for m in self.train_metrics],
                "valid": [_metric_state(m) for m in self.valid_metrics],
                "history": [dict(h) for h in self.history],
                "batch_losses": list(self.batch_losses),
                "learning_rates": list(self.learning_rates)}

    def load_state_dict(self, state: dict) -> None:
        for ms, key in ((self.train_metrics, "train"), (self.valid_metrics, "valid")):
            for m, s in zip(ms, state.get(key, [])):
                _load_metric_state(m, s)
        self.history = [dict(h) for h in state.get("history", [])]
        self.batch_losses = [float(v) for v in state.get("batch_losses", [])]
        self.learning_rates = [float(v) for v in state.get("learning_rates", [])]


# ---- progress -----------------------------------------------------------------------------------

class ProgressBar(Callback):
    """Shows the epoch, the step, the loss, the throughput (samples/s) and the time left.

    On a terminal: a tqdm bar per epoch. Otherwise (a file, a pipe, a CI log): plain lines,
    about ``lines_per_epoch`` per epoch plus one summary line at each epoch's end with every
    value of ``loop.logs``. ``file``: where to write (default ``sys.stdout``); ``plain``:
    force plain lines (True) or the bar (False) instead of looking at the stream.

    The loop adds one unless ``progress=False`` or ``callbacks`` holds one already.
    """

    order = 10

    def __init__(self, *, file=None, plain: bool | None = None, lines_per_epoch: int = 4) -> None:
        self.file = file
        self.plain = plain
        self.lines_per_epoch = max(0, int(lines_per_epoch))
        self._bar = None

    # -- helpers
    def _stream(self):
        return self.file if self.file is not None else sys.stdout

    def _use_plain(self) -> bool:
        if self.plain is not None:
            return self.plain
        isatty = getattr(self._stream(), "isatty", None)
        try:
            return not (isatty is not None and isatty())
        except ValueError:         # a closed stream
            return True

    def _write(self, line: str) -> None:
        if self._bar is not None:
            from tqdm import tqdm
            tqdm.write(line, file=self._stream())
        else:
            print(line, file=self._stream(), flush=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- events
    def on_fit_start(self, loop) -> None:
        self._fit_t0 = time.perf_counter()
        self._fit_steps0 = loop.step

    def on_training_start(self, loop) -> None:
        self._t0 = time.perf_counter()
        self._samples = 0
        self._first = loop.batch_index
        self._done = 0
        n = loop.batch_count
        if self._use_plain():
            self._every = (max(1, -(-n // self.lines_per_epoch)) if n and self.lines_per_epoch
                           else (100 if self.lines_per_epoch else 0))
        else:
            from tqdm import tqdm
            self._bar = tqdm(total=n, initial=loop.batch_index, unit="batch",
                             desc=f"epoch {loop.epoch_index + 1}/{loop.epoch_count}",
                             file=self._stream(), dynamic_ncols=True, leave=True)

    def on_batch_end(self, loop) -> None:
        if not loop.is_training:
            return
        self._done += 1
        self._samples += _batch_size(loop.last_step_target)
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = self._samples / elapsed
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(loss=f"{loop.last_step_loss:.4f}",
                                  samples_per_s=f"{rate:.0f}", refresh=False)
            return
        i = loop.batch_index + 1
        n = loop.batch_count
        if self._every and (i % self._every == 0 or i == n):
            eta = ((n - i) * elapsed / self._done) if n else math.nan
            where = f"{i}/{n}" if n else f"{i}"
            self._write(f"epoch {loop.epoch_index + 1}/{loop.epoch_count} step {where} "
                        f"(global {loop.step}) loss {loop.last_step_loss:.4f} | "
                        f"{rate:.0f} samples/s | ETA {_fmt_seconds(eta)}")

    def on_training_end(self, loop) -> None:
        self._close()

    def on_epoch_end(self, loop) -> None:
        self._close()
        took = time.perf_counter() - getattr(self, "_t0", time.perf_counter())
        values = " ".join(f"{k} {_fmt_value(v)}" for k, v in loop.logs.items() if k != "epoch")
        steps = loop.step - self._fit_steps0
        left = ""
        if steps and loop.batch_count:
            per_epoch = (time.perf_counter() - self._fit_t0) / (loop.epoch_index + 1 -
                                                                 loop.start_epoch)
            left = (f" | ETA fit "
                    f"{_fmt_seconds(per_epoch * (loop.epoch_count - loop.epoch_index - 1))}")
        self._write(f"epoch {loop.epoch_index + 1}/{loop.epoch_count} done in "
                    f"{_fmt_seconds(took)}: {values}{left}")

    def on_fit_end(self, loop) -> None:
        self._close()

    def cleanup(self, loop) -> None:
        self._close()


# ---- logs ---------------------------------------------------------------------------------------

class CSVLogger(Callback):
    """Writes ``loop.logs`` (epoch, train and validation loss and metrics ...) as one CSV row
    per epoch to ``path``. The file is rewritten atomically at each epoch's end; a resumed run
    continues it (rows after its checkpoint are dropped)."""

    order = 20

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self.rows: list[dict] = []

    def on_fit_start(self, loop) -> None:
        self.rows = []

    def on_epoch_end(self, loop) -> None:
        self.rows.append(dict(loop.logs))
        self._write()

    def _write(self) -> None:
        columns: list[str] = []
        for r in self.rows:
            columns.extend(k for k in r if k not in columns)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow(r)
        _atomic_text(self.path, buf.getvalue())

    def state_dict(self) -> dict:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict) -> None:
        self.rows = [dict(r) for r in state.get("rows", [])]
        if self.rows:
            self._write()


class JSONLinesLogger(Callback):
    """Appends one JSON object per line to ``path``: ``{"event": "batch", "epoch", "batch",
    "step", "loss", "learning_rate", "time"}`` every ``every_n_steps`` training steps and
    ``{"event": "epoch", **loop.logs}`` at each epoch's end (``time`` is seconds since the fit
    started). Each line is flushed as it is written. A new fit starts the file over; a resumed
    run keeps the lines its checkpoint had seen and continues after them."""

    order = 20

    def __init__(self, path: str | os.PathLike, every_n_steps: int = 1) -> None:
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"JSONLinesLogger: every_n_steps must be a positive int, got "
                             f"{every_n_steps!r}")
        self.path = os.fspath(path)
        self.every_n_steps = every_n_steps
        self.lines = 0
        self._file = None
        self._keep: int | None = None

    def on_fit_start(self, loop) -> None:
        self._close()
        self.lines, self._keep = 0, None
        self._t0 = time.perf_counter()

    def _open(self):
        if self._file is None:
            if self._keep is not None and os.path.exists(self.path):
                with open(self.path, encoding="utf-8") as f:
                    kept = f.readlines()[:self._keep]
                _atomic_text(self.path, "".join(kept))
                self._file = open(self.path, "a", encoding="utf-8")
            else:
                self._file = open(self.path, "w", encoding="utf-8")
        return self._file

    def _emit(self, record: dict) -> None:
        f = self._open()
        f.write(json.dumps(record, allow_nan=True) + "\n")
        f.flush()
        self.lines += 1

    def on_batch_end(self, loop) -> None:
        if loop.is_training and loop.step % self.every_n_steps == 0:
            self._emit({"event": "batch", "epoch": loop.epoch_index, "batch": loop.batch_index,
                        "step": loop.step, "loss": float(loop.last_step_loss),
                        "learning_rate": loop.learning_rate,
                        "time": round(time.perf_counter() - self._t0, 6)})

    def on_epoch_end(self, loop) -> None:
        self._emit({"event": "epoch", **loop.logs,
                    "time": round(time.perf_counter() - self._t0, 6)})

    def on_fit_end(self, loop) -> None:
        self._close()

    def cleanup(self, loop) -> None:
        self._close()

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def state_dict(self) -> dict:
        return {"lines": self.lines}

    def load_state_dict(self, state: dict) -> None:
        self._close()
        self.lines = self._keep = int(state.get("lines", 0))


# ---- learning rate ------------------------------------------------------------------------------

class LRScheduler(Callback):
    """Sets the optimizer's learning rate from ``schedule`` before every training step
    (``by="step"``: ``schedule(loop.step)``, the number of steps done) or every epoch
    (``by="epoch"``: ``schedule(loop.epoch_index)``).

    ``schedule``: any callable returning a number, e.g. an ``s4.optimizers`` schedule
    (``WarmupCosineDecay(...)``). The rate is set as a Python float, an input of the compiled
    step, so changing it never recompiles. (Alternatively give the optimizer the schedule as
    its ``learning_rate``: it then runs inside the step, from the optimizer's own count.)

    >>> import s4tf_py.optimizers as optimizers
    >>> sched = LRScheduler(optimizers.LinearWarmup(warmup_steps=4, after=0.1))
    >>> sched.schedule(2)
    0.05
    """

    order = -50

    def __init__(self, schedule: Callable[[int], float], by: str = "step") -> None:
        if not callable(schedule):
            raise TypeError(f"LRScheduler: schedule must be callable (step -> learning rate), "
                            f"got {schedule!r}")
        if by not in ("step", "epoch"):
            raise ValueError(f"LRScheduler: by must be 'step' or 'epoch', got {by!r}")
        self.schedule, self.by = schedule, by

    def _set(self, loop, k: int) -> None:
        lr = float(self.schedule(k))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"LRScheduler: the schedule gave {lr!r} at {self.by} {k}")
        loop.optimizer.learning_rate = lr

    def on_batch_start(self, loop) -> None:
        if self.by == "step" and loop.is_training:
            self._set(loop, loop.step)

    def on_epoch_start(self, loop) -> None:
        if self.by == "epoch":
            self._set(loop, loop.epoch_index)


# ---- checkpoints --------------------------------------------------------------------------------

_CKPT = re.compile(r"^step-(\d+)\.safetensors$")


class Checkpointer(Callback):
    """Saves the whole training state (model, optimizer, step, data position, RNG, loss scale,
    callbacks' state) to ``directory/step-<step>.safetensors`` every ``every_n_steps``
    training steps and (``at_epoch_end``) at each epoch's end, and keeps the newest ``keep``
    files. Writes are atomic: a run killed while writing leaves the previous checkpoint.

    A ``TrainingLoop`` resumes from the newest checkpoint of its checkpointer's directory
    (``fit(resume="auto")``, the default), so running a killed script again continues it.
    ``TrainingLoop(checkpoint_dir=..., checkpoint_every=...)`` adds one.
    """

    order = 100

    def __init__(self, directory: str | os.PathLike, every_n_steps: int | None = None, *,
                 at_epoch_end: bool = True, keep: int = 3) -> None:
        if every_n_steps is not None and (not isinstance(every_n_steps, int) or
                                          every_n_steps < 1):
            raise ValueError(f"Checkpointer: every_n_steps must be a positive int or None, "
                             f"got {every_n_steps!r}")
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"Checkpointer: keep must be a positive int, got {keep!r}")
        self.directory = os.fspath(directory)
        self.every_n_steps = every_n_steps
        self.at_epoch_end = at_epoch_end
        self.keep = keep
        self.saved: list[str] = []

    @staticmethod
    def checkpoints(directory: str | os.PathLike) -> list[str]:
        """The checkpoint files in ``directory``, oldest (lowest step) first."""
        directory = os.fspath(directory)
        if not os.path.isdir(directory):
            return []
        found = [(int(m.group(1)), name) for name in os.listdir(directory)
                 if (m := _CKPT.match(name))]
        return [os.path.join(directory, name) for _, name in sorted(found)]

    @classmethod
    def latest(cls, directory: str | os.PathLike) -> str | None:
        """The newest checkpoint in ``directory``, or None."""
        found = cls.checkpoints(directory)
        return found[-1] if found else None

    def path_for(self, step: int) -> str:
        return os.path.join(self.directory, f"step-{step:09d}.safetensors")

    def save(self, loop) -> str:
        """Save now; returns the path."""
        os.makedirs(self.directory, exist_ok=True)
        path = self.path_for(loop.step)
        loop.save_checkpoint(path)
        for old in self.checkpoints(self.directory)[:-self.keep]:
            try:
                os.remove(old)
            except OSError:
                pass
        self.saved.append(path)
        return path

    def on_batch_end(self, loop) -> None:
        if loop.is_training and self.every_n_steps and loop.step % self.every_n_steps == 0:
            self.save(loop)

    def on_epoch_end(self, loop) -> None:
        if self.at_epoch_end:
            self.save(loop)


# ---- early stopping -----------------------------------------------------------------------------

class EarlyStopping(Callback):
    """Stops the fit when ``monitor`` (a key of ``loop.logs``, e.g. ``"valid_loss"`` or
    ``"valid_accuracy"``) has not improved by more than ``min_delta`` for ``patience``
    epochs. ``mode``: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies and
    correlations, min otherwise). ``restore_best``: at the end of the fit, set the model back
    to the weights of its best epoch (kept as host copies)."""

    order = 30

    def __init__(self, monitor: str = "valid_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = False) -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'auto', 'min' or 'max', got {mode!r}")
        if not isinstance(patience, int) or patience < 0:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        if mode == "auto":
            mode = "max" if re.search(r"acc|correlation|mcc|auc|f1|precision|recall",
                                      monitor) else "min"
        self.monitor, self.patience, self.min_delta = monitor, patience, abs(float(min_delta))
        self.mode, self.restore_best = mode, restore_best
        self._reset()

    def _reset(self) -> None:
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self._best_weights: dict | None = None

    def on_fit_start(self, loop) -> None:
        self._reset()

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return math.isfinite(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, loop) -> None:
        if self.monitor not in loop.logs:
            raise KeyError(f"EarlyStopping: loop.logs has no {self.monitor!r} (it has "
                           f"{sorted(loop.logs)}); monitor one of those, or give the loop "
                           "validation data / the metric")
        value = float(loop.logs[self.monitor])
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, loop.epoch_index, 0
            if self.restore_best:
                self._best_weights = {k: np.array(v.numpy(), copy=True)
                                      for k, v in _named_tensors(loop.model)}
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = loop.epoch_index
                loop.request_stop(f"EarlyStopping: {self.monitor} did not improve for "
                                  f"{self.wait} epoch(s) (best {self.best:.6g} at epoch "
                                  f"{(self.best_epoch or 0) + 1})")

    def on_fit_end(self, loop) -> None:
        if self.restore_best and self._best_weights is not None:
            loop.set_weights(self._best_weights)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch,
                "best_weights": self._best_weights}

    def load_state_dict(self, state: dict) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        self.wait = int(state.get("wait", 0))
        self.stopped_epoch = state.get("stopped_epoch")
        self._best_weights = state.get("best_weights")


def _named_tensors(model) -> list:
    from ..checkpoint import state_dict
    return list(state_dict(model).items())


# ---- the loss curve -----------------------------------------------------------------------------

class LossCurve(Callback):
    """At the end of the fit, plots the training loss of every step (and its epoch means)
    and the validation loss of every epoch against the step, to a PNG at ``path``.

    Needs matplotlib (the optional extra ``s4tf_py[plot]``); the error says so when it is
    missing. Draws on its own figure with the Agg canvas: no window, no pyplot state.
    """

    order = 40

    def __init__(self, path: str | os.PathLike = "loss_curve.png", *, title: str | None = None,
                 log_scale: bool = False) -> None:
        self.path = os.fspath(path)
        self.title = title
        self.log_scale = log_scale

    def on_fit_end(self, loop) -> None:
        self.plot(loop.recorder, self.path)

    def plot(self, recorder: StatisticsRecorder, path: str) -> None:
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as e:  # pragma: no cover - the test extra installs matplotlib
            raise ImportError("LossCurve needs matplotlib: pip install 's4tf_py[plot]'") from e
        fig = Figure(figsize=(7, 4), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        losses = recorder.batch_losses
        if losses:
            ax.plot(np.arange(1, len(losses) + 1), losses, lw=0.8, alpha=0.6,
                    label="training loss (step)")
        steps, train, valid = [], [], []
        total = 0
        per_epoch = _steps_per_epoch(recorder)
        for h, n in zip(recorder.history, per_epoch):
            total += n
            steps.append(total)
            train.append(h.get("train_loss", math.nan))
            valid.append(h.get("valid_loss", math.nan))
        if steps:
            ax.plot(steps, train, "o-", label="training loss (epoch mean)")
            if any(math.isfinite(v) for v in valid):
                ax.plot(steps, valid, "s-", label="validation loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        if self.log_scale:
            ax.set_yscale("log")
        ax.set_title(self.title or "loss")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp.png"
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)


def _steps_per_epoch(recorder: StatisticsRecorder) -> list[int]:
    """Training steps in each recorded epoch (from the ``steps`` the loop logs)."""
    out = []
    prev = 0
    for h in recorder.history:
        s = int(h.get("step", prev))
        out.append(s - prev)
        prev = s
    return out
