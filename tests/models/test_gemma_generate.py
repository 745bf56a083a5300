"""Generation with a KV cache: the same tokens as re-running the full forward each step, a
cache whose size is GEMMA.md §6's arithmetic (ring buffers on sliding layers), sampling."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_models.gemma import FULL, SLIDING, GemmaConfig, GemmaForCausalLM
from s4tf_models.gemma import generate as G


def _model(**kw):
    c = GemmaConfig.preset("gemma3-tiny").replace(**kw)
    m = GemmaForCausalLM(c, seed=3)
    # random norm weights and weights a little larger than the init's 0.02, so that the
    # greedy path depends on every position (much larger ones make it repeat one token)
    leaves = {n: p for n, p in m.named_parameters()}
    rng = np.random.default_rng(0)
    m.load_state({n: (rng.standard_normal(p.shape) * (1.0 if "norm" in n else 0.03))
                  .astype(np.float32) for n, p in leaves.items()})
    return m


def _greedy_by_full_forward(m, ids, mask, n):
    ids, mask = ids.copy(), mask.copy()
    for _ in range(n):
        pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
        logits = m(s4.Tensor(ids.astype(np.int32)), attention_mask=s4.Tensor(mask.astype(np.int32)),
                   position_ids=s4.Tensor(pos.astype(np.int32))).numpy()
        ids = np.concatenate([ids, logits[:, -1].argmax(-1)[:, None]], 1)
        mask = np.concatenate([mask, np.ones((len(ids), 1), mask.dtype)], 1)
    return ids


@pytest.mark.parametrize("window,gen", [(5, 3), (64, 3), (6, 2)])
def test_cached_generation_equals_rerunning_the_full_forward(window, gen):
    # window 5 and 6: the ring buffers wrap around several times in 14 new tokens
    m = _model(sliding_window=window, num_layers=4, generation=gen,
               attn_logit_softcap=50.0 if gen == 2 else None,
               final_logit_softcap=30.0 if gen == 2 else None)
    rng = np.random.default_rng(1)
    ids = rng.integers(3, 1024, (3, 9))
    mask = np.ones_like(ids)
    mask[1, :4] = 0                   # left-padded prompt
    got = m.generate(ids, 14, attention_mask=mask, stop_tokens=[]).numpy()
    want = _greedy_by_full_forward(m, ids, mask, 14)
    np.testing.assert_array_equal(got, want)
    assert len(set(got[0, 9:].tolist())) > 1     # not a degenerate constant stream


def test_the_cache_holds_the_window_on_sliding_layers_only():
    c = GemmaConfig.preset("gemma3-tiny")          # 5 sliding layers (window 64), 1 global
    t = 2048
    cache = G.KVCache(c, batch=2, capacity=t, dtype=s4.bfloat16)
    n_global = c.layer_types.count(FULL)
    n_local = c.layer_types.count(SLIDING)
    want = 2 * 2 * c.num_kv_heads * c.head_dim * 2 * (n_global * t +
                                                      n_local * min(t, c.sliding_window))
    assert cache.nbytes == want
    full = 2 * 2 * c.num_kv_heads * c.head_dim * 2 * c.num_layers * t
    assert full / cache.nbytes > 5                   # 5:1 with a short window: ~5.7x smaller


def test_sampling_is_seeded_and_respects_top_k():
    m = _model(num_layers=2)
    ids = np.array([[2, 50, 60, 70]])
    a = m.generate(ids, 12, temperature=1.0, top_k=5, seed=7, stop_tokens=[]).numpy()
    b = m.generate(ids, 12, temperature=1.0, top_k=5, seed=7, stop_tokens=[]).numpy()
    c = m.generate(ids, 12, temperature=1.0, top_k=5, seed=8, stop_tokens=[]).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # top_k=1 is greedy whatever the temperature
    g = m.generate(ids, 12, stop_tokens=[]).numpy()
    np.testing.assert_array_equal(
        m.generate(ids, 12, temperature=2.0, top_k=1, seed=3, stop_tokens=[]).numpy(), g)


def test_sample_top_p_keeps_the_smallest_nucleus():
    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]]))
    rng = np.random.default_rng(0)
    draws = {int(G.sample(logits, 1.0, None, 0.7, rng)[0]) for _ in range(300)}
    assert draws == {0, 1}                # 0.5 + 0.3 reaches 0.7; 2 and 3 never drawn
    draws = {int(G.sample(logits, 1.0, None, 0.85, rng)[0]) for _ in range(300)}
    assert draws == {0, 1, 2}


def test_a_row_stops_at_eos_and_is_padded_after():
    m = _model(num_layers=2)
    ids = np.array([[2, 50, 60, 70], [2, 9, 8, 7]])
    free = m.generate(ids, 8, stop_tokens=[]).numpy()
    stop = int(free[0, 6])                          # the third generated token of row 0
    got = m.generate(ids, 8, stop_tokens=[stop]).numpy()
    row = got[0, 4:].tolist()
    k = row.index(stop)
    assert all(v == m.config.pad_token_id for v in row[k + 1:])


def test_streaming_sees_every_token_in_order():
    m = _model(num_layers=2)
    seen = []
    out = m.generate([2, 5, 6], 6, stop_tokens=[], stream=lambda tok: seen.append(int(tok[0])))
    assert seen == out.numpy()[0, 3:].tolist()


def test_bad_prompts_are_clear_errors():
    m = _model(num_layers=2)
    with pytest.raises(ValueError, match="attention_mask"):
        m.generate([[2, 5, 6], [2, 5]], 2)
    with pytest.raises(ValueError, match=r"\[batch, seq\]"):
        m.generate(np.zeros((1, 0), np.int64), 2)
