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


def apply_rope(x, cos, sin):
    """Half-split rotation of ``x`` ``[B, heads, T, hd]`` by tables ``[B or 1, 1, T, hd]``."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    rotated = s4.concatenate([-x2, x1], axis=-1)
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

    def __call__(self, x, cos, sin, mask):
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
        k = apply_rope(s4.permute_dims(k, (0, 2, 1, 3)), cos, sin)     # [B, KV, S, hd]
        v = s4.permute_dims(v, (0, 2, 1, 3))
        # query heads h = kv * g + j share kv head kv: group them instead of repeating K/V
        qg = q.reshape((b, nkv, g * t, hd))
        scores = s4.matmul(qg, s4.matrix_transpose(k)) * c.query_scale   # [B, KV, g*T, S]
        if c.attn_logit_softcap is not None:
            cap = c.attn_logit_softcap
            scores = s4.tanh(scores / cap) * cap
        scores = scores.reshape((b, nkv, g, t, scores.shape[-1])).astype(s4.float32)
        scores = s4.where(mask, scores, float(np.finfo(np.float32).min))
        probs = s4.softmax(scores, axis=-1).astype(q.dtype)
        out = s4.matmul(probs.reshape((b, nkv, g * t, -1)), v)        # [B, KV, g*T, hd]
        out = s4.permute_dims(out.reshape((b, nh, t, hd)), (0, 2, 1, 3)).reshape((b, t, nh * hd))
        return self.o_proj(out)


class DecoderLayer(s4.nn.Layer):
    """``h = x + post_attn_norm(attn(input_norm(x)))``;
    ``out = h + post_ffw_norm(mlp(pre_ffw_norm(h)))``."""

    self_attn: Attention
    mlp: MLP
    input_layernorm: RMSNorm
    post_attention_layernorm: RMSNorm
    pre_feedforward_layernorm: RMSNorm
    post_feedforward_layernorm: RMSNorm

    def __call__(self, x, cos, sin, mask):
        h = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin,
                                                             mask))
        return h + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(h)))


class GemmaModel(s4.nn.Layer):
    """Embedding, decoder layers, final norm: hidden states ``[B, T, d]``."""

    embed_tokens: Embedding
    layers: list
    norm: RMSNorm
    config: GemmaConfig = s4.no_derivative(default=None)

    def __call__(self, input_ids, attention_mask=None):
        c = self.config
        ids = s4.asarray(input_ids)
        if ids.ndim != 2:
            raise s4.ShapeError(f"Gemma: input_ids must be [batch, seq], got shape {ids.shape}")
        b, t = ids.shape
        w = self.embed_tokens.weight
        x = self.embed_tokens(ids) * s4.Tensor(np.asarray(math.sqrt(c.hidden_size),
                                                          dtype=w.dtype))
        positions = s4.arange(t, dtype=s4.int32)
        masks = attention_masks(c, t, attention_mask)
        tables = {}
        for kind in set(c.layer_types):
            base, scaling = c.rope(kind)
            cos, sin = rope_tables(positions, c.head_dim, base, scaling, x.dtype)
            tables[kind] = (cos[None, None], sin[None, None])
        for layer, kind in zip(self.layers, c.layer_types):
            cos, sin = tables[kind]
            x = layer(x, cos, sin, masks[kind])
        return self.norm(x)


def attention_masks(c: GemmaConfig, t: int, attention_mask=None) -> dict:
    """Boolean masks ``[B or 1, 1, 1, T, T]`` per layer type: causal, the sliding window
    ``i - W < j <= i`` on sliding layers, and padding (``attention_mask[b, j] == 0``)."""
    i = np.arange(t)[:, None]
    j = np.arange(t)[None, :]
    causal = j <= i
    out = {FULL: causal, SLIDING: causal & (j > i - c.sliding_window)}
    out = {k: s4.Tensor(v[None, None, None]) for k, v in out.items()}
    if attention_mask is not None:
        keep = s4.asarray(attention_mask) != 0                       # [B, T]
        keep = keep[:, None, None, None, :]
        out = {k: v & keep for k, v in out.items()}
    return out


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

    def __call__(self, input_ids, attention_mask=None):
        h = self.model(input_ids, attention_mask)
        logits = s4.matmul(h, s4.matrix_transpose(self.model.embed_tokens.weight))
        cap = self.config.final_logit_softcap
        if cap is not None:
            logits = s4.tanh(logits / cap) * cap
        return logits


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
