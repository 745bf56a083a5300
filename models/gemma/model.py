"""The Gemma 2 / Gemma 3 decoder, written with ``import s4tf_py as s4`` only.

Every fact of ``shared/specs/GEMMA.md`` §2 is here: RMSNorm as ``x * rsqrt(mean(x²) + eps) *
(1 + w)`` computed in float32, sandwich norms around attention and MLP, GeGLU with tanh GELU,
embeddings scaled by ``sqrt(d)`` rounded to the weight dtype, tied embeddings, grouped-query
attention, half-rotation RoPE (per-layer-type base, linear scaling on global layers), sliding
windows with the boundary ``i - W < j <= i``, Gemma 2's attention and final soft-capping, Gemma
3's QK-norm and ``query_pre_attn_scalar``, and padding masks for batched prompts.

The module tree mirrors transformers' names, so a parameter's key path *is* its name in a
Hugging Face checkpoint (``model.layers.0.self_attn.q_proj.weight``); linear weights are
stored as transformers stores them, ``[out, in]`` (the product reads them transposed: a BLAS
flag, not a copy).

>>> import s4tf_py as s4
>>> from s4tf_models.gemma import GemmaConfig, GemmaForCausalLM
>>> model = GemmaForCausalLM(GemmaConfig.preset("gemma3-tiny").replace(num_layers=2), seed=0)
>>> model(s4.Tensor([[2, 17, 33]])).shape
(1, 3, 1024)
"""
from __future__ import annotations

import math

import numpy as np

import s4tf_py as s4

from .config import FULL, SLIDING, GemmaConfig


def _normal(shape, std, seed, dtype):
    return (s4.random.normal(tuple(shape), seed=int(seed)) * std).astype(dtype)


class Linear(s4.nn.Layer):
    """``x @ weight.T`` with ``weight`` shaped ``[out, in]`` (no bias, as in Gemma)."""

    weight: s4.Tensor

    def __call__(self, x):
        return s4.matmul(x, s4.matrix_transpose(self.weight))


class RMSNorm(s4.nn.Layer):
    """Gemma's RMSNorm: ``x * rsqrt(mean(x²) + eps) * (1 + w)`` in float32, cast back."""

    weight: s4.Tensor
    eps: float = s4.no_derivative(default=1e-6)

    def __call__(self, x):
        xf = x.astype(s4.float32)
        y = xf * s4.rsqrt(s4.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return (y * (1.0 + self.weight.astype(s4.float32))).astype(x.dtype)


class Embedding(s4.nn.Layer):
    """The token embedding table ``[vocab, d]`` (also the output projection: tied)."""

    weight: s4.Tensor

    def __call__(self, ids):
        return s4.take(self.weight, ids, axis=0)


class MLP(s4.nn.Layer):
    """GeGLU: ``down(gelu_tanh(gate(x)) * up(x))``."""

    gate_proj: Linear
    up_proj: Linear
    down_proj: Linear

    def __call__(self, x):
        return self.down_proj(s4.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


def rope_tables(positions, head_dim: int, base: float, scaling: float, dtype):
    """(cos, sin) ``[..., T, head_dim]`` for integer ``positions`` ``[..., T]``: angles in
    float32 (as transformers computes them), duplicated over both halves, cast to ``dtype``."""
    inv = 1.0 / (np.float32(base) ** (np.arange(0, head_dim, 2, dtype=np.int64)
                                      .astype(np.float32) / np.float32(head_dim)))
    inv = (inv / np.float32(scaling)).astype(np.float32)
    ang = positions.astype(s4.float32)[..., None] * s4.Tensor(inv)
    ang = s4.concatenate([ang, ang], axis=-1)
    return s4.cos(ang).astype(dtype), s4.sin(ang).astype(dtype)


def _half_rotation(hd: int, dtype) -> s4.Tensor:
    """``P`` with ``[x1, x2] @ P == [-x2, x1]`` (exact: one ±1 per column)."""
    h = hd // 2
    p = np.zeros((hd, hd), np.float32)
    p[np.arange(h) + h, np.arange(h)] = -1.0
    p[np.arange(h), np.arange(h) + h] = 1.0
    return s4.Tensor(p.astype(dtype))


def apply_rope(x, cos, sin):
    """Half-split rotation of ``x`` ``[B, heads, T, hd]`` by tables ``[B or 1, 1, T, hd]``:
    ``x * cos + rotate_half(x) * sin``. ``rotate_half`` is a product with a signed
    permutation: one fused product instead of two slices and a concatenation."""
    rotated = s4.matmul(x, _half_rotation(x.shape[-1], x.dtype))
    return x * cos + rotated * sin


class Attention(s4.nn.Layer):
    """Grouped-query self-attention of one layer (sliding or global)."""

    q_proj: Linear
    k_proj: Linear
    v_proj: Linear
    o_proj: Linear
    q_norm: RMSNorm | None = None
    k_norm: RMSNorm | None = None
    config: GemmaConfig = s4.no_derivative(default=None)
    layer_type: str = s4.no_derivative(default=FULL)

    def __call__(self, x, cos, sin, mask, cache=None, slot=None):
        """``x`` ``[B, T, d]`` → ``[B, T, d]``. Without ``cache`` the keys are this call's
        own; with ``cache = (k, v)`` (``[B, KV, S, hd]``) this call's keys and values are
        written at sequence slots ``slot`` first, ``mask`` ``[B, 1, 1, T, S]`` says which
        slots each query sees, and the updated cache is returned too."""
        c = self.config
        b, t, _ = x.shape
        hd, nh, nkv = c.head_dim, c.num_heads, c.num_kv_heads
        g = nh // nkv
        q = self.q_proj(x).reshape((b, t, nh, hd))
        k = self.k_proj(x).reshape((b, t, nkv, hd))
        v = self.v_proj(x).reshape((b, t, nkv, hd))
        if c.qk_norm:                        # Gemma 3: per head, after projection, before RoPE
            q, k = self.q_norm(q), self.k_norm(k)
        q = apply_rope(s4.permute_dims(q, (0, 2, 1, 3)), cos, sin)     # [B, H, T, hd]
        k = apply_rope(s4.permute_dims(k, (0, 2, 1, 3)), cos, sin)     # [B, KV, T, hd]
        v = s4.permute_dims(v, (0, 2, 1, 3))
        new_cache = (k, v)
        if cache is not None:
            k = s4.index_update(cache[0], slot, k, axis=2)
            v = s4.index_update(cache[1], slot, v, axis=2)
            new_cache = (k, v)
        elif mask.ndim == 6:                  # a blocked sliding-window mask
            out = _local_attention(q, k, v, c, mask)
            out = s4.permute_dims(out, (0, 2, 1, 3)).reshape((b, t, nh * hd))
            return self.o_proj(out), new_cache
        # query heads h = kv * g + j share kv head kv: group them instead of repeating K/V
        qg = q.reshape((b, nkv, g * t, hd))
        scores = s4.matmul(qg, s4.matrix_transpose(k))                  # [B, KV, g*T, S]
        # per (query head, position) rows first: the scale, soft-cap, mask and softmax then
        # fuse into one row kernel reading the product once
        scores = scores.reshape((b, nkv, g, t, scores.shape[-1])) * c.query_scale
        if c.attn_logit_softcap is not None:
            cap = c.attn_logit_softcap
            scores = s4.tanh(scores / cap) * cap
        scores = s4.where(mask, scores.astype(s4.float32), float(np.finfo(np.float32).min))
        probs = s4.softmax(scores, axis=-1).astype(q.dtype)
        out = s4.matmul(probs.reshape((b, nkv, g * t, -1)), v)        # [B, KV, g*T, hd]
        out = s4.permute_dims(out.reshape((b, nh, t, hd)), (0, 2, 1, 3)).reshape((b, t, nh * hd))
        return self.o_proj(out), new_cache


class DecoderLayer(s4.nn.Layer):
    """``h = x + post_attn_norm(attn(input_norm(x)))``;
    ``out = h + post_ffw_norm(mlp(pre_ffw_norm(h)))``."""

    self_attn: Attention
    mlp: MLP
    input_layernorm: RMSNorm
    post_attention_layernorm: RMSNorm
    pre_feedforward_layernorm: RMSNorm
    post_feedforward_layernorm: RMSNorm

    def __call__(self, x, cos, sin, mask, cache=None, slot=None):
        a, kv = self.self_attn(self.input_layernorm(x), cos, sin, mask, cache, slot)
        h = x + self.post_attention_layernorm(a)
        return h + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(h))), kv


class GemmaModel(s4.nn.Layer):
    """Embedding, decoder layers, final norm: hidden states ``[B, T, d]``."""

    embed_tokens: Embedding
    layers: list
    norm: RMSNorm
    config: GemmaConfig = s4.no_derivative(default=None)

    def __call__(self, input_ids, attention_mask=None, position_ids=None):
        return self.run(input_ids, attention_mask, position_ids)[0]

    def embed(self, ids):
        """Token embeddings scaled by ``sqrt(d)`` rounded to the weight dtype."""
        w = self.embed_tokens.weight
        scale = s4.Tensor(np.asarray(math.sqrt(self.config.hidden_size), dtype=w.dtype))
        return self.embed_tokens(ids) * scale

    def run(self, input_ids, attention_mask=None, position_ids=None, masks=None, caches=None,
            slots=None):
        """(hidden states, per-layer ``(k, v)``): without ``caches`` the keys of this call
        (a prefill); with them, the updated caches (a decode step; ``masks`` and ``slots``
        per layer type, from :class:`~s4tf_models.gemma.generate.KVCache`)."""
        c = self.config
        ids = s4.asarray(input_ids)
        if ids.ndim != 2:
            raise s4.ShapeError(f"Gemma: input_ids must be [batch, seq], got shape {ids.shape}")
        b, t = ids.shape
        x = self.embed(ids)
        if position_ids is None:
            positions = s4.arange(t, dtype=s4.int32)[None]
        else:
            positions = s4.asarray(position_ids)
        if masks is None:
            masks = attention_masks(c, t, attention_mask)
        tables = {}
        for kind in dict.fromkeys(c.layer_types):     # not a set: the same IR in every process
            base, scaling = c.rope(kind)
            cos, sin = rope_tables(positions, c.head_dim, base, scaling, x.dtype)
            tables[kind] = (cos[:, None], sin[:, None])          # [B or 1, 1, T, hd]
        kvs = []
        for i, (layer, kind) in enumerate(zip(self.layers, c.layer_types)):
            cos, sin = tables[kind]
            cache = caches[i] if caches is not None else None
            x, kv = layer(x, cos, sin, masks[kind], cache, slots[kind] if slots else None)
            kvs.append(kv)
        return self.norm(x), kvs


def attention_masks(c: GemmaConfig, t: int, attention_mask=None) -> dict:
    """Boolean masks per layer type: causal, the sliding window ``i - W < j <= i`` on
    sliding layers, and padding (``attention_mask[b, j] == 0``). Dense masks are
    ``[B or 1, 1, 1, T, T]``; when the window is under half the sequence, sliding layers get
    a blocked mask ``[B or 1, 1, nb, 1, W, 2W]`` instead (see :func:`_local_attention`)."""
    i = np.arange(t)[:, None]
    j = np.arange(t)[None, :]
    causal = j <= i
    keep = None if attention_mask is None else s4.asarray(attention_mask) != 0   # [B, T]
    full = s4.Tensor(causal[None, None, None])
    out = {FULL: full if keep is None else full & keep[:, None, None, None, :]}
    w = c.sliding_window
    if 2 * w < t:
        out[SLIDING] = _blocked_window_mask(t, w, keep)
    else:
        m = s4.Tensor((causal & (j > i - w))[None, None, None])
        out[SLIDING] = m if keep is None else m & keep[:, None, None, None, :]
    return out


def _blocked_window_mask(t: int, w: int, keep=None):
    """``[B or 1, 1, nb, 1, w, 2w]``: query ``r`` of block ``i`` (position ``i*w + r``) may
    see slot ``s`` of its keys (position ``(i-1)*w + s``, the previous block then its own)."""
    nb = -(-t // w)
    blk = np.arange(nb)[:, None, None]
    r = np.arange(w)[None, :, None]
    slot = np.arange(2 * w)[None, None, :]
    p = blk * w + r
    kpos = (blk - 1) * w + slot
    ok = (kpos >= 0) & (kpos <= p) & (kpos > p - w) & (kpos < t)
    m = s4.Tensor(ok[None, None, :, None])
    if keep is None:
        return m
    b = keep.shape[0]
    kp = s4.concatenate([s4.zeros((b, w), dtype=s4.bool_), keep,
                         s4.zeros((b, nb * w - t), dtype=s4.bool_)], axis=1)  # [B, (nb+1) w]
    prev, own = kp[:, :nb * w].reshape((b, nb, w)), kp[:, w:].reshape((b, nb, w))
    keys = s4.concatenate([prev, own], axis=-1)                          # [B, nb, 2w]
    return m & keys[:, None, :, None, None, :]


def _local_attention(q, k, v, c: GemmaConfig, mask):
    """Sliding-window attention in blocks of ``W`` queries: each block attends to its own keys
    and the previous block's (``2W`` slots, masked to the window), so scores are ``T x 2W``
    per head instead of ``T x T``. ``q`` ``[B, H, T, hd]``, ``k``/``v`` ``[B, KV, T, hd]`` →
    ``[B, H, T, hd]`` (before softmax, the same scale, soft-cap and mask as dense
    attention; masked slots get the same large negative score)."""
    b, nh, t, hd = q.shape
    nkv, w = k.shape[1], c.sliding_window
    g = nh // nkv
    nb = -(-t // w)
    tp = nb * w

    def pad_t(x):
        return x if tp == t else s4.concatenate(
            [x, s4.zeros(x.shape[:2] + (tp - t, hd), dtype=x.dtype)], axis=2)
    q, k, v = pad_t(q), pad_t(k), pad_t(v)
    # queries: [B, KV, nb, g*W, hd] (the g heads of one KV head, block by block)
    qb = s4.permute_dims(q.reshape((b, nkv, g, nb, w, hd)), (0, 1, 3, 2, 4, 5))
    qb = qb.reshape((b, nkv, nb, g * w, hd))

    def two_blocks(x):                   # [B, KV, nb, 2W, hd]: the previous block, then own
        xb = x.reshape((b, nkv, nb, w, hd))
        prev = s4.concatenate([s4.zeros((b, nkv, 1, w, hd), dtype=x.dtype), xb[:, :, :-1]],
                              axis=2)
        return s4.concatenate([prev, xb], axis=3)
    kb, vb = two_blocks(k), two_blocks(v)
    scores = s4.matmul(qb, s4.matrix_transpose(kb))                  # [B, KV, nb, g*W, 2W]
    scores = scores.reshape((b, nkv, nb, g, w, 2 * w)) * c.query_scale
    if c.attn_logit_softcap is not None:
        cap = c.attn_logit_softcap
        scores = s4.tanh(scores / cap) * cap
    scores = s4.where(mask, scores.astype(s4.float32), float(np.finfo(np.float32).min))
    probs = s4.softmax(scores, axis=-1).astype(q.dtype)
    out = s4.matmul(probs.reshape((b, nkv, nb, g * w, 2 * w)), vb)   # [B, KV, nb, g*W, hd]
    out = s4.permute_dims(out.reshape((b, nkv, nb, g, w, hd)), (0, 1, 3, 2, 4, 5))
    out = out.reshape((b, nh, tp, hd))
    return out if tp == t else out[:, :, :t]


class GemmaForCausalLM(s4.nn.Layer):
    """The causal language model: ``model(input_ids, attention_mask=None)`` → logits
    ``[batch, seq, vocab]``; ``model.config`` is its :class:`GemmaConfig`."""

    model: GemmaModel
    config: GemmaConfig = s4.no_derivative(default=None)

    def __init__(self, config: GemmaConfig = None, *, model: GemmaModel = None, seed: int = 0,
                 dtype=s4.float32):
        if model is None:
            if config is None:
                raise TypeError("GemmaForCausalLM needs a GemmaConfig")
            model = _build(config, seed, dtype)
        self.model = model
        self.config = config if config is not None else model.config

    def save(self, folder) -> None:
        """Write this model in the Hugging Face layout (``config.json``, safetensors)."""
        from .checkpoint import save
        save(self, folder)

    def __call__(self, input_ids, attention_mask=None, position_ids=None):
        return self.logits(self.model(input_ids, attention_mask, position_ids))

    def logits(self, hidden):
        """The output projection (tied to the embedding) and Gemma 2's final soft-cap."""
        logits = s4.matmul(hidden, s4.matrix_transpose(self.model.embed_tokens.weight))
        cap = self.config.final_logit_softcap
        if cap is not None:
            logits = s4.tanh(logits / cap) * cap
        return logits

    def generate(self, prompt_ids, max_new_tokens: int = 32, *, attention_mask=None,
                 temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None,
                 seed: int = 0, stop_tokens=None, stream=None):
        """Continue ``prompt_ids`` with a KV cache; see :func:`.generate.generate`."""
        from .generate import generate
        return generate(self, prompt_ids, max_new_tokens, attention_mask=attention_mask,
                        temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                        stop_tokens=stop_tokens, stream=stream)


def _build(c: GemmaConfig, seed: int, dtype, init: str = "normal") -> GemmaModel:
    """Random initialization as transformers': normal(0, 0.02) weights, zero norm weights
    (``init="zeros"``: all zeros, a skeleton for loading into)."""
    rng = np.random.SeedSequence(seed)
    seeds = iter(rng.generate_state(8 * c.num_layers + 2))
    std = 0.02

    def weight(shape):
        if init == "zeros":
            return s4.zeros(shape, dtype=dtype)
        return _normal(shape, std, next(seeds), dtype)

    def lin(out_f, in_f):
        return Linear(weight=weight((out_f, in_f)))

    def norm(n):
        return RMSNorm(weight=s4.zeros((n,), dtype=dtype), eps=c.rms_norm_eps)
    layers = []
    for kind in c.layer_types:
        attn = Attention(q_proj=lin(c.num_heads * c.head_dim, c.hidden_size),
                         k_proj=lin(c.num_kv_heads * c.head_dim, c.hidden_size),
                         v_proj=lin(c.num_kv_heads * c.head_dim, c.hidden_size),
                         o_proj=lin(c.hidden_size, c.num_heads * c.head_dim),
                         q_norm=norm(c.head_dim) if c.qk_norm else None,
                         k_norm=norm(c.head_dim) if c.qk_norm else None,
                         config=c, layer_type=kind)
        mlp = MLP(gate_proj=lin(c.intermediate_size, c.hidden_size),
                  up_proj=lin(c.intermediate_size, c.hidden_size),
                  down_proj=lin(c.hidden_size, c.intermediate_size))
        layers.append(DecoderLayer(self_attn=attn, mlp=mlp, input_layernorm=norm(c.hidden_size),
                                   post_attention_layernorm=norm(c.hidden_size),
                                   pre_feedforward_layernorm=norm(c.hidden_size),
                                   post_feedforward_layernorm=norm(c.hidden_size)))
    embed = Embedding(weight=weight((c.vocab_size, c.hidden_size)))
    return GemmaModel(embed_tokens=embed, layers=layers, norm=norm(c.hidden_size), config=c)
