"""Knowledge distillation as Gemma 3 was trained (GEMMA.md §4): sampled teacher targets.

    "We sample 256 logits per token, weighted by teacher probabilities. The student learns the
    teacher's distribution within these samples via cross-entropy loss. The teacher's target
    distribution is set to zero probability for non-sampled logits, and renormalized."

Per position ``t`` with teacher distribution ``p`` over the vocabulary:

1. draw ``K = 256`` ids i.i.d. from ``p`` (*with replacement*: each draw is weighted by the
   teacher's probability, as the quote says; ids the teacher deems likely come up more often,
   so the sampled set adapts to the teacher's entropy: a confident position yields a handful of
   distinct ids, a flat one many). The set ``S`` is the distinct ids drawn;
2. the target is ``q(x) = p(x) / sum_{y in S} p(y)`` for ``x`` in ``S`` and ``0`` elsewhere:
   the teacher's own probabilities, renormalized over the sampled set (not the draw counts);
3. the loss is the cross-entropy ``-sum_x q(x) log p_S(x)`` with the student's *full-vocabulary*
   log-softmax ``log p_S``, averaged over positions.

A target is stored in a fixed shape, ``K`` slots per position (:class:`TeacherSamples`):
``ids`` are the ``K`` draws sorted, and ``probs`` holds ``q(x)`` in the first slot of each
distinct id and 0 in the slots that repeat it, so the loss gathers ``K`` log-probabilities per
position (one flat ``s4.take``; never a dense ``[B, T, V]`` target, which would not scale to
Gemma's 262k vocabulary). The teacher runs in inference (``s4.learning_phase("inference")``,
its logits under ``s4.without_derivative``) in its own compiled function, outside the
differentiated step; the draws use a numpy generator seeded by ``(seed, step)``, so a step's
targets are the same in every run and in a resumed one.

>>> import numpy as np
>>> p = np.array([[0.5, 0.3, 0.2, 0.0]])
>>> t = sample_teacher_targets(p, num_samples=8, rng=np.random.default_rng(0))
>>> t.ids.shape, t.probs.shape
((1, 8), (1, 8))
>>> q = dense_targets(t, vocab_size=4)[0]
>>> round(float(q.sum()), 6), float(q[3])  # a distribution; an id of probability 0 is never drawn
(1.0, 0.0)
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Iterable

import numpy as np

import s4tf_py as s4

__all__ = ["TeacherSamples", "Teacher", "sample_token_ids", "sparse_targets",
           "sample_teacher_targets", "dense_targets", "distillation_loss", "kl_to_teacher",
           "DEFAULT_NUM_SAMPLES"]

#: Gemma 3's number of sampled logits per token
DEFAULT_NUM_SAMPLES = 256


@dataclasses.dataclass(frozen=True)
class TeacherSamples:
    """The sparse teacher target of a batch: ``ids`` (int32 ``[..., K]``, the ``K`` draws per
    position, sorted) and ``probs`` (float32 ``[..., K]``: the teacher probability of the id
    renormalized over the distinct ids drawn, in the first slot of each distinct id; 0 in the
    slots that repeat an id). ``probs`` sums to 1 per position.

    A pytree (a dataclass), so a :class:`~s4tf_py.train.TrainingLoop` batch may carry it as
    its target; ``shape`` is the positions' shape ``[B, T]`` (what the progress bar counts).
    """

    ids: Any
    probs: Any

    @property
    def shape(self) -> tuple:
        return tuple(self.ids.shape[:-1])


def _rows(probs) -> tuple[np.ndarray, tuple]:
    p = np.asarray(probs, np.float64)
    if p.ndim < 1 or p.shape[-1] == 0:
        raise ValueError(f"distill: probabilities need a vocabulary axis, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("distill: teacher probabilities must be finite and >= 0")
    lead = p.shape[:-1]
    p2 = p.reshape(-1, p.shape[-1])
    total = p2.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("distill: a row of teacher probabilities sums to 0")
    return p2 / total, lead


def sample_token_ids(probs, num_samples: int = DEFAULT_NUM_SAMPLES,
                     rng: np.random.Generator | None = None) -> np.ndarray:
    """``num_samples`` ids drawn i.i.d. (with replacement) from each row of ``probs``
    (``[..., V]``, each row a distribution; rows are renormalized) → int32 ``[...,
    num_samples]``. Inverse-CDF sampling in float64, all rows in one ``searchsorted``: an id of
    probability 0 is never drawn.

    >>> ids = sample_token_ids(np.array([[0.0, 1.0, 0.0]]), 4, np.random.default_rng(1))
    >>> ids.tolist()
    [[1, 1, 1, 1]]
    """
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"distill: num_samples must be a positive int, got {num_samples!r}")
    rng = np.random.default_rng() if rng is None else rng
    p, lead = _rows(probs)
    n, v = p.shape
    cdf = np.cumsum(p, axis=1)
    cdf[:, -1] = 1.0                                  # exactly: u < 1 always lands in the row
    offset = np.arange(n, dtype=np.float64)[:, None]
    u = rng.random((n, int(num_samples)))
    # row i's CDF lives in [i, i + 1]: one sorted array for every row
    pos = np.searchsorted((cdf + offset).ravel(), (u + offset).ravel(), side="right")
    ids = pos.reshape(n, -1) - np.arange(n)[:, None] * v
    return np.clip(ids, 0, v - 1).astype(np.int32).reshape(*lead, int(num_samples))


def sparse_targets(probs, ids) -> TeacherSamples:
    """The renormalized sparse target of the draws ``ids`` (``[..., K]``) from ``probs``
    (``[..., V]``): each distinct drawn id gets ``p(id) / sum of p over the distinct ids`` (in
    its first slot after sorting), every other slot 0.

    >>> t = sparse_targets(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([[3, 1, 3]]))
    >>> t.ids.tolist(), [round(float(v), 4) for v in t.probs[0]]
    ([[1, 3, 3]], [0.3333, 0.6667, 0.0])
    """
    p, lead = _rows(probs)
    d = np.asarray(ids)
    if d.shape[:-1] != lead:
        raise ValueError(f"distill: ids of shape {d.shape} do not match probabilities of shape "
                         f"{lead + (p.shape[-1],)}")
    d = np.sort(d.reshape(len(p), -1).astype(np.int64), axis=1)
    if d.size and (d.min() < 0 or d.max() >= p.shape[-1]):
        raise ValueError(f"distill: ids must be in [0, {p.shape[-1]})")
    first = np.ones(d.shape, bool)
    first[:, 1:] = d[:, 1:] != d[:, :-1]
    w = np.where(first, np.take_along_axis(p, d, axis=1), 0.0)
    w /= w.sum(axis=1, keepdims=True)
    k = d.shape[1]
    return TeacherSamples(ids=d.astype(np.int32).reshape(*lead, k),
                          probs=w.astype(np.float32).reshape(*lead, k))


def sample_teacher_targets(probs, num_samples: int = DEFAULT_NUM_SAMPLES,
                           rng: np.random.Generator | None = None) -> TeacherSamples:
    """:func:`sample_token_ids` then :func:`sparse_targets`: Gemma 3's target for ``probs``."""
    return sparse_targets(probs, sample_token_ids(probs, num_samples, rng))


def dense_targets(target: TeacherSamples, vocab_size: int) -> np.ndarray:
    """The target as a dense float64 distribution ``[..., vocab_size]`` (zeros off the
    sampled set): for tests and inspection."""
    ids, w = np.asarray(target.ids), np.asarray(target.probs, np.float64)
    lead, k = ids.shape[:-1], ids.shape[-1]
    out = np.zeros((int(np.prod(lead, dtype=np.int64)), vocab_size))
    np.add.at(out, (np.arange(len(out))[:, None], ids.reshape(-1, k)), w.reshape(-1, k))
    return out.reshape(*lead, vocab_size)


def distillation_loss(logits, target: TeacherSamples):
    """Mean over positions of ``-sum_k probs[k] * log_softmax(logits)[ids[k]]``: the
    cross-entropy of the sparse teacher target with the student's full-vocabulary log-softmax,
    computed in float32. The ``K`` log-probabilities per position are gathered with one flat
    ``s4.take`` (its derivative is a scatter-add of ``K`` values per position).

    >>> logits = s4.Tensor(np.zeros((1, 1, 4), np.float32))          # a uniform student
    >>> t = TeacherSamples(ids=s4.Tensor([[[0, 2]]]), probs=s4.Tensor([[[0.5, 0.5]]]))
    >>> round(distillation_loss(logits, t).item(), 4) == round(float(np.log(4)), 4)
    True
    """
    lp = s4.log_softmax(logits.astype(s4.float32), axis=-1)
    lead, v = tuple(lp.shape[:-1]), lp.shape[-1]
    ids = s4.asarray(target.ids).astype(s4.int32)
    probs = s4.asarray(target.probs).astype(s4.float32)
    if tuple(ids.shape[:-1]) != lead or ids.shape != probs.shape:
        raise s4.ShapeError(f"distillation_loss: logits {tuple(logits.shape)} need ids and "
                            f"probs of shape {lead} + (K,), got {tuple(ids.shape)} and "
                            f"{tuple(probs.shape)}")
    n = int(np.prod(lead, dtype=np.int64))
    k = ids.shape[-1]
    offsets = (s4.arange(n, dtype=s4.int32) * v).reshape(lead + (1,))
    flat = (ids + offsets).reshape((n * k,))
    picked = s4.take(lp.reshape((n * v,)), flat, axis=0).reshape(lead + (k,))
    return -(picked * probs).sum() / n


# ---- the teacher ------------------------------------------------------------------------------

def _teacher_probs(model, ids):
    with s4.learning_phase("inference"):
        logits = s4.without_derivative(model(ids))
        return s4.softmax(logits.astype(s4.float32), axis=-1)


_TEACHER_PROBS = s4.compile(_teacher_probs)


def _kl(teacher, student, ids):
    with s4.learning_phase("inference"):
        lt = s4.log_softmax(teacher(ids).astype(s4.float32), axis=-1)
        ls = s4.log_softmax(student(ids).astype(s4.float32), axis=-1)
        return s4.sum(s4.exp(lt) * (lt - ls), axis=-1).mean()


_KL = s4.compile(_kl)


class Teacher:
    """A teacher model and its sampler: ``teacher(batch, step)`` turns a training batch
    ``(input_ids, next_ids)`` into ``(input_ids, TeacherSamples)`` (the batch transform that
    :func:`s4tf_models.gemma.train.train` applies per step).

    ``model``: a Gemma causal LM (:func:`Teacher.load` reads a Hugging Face folder).
    ``num_samples``: draws per position (Gemma 3: 256). ``seed``: step ``s`` draws with
    ``numpy.random.Generator(PCG64(SeedSequence([seed, s])))``.
    """

    def __init__(self, model, *, num_samples: int = DEFAULT_NUM_SAMPLES, seed: int = 0):
        if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"Teacher: num_samples must be a positive int, got "
                             f"{num_samples!r}")
        self.model = model
        self.num_samples = int(num_samples)
        self.seed = int(seed)

    @classmethod
    def load(cls, folder: str | os.PathLike, **kw) -> "Teacher":
        """The Gemma checkpoint in ``folder`` (a Hugging Face folder, e.g. one written by
        ``s4tf train gemma --out``) as a teacher."""
        from .checkpoint import load
        folder = os.fspath(folder)
        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise FileNotFoundError(f"distill: --teacher {folder!r} is not a Gemma checkpoint "
                                    "folder (it has no config.json); give a folder written by "
                                    "`s4tf train gemma --out DIR` or a Hugging Face download")
        return cls(load(folder), **kw)

    @property
    def vocab_size(self) -> int:
        return int(self.model.config.vocab_size)

    def probabilities(self, input_ids) -> np.ndarray:
        """The teacher's next-token distributions, float32 ``[B, T, V]`` on the host."""
        ids = s4.Tensor(np.asarray(input_ids).astype(np.int32))
        return _TEACHER_PROBS(self.model, ids).numpy()

    def rng(self, step: int) -> np.random.Generator:
        """The generator of step ``step``'s draws."""
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [self.seed, 0xD15711, int(step)])))

    def targets(self, input_ids, step: int) -> TeacherSamples:
        """The sampled targets of ``input_ids`` ``[B, T]`` at training step ``step``."""
        return sample_teacher_targets(self.probabilities(input_ids), self.num_samples,
                                      self.rng(step))

    def __call__(self, batch, step: int):
        x, _ = batch
        return x, self.targets(x, step)


def kl_to_teacher(teacher, student, batches: Iterable) -> float:
    """The mean over positions of ``KL(teacher || student)`` (full vocabulary, nats) on
    ``batches`` of input ids ``[B, T]`` (or ``(inputs, targets)`` pairs; the targets are
    ignored). ``teacher``: a model or a :class:`Teacher`.

    >>> from s4tf_models.gemma import GemmaConfig, GemmaForCausalLM
    >>> c = GemmaConfig.preset("gemma3-tiny").replace(num_layers=1, hidden_size=32,
    ...     intermediate_size=64, num_heads=2, head_dim=16, query_pre_attn_scalar=16)
    >>> m = GemmaForCausalLM(c, seed=0)
    >>> kl_to_teacher(m, m, [np.array([[2, 10, 11]])])
    0.0
    """
    t = teacher.model if isinstance(teacher, Teacher) else teacher
    total, count = 0.0, 0
    for b in batches:
        x = b[0] if isinstance(b, (tuple, list)) else b
        x = np.asarray(x.numpy() if isinstance(x, s4.Tensor) else x).astype(np.int32)
        n = int(np.prod(x.shape))
        total += float(_KL(t, student, s4.Tensor(x)).item()) * n
        count += n
    if not count:
        raise ValueError("kl_to_teacher: no batches")
    return max(total / count, 0.0)
