"""Embedding and MultiHeadAttention against PyTorch with the same weights, gradients by finite
differences, LLVM/reference parity and the errors for bad ids and shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import s4tf_py as s4
from s4tf_py.nn.attention import MultiHeadAttention
from s4tf_py.nn.embedding import Embedding

LLVM, REF = s4.Device("llvm"), s4.Device("reference")
rng = np.random.default_rng(0)


def _rand(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---- Embedding -----------------------------------------------------------------------------------

def test_embedding_defaults_follow_s4tf():
    e = Embedding(50, 6, seed=0)
    w = e.embeddings.numpy()
    assert w.shape == (50, 6) and e.embeddings.dtype == s4.float32
    assert 0.0 <= w.min() and w.max() < 1.0                    # S4TF: uniform on [0, 1)
    np.testing.assert_array_equal(w, Embedding(50, 6, seed=0).embeddings.numpy())
    assert [n for n, _ in e.named_parameters()] == ["embeddings"]
    e2 = Embedding(5, 3, s4.nn.initializers.zeros)
    assert not e2.embeddings.numpy().any()


def test_embedding_matches_torch_forward_and_gradient():
    w = _rand(11, 4)
    ids = rng.integers(0, 11, size=(3, 5))
    ids[0, :3] = 7                                       # repeated ids accumulate gradient
    layer = Embedding(embeddings=s4.Tensor(w))
    ref = torch.nn.Embedding(11, 4)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(w))
    cot = _rand(3, 5, 4)
    out = ref(torch.tensor(ids))
    (out * torch.tensor(cot)).sum().backward()
    y = layer(s4.Tensor(ids.astype(np.int32)))
    np.testing.assert_array_equal(y.numpy(), out.detach().numpy())
    g = s4.gradient(at=layer, of=lambda m: (m(s4.Tensor(ids)) * s4.Tensor(cot)).sum())
    np.testing.assert_allclose(g.embeddings.numpy(), ref.weight.grad.numpy(), rtol=1e-6)


def test_embedding_gradients(on_the_reference_backend):
    ids = s4.Tensor(np.array([[1, 3, 1], [0, 2, 3]], np.int32))
    s4.check_grads(lambda w: Embedding(embeddings=w)(ids) * 2.0, (s4.Tensor(_rand(4, 3, dtype=np.float64)),),
                   order=2)


def test_embedding_bad_ids():
    e = Embedding(6, 2, seed=0)
    for bad, shown in (([1, 6], "id 6"), ([[-1, 0]], "id -1")):
        with pytest.raises(IndexError) as err:
            e(s4.Tensor(np.array(bad, np.int32)))
        msg = str(err.value)
        assert msg.startswith("Embedding: ") and shown in msg and "vocabulary of 6" in msg
        assert "test_embedding_attention.py" in msg
    with pytest.raises(s4.DTypeError, match="Embedding: expects integer ids"):
        e(s4.Tensor([1.0, 2.0]))
    # ids that are not computed yet cannot be checked: the gather clamps (documented)
    lazy = s4.Tensor(np.array([4], np.int32)) + 5
    np.testing.assert_array_equal(e(lazy).numpy()[0], e.embeddings.numpy()[5])


def test_embedding_takes_python_ids_and_compiles():
    e = Embedding(6, 2, seed=0)
    np.testing.assert_array_equal(e([[1, 2]]).numpy(), e.embeddings.numpy()[[[1, 2]]])
    f = s4.compile(lambda m, ids: m(ids))
    ids = s4.Tensor(np.array([5, 0, 3], np.int32))
    np.testing.assert_array_equal(f(e, ids).numpy(), e.embeddings.numpy()[[5, 0, 3]])


def test_embedding_llvm_matches_the_reference_backend():
    w = _rand(9, 5)
    ids = np.array([[8, 0], [3, 3]], np.int32)
    outs = []
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            outs.append(Embedding(embeddings=s4.Tensor(w))(s4.Tensor(ids)).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])


# ---- MultiHeadAttention ------------------------------------------------------------------------

def _pair(e, heads, kdim=None, vdim=None, dropout=0.0, dtype=np.float32):
    """A torch MultiheadAttention and ours with the same weights."""
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(e, heads, dropout=dropout, batch_first=True, kdim=kdim,
                                      vdim=vdim)
    with torch.no_grad():                         # non-zero biases, so they are checked too
        ref.in_proj_bias.copy_(torch.randn(3 * e))
        ref.out_proj.bias.copy_(torch.randn(e))
    if kdim is None:
        wq, wk, wv = (ref.in_proj_weight[i * e:(i + 1) * e] for i in range(3))
    else:
        wq, wk, wv = ref.q_proj_weight, ref.k_proj_weight, ref.v_proj_weight
    bq, bk, bv = (ref.in_proj_bias[i * e:(i + 1) * e] for i in range(3))

    def dense(w, b):
        return s4.nn.Dense(weight=s4.Tensor(w.detach().numpy().T.astype(dtype)),
                           bias=s4.Tensor(b.detach().numpy().astype(dtype)))
    ours = MultiHeadAttention(num_heads=heads, dropout=dropout, query_proj=dense(wq, bq),
                              key_proj=dense(wk, bk), value_proj=dense(wv, bv),
                              out_proj=dense(ref.out_proj.weight, ref.out_proj.bias))
    return ref, ours


def _t(x):
    return torch.tensor(np.asarray(x))


def test_self_attention_matches_torch():
    ref, ours = _pair(16, 4)
    x = _rand(3, 7, 16)
    want, want_w = ref(_t(x), _t(x), _t(x), average_attn_weights=False)
    y, w = ours(s4.Tensor(x), return_attention_weights=True)
    assert ours.head_size == 4
    np.testing.assert_allclose(y.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w.numpy(), want_w.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_causal_and_padding_masks_match_torch():
    ref, ours = _pair(12, 3)
    x = _rand(2, 6, 12)
    causal = np.triu(np.ones((6, 6), bool), 1)                 # torch: True = masked out
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True
    want, _ = ref(_t(x), _t(x), _t(x), attn_mask=_t(causal), key_padding_mask=_t(pad))
    keep = s4.Tensor(~pad)[:, None, :]                         # ours: True = may attend
    y = ours(s4.Tensor(x), mask=keep, causal=True)
    np.testing.assert_allclose(y.numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-5)
    # the same through the layer's default and a (T, S) boolean mask
    want2, _ = ref(_t(x), _t(x), _t(x), attn_mask=_t(causal))
    ours.causal = True
    np.testing.assert_allclose(ours(s4.Tensor(x)).numpy(), want2.detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    ours.causal = False
    np.testing.assert_allclose(ours(s4.Tensor(x), mask=s4.Tensor(~causal)).numpy(),
                               want2.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_float_mask_is_added_to_the_scores_as_torchs():
    ref, ours = _pair(8, 2)
    x = _rand(2, 5, 8)
    bias = _rand(5, 5)
    want, _ = ref(_t(x), _t(x), _t(x), attn_mask=_t(bias))
    np.testing.assert_allclose(ours(s4.Tensor(x), mask=s4.Tensor(bias)).numpy(),
                               want.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_cross_attention_with_other_key_and_value_sizes_matches_torch():
    ref, ours = _pair(8, 2, kdim=5, vdim=3)
    q, k, v = _rand(2, 4, 8), _rand(2, 6, 5), _rand(2, 6, 3)
    want, _ = ref(_t(q), _t(k), _t(v))
    np.testing.assert_allclose(ours(s4.Tensor(q), s4.Tensor(k), s4.Tensor(v)).numpy(),
                               want.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_constructor_sizes_and_seeds():
    m = MultiHeadAttention(10, num_heads=2, head_size=3, key_size=4, value_size=5,
                           output_size=7, seed=1)
    assert m.query_proj.weight.shape == (10, 6) and m.key_proj.weight.shape == (4, 6)
    assert m.value_proj.weight.shape == (5, 6) and m.out_proj.weight.shape == (6, 7)
    y = m(s4.ones((2, 3, 10)), s4.ones((2, 4, 4)), s4.ones((2, 4, 5)))
    assert y.shape == (2, 3, 7)
    again = MultiHeadAttention(10, num_heads=2, head_size=3, key_size=4, value_size=5,
                               output_size=7, seed=1)
    np.testing.assert_array_equal(m.key_proj.weight.numpy(), again.key_proj.weight.numpy())
    assert not np.array_equal(m.query_proj.weight.numpy()[:4], m.key_proj.weight.numpy())
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(10, num_heads=3)


def test_dropout_on_attention_weights_only_in_training():
    _, ours = _pair(8, 2, dropout=0.5)
    x = s4.Tensor(_rand(2, 5, 8))
    y_inf = ours(x).numpy()
    with s4.learning_phase("training"):
        a = ours(x, dropout_key=s4.random.key(1)).numpy()
        b = ours(x, dropout_key=s4.random.key(1)).numpy()
        c = ours(x, dropout_key=s4.random.key(2)).numpy()
        _, w = ours(x, dropout_key=s4.random.key(1), return_attention_weights=True)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, y_inf) and not np.allclose(a, c)
    np.testing.assert_allclose(w.numpy().sum(-1), 1.0, rtol=1e-5)     # weights before dropout
    # the output is the attention of the dropped and rescaled weights
    probs = s4.nn.functional.dropout(w, 0.5, key=s4.random.key(1))
    v = s4.permute_dims(ours.value_proj(x).reshape((2, 5, 2, 4)), (0, 2, 1, 3))
    heads = s4.permute_dims(probs @ v, (0, 2, 1, 3)).reshape((2, 5, 8))
    np.testing.assert_allclose(a, ours.out_proj(heads).numpy(), rtol=1e-5, atol=1e-6)


def test_fully_masked_query_stays_finite():
    _, ours = _pair(8, 2)
    mask = np.ones((4, 4), bool)
    mask[2] = False
    y = ours(s4.Tensor(_rand(1, 4, 8)), mask=s4.Tensor(mask))
    assert np.isfinite(y.numpy()).all()


def test_low_precision_inputs_compute_softmax_in_float32():
    _, ours32 = _pair(8, 2)
    _, ours16 = _pair(8, 2, dtype=s4.bfloat16)
    x = _rand(2, 5, 8)
    y16 = ours16(s4.Tensor(x).astype(s4.bfloat16))
    assert y16.dtype == s4.bfloat16
    np.testing.assert_allclose(y16.astype(s4.float32).numpy(), ours32(s4.Tensor(x)).numpy(),
                               atol=0.1, rtol=0.05)


def test_attention_gradients(on_the_reference_backend):
    _, m = _pair(4, 2, dtype=np.float64)
    x = s4.Tensor(_rand(1, 3, 4, dtype=np.float64))
    wq = m.query_proj.weight

    def f(x, wq):
        m.query_proj.weight = wq
        return m(x, causal=True)
    s4.check_grads(f, (x, wq))
    g = s4.gradient(at=m, of=lambda m: m(x).sum())
    assert type(g).__qualname__ == "MultiHeadAttention.TangentVector"
    assert g.out_proj.weight.shape == (4, 4)


def test_attention_llvm_matches_the_reference_backend():
    _, m = _pair(8, 2)
    x = _rand(2, 5, 8)
    outs = []
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            outs.append(m.copy(to=dev)(s4.Tensor(x), causal=True).numpy())
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args,kwargs,expect", [
    (((2, 8),), {}, "expects query of shape (B, T, 8), got shape (2, 8)"),
    (((2, 3, 6),), {}, "expects query of shape (B, T, 8), got shape (2, 3, 6)"),
    (((2, 3, 8), (3, 4, 8)), {}, "expects key of shape (2, S, 8), got shape (3, 4, 8)"),
    (((2, 3, 8), (2, 4, 8), (2, 5, 8)), {}, "expects value of shape (2, 4, 8), got shape (2, 5, 8)"),
    (((2, 3, 8),), {"mask": (3, 4)}, "got shape (3, 4)"),
])
def test_wrong_shapes_name_the_layer(args, kwargs, expect):
    _, m = _pair(8, 2)
    tensors = [s4.ones(shape) for shape in args]
    if "mask" in kwargs:
        kwargs = {"mask": s4.ones(kwargs["mask"], dtype=s4.bool_)}
    with pytest.raises(s4.ShapeError) as e:
        m(*tensors, **kwargs)
    msg = str(e.value)
    assert msg.startswith("MultiHeadAttention: ") and expect in msg, msg
    assert "test_embedding_attention.py" in msg
