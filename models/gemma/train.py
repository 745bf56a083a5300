"""Train a Gemma causal LM on text: the embedded corpus or your own UTF-8 files.

From the command line (``s4tf train gemma --help`` lists every option)::

    s4tf train gemma --preset gemma3-tiny --steps 300                  # the embedded corpus
    s4tf train gemma --preset gemma3-tiny --steps 300 --data my_text/  # a file or a folder
    s4tf train gemma --steps 300 --teacher gemma-gemma3-tiny --out student   # distillation
    s4tf generate gemma --checkpoint gemma-gemma3-tiny --prompt "Return the"

and from Python::

    from s4tf_models.gemma.train import TrainOptions, train
    result = train(TrainOptions(preset="gemma3-tiny", steps=300, out="run"))
    result.model, result.history, result.sample

The pipeline:

* **Text → token ids.** :func:`s4tf_py.data.text_corpus` (Python's standard-library
  documentation, or ``data=`` a file / folder) encoded with the embedded 1,024-piece tokenizer
  (:meth:`Tokenizer.embedded`, or ``tokenizer=`` a ``tokenizer.model``). The ids are cached on
  disk (:func:`corpus_token_ids`: ``$S4TF_CACHE_DIR/gemma``, written atomically), keyed by the
  text's and the tokenizer's hashes, so the second run skips the encoding.
* **Windows.** The stream is cut into blocks of ``seq_len`` tokens and each block is prefixed
  with ``<bos>``: contiguous windows of ``seq_len + 1`` tokens (``LanguageModelWindows`` with
  stride ``seq_len + 1``), inputs the first ``seq_len``, targets the last ``seq_len``. Every
  training sequence thus starts as Gemma's do and as a generation prompt does (GEMMA.md §4:
  "BOS must be added explicitly"). The last ``validation_fraction`` of the blocks (a
  contiguous tail, never trained on) is held out; ``eval_batches`` batches of it, spread over
  the tail, give the periodic held-out loss.
* **Training.** ``s4.train.TrainingLoop`` with the loss :func:`next_token_loss` (float32
  cross-entropy over ``[B, T, V]`` logits: ``log_softmax`` and a one-hot mask that fuses with
  it), ``AdamW`` (betas 0.9/0.95, decoupled weight decay, ``clip_norm`` = gradient clipping by
  global norm) and a linear-warmup + cosine learning rate (``WarmupCosineDecay``, set per step
  as a float input of the compiled step: never a recompile). ``bf16=True`` is the loop's
  ``mixed_precision="bf16"``: bfloat16 forward and backward, float32 master weights and loss.
  The loop's "epochs" are stretches of ``eval_every`` steps (:class:`StepEpochs`, drawn from an
  endless stream of shuffled, seeded passes over the windows), so a held-out evaluation ends
  each stretch; ``steps`` is exact.
* **Checkpoints.** With ``checkpoint_dir`` the loop's ``Checkpointer`` writes the whole state
  every ``checkpoint_every`` steps, and a run started again with the same options resumes from
  the newest checkpoint, bit for bit (the options are recorded in ``run.json`` next to the
  checkpoints; a run with other options is refused rather than mixed up).
* **The end.** With ``out``, the model is written as a Hugging Face folder (``config.json``,
  ``model.safetensors``) with its ``tokenizer.model``; a sample is generated from
  ``sample_prompt`` and streamed to ``stream``.

With ``teacher=`` (a Gemma folder) the targets are the teacher's sampled distributions instead
of the next tokens: see :mod:`s4tf_models.gemma.distill`. The held-out loss stays the
next-token loss, so runs with and without a teacher compare.

>>> import numpy as np
>>> train_w, valid_w = token_windows(np.arange(3, 43), seq_len=4, bos_id=2,
...                                  validation_fraction=0.2)
>>> len(train_w), len(valid_w)                 # 40 tokens: 10 blocks of 4, 2 held out
(8, 2)
>>> x, y = train_w[0]
>>> x.tolist(), y.tolist()
([2, 3, 4, 5], [3, 4, 5, 6])
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import numpy as np

import s4tf_py as s4
from s4tf_py.caching import atomic_write_bytes, cache_root
from s4tf_py.data import (Epoch, InferenceBatches, LanguageModelWindows, TrainingEpochs,
                          epoch_order, text_corpus)
from s4tf_py.train import Callback, Checkpointer, TrainingLoop

from .config import PRESETS, GemmaConfig
from .model import GemmaForCausalLM
from .tokenizer import Tokenizer

__all__ = ["TrainOptions", "TrainResult", "train", "next_token_loss", "corpus_token_ids",
           "token_windows", "StepEpochs", "StepProgress", "generate_text", "evaluate_loss",
           "learning_rate_schedule", "token_cache_dir"]

#: bump when the cached token files change meaning
TOKEN_CACHE_FORMAT = 1


# ---- options and results ----------------------------------------------------------------------

@dataclasses.dataclass
class TrainOptions:
    """Everything :func:`train` needs; the defaults suit ``gemma3-tiny`` on a 2-core CPU.

    ``config`` (a :class:`GemmaConfig`) overrides ``preset``. ``lr`` is the peak learning rate
    (reached after ``warmup_steps``, default ``min(100, steps // 10)``), decayed along a cosine
    to ``lr * min_lr_ratio`` at ``steps``. ``time_budget`` (seconds) ends the run early when
    it is spent, and the schedule then follows ``max(step / steps, elapsed / budget)`` (for the
    demo: not reproducible to the bit, unlike a run by steps).

    ``data``: a UTF-8 file or folder (None: the embedded corpus); ``tokenizer``: a
    ``tokenizer.model`` (None: the embedded one). ``clip_norm``: the gradient's global-norm
    limit (None: no clipping). ``bf16``: bfloat16 mixed precision. ``eval_every`` /
    ``eval_batches``: the held-out evaluation's period and size. ``checkpoint_dir`` /
    ``checkpoint_every`` (default ``eval_every``) / ``resume`` (False deletes the folder's
    checkpoints and starts over). ``out``: the Hugging Face folder written at the end.
    ``teacher`` / ``distill_samples``: distillation. ``sample_*``: the sample generated at the
    end (``sample_prompt=None``: none). ``progress`` False prints only the evaluations;
    ``log_every``: steps between plain progress lines (default ``steps // 20``).
    """

    preset: str = "gemma3-tiny"
    config: GemmaConfig | None = None
    steps: int = 300
    data: str | os.PathLike | None = None
    tokenizer: str | os.PathLike | None = None
    seq_len: int = 128
    batch_size: int = 8
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int | None = None
    weight_decay: float = 0.1
    clip_norm: float | None = 1.0
    bf16: bool = False
    eval_every: int = 50
    eval_batches: int = 4
    validation_fraction: float = 0.02
    checkpoint_dir: str | os.PathLike | None = None
    checkpoint_every: int | None = None
    resume: bool = True
    out: str | os.PathLike | None = None
    seed: int = 0
    time_budget: float | None = None
    teacher: str | os.PathLike | None = None
    distill_samples: int = 256
    sample_prompt: str | None = "Return the"
    sample_tokens: int = 48
    sample_temperature: float = 0.8
    sample_top_k: int | None = 40
    progress: bool = True
    log_every: int | None = None

    def model_config(self) -> GemmaConfig:
        """The model's configuration: ``config`` or the preset (an unknown preset is a
        ValueError naming the choices)."""
        if self.config is not None:
            return self.config
        if self.preset not in PRESETS:
            raise ValueError(f"train gemma: unknown preset {self.preset!r}; choose from "
                             f"{', '.join(PRESETS)}")
        return GemmaConfig.preset(self.preset)

    def check(self) -> None:
        """Raise ValueError for an option out of range."""
        def positive(name, v):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"train gemma: {name} must be a positive integer, got {v!r}")
        for name in ("steps", "seq_len", "batch_size", "eval_every", "eval_batches",
                     "distill_samples"):
            positive(name, getattr(self, name))
        if self.checkpoint_every is not None:
            positive("checkpoint_every", self.checkpoint_every)
        if self.warmup_steps is not None and not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"train gemma: warmup_steps must be in [0, steps), got "
                             f"{self.warmup_steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"train gemma: lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train gemma: min_lr_ratio must be in [0, 1], got "
                             f"{self.min_lr_ratio!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"train gemma: validation_fraction must be in (0, 1), got "
                             f"{self.validation_fraction!r}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ValueError(f"train gemma: time_budget must be > 0 seconds, got "
                             f"{self.time_budget!r}")
        if self.data is not None and not os.path.exists(self.data):
            raise FileNotFoundError(f"train gemma: the data path {os.fspath(self.data)!r} does "
                                    "not exist (give a UTF-8 text file or a folder of them; "
                                    "leave it out for the embedded corpus)")
        if self.seed < 0:
            raise ValueError(f"train gemma: seed must be >= 0, got {self.seed}")


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: GemmaForCausalLM
    tokenizer: Tokenizer
    #: one dict per evaluation: step, train_loss (mean over the stretch), valid_loss, lr,
    #: seconds since the start
    history: list
    #: the training loss of every step run in this process
    losses: list
    steps: int
    seconds: float
    tokens_per_second: float
    sample: str | None
    out: str | None
    resumed_from: str | None
    final_valid_loss: float | None


# ---- text -> token ids ------------------------------------------------------------------------

def token_cache_dir() -> Path | None:
    """``<cache root>/gemma`` (see :mod:`s4tf_py.caching`); None when caching is off
    (``S4TF_CACHE_DIR=""``)."""
    d = cache_root()
    return Path(d) / "gemma" if d else None


_atomic_write = atomic_write_bytes



def _token_key(text: str, tokenizer: Tokenizer) -> str:
    h = hashlib.sha256()
    h.update(f"s4tf_models.gemma.tokens/{TOKEN_CACHE_FORMAT}\0".encode())
    h.update(hashlib.sha256(Path(tokenizer.path).read_bytes()).digest())
    h.update(hashlib.sha256(text.encode("utf-8")).digest())
    return h.hexdigest()[:32]


def corpus_token_ids(text: str, tokenizer: Tokenizer, *, cache: bool = True) -> np.ndarray:
    """The token ids of ``text`` (no ``<bos>``; special-token spellings in the text stay
    text), uint16 when the vocabulary fits, else int32. Cached in :func:`token_cache_dir` as a
    ``.npy`` named by a hash of the text and the tokenizer file, written atomically (a
    temporary file renamed over the target), so concurrent runs never see a partial file.

    >>> tok = Tokenizer.embedded()
    >>> ids = corpus_token_ids("Return the value.", tok, cache=False)
    >>> ids.dtype, tok.decode(ids)
    (dtype('uint16'), 'Return the value.')
    """
    d = token_cache_dir() if cache else None
    path = d / f"tokens-{_token_key(text, tokenizer)}.npy" if d is not None else None
    if path is not None and path.is_file():
        try:
            ids = np.load(path, allow_pickle=False)
            if ids.ndim == 1 and ids.dtype.kind in "iu":
                return ids
        except (OSError, ValueError):
            pass                                # damaged: encode again
    dtype = np.uint16 if tokenizer.vocab_size <= 65536 else np.int32
    ids = np.asarray(tokenizer.encode(text, add_bos=False, parse_special=False), dtype=dtype)
    if path is not None:
        buf = io.BytesIO()
        np.save(buf, ids, allow_pickle=False)
        try:
            _atomic_write(path, buf.getvalue())
        except OSError:
            pass                                # a read-only cache: still usable
    return ids


def token_windows(tokens, seq_len: int, bos_id: int, validation_fraction: float = 0.02
                  ) -> tuple[LanguageModelWindows, LanguageModelWindows]:
    """(training windows, held-out windows): blocks of ``seq_len`` tokens, each prefixed
    with ``bos_id``, as ``LanguageModelWindows`` of ``seq_len + 1`` tokens; the last
    ``validation_fraction`` of the blocks (at least one) are held out."""
    t = np.asarray(tokens)
    n = len(t) // seq_len
    if n < 2:
        raise ValueError(f"train gemma: the text has {len(t)} tokens, which make {n} block(s) "
                         f"of seq_len={seq_len}; at least 2 are needed (one to train on, one "
                         "held out): give more text or a smaller seq_len")
    blocks = np.empty((n, seq_len + 1), np.int32)
    blocks[:, 0] = bos_id
    blocks[:, 1:] = t[:n * seq_len].reshape(n, seq_len)
    n_valid = min(max(int(round(n * validation_fraction)), 1), n - 1)
    cut = (n - n_valid) * (seq_len + 1)
    flat = blocks.reshape(-1)
    return (LanguageModelWindows(flat[:cut], seq_len, stride=seq_len + 1),
            LanguageModelWindows(flat[cut:], seq_len, stride=seq_len + 1))


# ---- batches by steps -------------------------------------------------------------------------

class _StepEpoch(Epoch):
    """One stretch of :class:`StepEpochs`; ``transform(batch, step)`` (when given) rewrites each
    batch, knowing its global step."""

    def __init__(self, index, samples, order, batch_size, collate, prefetch, first_step,
                 transform):
        super().__init__(index, samples, order, batch_size, True, collate, prefetch)
        self.first_step = first_step
        self.transform = transform

    def __getitem__(self, i):
        batch = super().__getitem__(i)
        if self.transform is None or isinstance(i, slice):
            return batch
        return self.transform(batch, self.first_step + (i % len(self)))


class StepEpochs(TrainingEpochs):
    """``TrainingEpochs`` whose epochs are stretches of ``every`` steps: stretch ``k`` holds
    global steps ``k * every`` … ``min((k + 1) * every, total_steps) - 1``, taken in order from
    an endless stream of shuffled passes over ``samples`` (pass ``e`` visits
    ``epoch_order(len(samples), seed, e)``, its leftover samples dropped). A
    ``TrainingLoop`` fit for ``len(stretches)`` epochs therefore runs exactly ``total_steps``
    steps and validates after every ``every``; it resumes anywhere, since every batch is a
    function of its step. ``transform(batch, step)`` rewrites a batch (distillation adds the
    teacher's targets); it runs on the calling thread (no prefetch) when given.

    >>> import numpy as np
    >>> stretches = StepEpochs(np.arange(10), batch_size=4, total_steps=5, every=2, seed=0)
    >>> len(stretches), [len(stretches[k]) for k in range(len(stretches))]
    (3, [2, 2, 1])
    >>> first_pass = np.concatenate(list(stretches[0]))      # 2 batches of the 10 samples
    >>> len(set(first_pass.tolist()))
    8
    """

    def __init__(self, samples: Any, batch_size: int, total_steps: int, every: int, *,
                 seed: int = 0, transform: Callable | None = None, prefetch: int = 2):
        super().__init__(samples, batch_size, seed=seed, drop_remainder=True,
                         prefetch=0 if transform is not None else prefetch)
        if total_steps < 1 or every < 1:
            raise ValueError("StepEpochs: total_steps and every must be positive")
        self.total_steps, self.every, self.transform = int(total_steps), int(every), transform
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return -(-self.total_steps // self.every)

    def _pass(self, e: int) -> np.ndarray:
        if e not in self._orders:
            if len(self._orders) > 4:
                self._orders.clear()
            self._orders[e] = epoch_order(len(self.samples), self.seed, e)
        return self._orders[e]

    def batch_indices(self, step: int) -> np.ndarray:
        """The sample indices of global step ``step``."""
        per = self.batches_per_epoch
        e, i = divmod(int(step), per)
        b = self.batch_size
        return self._pass(e)[i * b:(i + 1) * b]

    def __getitem__(self, k: int) -> _StepEpoch:
        if not isinstance(k, (int, np.integer)) or not 0 <= k < len(self):
            raise IndexError(f"StepEpochs: stretch {k!r} is out of range ({len(self)})")
        first = int(k) * self.every
        last = min(first + self.every, self.total_steps)
        order = np.concatenate([self.batch_indices(s) for s in range(first, last)])
        return _StepEpoch(int(k), self.samples, order, self.batch_size, self.collate,
                          self.prefetch, first, self.transform)

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def __repr__(self) -> str:
        return (f"StepEpochs({self.total_steps} steps in stretches of {self.every}, "
                f"batch_size={self.batch_size}, seed={self.seed})")


# ---- loss, schedule, callbacks ----------------------------------------------------------------

def next_token_loss(logits, targets):
    """The training loss: mean next-token cross-entropy in float32 over ``[B, T, V]`` logits
    and ``[B, T]`` integer targets (``log_softmax`` with a one-hot mask: one fused kernel, no
    gather), or, when ``targets`` is a :class:`~s4tf_models.gemma.distill.TeacherSamples`,
    the distillation loss.

    >>> logits = s4.zeros((1, 2, 8))
    >>> round(next_token_loss(logits, s4.Tensor([[1, 5]])).item(), 4) == round(math.log(8), 4)
    True
    """
    from .distill import TeacherSamples, distillation_loss
    if isinstance(targets, TeacherSamples):
        return distillation_loss(logits, targets)
    return s4.losses.softmax_cross_entropy(logits.astype(s4.float32), targets)


def learning_rate_schedule(o: TrainOptions) -> s4.optimizers.WarmupCosineDecay:
    """Linear warmup to ``o.lr`` then cosine decay to ``o.lr * o.min_lr_ratio`` at
    ``o.steps``. Step 0 already trains: the warmup starts at ``lr / (warmup + 1)``.

    >>> s = learning_rate_schedule(TrainOptions(steps=10, lr=1.0, warmup_steps=1))
    >>> [round(s(k), 3) for k in (0, 1, 10)]
    [0.5, 1.0, 0.1]
    """
    w = o.warmup_steps if o.warmup_steps is not None else min(100, o.steps // 10)
    return s4.optimizers.WarmupCosineDecay(
        peak_value=o.lr, warmup_steps=w, decay_steps=max(o.steps, w + 1),
        init_value=o.lr / (w + 1), end_value=o.lr * o.min_lr_ratio)


class _Schedule(Callback):
    """Sets the learning rate before each step: ``schedule(step)``, or with a time budget
    ``schedule(max(step, steps * elapsed / budget))``."""

    order = -50

    def __init__(self, schedule, steps: int, budget: float | None):
        self.schedule, self.steps, self.budget = schedule, steps, budget
        self.t0 = time.perf_counter()

    def on_fit_start(self, loop) -> None:
        self.t0 = time.perf_counter()

    def on_batch_start(self, loop) -> None:
        if not loop.is_training:
            return
        k = loop.step
        if self.budget:
            frac = (time.perf_counter() - self.t0) / self.budget
            k = max(k, min(int(frac * self.steps), self.steps))
        loop.optimizer.learning_rate = float(self.schedule(k))


class _TimeBudget(Callback):
    """Stops the fit once ``budget`` seconds have passed (after saving a checkpoint)."""

    order = 110                                  # after the Checkpointer

    def __init__(self, budget: float):
        self.budget = budget
        self.t0 = time.perf_counter()

    def on_fit_start(self, loop) -> None:
        self.t0 = time.perf_counter()

    def on_batch_end(self, loop) -> None:
        if loop.is_training and time.perf_counter() - self.t0 >= self.budget:
            ck = next((c for c in loop.callbacks if isinstance(c, Checkpointer)), None)
            if ck is not None and not os.path.exists(ck.path_for(loop.step)):
                ck.save(loop)
            loop.request_stop(f"time budget of {self.budget:g} s spent")


def _fmt_time(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class StepProgress(Callback):
    """Progress by steps: on a terminal one tqdm bar over the whole run (over the steps, or
    over the seconds of a time ``budget``) with the loss, the learning rate and tokens/s;
    otherwise a plain line every ``log_every`` steps. After every evaluation, a line with the
    step, the mean training loss since the last one, the held-out loss, the learning rate and
    the elapsed time; ``self.history`` keeps them, ``self.losses`` every step's loss."""

    order = 10

    def __init__(self, total_steps: int, tokens_per_step: int, *, file: TextIO | None = None,
                 plain: bool | None = None, log_every: int | None = None,
                 budget: float | None = None):
        self.total, self.tokens_per_step = total_steps, tokens_per_step
        self.file, self.plain = file, plain
        self.log_every = log_every
        self.budget = budget
        self.history: list[dict] = []
        self.losses: list[float] = []
        self._stretch_losses: list[float] = []
        self._bar = None
        self._t0 = time.perf_counter()

    def _out(self):
        return self.file if self.file is not None else sys.stdout

    def _write(self, line: str) -> None:
        if self._bar is not None:
            from tqdm import tqdm
            tqdm.write(line, file=self._out())
        else:
            print(line, file=self._out(), flush=True)

    def _use_plain(self) -> bool:
        if self.plain is not None:
            return self.plain
        isatty = getattr(self._out(), "isatty", None)
        try:
            return not (isatty is not None and isatty())
        except ValueError:
            return True

    def _where(self, step: int) -> str:
        """``step 12/300``, or with a budget ``step 12`` (the steps are not known ahead)."""
        return f"step {step:5d}" + ("" if self.budget else f"/{self.total}")

    def _elapsed(self) -> str:
        e = _fmt_time(time.perf_counter() - self._t0)
        return f"{e} of {_fmt_time(self.budget)}" if self.budget else e

    def on_fit_start(self, loop) -> None:
        self._t0 = time.perf_counter()
        self._step0 = loop.step
        self._stretch_losses = []
        if not self._use_plain():
            from tqdm import tqdm
            if self.budget:
                self._bar = tqdm(total=int(math.ceil(self.budget)), unit="s", file=self._out(),
                                 dynamic_ncols=True, leave=True, desc="training",
                                 bar_format="{l_bar}{bar}| {n:.0f}/{total_fmt} s{postfix}")
            else:
                self._bar = tqdm(total=self.total, initial=loop.step, unit="step",
                                 file=self._out(), dynamic_ncols=True, leave=True,
                                 desc="training")
        if loop.resumed_from:
            self._write(f"resumed from {loop.resumed_from} (step {loop.step})")

    def _rate(self, loop) -> float:
        dt = max(time.perf_counter() - self._t0, 1e-9)
        return (loop.step - self._step0) * self.tokens_per_step / dt

    def on_batch_end(self, loop) -> None:
        if not loop.is_training:
            return
        loss = float(loop.last_step_loss)
        self.losses.append(loss)
        self._stretch_losses.append(loss)
        if self._bar is not None:
            post = {"step": loop.step, "loss": f"{loss:.3f}", "lr": f"{loop.learning_rate:.2e}",
                    "tok/s": f"{self._rate(loop):.0f}"}
            if self.budget:
                self._bar.n = min(time.perf_counter() - self._t0, self._bar.total)
                self._bar.set_postfix(ordered_dict=post, refresh=True)
            else:
                del post["step"]
                self._bar.update(1)
                self._bar.set_postfix(ordered_dict=post, refresh=False)
            return
        every = self.log_every or max(1, self.total // 20)
        if loop.step % every == 0 or loop.step == self.total:
            self._write(f"{self._where(loop.step)}  loss {loss:.4f}  "
                        f"lr {loop.learning_rate:.2e}  {self._rate(loop):6.0f} tok/s  "
                        f"{self._elapsed()}")

    def on_epoch_end(self, loop) -> None:
        train = (float(np.mean(self._stretch_losses)) if self._stretch_losses
                 else loop.logs.get("train_loss"))
        valid = loop.logs.get("valid_loss")
        self.record(loop.step, train, valid, loop.learning_rate)
        self._stretch_losses = []

    def record(self, step: int, train: float | None, valid: float | None, lr: float) -> None:
        """Log an evaluation (also used for the final one after a stopped run)."""
        entry = {"step": int(step), "train_loss": None if train is None else float(train),
                 "valid_loss": None if valid is None else float(valid), "lr": float(lr),
                 "seconds": time.perf_counter() - self._t0}
        self.history.append(entry)
        parts = [self._where(step)]
        if train is not None:
            parts.append(f"train loss {train:.4f}")
        if valid is not None:
            parts.append(f"held-out loss {valid:.4f}")
        parts.append(f"lr {lr:.2e}")
        self._write(" | ".join(parts) + f" | {self._elapsed()}")

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_fit_end(self, loop) -> None:
        self._close()

    def cleanup(self, loop) -> None:
        self._close()


# ---- evaluation and generation ------------------------------------------------------------------

def _eval_loss(model, x, y):
    with s4.learning_phase("inference"):
        return next_token_loss(model(x), y)


_EVAL = s4.compile(_eval_loss)


def evaluate_loss(model, batches) -> float:
    """The mean next-token loss of ``model`` over ``batches`` of ``(inputs, targets)``."""
    total, n = 0.0, 0
    for x, y in batches:
        x, y = np.asarray(x, np.int32), np.asarray(y, np.int32)
        total += float(_EVAL(model, s4.Tensor(x), s4.Tensor(y)).item()) * x.shape[0]
        n += x.shape[0]
    if not n:
        raise ValueError("evaluate_loss: no batches")
    return total / n


def generate_text(model, tokenizer: Tokenizer, prompt: str, max_new_tokens: int = 48, *,
                  temperature: float = 0.8, top_k: int | None = 40, top_p: float | None = None,
                  seed: int = 0, stream: TextIO | None = None) -> str:
    """Continue ``prompt`` (encoded with ``<bos>``) and return the new text; with ``stream``,
    each piece is written there (and flushed) as soon as its token is produced, decoded with a
    :class:`~s4tf_models.gemma.StreamDecoder` (a character split over byte pieces waits for
    its last byte). Stops at the tokenizer's stop ids (``<eos>``, ``<end_of_turn>``).

    >>> from s4tf_models.gemma import GemmaConfig
    >>> c = GemmaConfig.preset("gemma3-tiny").replace(num_layers=1, hidden_size=32,
    ...     intermediate_size=64, num_heads=2, head_dim=16, query_pre_attn_scalar=16)
    >>> text = generate_text(GemmaForCausalLM(c, seed=0), Tokenizer.embedded(), "def", 4)
    >>> isinstance(text, str)
    True
    """
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"generate: max_new_tokens must be a positive int, got "
                         f"{max_new_tokens!r}")
    ids = tokenizer.encode(prompt, add_bos=True)
    vocab = model.config.vocab_size
    if max(ids) >= vocab:
        raise ValueError(f"generate: the tokenizer makes id {max(ids)}, beyond the model's "
                         f"vocabulary of {vocab}; use the tokenizer the model was trained with")
    dec = tokenizer.stream_decoder()
    pieces: list[str] = []

    def emit(s: str) -> None:
        if s:
            pieces.append(s)
            if stream is not None:
                stream.write(s)
                stream.flush()

    def on_tokens(tok) -> None:
        emit(dec.add(int(np.asarray(tok).reshape(-1)[0])))

    model.generate([ids], int(max_new_tokens), temperature=temperature, top_k=top_k,
                   top_p=top_p, seed=seed, stop_tokens=tokenizer.stop_ids, stream=on_tokens)
    emit(dec.flush())
    return "".join(pieces)


# ---- the run ----------------------------------------------------------------------------------

def _run_record(o: TrainOptions, config: GemmaConfig, data_key: str) -> dict:
    """What must match for a run to resume another (as JSON would read it back)."""
    return json.loads(json.dumps({"config": config.to_hf(), "seq_len": o.seq_len, "batch_size": o.batch_size,
            "steps": o.steps, "eval_every": o.eval_every, "lr": o.lr,
            "min_lr_ratio": o.min_lr_ratio, "warmup_steps": o.warmup_steps,
            "weight_decay": o.weight_decay, "clip_norm": o.clip_norm, "bf16": o.bf16,
            "seed": o.seed, "data": data_key, "validation_fraction": o.validation_fraction,
            "teacher": None if o.teacher is None else os.path.abspath(o.teacher),
            "distill_samples": o.distill_samples if o.teacher else None}))


def _prepare_checkpoints(o: TrainOptions, record: dict, say) -> str | None:
    if o.checkpoint_dir is None:
        return None
    d = os.fspath(o.checkpoint_dir)
    os.makedirs(d, exist_ok=True)
    run = os.path.join(d, "run.json")
    existing = Checkpointer.checkpoints(d)
    if existing and not o.resume:
        for f in existing:
            os.remove(f)
        say(f"starting over: removed {len(existing)} checkpoint(s) in {d}")
        existing = []
    if existing and os.path.isfile(run):
        with open(run, encoding="utf-8") as f:
            old = json.load(f)
        diff = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
        if diff:
            raise ValueError(f"train gemma: the checkpoints in {d} come from a run with other "
                             f"options ({', '.join(diff)} differ); resume with the same "
                             "options, or start over (--no-resume) or use another "
                             "checkpoint folder")
    _atomic_write(Path(run), (json.dumps(record, indent=1, sort_keys=True) + "\n").encode())
    return d


def train(options: TrainOptions | None = None, *, stream: TextIO | None = None,
          callbacks: Sequence = (), **changes) -> TrainResult:
    """Train a Gemma causal LM as ``options`` (or ``TrainOptions(**changes)``) say; see the
    module docstring. Progress goes to ``stream`` (default stdout); ``callbacks`` are added
    to the loop's. Returns a :class:`TrainResult`."""
    o = dataclasses.replace(options, **changes) if options is not None else TrainOptions(
        **changes)
    o.check()
    out = stream if stream is not None else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    config = o.model_config()
    tokenizer = Tokenizer(o.tokenizer) if o.tokenizer is not None else Tokenizer.embedded()
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(f"train gemma: the tokenizer has {tokenizer.vocab_size} pieces but the "
                         f"model's vocabulary is {config.vocab_size}; pick a preset with a "
                         "vocabulary at least as large or another tokenizer")
    teacher = None
    if o.teacher is not None:
        from .distill import Teacher
        teacher = Teacher.load(o.teacher, num_samples=o.distill_samples, seed=o.seed)
        if teacher.vocab_size != config.vocab_size:
            raise ValueError(f"train gemma: the teacher's vocabulary ({teacher.vocab_size}) "
                             f"differs from the student's ({config.vocab_size}); distillation "
                             "needs the same token ids")

    t_data = time.perf_counter()
    text = text_corpus(o.data)
    tokens = corpus_token_ids(text, tokenizer)
    train_w, valid_w = token_windows(tokens, o.seq_len, tokenizer.bos_id,
                                     o.validation_fraction)
    if len(train_w) < o.batch_size:
        raise ValueError(f"train gemma: {len(train_w)} training windows of {o.seq_len} tokens "
                         f"make no batch of {o.batch_size}; give more text or lower "
                         "--batch-size / --seq-len")
    n_eval = min(o.eval_batches * o.batch_size, len(valid_w))
    if n_eval >= o.batch_size:
        n_eval -= n_eval % o.batch_size              # whole batches: one compiled shape
    idx = np.linspace(0, len(valid_w) - 1, n_eval).round().astype(np.int64)
    vx, vy = valid_w.take(idx)
    validation = InferenceBatches((vx, vy), o.batch_size, prefetch=0)
    where = os.fspath(o.data) if o.data is not None else "the embedded corpus"
    say(f"data: {where}: {len(text) / 1e6:.2f} MB, {len(tokens):,} tokens "
        f"({time.perf_counter() - t_data:.1f} s); {len(train_w):,} training windows of "
        f"{o.seq_len}+1, {len(valid_w):,} held out ({len(vx)} evaluated every "
        f"{o.eval_every} steps)")

    data_key = _token_key(text, tokenizer)
    ckdir = _prepare_checkpoints(o, _run_record(o, config, data_key), say)

    model = GemmaForCausalLM(config, seed=o.seed)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    schedule = learning_rate_schedule(o)
    opt = s4.optimizers.AdamW(for_=model, learning_rate=schedule(0), beta1=0.9, beta2=0.95,
                              weight_decay=o.weight_decay, clip_norm=o.clip_norm)
    training = StepEpochs(train_w, o.batch_size, o.steps, o.eval_every, seed=o.seed,
                          transform=teacher)
    progress = StepProgress(o.steps, o.batch_size * o.seq_len, file=out,
                            plain=None if o.progress else True,
                            log_every=o.log_every if o.progress else 10 ** 9,
                            budget=o.time_budget)
    cbs: list = [_Schedule(schedule, o.steps, o.time_budget), progress, *callbacks]
    if o.time_budget:
        cbs.append(_TimeBudget(o.time_budget))
    loop = TrainingLoop(training=training, validation=validation, optimizer=opt,
                        loss_function=next_token_loss, callbacks=cbs,
                        mixed_precision="bf16" if o.bf16 else None, seed=o.seed,
                        checkpoint_dir=ckdir,
                        checkpoint_every=(o.checkpoint_every or o.eval_every) if ckdir else None,
                        progress=False)
    mode = (f"distilling from {o.teacher} ({o.distill_samples} sampled ids per position)"
            if teacher is not None else "next-token prediction")
    say(f"model: {o.preset if o.config is None else 'custom config'} "
        f"(Gemma {config.generation}, {config.num_layers} layers, d={config.hidden_size}, "
        f"{n_params / 1e6:.2f}M parameters); {mode}; {'up to ' if o.time_budget else ''}"
        f"{o.steps} steps of {o.batch_size}x{o.seq_len} tokens, AdamW lr {o.lr:g} (warmup + "
        f"cosine), clip {o.clip_norm}, {'bf16' if o.bf16 else 'float32'}"
        + (f", budget {o.time_budget:g} s" if o.time_budget else ""))
    t0 = time.perf_counter()
    model = loop.fit(model, epochs=len(training))
    seconds = time.perf_counter() - t0
    done = loop.step
    final_valid = None
    last = progress.history[-1] if progress.history else None
    if last is not None and last["step"] == done:
        final_valid = last["valid_loss"]
    elif done:
        final_valid = evaluate_loss(model, validation)
        progress._close()
        rest = progress._stretch_losses
        progress.record(done, float(np.mean(rest)) if rest else None, final_valid,
                        loop.learning_rate)
    if loop.stop_reason:
        say(f"stopped at step {done}" + ("" if o.time_budget else f"/{o.steps}")
            + f": {loop.stop_reason}")
    steps_here = len(progress.losses)
    rate = steps_here * o.batch_size * o.seq_len / seconds if seconds > 0 else 0.0
    say(f"trained {steps_here} steps in {_fmt_time(seconds)} ({rate:,.0f} tokens/s)"
        + (f"; held-out loss {final_valid:.4f}" if final_valid is not None else ""))
    if teacher is not None and done:
        from .distill import kl_to_teacher
        say(f"held-out KL(teacher || student): {kl_to_teacher(teacher, model, validation):.4f} "
            "nats per token")

    out_dir = None
    if o.out is not None:
        out_dir = os.fspath(o.out)
        model.save(out_dir)
        shutil.copyfile(tokenizer.path, os.path.join(out_dir, "tokenizer.model"))
        say(f"saved the model to {out_dir} (config.json, model.safetensors, tokenizer.model)")
    sample = None
    if o.sample_prompt and o.sample_tokens:
        say("sample:")
        out.write(o.sample_prompt)
        out.flush()
        sample = generate_text(model, tokenizer, o.sample_prompt, o.sample_tokens,
                               temperature=o.sample_temperature, top_k=o.sample_top_k,
                               seed=o.seed, stream=out)
        out.write("\n")
        out.flush()
    return TrainResult(model=model, tokenizer=tokenizer, history=progress.history,
                       losses=progress.losses, steps=done, seconds=seconds,
                       tokens_per_second=rate, sample=sample, out=out_dir,
                       resumed_from=loop.resumed_from, final_valid_loss=final_valid)
