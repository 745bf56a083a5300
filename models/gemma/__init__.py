"""Gemma 2 and Gemma 3 text models on s4tf_py (``import s4tf_models.gemma``).

>>> from s4tf_models import gemma
>>> gemma.GemmaConfig.preset("gemma2-2b").final_logit_softcap
30.0
"""
from .checkpoint import load, save
from .config import FULL, PRESETS, SLIDING, GemmaConfig
from .tokenizer import StreamDecoder, Tokenizer
from .distill import (Teacher, TeacherSamples, distillation_loss, kl_to_teacher,
                      sample_teacher_targets)
from .train import TrainOptions, TrainResult, generate_text
from .model import (Attention, DecoderLayer, Embedding, GemmaForCausalLM, GemmaModel, Linear,
                    MLP, RMSNorm)

__all__ = ["load", "save", "Tokenizer", "StreamDecoder", "TrainOptions", "TrainResult",
           "generate_text", "Teacher", "TeacherSamples", "distillation_loss", "kl_to_teacher",
           "sample_teacher_targets", "GemmaConfig", "PRESETS", "FULL", "SLIDING", "GemmaForCausalLM", "GemmaModel",
           "DecoderLayer", "Attention", "MLP", "RMSNorm", "Embedding", "Linear"]
