"""Gemma 2 and Gemma 3 text models on s4tf_py (``import s4tf_models.gemma``).

>>> from s4tf_models import gemma
>>> gemma.GemmaConfig.preset("gemma2-2b").final_logit_softcap
30.0
"""
from .checkpoint import load, save
from .config import FULL, PRESETS, SLIDING, GemmaConfig
from .tokenizer import StreamDecoder, Tokenizer
from .model import (Attention, DecoderLayer, Embedding, GemmaForCausalLM, GemmaModel, Linear,
                    MLP, RMSNorm)

__all__ = ["load", "save", "Tokenizer", "StreamDecoder", "GemmaConfig", "PRESETS", "FULL", "SLIDING", "GemmaForCausalLM", "GemmaModel",
           "DecoderLayer", "Attention", "MLP", "RMSNorm", "Embedding", "Linear"]
