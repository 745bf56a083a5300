"""A hand-written Gemma 3 text model in JAX: the peer of ``bench_gemma`` (peer code only).

Written from the architecture (GEMMA.md) and transformers' ``Gemma3ForCausalLM`` (eager
attention), independent of s4tf_py: RMSNorm ``x * rsqrt(mean(x²) + eps) * (1 + w)`` in float32,
sandwich norms around attention and MLP, GeGLU with tanh GELU, embeddings scaled by ``sqrt(d)``
rounded to the weight dtype, tied output projection, grouped-query attention (query heads
``kv * g + j`` share kv head ``kv``), half-rotation RoPE (base 10k on sliding layers, 1M on
global ones, optional linear scaling on global layers), the sliding window ``i - W < j <= i``,
QK-norm, scores scaled by ``query_pre_attn_scalar ** -0.5``, softmax in float32.

* :func:`forward` / :func:`loss_fn`: logits ``[B, T, V]`` and the mean next-token softmax
  cross-entropy (float32).
* :func:`make_train_step`: ``jax.jit`` of ``value_and_grad`` plus a hand-written AdamW
  (PyTorch's: decoupled decay ``p * (1 - lr * wd)`` then the bias-corrected Adam step), with
  params and moments donated.
* :func:`make_generate`: a fully jitted greedy generate: one prefill pass that fills a
  preallocated KV cache ``[B, KV, T + n, hd]`` per layer, then ``lax.fori_loop`` over the
  decode steps (``dynamic_update_slice`` of each step's keys and values, masks from the
  position: causal, and the window on sliding layers).

Parameters are a pytree built from a transformers-named state dict (:func:`params_from_hf`).
Import this module after ``_common.peer("jax")`` (which puts jax on the CPU).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

SLIDING, FULL = "sliding_attention", "full_attention"


class Config(NamedTuple):
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    sliding_window: int
    layer_types: tuple
    rope_local_base: float
    rope_global_base: float
    rope_global_scaling: float
    query_pre_attn_scalar: float
    rms_norm_eps: float

    @classmethod
    def from_hf(cls, d: dict) -> "Config":
        """From a transformers 5 Gemma 3 text ``config.json`` dict (``rope_parameters`` per
        layer type)."""
        rp = d["rope_parameters"]
        glob = rp["full_attention"]
        scaling = glob.get("factor", 1.0) if glob.get("rope_type") == "linear" else 1.0
        return cls(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
                   intermediate_size=d["intermediate_size"],
                   num_layers=d["num_hidden_layers"], num_heads=d["num_attention_heads"],
                   num_kv_heads=d["num_key_value_heads"], head_dim=d["head_dim"],
                   sliding_window=d["sliding_window"], layer_types=tuple(d["layer_types"]),
                   rope_local_base=float(rp["sliding_attention"]["rope_theta"]),
                   rope_global_base=float(glob["rope_theta"]),
                   rope_global_scaling=float(scaling),
                   query_pre_attn_scalar=float(d["query_pre_attn_scalar"]),
                   rms_norm_eps=float(d["rms_norm_eps"]))


_LAYER_KEYS = {
    "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight",
    "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight",
    "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight",
    "gate": "mlp.gate_proj.weight", "up": "mlp.up_proj.weight", "down": "mlp.down_proj.weight",
    "ln_in": "input_layernorm.weight", "ln_post_attn": "post_attention_layernorm.weight",
    "ln_pre_ffw": "pre_feedforward_layernorm.weight",
    "ln_post_ffw": "post_feedforward_layernorm.weight",
}


def params_from_hf(state: dict, cfg: Config) -> dict:
    """The pytree ``{"embed", "norm", "layers": [{...}, ...]}`` of numpy arrays from
    transformers' parameter names (linear weights stay ``[out, in]``)."""
    return {"embed": state["model.embed_tokens.weight"], "norm": state["model.norm.weight"],
            "layers": [{k: state[f"model.layers.{i}.{name}"] for k, name in _LAYER_KEYS.items()}
                       for i in range(cfg.num_layers)]}


def params_to_hf(params: dict) -> dict:
    """The inverse of :func:`params_from_hf` (numpy arrays by transformers' names)."""
    out = {"model.embed_tokens.weight": np.asarray(params["embed"]),
           "model.norm.weight": np.asarray(params["norm"])}
    for i, layer in enumerate(params["layers"]):
        for k, name in _LAYER_KEYS.items():
            out[f"model.layers.{i}.{name}"] = np.asarray(layer[k])
    return out


# ---- the model -------------------------------------------------------------------------------

def rms_norm(x, w, eps):
    xf = x.astype(jnp.float32)
    y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + eps)
    return (y * (1.0 + w.astype(jnp.float32))).astype(x.dtype)


def _inv_freq(cfg: Config, kind: str) -> np.ndarray:
    """RoPE inverse frequencies in float32, as transformers computes them."""
    hd = cfg.head_dim
    base = cfg.rope_global_base if kind == FULL else cfg.rope_local_base
    scaling = cfg.rope_global_scaling if kind == FULL else 1.0
    inv = 1.0 / (np.float32(base) ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32)
                                      / np.float32(hd)))
    return (inv / np.float32(scaling)).astype(np.float32)


def rope_tables(cfg: Config, kind: str, positions, dtype):
    """(cos, sin) ``[T, hd]`` for int ``positions`` ``[T]``; angles in float32."""
    ang = positions.astype(jnp.float32)[:, None] * jnp.asarray(_inv_freq(cfg, kind))[None, :]
    ang = jnp.concatenate([ang, ang], axis=-1)
    return jnp.cos(ang).astype(dtype), jnp.sin(ang).astype(dtype)


def apply_rope(x, cos, sin):
    """``x`` ``[B, T, heads, hd]``, tables ``[T, hd]``: ``x * cos + rotate_half(x) * sin``."""
    h = x.shape[-1] // 2
    rot = jnp.concatenate([-x[..., h:], x[..., :h]], axis=-1)
    return x * cos[None, :, None, :] + rot * sin[None, :, None, :]


def _linear(x, w):
    return x @ w.T


def _attend(cfg: Config, q, k, v, mask):
    """q ``[B, T, H, hd]``, k/v ``[B, S, KV, hd]``, mask bool ``[T, S]`` → ``[B, T, H*hd]``."""
    b, t, nh, hd = q.shape
    nkv = cfg.num_kv_heads
    g = nh // nkv
    qg = q.reshape(b, t, nkv, g, hd)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k) * (cfg.query_pre_attn_scalar ** -0.5)
    scores = scores.astype(jnp.float32)
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v)
    return out.reshape(b, t, nh * hd)


def _qkv(cfg: Config, p: dict, h, cos, sin):
    b, t, _ = h.shape
    hd = cfg.head_dim
    q = _linear(h, p["q"]).reshape(b, t, cfg.num_heads, hd)
    k = _linear(h, p["k"]).reshape(b, t, cfg.num_kv_heads, hd)
    v = _linear(h, p["v"]).reshape(b, t, cfg.num_kv_heads, hd)
    q = rms_norm(q, p["q_norm"], cfg.rms_norm_eps)
    k = rms_norm(k, p["k_norm"], cfg.rms_norm_eps)
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin), v


def _mlp(p: dict, h):
    return _linear(jax.nn.gelu(_linear(h, p["gate"]), approximate=True) * _linear(h, p["up"]),
                   p["down"])


def _layer(cfg: Config, p: dict, x, cos, sin, mask, kv=None):
    """One decoder layer. ``kv``: ``None`` (attend to this call's keys) or
    ``(k_cache, v_cache, pos)``, caches ``[B, S, KV, hd]`` into which this call's keys are
    written at ``pos`` first. Returns (output, (k, v)) where k/v are this call's keys or the
    updated caches."""
    eps = cfg.rms_norm_eps
    q, k, v = _qkv(cfg, p, rms_norm(x, p["ln_in"], eps), cos, sin)
    if kv is not None:
        kc, vc, pos = kv
        k = jax.lax.dynamic_update_slice(kc, k, (0, pos, 0, 0))
        v = jax.lax.dynamic_update_slice(vc, v, (0, pos, 0, 0))
    a = _linear(_attend(cfg, q, k, v, mask), p["o"])
    h = x + rms_norm(a, p["ln_post_attn"], eps)
    out = h + rms_norm(_mlp(p, rms_norm(h, p["ln_pre_ffw"], eps)), p["ln_post_ffw"], eps)
    return out, (k, v)


def _embed(cfg: Config, params, ids):
    e = params["embed"]
    return e[ids] * jnp.asarray(math.sqrt(cfg.hidden_size), dtype=e.dtype)


def _masks(cfg: Config, q_pos, k_pos):
    """Boolean ``[T, S]`` per layer type: causal, and the window on sliding layers."""
    i, j = q_pos[:, None], k_pos[None, :]
    causal = j <= i
    return {FULL: causal, SLIDING: causal & (j > i - cfg.sliding_window)}


def hidden_states(cfg: Config, params, ids):
    """(final-normed hidden states ``[B, T, d]``, per-layer ``(k, v)`` ``[B, T, KV, hd]``)."""
    t = ids.shape[1]
    x = _embed(cfg, params, ids)
    pos = jnp.arange(t, dtype=jnp.int32)
    masks = _masks(cfg, pos, pos)
    # (dict.fromkeys, not set: a set's order changes with the process's hash seed, and with it
    # the program and so jax's persistent-cache key)
    kinds = dict.fromkeys(cfg.layer_types)
    tables = {kind: rope_tables(cfg, kind, pos, x.dtype) for kind in kinds}
    kvs = []
    for p, kind in zip(params["layers"], cfg.layer_types):
        x, kv = _layer(cfg, p, x, *tables[kind], masks[kind])
        kvs.append(kv)
    return rms_norm(x, params["norm"], cfg.rms_norm_eps), kvs


def forward(cfg: Config, params, ids):
    """Logits ``[B, T, V]`` (tied output projection)."""
    h, _ = hidden_states(cfg, params, ids)
    return _linear(h, params["embed"])


def loss_fn(cfg: Config, params, x, y):
    """Mean softmax cross-entropy of next-token targets ``y`` ``[B, T]`` in float32."""
    logits = forward(cfg, params, x).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))


# ---- training --------------------------------------------------------------------------------

def make_train_step(cfg: Config, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.01):
    """``step(params, m, v, x, y, t: float) -> (params, m, v, loss)``, jitted, the first three
    donated. AdamW as ``torch.optim.AdamW``: ``p *= 1 - lr * wd``; moments; then
    ``p -= lr / (1 - b1**t) * m / (sqrt(v) / sqrt(1 - b2**t) + eps)``."""

    def step(params, m, v, x, y, t):
        loss, g = jax.value_and_grad(lambda p: loss_fn(cfg, p, x, y))(params)
        m = jax.tree_util.tree_map(lambda mi, gi: b1 * mi + (1 - b1) * gi, m, g)
        v = jax.tree_util.tree_map(lambda vi, gi: b2 * vi + (1 - b2) * gi * gi, v, g)
        step_size = lr / (1 - b1 ** t)
        c2 = jnp.sqrt(1 - b2 ** t)
        params = jax.tree_util.tree_map(
            lambda p, mi, vi: p * (1 - lr * wd) - step_size * mi / (jnp.sqrt(vi) / c2 + eps),
            params, m, v)
        return params, m, v, loss

    return jax.jit(step, donate_argnums=(0, 1, 2))


# ---- generation ------------------------------------------------------------------------------

def make_generate(cfg: Config, max_new_tokens: int):
    """``generate(params, prompt [B, T] int32) -> new tokens [B, max_new_tokens]``, greedy,
    one jitted program: prefill, then ``lax.fori_loop`` over the decode steps."""
    n = max_new_tokens

    def decode(params, caches, tok, pos):
        x = _embed(cfg, params, tok)                                  # [B, 1, d]
        qpos = jnp.reshape(pos, (1,)).astype(jnp.int32)
        s = caches[0][0].shape[1]
        masks = _masks(cfg, qpos, jnp.arange(s, dtype=jnp.int32))
        kinds = dict.fromkeys(cfg.layer_types)          # a fixed order (see hidden_states)
        tables = {kind: rope_tables(cfg, kind, qpos, x.dtype) for kind in kinds}
        new = []
        for p, kind, (kc, vc) in zip(params["layers"], cfg.layer_types, caches):
            x, kv = _layer(cfg, p, x, *tables[kind], masks[kind], (kc, vc, pos))
            new.append(kv)
        h = rms_norm(x, params["norm"], cfg.rms_norm_eps)
        logits = _linear(h[:, -1], params["embed"])
        return jnp.argmax(logits, axis=-1).astype(jnp.int32), new

    def generate(params, prompt):
        b, t = prompt.shape
        s = t + n
        h, kvs = hidden_states(cfg, params, prompt)
        logits = _linear(h[:, -1], params["embed"])
        tok = jnp.argmax(logits, axis=-1).astype(jnp.int32)           # [B]
        dt = params["embed"].dtype
        caches = []
        for k, v in kvs:
            shape = (b, s, cfg.num_kv_heads, cfg.head_dim)
            caches.append((jax.lax.dynamic_update_slice(jnp.zeros(shape, dt), k, (0, 0, 0, 0)),
                           jax.lax.dynamic_update_slice(jnp.zeros(shape, dt), v, (0, 0, 0, 0))))
        out = jnp.zeros((b, n), jnp.int32).at[:, 0].set(tok)

        def body(i, carry):
            out, caches, tok = carry
            nxt, caches = decode(params, caches, tok[:, None], t + i)
            out = jax.lax.dynamic_update_slice(out, nxt[:, None], (0, i + 1))
            return out, caches, nxt

        out, _, _ = jax.lax.fori_loop(0, n - 1, body, (out, caches, tok))
        return out

    return jax.jit(generate)
