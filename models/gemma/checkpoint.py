"""Hugging Face checkpoints: ``load(folder)`` and ``save(model, folder)``.

A folder holds ``config.json`` and ``model.safetensors`` (or shards with
``model.safetensors.index.json``), in float32, bfloat16 or float16. The model's key paths are
transformers' names, so loading is ``load_state`` with a name map that drops what a tied
model does not hold (``lm_head.weight``) and accepts the multimodal layout's text prefixes
(``language_model.model.`` / ``model.language_model.``). Tensors stream in one at a time
(peak memory stays near one copy of the model); torch is not needed.
"""
from __future__ import annotations

import json
import os

import numpy as np

import s4tf_py as s4

from .config import GemmaConfig
from .model import GemmaForCausalLM, _build

_PREFIXES = (("language_model.model.", "model."), ("model.language_model.", "model."))


def _hf_name(name: str, tied: bool):
    """The model key path of a checkpoint tensor name (None: not part of the text model)."""
    for old, new in _PREFIXES:
        if name.startswith(old):
            name = new + name[len(old):]
    if name in ("lm_head.weight", "language_model.lm_head.weight"):
        return None if tied else "lm_head.weight"
    if name.startswith(("vision_tower.", "multi_modal_projector.", "model.vision_tower.",
                        "model.multi_modal_projector.")):
        return None
    return name


def load(folder, dtype=None, device=None) -> GemmaForCausalLM:
    """The causal LM in ``folder`` (a Hugging Face save): ``dtype`` None keeps the
    checkpoint's floating dtype; ``device`` None uses the default device."""
    folder = os.fspath(folder)
    config = GemmaConfig.from_hf(folder)
    if not config.tie_word_embeddings:
        raise NotImplementedError("Gemma checkpoints tie the output projection to the "
                                  "embedding; this one does not (tie_word_embeddings=false)")
    reader = s4.open_checkpoint(folder, name_map=lambda k: _hf_name(k, True))
    with reader:
        if dtype is None:
            dtype = reader.dtype("model.embed_tokens.weight")
        ctx = s4.default_device(device) if device is not None else _nullcontext()
        with ctx:
            # the skeleton's zeros are never computed: loading rebinds every tensor
            model = GemmaForCausalLM(config, model=_build_empty(config, dtype))
            model.load_state(reader, strict=True)
    return model


def save(model: GemmaForCausalLM, folder) -> None:
    """Write ``model`` in the Hugging Face layout (``config.json``, ``model.safetensors``)."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    s4.save(model, os.path.join(folder, "model.safetensors"),
            header_metadata={"format": "pt"})
    doc = model.config.to_hf()
    doc["dtype"] = str(np.dtype(model.model.embed_tokens.weight.dtype))
    tmp = os.path.join(folder, ".config.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, os.path.join(folder, "config.json"))


def _build_empty(config: GemmaConfig, dtype):
    return _build(config, seed=0, dtype=dtype, init="zeros")


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None
