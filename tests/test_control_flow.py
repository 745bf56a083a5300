"""Control flow under differentiation.

Python ``if``/``for``/``while`` trace the path taken (a branch on a tensor's value materializes
and goes on tracing); ``s4.cond`` is differentiable in both modes to second order;
``s4.while_loop`` runs forward only and refuses differentiation clearly; ``s4.scan`` is
differentiable (checked against an unrolled loop and against PyTorch) and records one node
whatever its length.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import s4tf_py as s4

THIS_FILE = os.path.basename(__file__)


def t64(a) -> s4.Tensor:
    return s4.Tensor(np.asarray(a, dtype=np.float64))


def close(got, want, tol=1e-12):
    got = np.asarray(got.numpy() if isinstance(got, s4.Tensor) else got, dtype=np.float64)
    np.testing.assert_allclose(got, np.asarray(want, dtype=np.float64), rtol=tol, atol=tol)


RNG = np.random.default_rng(99)
XA = np.array([0.5, -1.0, 2.0])


# ---- Python control flow ------------------------------------------------------------------------

def test_python_if_for_while_on_python_values_trace_the_path_taken():
    def f(x, mode, n):
        if mode == "square":
            y = x * x
        else:
            y = s4.sin(x)
        for _ in range(n):
            y = y * 2.0
        k = 0
        while k < 2:
            y = y + x
            k += 1
        return y.sum()
    x = t64(XA)
    close(s4.gradient(at=x, of=lambda x: f(x, "square", 3)), 2 * XA * 8 + 2)
    close(s4.gradient(at=x, of=lambda x: f(x, "sin", 1)), np.cos(XA) * 2 + 2)
    fn = s4.trace(lambda x: f(x, "square", 3), x)
    names = [e.prim.name for e in fn.eqns]
    assert "sin" not in names and names.count("add") == 2


def test_branch_on_a_tensor_value_materializes_and_goes_on_tracing():
    def f(x):
        y = x * x
        if y.sum().item() > 3.0:           # reads a value inside the differentiated function
            z = s4.sin(y)
        else:
            z = y * 3.0
        return (z * x).sum()
    big = t64(XA)                       # sum of squares 5.25 > 3: the sin path
    g = s4.gradient(at=big, of=f)
    close(g, np.cos(XA ** 2) * 2 * XA * XA + np.sin(XA ** 2))
    small = t64(XA / 2)                 # 1.3125: the other path
    g2 = s4.gradient(at=small, of=f)
    xs = XA / 2
    close(g2, 9 * xs * xs)
    # forward mode takes the same path
    _, t = s4.jvp(f, (small,), (t64(np.ones(3)),))
    close(t, np.sum(9 * xs * xs))


def test_bool_of_a_comparison_inside_the_differentiated_function():
    def f(x):
        z = x * 3.0
        if bool(z.sum() > 100.0):
            z = z * 0.0
        return z.sum()
    close(s4.gradient(at=t64(np.ones(2)), of=f), [3.0, 3.0])


def test_data_dependent_python_loop():
    def f(x):
        y = x
        steps = 0
        while y.sum().item() < 10.0:     # the number of iterations depends on the value
            y = y * 2.0
            steps += 1
        return (y * y).sum(), steps
    x = t64(np.array([0.5, 1.0]))
    _, n = f(x)
    assert n == 3
    g = s4.gradient(at=x, of=lambda x: f(x)[0])
    close(g, 2 * x.numpy() * 4 ** n)


# ---- s4.cond ----------------------------------------------------------------------------------

def _cond_fn(x):
    return s4.cond(x.sum() > 0, lambda a: (s4.sin(a) * a).sum(), lambda a: (a * a * a).sum(), x)


def test_cond_reverse_mode_takes_the_branch_taken():
    pos = t64(XA)                      # sum > 0: sin(a) * a
    close(s4.gradient(at=pos, of=_cond_fn), np.cos(XA) * XA + np.sin(XA))
    neg = t64(-XA)
    close(s4.gradient(at=neg, of=_cond_fn), 3 * XA ** 2)


def test_cond_forward_mode():
    v = RNG.standard_normal(3)
    _, t = s4.jvp(_cond_fn, (t64(XA),), (t64(v),))
    close(t, np.sum((np.cos(XA) * XA + np.sin(XA)) * v))
    _, t = s4.jvp(_cond_fn, (t64(-XA),), (t64(v),))
    close(t, np.sum(3 * XA ** 2 * v))


def test_cond_records_one_node_with_both_branches():
    fn = s4.trace(_cond_fn, t64(XA))
    conds = [e for e in fn.eqns if e.prim.name == "cond"]
    assert len(conds) == 1
    text = str(fn)
    assert "sin" in text and "true_branch" in text and "false_branch" in text


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_cond_check_grads_order2(sign):
    s4.check_grads(_cond_fn, (t64(sign * XA),), order=2)


def test_cond_with_captured_values_and_two_operands():
    w = t64(np.array([1.0, 2.0, 3.0]))

    def f(x, y):
        return s4.cond(x.sum() > y.sum(), lambda a, b: (a * b * w).sum(),
                       lambda a, b: (a + b * w).sum(), x, y)
    x, y = t64(XA), t64(XA / 10)
    gx, gy = s4.gradient(at=(x, y), of=f)
    close(gx, XA / 10 * w.numpy())
    close(gy, XA * w.numpy())
    s4.check_grads(f, (x, y), order=2)


def test_cond_gradient_inside_compile():
    step = s4.compile(s4.gradient(of=_cond_fn))
    close(step(t64(XA)), np.cos(XA) * XA + np.sin(XA))
    close(step(t64(-XA)), 3 * XA ** 2)
    assert step.traces == 1


# ---- s4.while_loop -------------------------------------------------------------------------------

def _doubling(x):
    return s4.while_loop(lambda v: v.sum() < 100.0, lambda v: v * 2.0, x)


def test_while_loop_runs_forward():
    close(_doubling(t64(np.array([1.0, 2.0]))), [64.0, 128.0])
    fn = s4.trace(_doubling, t64(np.array([1.0, 2.0])))
    assert [e.prim.name for e in fn.eqns].count("while_loop") == 1


def test_while_loop_is_not_differentiable_reverse():
    with pytest.raises(s4.DifferentiationError) as ei:
        s4.gradient(at=t64(np.array([1.0, 2.0])), of=lambda x: _doubling(x).sum())
    msg = str(ei.value)
    assert "while_loop" in msg and "not differentiable" in msg
    assert THIS_FILE in msg


def test_while_loop_is_not_differentiable_forward():
    with pytest.raises(s4.DifferentiationError, match="while_loop"):
        s4.jvp(_doubling, (t64(np.array([1.0, 2.0])),), (t64(np.ones(2)),))


def test_while_loop_without_derivative_is_allowed():
    x = t64(np.array([1.0, 2.0]))
    g = s4.gradient(at=x, of=lambda x: (s4.without_derivative(_doubling(x)) * x).sum())
    close(g, [64.0, 128.0])


# ---- s4.scan --------------------------------------------------------------------------------------

W0 = RNG.standard_normal((3, 3)) * 0.5
U0 = RNG.standard_normal((2, 3)) * 0.5
XS0 = RNG.standard_normal((5, 2))
H00 = RNG.standard_normal(3) * 0.1


def _rnn_scan(h0, w, u, xs):
    def cell(h, x):
        h2 = s4.tanh(h @ w + x @ u)
        return h2, h2 * h2
    hT, ys = s4.scan(cell, h0, xs)
    return hT.sum() + ys.sum()


def _rnn_unrolled(h0, w, u, xs):
    h = h0
    total = None
    for i in range(xs.shape[0]):
        h = s4.tanh(h @ w + xs[i] @ u)
        term = (h * h).sum()
        total = term if total is None else total + term
    return h.sum() + total


def _rnn_torch(h0, w, u, xs):
    h = h0
    total = 0.0
    for i in range(xs.shape[0]):
        h = torch.tanh(h @ w + xs[i] @ u)
        total = total + (h * h).sum()
    return h.sum() + total


def _args():
    return t64(H00), t64(W0), t64(U0), t64(XS0)


def test_scan_forward_matches_unrolled_loop():
    close(_rnn_scan(*_args()), _rnn_unrolled(*_args()).numpy())


def test_scan_gradient_matches_unrolled_loop():
    g_scan = s4.gradient(at=_args(), of=_rnn_scan)
    g_loop = s4.gradient(at=_args(), of=_rnn_unrolled)
    for a, b in zip(g_scan, g_loop):
        close(a, b.numpy(), 1e-12)


def test_scan_gradient_matches_torch():
    targs = [torch.tensor(a, requires_grad=True) for a in (H00, W0, U0, XS0)]
    _rnn_torch(*targs).backward()
    g = s4.gradient(at=_args(), of=_rnn_scan)
    for got, ta in zip(g, targs):
        close(got, ta.grad.numpy(), 1e-11)


def test_scan_forward_mode_matches_torch():
    tangents = [RNG.standard_normal(a.shape) for a in (H00, W0, U0, XS0)]
    _, t = s4.jvp(_rnn_scan, _args(), tuple(t64(v) for v in tangents))
    _, want = torch.autograd.functional.jvp(
        _rnn_torch, tuple(torch.tensor(a) for a in (H00, W0, U0, XS0)),
        tuple(torch.tensor(v) for v in tangents))
    close(t, want.numpy(), 1e-11)


def test_scan_check_grads_order2():
    s4.check_grads(_rnn_scan, _args(), order=2)


def test_scan_reverse_and_ys_structure():
    def f(c0, xs):
        c, ys = s4.scan(lambda c, x: (c * x["a"] + x["b"], {"y": c * 2.0}), c0,
                        {"a": xs, "b": xs * xs}, reverse=True)
        return c.sum() + ys["y"].sum()
    xs = RNG.standard_normal((4, 2))
    c0 = RNG.standard_normal(2)

    def ref(c0, xs):
        c, total = c0, 0.0
        for i in reversed(range(xs.shape[0])):
            total = total + (c * 2.0).sum()
            c = c * xs[i] + xs[i] * xs[i]
        return c.sum() + total
    tc, tx = torch.tensor(c0, requires_grad=True), torch.tensor(xs, requires_grad=True)
    ref(tc, tx).backward()
    gc, gx = s4.gradient(at=(t64(c0), t64(xs)), of=f)
    close(gc, tc.grad.numpy(), 1e-12)
    close(gx, tx.grad.numpy(), 1e-12)


def test_long_scan_records_one_node():
    n = 1000
    xs = t64(np.full((n, 2), 0.001))

    def f(h, xs):
        hT, _ = s4.scan(lambda h, x: (h * 0.999 + x, h), h, xs)
        return hT.sum()
    h = t64(np.array([1.0, -1.0]))
    fn = s4.trace(f, h, xs)
    names = [e.prim.name for e in fn.eqns]
    assert names.count("scan") == 1, names
    assert len(fn.eqns) < 10, names
    # its gradient is a few scans too, not an unrolled graph
    gfn = s4.trace(s4.gradient(of=f), h, xs)
    gnames = [e.prim.name for e in gfn.eqns]
    assert 1 <= gnames.count("scan") <= 3 and len(gfn.eqns) < 40, gnames
    # and it is right: d hT / d h = 0.999^n
    gh, gxs = s4.gradient(at=(h, xs), of=f)
    close(gh, np.full(2, 0.999 ** n), 1e-10)
    close(gxs[0], np.full(2, 0.999 ** (n - 1)), 1e-10)
    close(gxs[-1], np.ones(2), 1e-12)
