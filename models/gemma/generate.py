"""Text generation with a KV cache: one batched prefill, then one compiled decode step per token.

Global layers cache every position; sliding-window layers keep a ring buffer of the window
only (slot ``p % W`` holds position ``p``), so a 5:1 model's cache is the size GEMMA.md §6's
arithmetic gives: ``2 · KV · hd · bytes · (n_global · T + n_local · min(T, W))`` per batch row.
The decode step is one ``s4.compile``'d function of (model, caches, token, position, masks,
slots), called with tensors only; the caches are donated, so each step writes its keys in
place. Masks and slots are small host arrays computed per step (which cache slots each row
may see: causal, window, padding), so the step traces once.

>>> import s4tf_py as s4
>>> from s4tf_models.gemma import GemmaConfig, GemmaForCausalLM
>>> m = GemmaForCausalLM(GemmaConfig.preset("gemma3-tiny").replace(num_layers=2), seed=0)
>>> m.generate([[2, 17, 33]], max_new_tokens=4).shape
(1, 7)
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

import s4tf_py as s4

from .config import FULL, SLIDING, GemmaConfig


class KVCache:
    """Keys and values of every layer: ``[B, KV, size, hd]`` with ``size`` the capacity on
    global layers and ``min(window, capacity)`` on sliding ones."""

    def __init__(self, config: GemmaConfig, batch: int, capacity: int, dtype):
        self.config, self.batch, self.capacity = config, batch, capacity
        self.sizes = {FULL: capacity, SLIDING: min(config.sliding_window, capacity)}
        shape = lambda kind: (batch, config.num_kv_heads, self.sizes[kind], config.head_dim)  # noqa: E731
        self.layers = [(s4.zeros(shape(kind), dtype=dtype), s4.zeros(shape(kind), dtype=dtype))
                       for kind in config.layer_types]
        #: the sequence index each slot holds (-1: empty), per layer type
        self.slot_seq = {kind: np.full(n, -1, np.int64) for kind, n in self.sizes.items()}
        #: which sequence indices are real tokens (False: padding), per batch row
        self.valid = np.zeros((batch, capacity), bool)
        self.length = 0
        self._visible: dict | None = None     # per layer type: [B, size] (step_inputs)

    @property
    def nbytes(self) -> int:
        """Bytes held by the keys and values."""
        return sum(int(np.prod(k.shape)) * np.dtype(k.dtype).itemsize * 2
                   for k, _ in self.layers)

    def _slots(self, kind: str, seqs: np.ndarray) -> np.ndarray:
        return seqs % self.sizes[kind]

    def fill(self, kvs: list, attention_mask: np.ndarray) -> None:
        """Store a prefill's keys (``[B, KV, T, hd]`` per layer): all of them on global
        layers, the last ``size`` on sliding ones."""
        t = attention_mask.shape[1]
        self.valid[:, :t] = attention_mask.astype(bool)
        self.length = t
        out = []
        for (k, v), (kc, vc), kind in zip(kvs, self.layers, self.config.layer_types):
            first = max(0, t - self.sizes[kind])
            seqs = np.arange(first, t)
            slots = s4.Tensor(self._slots(kind, seqs).astype(np.int32))
            out.append((s4.index_update(kc, slots, k[:, :, first:], axis=2),
                        s4.index_update(vc, slots, v[:, :, first:], axis=2)))
        for kind in self.sizes:
            first = max(0, t - self.sizes[kind])
            seqs = np.arange(first, t)
            self.slot_seq[kind][self._slots(kind, seqs)] = seqs
        self.layers = out
        self._visible = None

    def step_inputs(self) -> tuple[dict, dict]:
        """(masks ``[B, 1, 1, 1, size]``, slot ``[1]``) per layer type for the token at
        sequence index ``length`` (it is written before attention, so it sees itself).

        A slot is visible when it holds a real (not padding) token inside the layer's window.
        The token at ``t`` overwrites slot ``t % size``; on a sliding layer that slot held
        ``t - size``, the one position that just left the window (``size <= window``), so the
        masks change in one slot per step and are kept up to date instead of recomputed."""
        t = self.length
        if t >= self.capacity:
            raise ValueError(f"KVCache: full ({self.capacity} positions)")
        self.valid[:, t] = True
        if self._visible is None:
            self._visible = {kind: self._visibility(kind, t - 1) for kind in self.sizes}
        masks, slots = {}, {}
        for kind, size in self.sizes.items():
            slot = t % size
            self.slot_seq[kind][slot] = t
            vis = self._visible[kind]
            vis[:, slot] = True
            masks[kind] = s4.Tensor(vis[:, None, None, None, :].copy())
            slots[kind] = s4.Tensor(np.array([slot], np.int32))
        self.length = t + 1
        return masks, slots

    def _visibility(self, kind: str, t: int) -> np.ndarray:
        """``[B, size]``: which slots the token at sequence index ``t`` may see."""
        seq = self.slot_seq[kind]
        ok = (seq >= 0) & (seq <= t)
        if kind == SLIDING:
            ok &= seq > t - self.config.sliding_window
        return ok[None, :] & np.take(self.valid, np.maximum(seq, 0), axis=1)


def _decode_step(model, caches, ids, positions, masks, slots):
    h, kvs = model.model.run(ids, position_ids=positions, masks=masks, caches=caches,
                             slots=slots)
    return model.logits(h)[:, -1], kvs


def _prefill(model, ids, attention_mask, positions):
    h, kvs = model.model.run(ids, attention_mask=attention_mask, position_ids=positions)
    return model.logits(h[:, -1:])[:, 0], kvs


# one compiled prefill shared by every model (the cache key holds the shapes); the decode
# step is compiled per model structure (_flat_decode)
_PREFILL = s4.compile(_prefill)
_FLAT_DECODE: dict = {}


def _flat_decode(treedef, n_model: int, n_layers: int):
    """The decode step over positional tensors only (model leaves, then each layer's k and
    v, then token, position, the two masks and the two slots): a compiled call with only
    tensor arguments skips flattening the model's pytree on every token."""
    fn = _FLAT_DECODE.get(treedef)
    if fn is None:
        kinds = (FULL, SLIDING)

        def step(*args):
            model = s4.tree.unflatten(treedef, list(args[:n_model]))
            flat = args[n_model:n_model + 2 * n_layers]
            caches = [(flat[2 * i], flat[2 * i + 1]) for i in range(n_layers)]
            ids, pos, m_full, m_slide, s_full, s_slide = args[n_model + 2 * n_layers:]
            logits, kvs = _decode_step(model, caches, ids, pos,
                                       dict(zip(kinds, (m_full, m_slide))),
                                       dict(zip(kinds, (s_full, s_slide))))
            return (logits, *[t for kv in kvs for t in kv])
        donated = tuple(range(n_model, n_model + 2 * n_layers))
        fn = _FLAT_DECODE[treedef] = s4.compile(step, donate_argnums=donated)
    return fn


def sample(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
           rng: np.random.Generator) -> np.ndarray:
    """Next token per row from ``logits`` ``[B, V]``: argmax when ``temperature <= 0``, else a
    draw from the softmax of ``logits / temperature`` restricted to the ``top_k`` largest and
    to the smallest set whose probability reaches ``top_p``."""
    logits = np.asarray(logits, np.float64)
    if temperature is None or temperature <= 0:
        return logits.argmax(-1)
    z = logits / temperature
    if top_k is not None and 0 < top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    if top_p is not None and 0 < top_p < 1:
        order = np.argsort(-p, axis=-1)
        sp = np.take_along_axis(p, order, -1)
        keep = np.cumsum(sp, -1) - sp < top_p          # include the token crossing top_p
        mask = np.zeros_like(keep)
        np.put_along_axis(mask, order, keep, -1)
        p = np.where(mask, p, 0.0)
        p /= p.sum(-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, -1) < u).sum(-1), p.shape[-1] - 1)


def _as_batch(prompt_ids, attention_mask):
    ids = prompt_ids.numpy() if isinstance(prompt_ids, s4.Tensor) else prompt_ids
    if isinstance(ids, (list, tuple)) and ids and not isinstance(ids[0], (list, tuple,
                                                                          np.ndarray)):
        ids = [ids]
    if isinstance(ids, (list, tuple)) and attention_mask is None and \
            len({len(r) for r in ids}) > 1:
        raise ValueError("generate: prompts of different lengths need padding and an "
                         "attention_mask (e.g. Tokenizer.encode_batch)")
    ids = np.asarray(ids, np.int64)
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError(f"generate: prompt_ids must be [batch, seq] with seq > 0, got shape "
                         f"{ids.shape}")
    mask = np.ones(ids.shape, np.int64) if attention_mask is None else (
        attention_mask.numpy() if isinstance(attention_mask, s4.Tensor)
        else np.asarray(attention_mask)).astype(np.int64)
    if mask.shape != ids.shape:
        raise ValueError(f"generate: attention_mask shape {mask.shape} != prompt shape "
                         f"{ids.shape}")
    return ids, mask


def generate(model, prompt_ids, max_new_tokens: int = 32, *, attention_mask=None,
             temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
             seed: int = 0, stop_tokens: Sequence[int] | None = None,
             stream: Callable[[np.ndarray], None] | None = None):
    """Prompt ``[B, T]`` (a Tensor, array or list; left-padded batches with an
    ``attention_mask``) → Tensor ``[B, T + n]`` of the prompt and up to ``max_new_tokens``
    generated ids. Greedy when ``temperature`` is 0; otherwise sampled (``top_k``, ``top_p``,
    ``seed``). A row stops at a token of ``stop_tokens`` (default: the config's eos) and is
    padded after it; ``stream(tokens [B])`` is called with each step's tokens."""
    c = model.config
    ids, mask = _as_batch(prompt_ids, attention_mask)
    b, t = ids.shape
    stop = set([c.eos_token_id] if stop_tokens is None else stop_tokens)
    rng = np.random.default_rng(seed)
    dtype = model.model.embed_tokens.weight.dtype
    cache = KVCache(c, b, t + max_new_tokens, dtype)
    # positions count real tokens (left padding shifts each row), as transformers' generate
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    logits, kvs = _PREFILL(model, s4.Tensor(ids.astype(np.int32)),
                           s4.Tensor(mask.astype(np.int32)), s4.Tensor(pos.astype(np.int32)))
    cache.fill(kvs, mask)
    next_pos = pos[:, -1] + 1
    out = [ids]
    done = np.zeros(b, bool)
    leaves, treedef = s4.tree.flatten(model)
    decode = _flat_decode(treedef, len(leaves), len(cache.layers))
    flat_cache = [t for kv in cache.layers for t in kv]
    for step in range(max_new_tokens):
        tok = sample(logits.numpy(), temperature, top_k, top_p, rng)
        tok = np.where(done, c.pad_token_id, tok)
        out.append(tok[:, None])
        if stream is not None:
            stream(tok)
        done |= np.array([int(x) in stop for x in tok.tolist()], bool)
        if done.all() or step == max_new_tokens - 1:
            break
        masks, slots = cache.step_inputs()
        logits, *flat_cache = decode(*leaves, *flat_cache,
                                     s4.Tensor(tok[:, None].astype(np.int32)),
                                     s4.Tensor(next_pos[:, None].astype(np.int32)),
                                     masks[FULL], masks[SLIDING], slots[FULL], slots[SLIDING])
        next_pos = next_pos + 1
    cache.layers = [(flat_cache[2 * i], flat_cache[2 * i + 1])
                    for i in range(len(cache.layers))]
    return s4.Tensor(np.concatenate(out, axis=1).astype(np.int32))
