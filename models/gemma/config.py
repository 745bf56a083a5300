"""``GemmaConfig``: the hyperparameters of a Gemma 2 or Gemma 3 text model.

Presets hold every published size (values from ``shared/specs/GEMMA.md``'s size table) and
small ones for a CPU (``gemma3-tiny``, ``gemma3-small``, ``gemma2-tiny``);
:meth:`GemmaConfig.from_hf` reads a Hugging Face ``config.json`` (transformers 4.x and 5.x
spellings of the RoPE settings).

>>> from s4tf_models.gemma import GemmaConfig
>>> c = GemmaConfig.preset("gemma3-1b")
>>> c.num_layers, c.sliding_window, c.layer_types.count("full_attention")
(26, 512, 4)
>>> round(c.query_scale, 6) == round(256 ** -0.5, 6)
True
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

SLIDING, FULL = "sliding_attention", "full_attention"


@dataclass(frozen=True)
class GemmaConfig:
    """A Gemma text model's shape and numerics. ``generation`` is 2 or 3.

    Frozen and hashable: a model's config is static structure of its pytree (part of a
    compiled step's cache key), and ``replace`` makes changed copies."""

    generation: int = 3
    vocab_size: int = 262144
    hidden_size: int = 1152
    intermediate_size: int = 6912
    num_layers: int = 26
    num_heads: int = 4
    num_kv_heads: int = 1
    head_dim: int = 256
    sliding_window: int = 512
    #: one of SLIDING / FULL per layer; default: Gemma 2 alternates (layer 0 local), Gemma 3
    #: makes every 6th layer global
    layer_types: tuple = ()
    rope_local_base: float = 10_000.0
    rope_global_base: float = 1_000_000.0
    #: linear RoPE scaling of the global layers (Gemma 3 4B/12B/27B: 8)
    rope_global_scaling: float = 1.0
    query_pre_attn_scalar: float = 256.0
    attn_logit_softcap: float | None = None
    final_logit_softcap: float | None = None
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 32768
    pad_token_id: int = 0
    eos_token_id: int = 1
    bos_token_id: int = 2
    tie_word_embeddings: bool = True

    def __post_init__(self):
        if self.generation not in (2, 3):
            raise ValueError(f"GemmaConfig: generation must be 2 or 3, got {self.generation}")
        types = self.layer_types
        if not types:
            period = 2 if self.generation == 2 else 6
            types = [SLIDING if (i + 1) % period else FULL for i in range(self.num_layers)]
        object.__setattr__(self, "layer_types", tuple(types))
        if len(self.layer_types) != self.num_layers:
            raise ValueError(f"GemmaConfig: {len(self.layer_types)} layer_types for "
                             f"{self.num_layers} layers")
        bad = sorted(set(self.layer_types) - {SLIDING, FULL})
        if bad:
            raise ValueError(f"GemmaConfig: unknown layer types {bad}; use {SLIDING!r} or "
                             f"{FULL!r}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"GemmaConfig: num_heads ({self.num_heads}) must be a multiple of "
                             f"num_kv_heads ({self.num_kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"GemmaConfig: head_dim must be even for RoPE, got {self.head_dim}")

    @property
    def query_scale(self) -> float:
        """The factor scaling q·k: ``query_pre_attn_scalar ** -0.5``."""
        return float(self.query_pre_attn_scalar) ** -0.5

    @property
    def qk_norm(self) -> bool:
        """Gemma 3 normalizes queries and keys per head (RMSNorm) before RoPE."""
        return self.generation == 3

    def rope(self, layer_type: str) -> tuple[float, float]:
        """(base, linear scaling factor) of RoPE on layers of ``layer_type``."""
        if self.generation == 2:
            return self.rope_local_base, 1.0       # Gemma 2: one base everywhere
        if layer_type == FULL:
            return self.rope_global_base, self.rope_global_scaling
        return self.rope_local_base, 1.0

    # ---- presets ---------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str) -> "GemmaConfig":
        """A published size (``gemma2-2b`` … ``gemma3-27b``) or a small one (``gemma3-tiny``)."""
        try:
            kw = PRESETS[name]
        except KeyError:
            raise ValueError(f"GemmaConfig.preset: unknown preset {name!r}; choose from "
                             f"{', '.join(PRESETS)}") from None
        return cls(**kw)

    # ---- Hugging Face ----------------------------------------------------------------------

    @classmethod
    def from_hf(cls, source) -> "GemmaConfig":
        """From a Hugging Face ``config.json`` (a path, a folder holding one, or its dict).

        Reads ``model_type`` gemma2 / gemma3_text / gemma3 (the text part of a multimodal
        config), ``layer_types`` or ``sliding_window_pattern``, and RoPE settings either as
        transformers 5's ``rope_parameters`` or 4.x's ``rope_theta`` /
        ``rope_local_base_freq`` / ``rope_scaling``."""
        d = source
        if not isinstance(source, dict):
            path = os.fspath(source)
            if os.path.isdir(path):
                path = os.path.join(path, "config.json")
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        if d.get("model_type") == "gemma3" and "text_config" in d:
            d = dict(d["text_config"], model_type="gemma3_text")
        mt = d.get("model_type", "gemma3_text")
        if mt not in ("gemma2", "gemma3_text"):
            raise ValueError(f"GemmaConfig.from_hf: model_type {mt!r} is not a Gemma 2/3 text "
                             "model")
        gen = 2 if mt == "gemma2" else 3
        n = d["num_hidden_layers"]
        types = d.get("layer_types")
        if not types and d.get("sliding_window_pattern"):
            p = d["sliding_window_pattern"]
            types = [SLIDING if (i + 1) % p else FULL for i in range(n)]
        local_base, global_base, scaling = _hf_rope(d, gen)
        eos = d.get("eos_token_id", 1)
        return cls(
            generation=gen, vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
            intermediate_size=d["intermediate_size"], num_layers=n,
            num_heads=d["num_attention_heads"], num_kv_heads=d["num_key_value_heads"],
            head_dim=d.get("head_dim") or d["hidden_size"] // d["num_attention_heads"],
            sliding_window=d.get("sliding_window") or 4096, layer_types=tuple(types or ()),
            rope_local_base=local_base, rope_global_base=global_base,
            rope_global_scaling=scaling,
            query_pre_attn_scalar=d.get("query_pre_attn_scalar") or 256,
            attn_logit_softcap=d.get("attn_logit_softcapping"),
            final_logit_softcap=d.get("final_logit_softcapping"),
            rms_norm_eps=d.get("rms_norm_eps", 1e-6),
            max_position_embeddings=d.get("max_position_embeddings", 8192),
            pad_token_id=d.get("pad_token_id", 0) or 0,
            eos_token_id=eos[0] if isinstance(eos, list) else eos,
            bos_token_id=d.get("bos_token_id", 2),
            tie_word_embeddings=d.get("tie_word_embeddings", True))

    def to_hf(self) -> dict:
        """The transformers 5 ``config.json`` dict of this config."""
        rope = {"sliding_attention": {"rope_type": "default", "rope_theta": self.rope_local_base}}
        full = {"rope_type": "default", "rope_theta": self.rope_global_base}
        if self.rope_global_scaling != 1.0:
            full = {"rope_type": "linear", "factor": self.rope_global_scaling,
                    "rope_theta": self.rope_global_base}
        rope["full_attention"] = full
        if self.generation == 2:
            rope = {"rope_type": "default", "rope_theta": self.rope_local_base}
        return {
            "architectures": ["Gemma2ForCausalLM" if self.generation == 2
                              else "Gemma3ForCausalLM"],
            "model_type": "gemma2" if self.generation == 2 else "gemma3_text",
            "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim, "sliding_window": self.sliding_window,
            "layer_types": list(self.layer_types), "rope_parameters": rope,
            "query_pre_attn_scalar": self.query_pre_attn_scalar,
            "attn_logit_softcapping": self.attn_logit_softcap,
            "final_logit_softcapping": self.final_logit_softcap,
            "rms_norm_eps": self.rms_norm_eps,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_activation": "gelu_pytorch_tanh", "pad_token_id": self.pad_token_id,
            "eos_token_id": self.eos_token_id, "bos_token_id": self.bos_token_id,
            "tie_word_embeddings": self.tie_word_embeddings, "attention_bias": False,
        }

    def replace(self, **changes) -> "GemmaConfig":
        """A copy with ``changes`` (layer types recomputed unless given)."""
        if "num_layers" in changes and "layer_types" not in changes:
            changes["layer_types"] = ()
        return dataclasses.replace(self, **changes)


def _hf_rope(d: dict, gen: int) -> tuple[float, float, float]:
    """(local base, global base, global linear scaling) from either config spelling."""
    rp = d.get("rope_parameters")
    if isinstance(rp, dict) and ("full_attention" in rp or "sliding_attention" in rp):
        loc = rp.get("sliding_attention", {})
        glob = rp.get("full_attention", {})
        scaling = glob.get("factor", 1.0) if glob.get("rope_type") == "linear" else 1.0
        return (loc.get("rope_theta", 10_000.0), glob.get("rope_theta", 1_000_000.0),
                float(scaling))
    if isinstance(rp, dict):                       # one setting for every layer (Gemma 2)
        base = rp.get("rope_theta", 10_000.0)
        scaling = rp.get("factor", 1.0) if rp.get("rope_type") == "linear" else 1.0
        return base, base, float(scaling)
    theta = d.get("rope_theta", 10_000.0 if gen == 2 else 1_000_000.0)
    local = d.get("rope_local_base_freq", theta if gen == 2 else 10_000.0)
    rs = d.get("rope_scaling") or {}
    scaling = rs.get("factor", 1.0) if rs.get("rope_type", rs.get("type")) == "linear" else 1.0
    return local, theta, float(scaling)


def _g2(**kw):
    return dict(generation=2, vocab_size=256000, sliding_window=4096, attn_logit_softcap=50.0,
                final_logit_softcap=30.0, max_position_embeddings=8192,
                rope_local_base=10_000.0, rope_global_base=10_000.0, **kw)


def _g3(**kw):
    kw.setdefault("vocab_size", 262208)
    kw.setdefault("sliding_window", 1024)
    kw.setdefault("max_position_embeddings", 131072)
    return dict(generation=3, **kw)


#: published sizes (GEMMA.md §1) and small presets for a CPU
PRESETS: dict = {
    "gemma2-2b": _g2(hidden_size=2304, intermediate_size=9216, num_layers=26, num_heads=8,
                     num_kv_heads=4, head_dim=256, query_pre_attn_scalar=256),
    "gemma2-9b": _g2(hidden_size=3584, intermediate_size=14336, num_layers=42, num_heads=16,
                     num_kv_heads=8, head_dim=256, query_pre_attn_scalar=256),
    "gemma2-27b": _g2(hidden_size=4608, intermediate_size=36864, num_layers=46, num_heads=32,
                      num_kv_heads=16, head_dim=128, query_pre_attn_scalar=144),
    "gemma3-270m": _g3(vocab_size=262144, hidden_size=640, intermediate_size=2048, num_layers=18,
                       num_heads=4, num_kv_heads=1, head_dim=256, sliding_window=512,
                       max_position_embeddings=32768),
    "gemma3-1b": _g3(vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_layers=26,
                     num_heads=4, num_kv_heads=1, head_dim=256, sliding_window=512,
                     max_position_embeddings=32768),
    "gemma3-4b": _g3(hidden_size=2560, intermediate_size=10240, num_layers=34, num_heads=8,
                     num_kv_heads=4, head_dim=256, rope_global_scaling=8.0),
    "gemma3-12b": _g3(hidden_size=3840, intermediate_size=15360, num_layers=48, num_heads=16,
                      num_kv_heads=8, head_dim=256, rope_global_scaling=8.0),
    "gemma3-27b": _g3(hidden_size=5376, intermediate_size=21504, num_layers=62, num_heads=32,
                      num_kv_heads=16, head_dim=128, query_pre_attn_scalar=168,
                      rope_global_scaling=8.0),
    # small presets for this machine: the benchmark config of issue 6 and a smaller one
    "gemma3-tiny": _g3(vocab_size=1024, hidden_size=256, intermediate_size=1024, num_layers=6,
                       num_heads=4, num_kv_heads=1, head_dim=64, sliding_window=64,
                       query_pre_attn_scalar=64, max_position_embeddings=2048),
    "gemma3-small": _g3(vocab_size=4096, hidden_size=512, intermediate_size=2048,
                        num_layers=12, num_heads=8, num_kv_heads=2, head_dim=64,
                        sliding_window=128, query_pre_attn_scalar=64,
                        max_position_embeddings=4096),
    "gemma2-tiny": _g2(hidden_size=256, intermediate_size=1024, num_layers=4, num_heads=4,
                       num_kv_heads=2, head_dim=64, query_pre_attn_scalar=64) | dict(
                           vocab_size=1024, sliding_window=64, max_position_embeddings=2048),
}
