"""Gradients of composed programs agree with PyTorch's autograd (float64, tight tolerances).

An MLP loss (two Dense layers, relu, softmax cross-entropy), an attention block, a small conv
net (NHWC/HWIO here, NCHW/OIHW in torch), a loop with subscript writes, and second derivatives
(Hessian-vector products, double backward).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import s4tf_py as s4

TOL = 1e-10


def t64(a) -> s4.Tensor:
    return s4.Tensor(np.asarray(a, dtype=np.float64))


def tt(a, grad=True) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def close(got, want, tol=TOL):
    got = np.asarray(got.numpy() if isinstance(got, s4.Tensor) else got, dtype=np.float64)
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def rng(seed):
    return np.random.default_rng(seed)


# ---- MLP with softmax cross-entropy ----------------------------------------------------------------

class MLP(s4.nn.Layer):
    l1: s4.nn.Dense
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(s4.relu(self.l1(x)))


def _mlp_setup(seed=0):
    r = rng(seed)
    w1, b1 = r.standard_normal((4, 6)) * 0.5, r.standard_normal(6) * 0.1
    w2, b2 = r.standard_normal((6, 3)) * 0.5, r.standard_normal(3) * 0.1
    x = r.standard_normal((5, 4))
    labels = np.array([0, 2, 1, 2, 0])
    model = MLP(l1=s4.nn.Dense(weight=t64(w1), bias=t64(b1)),
                l2=s4.nn.Dense(weight=t64(w2), bias=t64(b2)))
    return model, (w1, b1, w2, b2), x, labels


def _torch_mlp_loss(params, x, labels):
    w1, b1, w2, b2 = params
    logits = torch.relu(x @ w1 + b1) @ w2 + b2
    return torch.nn.functional.cross_entropy(logits, torch.tensor(labels))


def _compare_model_grads(g, torch_params):
    close(g.l1.weight, torch_params[0].grad)
    close(g.l1.bias, torch_params[1].grad)
    close(g.l2.weight, torch_params[2].grad)
    close(g.l2.bias, torch_params[3].grad)


def test_mlp_softmax_cross_entropy_log_softmax():
    model, arrays, x, labels = _mlp_setup(0)
    onehot = s4.one_hot(s4.Tensor(labels.astype(np.int32)), 3, dtype=s4.float64)
    xs = t64(x)

    def loss(m):
        return -(s4.log_softmax(m(xs), axis=-1) * onehot).sum(axis=-1).mean()
    v, g = s4.value_with_gradient(at=model, of=loss)
    tp = [tt(a) for a in arrays]
    tl = _torch_mlp_loss(tp, tt(x, False), labels)
    tl.backward()
    close(v, tl)
    _compare_model_grads(g, tp)


def test_mlp_softmax_cross_entropy_logsumexp_and_gather():
    model, arrays, x, labels = _mlp_setup(1)
    xs = t64(x)
    idx = s4.Tensor(labels.astype(np.int32).reshape(-1, 1))

    def loss(m, inputs):
        logits = m(inputs)
        picked = s4.take_along_axis(logits, idx, axis=1)[:, 0]
        return (s4.logsumexp(logits, axis=-1) - picked).mean()
    gm, gx = s4.gradient(at=(model, xs), of=loss)
    tp = [tt(a) for a in arrays]
    tx = tt(x)
    _torch_mlp_loss(tp, tx, labels).backward()
    _compare_model_grads(gm, tp)
    close(gx, tx.grad)


# ---- attention block ------------------------------------------------------------------------------

def _attention_s4(x, wq, wk, wv, wo):
    q, k, v = x @ wq, x @ wk, x @ wv
    scores = (q @ s4.matrix_transpose(k)) * (1.0 / math.sqrt(q.shape[-1]))
    return (s4.softmax(scores, axis=-1) @ v) @ wo


def _attention_torch(x, wq, wk, wv, wo):
    q, k, v = x @ wq, x @ wk, x @ wv
    scores = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1]))
    return (torch.softmax(scores, dim=-1) @ v) @ wo


def test_attention_block():
    r = rng(2)
    arrays = [r.standard_normal((2, 4, 6)), *[r.standard_normal((6, 6)) * 0.4 for _ in range(4)]]
    target = r.standard_normal((2, 4, 6))

    def loss(*args):
        return ((_attention_s4(*args) - t64(target)) ** 2).sum()
    v, g = s4.value_with_gradient(at=tuple(t64(a) for a in arrays), of=loss)
    targs = [tt(a) for a in arrays]
    tl = ((_attention_torch(*targs) - tt(target, False)) ** 2).sum()
    tl.backward()
    close(v, tl)
    for got, ta in zip(g, targs):
        close(got, ta.grad)


def test_attention_block_with_causal_mask_pullback():
    r = rng(3)
    arrays = [r.standard_normal((3, 5)), *[r.standard_normal((5, 5)) * 0.4 for _ in range(4)]]
    mask = np.triu(np.full((3, 3), -1e9), k=1)
    ct = r.standard_normal((3, 5))

    def s4_f(x, wq, wk, wv, wo):
        q, k, v = x @ wq, x @ wk, x @ wv
        scores = q @ k.T / math.sqrt(5.0) + t64(mask)
        return (s4.softmax(scores, axis=-1) @ v) @ wo

    def torch_f(x, wq, wk, wv, wo):
        q, k, v = x @ wq, x @ wk, x @ wv
        scores = q @ k.T / math.sqrt(5.0) + torch.tensor(mask)
        return (torch.softmax(scores, dim=-1) @ v) @ wo
    g = s4.pullback(at=tuple(t64(a) for a in arrays), of=s4_f)(t64(ct))
    targs = [tt(a) for a in arrays]
    torch_f(*targs).backward(torch.tensor(ct))
    for got, ta in zip(g, targs):
        close(got, ta.grad)


# ---- conv net -------------------------------------------------------------------------------------
# s4: NHWC data, HWIO filters; torch: NCHW data, OIHW filters.

def _nhwc_to_nchw(a):
    return np.ascontiguousarray(np.transpose(a, (0, 3, 1, 2)))


def _hwio_to_oihw(w):
    return np.ascontiguousarray(np.transpose(w, (3, 2, 0, 1)))


def _conv_setup(seed):
    r = rng(seed)
    x = r.standard_normal((2, 6, 6, 3))
    w = r.standard_normal((3, 3, 3, 4)) * 0.3
    b = r.standard_normal(4) * 0.1
    return x, w, b


def test_conv2d_loss():
    x, w, b = _conv_setup(4)
    target = rng(5).standard_normal((2, 4, 4, 4))

    def loss(x, w, b):
        y = s4.nn.functional.conv2d(x, w, padding="valid") + b
        return ((s4.tanh(y) - t64(target)) ** 2).sum()
    gx, gw, gb = s4.gradient(at=(t64(x), t64(w), t64(b)), of=loss)
    tx, tw, tb = tt(_nhwc_to_nchw(x)), tt(_hwio_to_oihw(w)), tt(b)
    y = torch.nn.functional.conv2d(tx, tw, tb)
    ((torch.tanh(y) - tt(_nhwc_to_nchw(target), False)) ** 2).sum().backward()
    close(gx, np.transpose(tx.grad.numpy(), (0, 2, 3, 1)))
    close(gw, np.transpose(tw.grad.numpy(), (2, 3, 1, 0)))
    close(gb, tb.grad)


def test_conv_pool_dense_net_loss():
    x, w, b = _conv_setup(6)
    r = rng(7)
    # conv "same" keeps 6x6, max_pool2d(3) gives 2x2, 4 channels: 16 features
    wd = r.standard_normal((2 * 2 * 4, 3)) * 0.2
    bd = r.standard_normal(3) * 0.1
    labels = np.array([1, 2])

    def loss(x, w, b, wd, bd):
        h = s4.relu(s4.nn.functional.conv2d(x, w, padding="same") + b)
        h = s4.nn.functional.max_pool2d(h, pool_size=(3, 3))
        logits = s4.reshape(h, (h.shape[0], -1)) @ wd + bd
        onehot = s4.one_hot(s4.Tensor(labels.astype(np.int32)), 3, dtype=s4.float64)
        return -(s4.log_softmax(logits) * onehot).sum() / 2.0
    g = s4.gradient(at=tuple(t64(a) for a in (x, w, b, wd, bd)), of=loss)

    tx, tw, tb = tt(_nhwc_to_nchw(x)), tt(_hwio_to_oihw(w)), tt(b)
    twd, tbd = tt(wd), tt(bd)
    h = torch.relu(torch.nn.functional.conv2d(tx, tw, tb, padding="same"))
    h = torch.nn.functional.max_pool2d(h, 3)
    h = h.permute(0, 2, 3, 1).reshape(2, -1)           # flatten in NHWC order, as s4 does
    logits = h @ twd + tbd
    torch.nn.functional.cross_entropy(logits, torch.tensor(labels)).backward()
    close(g[0], np.transpose(tx.grad.numpy(), (0, 2, 3, 1)))
    close(g[1], np.transpose(tw.grad.numpy(), (2, 3, 1, 0)))
    close(g[2], tb.grad)
    close(g[3], twd.grad)
    close(g[4], tbd.grad)


def test_conv_pool_forward_mode_matches_torch_and_second_order():
    r = rng(15)
    x, w = r.standard_normal((1, 5, 5, 2)), r.standard_normal((3, 3, 2, 3)) * 0.3
    tx_, tw_ = r.standard_normal(x.shape), r.standard_normal(w.shape)

    def f(x, w):
        h = s4.tanh(s4.nn.functional.conv2d(x, w, strides=1, padding="same"))
        return (s4.nn.functional.max_pool2d(h, pool_size=(2, 2)) ** 2).sum()

    def tf(x, w):
        h = torch.tanh(torch.nn.functional.conv2d(x, w, padding="same"))
        return (torch.nn.functional.max_pool2d(h, 2) ** 2).sum()
    _, t = s4.jvp(f, (t64(x), t64(w)), (t64(tx_), t64(tw_)))
    _, want = torch.autograd.functional.jvp(
        tf, (torch.tensor(_nhwc_to_nchw(x)), torch.tensor(_hwio_to_oihw(w))),
        (torch.tensor(_nhwc_to_nchw(tx_)), torch.tensor(_hwio_to_oihw(tw_))))
    close(t, want)
    # max pooling is piecewise smooth: a small step keeps finite differences off its kinks
    s4.check_grads(f, (t64(x), t64(w)), order=2, eps=1e-6)


def test_max_and_avg_pool_gradients():
    x = rng(8).standard_normal((1, 4, 4, 2))

    def loss(x):
        a = s4.nn.functional.max_pool2d(x, pool_size=(2, 2))
        b = s4.nn.functional.avg_pool2d(x, pool_size=(2, 2))
        return (a * a).sum() + (b * 3.0).sum()
    g = s4.gradient(at=t64(x), of=loss)
    tx = tt(_nhwc_to_nchw(x))
    a = torch.nn.functional.max_pool2d(tx, 2)
    b = torch.nn.functional.avg_pool2d(tx, 2)
    ((a * a).sum() + (b * 3.0).sum()).backward()
    close(g, np.transpose(tx.grad.numpy(), (0, 2, 3, 1)))


# ---- a loop with writes -----------------------------------------------------------------------------

def test_loop_with_subscript_writes_and_augmented_assignment():
    r = rng(9)
    x0, w0, v0 = r.standard_normal((4, 3)), r.standard_normal((3, 3)) * 0.5, r.standard_normal(3)

    def f(x, w, v):
        out = x * 1.0
        for i in range(1, 4):
            out[i] = s4.tanh(out[i - 1] @ w) + out[i]
        out[0] = v
        out += x * v
        out[1:3, 0] = out[1:3, 2] * 2.0
        return (out * out).sum()

    def tf(x, w, v):
        # clone before every write: the functional update s4 records (value semantics)
        out = x.clone()
        for i in range(1, 4):
            new = torch.tanh(out[i - 1] @ w) + out[i]
            out = out.clone()
            out[i] = new
        out = out.clone()
        out[0] = v
        out = out + x * v
        new = out[1:3, 2] * 2.0
        out = out.clone()
        out[1:3, 0] = new
        return (out * out).sum()
    g = s4.gradient(at=(t64(x0), t64(w0), t64(v0)), of=f)
    targs = [tt(a) for a in (x0, w0, v0)]
    tf(*targs).backward()
    for got, ta in zip(g, targs):
        close(got, ta.grad)
    # forward mode through the writes, and second order by finite differences
    tans = [r.standard_normal(a.shape) for a in (x0, w0, v0)]
    _, t = s4.jvp(f, (t64(x0), t64(w0), t64(v0)), tuple(t64(a) for a in tans))
    _, want = torch.autograd.functional.jvp(tf, tuple(torch.tensor(a) for a in (x0, w0, v0)),
                                            tuple(torch.tensor(a) for a in tans))
    close(t, want)
    s4.check_grads(f, (t64(x0), t64(w0), t64(v0)), order=2)


def test_index_put_with_integer_arrays():
    r = rng(10)
    t0, v0 = r.standard_normal((5, 2)), r.standard_normal((2, 2))
    idx = np.array([3, 0])

    def f(t, v):
        t = t * 1.0
        t[s4.Tensor(idx.astype(np.int32))] = v * v
        return (s4.sin(t) * t).sum()
    gt, gv = s4.gradient(at=(t64(t0), t64(v0)), of=f)
    tt0, tv0 = tt(t0), tt(v0)
    t = tt0.index_put((torch.tensor(idx),), tv0 * tv0)
    (torch.sin(t) * t).sum().backward()
    close(gt, tt0.grad)
    close(gv, tv0.grad)


# ---- second order ---------------------------------------------------------------------------------

def _h_s4(x, w):
    return (s4.tanh(x @ w) ** 2).sum() + (s4.sin(x) * x).sum()


def _h_torch(x, w):
    return (torch.tanh(x @ w) ** 2).sum() + (torch.sin(x) * x).sum()


def test_hessian_vector_product_matches_torch():
    r = rng(11)
    x0, w0, v0 = r.standard_normal((2, 3)), r.standard_normal((3, 3)), r.standard_normal((2, 3))
    w = t64(w0)
    v = t64(v0)
    hvp_rr = s4.gradient(at=t64(x0), of=lambda x: (s4.gradient(at=x, of=lambda x: _h_s4(x, w))
                                                   * v).sum())
    _, hvp_fr = s4.jvp(s4.gradient(of=lambda x: _h_s4(x, w)), (t64(x0),), (v,))
    _, want = torch.autograd.functional.hvp(lambda x: _h_torch(x, torch.tensor(w0)),
                                            torch.tensor(x0), torch.tensor(v0))
    close(hvp_rr, want)
    close(hvp_fr, want)


def test_double_backward_mixed_partials_match_torch():
    r = rng(12)
    x0, w0 = r.standard_normal((2, 3)), r.standard_normal((3, 3))

    def gnorm(x, w):
        gx = s4.gradient(at=x, of=lambda x: _h_s4(x, w))
        return (gx * gx).sum()
    gx2, gw2 = s4.gradient(at=(t64(x0), t64(w0)), of=gnorm)
    tx, tw = tt(x0), tt(w0)
    (g,) = torch.autograd.grad(_h_torch(tx, tw), tx, create_graph=True)
    (g * g).sum().backward()
    close(gx2, tx.grad, 1e-9)
    close(gw2, tw.grad, 1e-9)


def test_mlp_input_hessian_diagonal_block_matches_torch():
    model, arrays, x, labels = _mlp_setup(13)
    model.l1.activation = None

    class Smooth(s4.nn.Layer):
        inner: MLP

        def __call__(self, x):
            return (s4.tanh(self.inner.l1(x)) @ self.inner.l2.weight).sum()
    net = Smooth(inner=model)
    x0 = x[:1]
    v0 = rng(14).standard_normal(x0.shape)
    hv = s4.gradient(at=t64(x0), of=lambda x: (s4.gradient(at=x, of=net) * t64(v0)).sum())
    w1, b1, w2, _ = (torch.tensor(a) for a in arrays)
    _, want = torch.autograd.functional.hvp(lambda x: (torch.tanh(x @ w1 + b1) @ w2).sum(),
                                            torch.tensor(x0), torch.tensor(v0))
    close(hv, want)


def test_float64_scalar_from_python_float_is_exact():
    x = s4.Tensor(0.7, dtype=s4.float64)
    g = s4.gradient(at=x, of=lambda x: s4.sin(x) * x)
    tx = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    (torch.sin(tx) * tx).backward()
    close(g, tx.grad, 1e-15)
