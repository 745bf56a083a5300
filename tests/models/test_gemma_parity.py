"""Gemma 2 / Gemma 3 logits against transformers' eager models, on tiny random checkpoints
that the tests build with transformers and save to a temporary folder (no network)."""
from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
import torch
from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig

import s4tf_py as s4
from s4tf_models import gemma

BACKENDS = ["reference", "llvm"]

#: name -> (generation, config kwargs); windows shorter and longer than the sequence (12),
#: GQA ratios 1, 2 and 4, the 1:1 and 5:1 patterns, with and without rope scaling
CONFIGS = {
    "g3-gqa2-window8-scaled": (3, dict(num_hidden_layers=6, num_attention_heads=4,
                                       num_key_value_heads=2, sliding_window=8,
                                       rope_scaling={"rope_type": "linear", "factor": 8.0})),
    "g3-mqa-window16": (3, dict(num_hidden_layers=6, num_attention_heads=4,
                                num_key_value_heads=1, sliding_window=16,
                                query_pre_attn_scalar=24)),
    "g3-mha-window5": (3, dict(num_hidden_layers=3, num_attention_heads=2,
                               num_key_value_heads=2, sliding_window=5)),
    "g2-gqa2-window8": (2, dict(num_hidden_layers=4, num_attention_heads=4,
                                num_key_value_heads=2, sliding_window=8)),
    "g2-mqa-window32": (2, dict(num_hidden_layers=2, num_attention_heads=4,
                                num_key_value_heads=1, sliding_window=32)),
}


def _hf_model(name, seed=0):
    gen, kw = CONFIGS[name]
    common = dict(vocab_size=256, hidden_size=64, intermediate_size=128, head_dim=16,
                  max_position_embeddings=128, attn_implementation="eager")
    torch.manual_seed(seed)
    if gen == 3:
        m = Gemma3ForCausalLM(Gemma3TextConfig(**common, **kw))
    else:
        m = Gemma2ForCausalLM(Gemma2Config(**common, **kw))
    with torch.no_grad():
        # larger weights than the default init (std 0.02), so that attention is far from
        # uniform and every masking or scaling mistake moves the logits
        for n, p in m.named_parameters():
            p.normal_(0, 0.5 if "norm" in n else 0.15)
    return m.eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> (folder, transformers model)."""
    out = {}
    for name in CONFIGS:
        m = _hf_model(name)
        folder = tmp_path_factory.mktemp(name)
        m.save_pretrained(folder)
        out[name] = (folder, m)
    return out


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 256, (3, 12), generator=g)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, :4] = 0          # left padding
    mask[2, 9:] = 0          # right padding
    return ids, mask


def _ours(folder, ids, mask, device, dtype=None, **load_kw):
    with s4.default_device(s4.Device(device)):
        model = gemma.load(folder, dtype=dtype, **load_kw)
        logits = model(s4.Tensor(ids.numpy().astype(np.int32)),
                       attention_mask=s4.Tensor(mask.numpy().astype(np.int32)))
        return logits.numpy(), model


@pytest.mark.parametrize("device", BACKENDS)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_logits_match_transformers_in_float32(saved, name, device):
    folder, hf = saved[name]
    ids, mask = _batch()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits.numpy()
    got, model = _ours(folder, ids, mask, device)
    assert got.shape == want.shape == (3, 12, 256)
    valid = mask.numpy().astype(bool)        # transformers' padded rows are not meaningful
    err = np.abs(got - want)[valid].max()
    assert err < 1e-4, f"max |logit difference| {err} (logits up to {np.abs(want).max():.1f})"
    assert model.config.generation == CONFIGS[name][0]


def test_the_window_boundary_is_exact(saved):
    """A window one token narrower or wider changes the logits: the tests above see it."""
    folder, hf = saved["g3-gqa2-window8-scaled"]
    ids, mask = _batch()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits.numpy()
    cfg = json.loads((folder / "config.json").read_text())
    for w in (7, 9):
        cfg2 = dict(cfg, sliding_window=w)
        (folder / "config.json").write_text(json.dumps(cfg2))
        try:
            got, _ = _ours(folder, ids, mask, "llvm")
        finally:
            (folder / "config.json").write_text(json.dumps(cfg))
        assert np.abs(got - want)[mask.numpy().astype(bool)].max() > 1e-2, w


@pytest.mark.parametrize("name", ["g3-gqa2-window8-scaled", "g2-gqa2-window8"])
def test_bfloat16_logits_are_as_accurate_as_transformers_bfloat16(saved, name):
    """bf16 tolerance: both sides round every op's result to 8 significant bits, at slightly
    different points (we accumulate products in float32 as torch does, but fuse elementwise
    chains), so they cannot agree bit for bit. Measured on these models, transformers' own
    bf16 logits are ~1-2% of the logits' range away from float32; ours must be no further
    from float32 than 1.5x that, and within 3% of the range from transformers' bf16."""
    folder, hf = saved[name]
    ids, mask = _batch()
    hf16 = _hf_model(name).to(torch.bfloat16)
    with torch.no_grad():
        want16 = hf16(input_ids=ids, attention_mask=mask).logits.float().numpy()
        want32 = hf(input_ids=ids, attention_mask=mask).logits.numpy()
    got, model = _ours(folder, ids, mask, "llvm", dtype=s4.bfloat16)
    assert model.model.embed_tokens.weight.dtype == ml_dtypes.bfloat16
    assert got.dtype == ml_dtypes.bfloat16
    valid = mask.numpy().astype(bool)
    got = got.astype(np.float32)
    scale = np.abs(want32).max()
    ours_err = np.abs(got - want32)[valid].max()
    theirs_err = np.abs(want16 - want32)[valid].max()
    assert ours_err <= 1.5 * theirs_err + 1e-3 * scale, (ours_err, theirs_err)
    assert np.abs(got - want16)[valid].max() < 0.03 * scale


def test_save_writes_what_transformers_loads(saved, tmp_path):
    folder, hf = saved["g2-gqa2-window8"]
    ids, mask = _batch()
    got, model = _ours(folder, ids, mask, "llvm")
    model.save(tmp_path / "out")
    back = Gemma2ForCausalLM.from_pretrained(tmp_path / "out", attn_implementation="eager").eval()
    with torch.no_grad():
        again = back(input_ids=ids, attention_mask=mask).logits.numpy()
    valid = mask.numpy().astype(bool)
    assert np.abs(got - again)[valid].max() < 1e-4


def test_sharded_checkpoints_load(saved, tmp_path):
    _, hf = saved["g3-mqa-window16"]
    hf.save_pretrained(tmp_path, max_shard_size="100KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    ids, mask = _batch()
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits.numpy()
    got, _ = _ours(tmp_path, ids, mask, "llvm")
    assert np.abs(got - want)[mask.numpy().astype(bool)].max() < 1e-4


def test_from_hf_reads_transformers_4_rope_spelling():
    old = {"model_type": "gemma3_text", "vocab_size": 262208, "hidden_size": 2560,
           "intermediate_size": 10240, "num_hidden_layers": 34, "num_attention_heads": 8,
           "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 1024,
           "sliding_window_pattern": 6, "rope_theta": 1_000_000.0,
           "rope_local_base_freq": 10_000.0, "rope_scaling": {"rope_type": "linear",
                                                              "factor": 8.0},
           "query_pre_attn_scalar": 256}
    c = gemma.GemmaConfig.from_hf(old)
    want = gemma.GemmaConfig.preset("gemma3-4b")
    for f in ("layer_types", "rope_local_base", "rope_global_base", "rope_global_scaling",
              "sliding_window", "num_kv_heads", "head_dim", "query_pre_attn_scalar"):
        assert getattr(c, f) == getattr(want, f), f


def test_presets_follow_the_size_table():
    p = gemma.GemmaConfig.preset
    assert [p(n).layer_types.count(gemma.FULL) for n in
            ("gemma3-270m", "gemma3-1b", "gemma3-4b", "gemma3-12b", "gemma3-27b")] == \
        [3, 4, 5, 8, 10]
    assert p("gemma2-2b").layer_types[:2] == (gemma.SLIDING, gemma.FULL)
    assert p("gemma2-27b").query_pre_attn_scalar == 144
    assert p("gemma3-27b").query_pre_attn_scalar == 168
    assert p("gemma3-1b").sliding_window == 512 and p("gemma3-4b").sliding_window == 1024
    with pytest.raises(ValueError, match="unknown preset"):
        p("gemma4-1b")


@pytest.mark.parametrize("gen,window", [(3, 7), (2, 8)])
def test_sliding_layers_attend_in_blocks_on_long_sequences(tmp_path, gen, window):
    """With the window under half the sequence, sliding layers attend block by block (T x 2W
    scores instead of T x T): still transformers' logits, with padding and a window that
    does not divide the sequence."""
    from s4tf_models.gemma.model import attention_masks
    common = dict(vocab_size=256, hidden_size=64, intermediate_size=128, head_dim=16,
                  max_position_embeddings=128, attn_implementation="eager",
                  num_hidden_layers=3 if gen == 3 else 2, num_attention_heads=4,
                  num_key_value_heads=2, sliding_window=window)
    torch.manual_seed(1)
    hf = (Gemma3ForCausalLM(Gemma3TextConfig(**common)) if gen == 3 else
          Gemma2ForCausalLM(Gemma2Config(**common)))
    with torch.no_grad():
        for n, p in hf.named_parameters():
            p.normal_(0, 0.5 if "norm" in n else 0.15)
    hf.eval().save_pretrained(tmp_path)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(3, 256, (2, 40), generator=g)
    mask = torch.ones(2, 40, dtype=torch.long)
    mask[1, :6] = 0
    with torch.no_grad():
        want = hf(input_ids=ids, attention_mask=mask).logits.numpy()
    got, model = _ours(tmp_path, ids, mask, "llvm")
    assert attention_masks(model.config, 40)[gemma.SLIDING].ndim == 6      # the blocked path
    err = np.abs(got - want)[mask.numpy().astype(bool)].max()
    assert err < 1e-4, err
