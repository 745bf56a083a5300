"""Gradients of convolutions and pooling against torch autograd (layouts converted: s4tf_py is
channels-last with HWIO filters, torch channels-first with OIHW), to first and second order,
plus ``s4.check_grads`` of the rules' corner cases (lhs dilation, negative padding, groups)."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4

F = s4.nn.functional
T = s4.Tensor
import torch  # noqa: E402 - a test extra (setup.py), never skipped
TF = torch.nn.functional

TOL = dict(rtol=1e-9, atol=1e-10)


def _rng(seed=0):
    return np.random.default_rng(seed)


def nchw(x):
    """Channels-last numpy -> channels-first torch tensor (float64, requires grad)."""
    return torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)


def from_nchw(t):
    return np.moveaxis(t.detach().numpy(), 1, -1)


def oihw(w):
    """(*k, I, O) -> (O, I, *k), requires grad."""
    return torch.tensor(np.moveaxis(np.moveaxis(w, -1, 0), -1, 1).copy(), requires_grad=True)


def from_oihw(t):
    """(O, I, *k) -> (*k, I, O)."""
    return np.moveaxis(np.moveaxis(t.detach().numpy(), 0, -1), 0, -2)


def _grads(fn, args, u):
    """Gradients of ``sum(fn(*args) * u)`` with respect to every argument (s4tf_py)."""
    g = s4.gradient(at=tuple(T(a) for a in args), of=lambda *xs: s4.sum(fn(*xs) * T(u)))
    return [c.numpy() for c in g]


# ---- convolutions -----------------------------------------------------------------------------

CONV2D_CASES = [  # strides, padding (torch-style symmetric ints), dilation, groups
    (1, 0, 1, 1),
    (2, 1, 1, 1),          # strided, padded
    ((2, 3), 0, 1, 1),     # strides that leave trailing input unused
    (1, 2, 2, 1),          # dilated
    (1, 1, 1, 2),          # grouped
    (2, 1, (2, 1), 4),     # all together, depthwise-like groups
]


@pytest.mark.parametrize("stride,pad,dil,groups", CONV2D_CASES)
def test_conv2d_gradients_match_torch(stride, pad, dil, groups):
    rng = _rng(1)
    x = rng.normal(size=(2, 7, 8, 4))
    w = rng.normal(size=(3, 2, 4 // groups, 4))
    fn = lambda a, b: F.conv2d(a, b, strides=stride, padding=pad, dilations=dil, groups=groups)
    out = fn(T(x), T(w)).numpy()
    u = rng.normal(size=out.shape)
    gx, gw = _grads(fn, (x, w), u)
    xt, wt = nchw(x), oihw(w)
    yt = TF.conv2d(xt, wt, stride=stride, padding=pad, dilation=dil, groups=groups)
    np.testing.assert_allclose(out, from_nchw(yt), **TOL)
    (yt * torch.tensor(np.moveaxis(u, -1, 1))).sum().backward()
    np.testing.assert_allclose(gx, from_nchw(xt.grad), **TOL)
    np.testing.assert_allclose(gw, from_oihw(wt.grad), **TOL)


def test_conv2d_second_order_matches_torch():
    """d/d(x, w) of |d loss / dx|^2 through a strided, grouped, dilated conv and tanh."""
    rng = _rng(2)
    x = rng.normal(size=(1, 6, 7, 4))
    w = rng.normal(size=(2, 3, 2, 4)) * 0.5

    def loss(a, b):
        return s4.sum(s4.tanh(F.conv2d(a, b, strides=(2, 1), padding=1, dilations=(1, 2),
                                       groups=2)) ** 2)

    def gnorm(a, b):
        g = s4.gradient(at=a, of=lambda a_: loss(a_, b))
        return s4.sum(g * g)

    gx, gw = (c.numpy() for c in s4.gradient(at=(T(x), T(w)), of=gnorm))
    xt, wt = nchw(x), oihw(w)
    lt = (torch.tanh(TF.conv2d(xt, wt, stride=(2, 1), padding=1, dilation=(1, 2),
                               groups=2)) ** 2).sum()
    (g,) = torch.autograd.grad(lt, xt, create_graph=True)
    (g * g).sum().backward()
    np.testing.assert_allclose(gx, from_nchw(xt.grad), **TOL)
    np.testing.assert_allclose(gw, from_oihw(wt.grad), **TOL)


@pytest.mark.parametrize("stride,pad,opad,dil,groups", [
    (2, 1, 1, 1, 1), (3, 0, 0, 2, 1), (2, 1, 0, 1, 2)])
def test_conv_transpose2d_gradients_match_torch(stride, pad, opad, dil, groups):
    rng = _rng(3)
    cin, cout = 4, 6
    x = rng.normal(size=(2, 3, 4, cin))
    w = rng.normal(size=(3, 2, cout // groups, cin))          # (kh, kw, O/groups, I), TF layout
    fn = lambda a, b: F.conv_transpose2d(a, b, strides=stride, padding=pad, output_padding=opad,
                                         dilations=dil, groups=groups)
    out = fn(T(x), T(w)).numpy()
    u = rng.normal(size=out.shape)
    gx, gw = _grads(fn, (x, w), u)
    xt = nchw(x)
    wt = torch.tensor(np.transpose(w, (3, 2, 0, 1)).copy(), requires_grad=True)  # (I, O/g, kh, kw)
    yt = TF.conv_transpose2d(xt, wt, stride=stride, padding=pad, output_padding=opad,
                             dilation=dil, groups=groups)
    np.testing.assert_allclose(out, from_nchw(yt), **TOL)
    (yt * torch.tensor(np.moveaxis(u, -1, 1))).sum().backward()
    np.testing.assert_allclose(gx, from_nchw(xt.grad), **TOL)
    np.testing.assert_allclose(gw, np.transpose(wt.grad.numpy(), (2, 3, 1, 0)), **TOL)


@pytest.mark.parametrize("params", [
    dict(window_strides=(1, 2), padding=((-1, 2), (2, -1)), lhs_dilation=(2, 3),
         rhs_dilation=(2, 1)),
    dict(window_strides=(2, 3), padding=((3, 0), (0, 4)), lhs_dilation=(1, 2),
         rhs_dilation=(1, 1), feature_group_count=3),
])
def test_conv_general_corner_cases_check_grads(params):
    """lhs dilation, negative (cropping) and window-sized padding, groups: order 2."""
    rng = _rng(4)
    g = params.get("feature_group_count", 1)
    cin, cout = 2 * g, 3 * g
    x = T(rng.normal(size=(2, 4, 3, cin)))
    w = T(rng.normal(size=(2, 3, cin // g, cout)))
    s4.check_grads(lambda a, b: F.conv_general(a, b, **params), (x, w), order=2)


def test_conv1d_and_conv3d_check_grads():
    rng = _rng(5)
    x1, w1 = T(rng.normal(size=(2, 9, 3))), T(rng.normal(size=(3, 3, 4)))
    s4.check_grads(lambda a, b: F.conv1d(a, b, strides=2, padding="same"), (x1, w1), order=2)
    x3, w3 = T(rng.normal(size=(1, 4, 3, 4, 2))), T(rng.normal(size=(2, 2, 2, 1, 4)))
    s4.check_grads(lambda a, b: F.conv3d(a, b, strides=(1, 2, 1), groups=2), (x3, w3), order=2)


# ---- pooling ----------------------------------------------------------------------------------

def _pool_grads(s4_fn, torch_fn, x, seed):
    out = s4_fn(T(x)).numpy()
    u = _rng(seed).normal(size=out.shape)
    (gx,) = _grads(s4_fn, (x,), u)
    xt = nchw(x)
    yt = torch_fn(xt)
    np.testing.assert_allclose(out, from_nchw(yt), **TOL)
    (yt * torch.tensor(np.moveaxis(u, -1, 1))).sum().backward()
    np.testing.assert_allclose(gx, from_nchw(xt.grad), **TOL)


@pytest.mark.parametrize("k,s,pad", [(2, 2, 0), ((2, 3), (2, 1), 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool2d_gradients_match_torch(k, s, pad):
    x = _rng(6).normal(size=(2, 7, 6, 3))
    _pool_grads(lambda a: F.max_pool2d(a, k, s, padding=pad),
                lambda a: TF.max_pool2d(a, k, s, padding=pad), x, 7)


def test_max_pool_routes_ties_to_the_first_maximum():
    """As torch (and XLA's select_and_scatter): the whole cotangent goes to the first max."""
    x = np.zeros((1, 2, 4, 1))
    x[0, :, 2:, 0] = 1.0
    g = s4.gradient(at=T(x), of=lambda a: s4.sum(F.max_pool2d(a, 2) * T([[[[1.0], [2.0]]]])))
    want = np.zeros_like(x)
    want[0, 0, 0, 0] = 1.0
    want[0, 0, 2, 0] = 2.0
    np.testing.assert_array_equal(g.numpy(), want)
    xt = nchw(x)
    (TF.max_pool2d(xt, 2) * torch.tensor([[[[1.0, 2.0]]]], dtype=torch.float64)).sum().backward()
    np.testing.assert_array_equal(g.numpy(), from_nchw(xt.grad))


def test_max_pool2d_second_order_matches_torch():
    x = _rng(8).normal(size=(1, 6, 6, 2))

    def gnorm(a):
        g = s4.gradient(at=a, of=lambda a_: s4.sum(F.max_pool2d(s4.sin(a_), 3, 2, padding=1) ** 3))
        return s4.sum(g * g)

    gx = s4.gradient(at=T(x), of=gnorm).numpy()
    xt = nchw(x)
    lt = (TF.max_pool2d(torch.sin(xt), 3, 2, padding=1) ** 3).sum()
    (g,) = torch.autograd.grad(lt, xt, create_graph=True)
    (g * g).sum().backward()
    np.testing.assert_allclose(gx, from_nchw(xt.grad), **TOL)


@pytest.mark.parametrize("k,s", [(3, 2), (3, 1), ((3, 1), (2, 1))])
def test_avg_pool2d_same_gradients_match_torch(k, s):
    """TF "same" padding excludes the padding from the average: torch's count_include_pad=False
    with the same (here symmetric) padding."""
    x = _rng(9).normal(size=(2, 7, 5, 3))
    kk = (k, k) if isinstance(k, int) else k
    pads = tuple((kd - 1) // 2 for kd in kk)
    _pool_grads(lambda a: F.avg_pool2d(a, k, s, padding="same"),
                lambda a: TF.avg_pool2d(a, k, s, padding=pads, count_include_pad=False), x, 10)


def test_avg_pool2d_valid_and_include_pad_gradients_match_torch():
    x = _rng(11).normal(size=(2, 6, 7, 2))
    _pool_grads(lambda a: F.avg_pool2d(a, (2, 3), (2, 2)),
                lambda a: TF.avg_pool2d(a, (2, 3), (2, 2)), x, 12)
    _pool_grads(lambda a: F.avg_pool2d(a, 3, 2, padding=1, count_include_pad=True),
                lambda a: TF.avg_pool2d(a, 3, 2, padding=1), x, 13)


def test_reduce_window_check_grads():
    """Sum and max windows over every dimension (for sum with padding wider than the window;
    a max window entirely in the padding is -inf, which finite differences cannot check)."""
    x = T(_rng(14).normal(size=(5, 4)))
    s4.check_grads(lambda a: F.reduce_window(a, "sum", (2, 3), (2, 1), padding=((3, 4), (0, 2))),
                   (x,), order=2)
    s4.check_grads(lambda a: F.reduce_window(a, "max", (2, 3), (2, 1), padding=((1, 1), (0, 2))),
                   (x,), order=2, eps=1e-6)
    s4.check_grads(lambda a: F.max_pool1d(a, 3, 2, padding="same"),
                   (T(_rng(15).normal(size=(2, 8, 3))),), order=2, eps=1e-6)
