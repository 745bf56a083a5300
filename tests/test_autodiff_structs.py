"""Differentiable structs and layers: synthesized ``TangentVector``, ``no_derivative``, the vector
space operations, ``move(along=)``, nesting, and ``s4.nn.Layer`` models trained by gradients."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import s4tf_py as s4


def t64(a) -> s4.Tensor:
    return s4.Tensor(np.asarray(a, dtype=np.float64))


def close(got, want, tol=1e-12):
    got = np.asarray(got.numpy() if isinstance(got, s4.Tensor) else got, dtype=np.float64)
    np.testing.assert_allclose(got, np.asarray(want, dtype=np.float64), rtol=tol, atol=tol)


RNG = np.random.default_rng(7)
WA = RNG.standard_normal(3)


@s4.differentiable_struct
class Affine:
    w: s4.Tensor
    b: s4.Tensor
    name: str = s4.no_derivative(default="affine")
    scale: int = s4.no_derivative(default=2)

    def __call__(self, x):
        return x * self.w * self.scale + self.b


def _affine():
    return Affine(w=t64(WA), b=t64(0.5))


def test_tangent_vector_is_synthesized_without_no_derivative_fields():
    tv = Affine.TangentVector
    assert isinstance(tv, type)
    assert tv.__s4_fields__ == ("w", "b")
    t = tv(w=t64(WA), b=t64(1.0))
    assert not hasattr(t, "name") and not hasattr(t, "scale")
    with pytest.raises(TypeError):
        tv(w=t64(WA), b=t64(1.0), name="x")


def test_gradient_at_struct_is_a_tangent_vector():
    p = _affine()
    x = t64(np.array([1.0, 2.0, 3.0]))
    g = s4.gradient(at=p, of=lambda p: (p(x) * p(x)).sum())
    assert isinstance(g, Affine.TangentVector)
    y = x.numpy() * WA * 2 + 0.5
    close(g.w, 2 * y * x.numpy() * 2)
    close(g.b, np.sum(2 * y))
    # the non-differentiable fields survive differentiation untouched
    assert p.name == "affine" and p.scale == 2


def test_struct_gradient_along_with_other_arguments():
    p = _affine()
    x = t64(np.array([1.0, -1.0, 0.5]))
    gp, gx = s4.gradient(at=(p, x), of=lambda p, x: p(x).sum())
    assert isinstance(gp, Affine.TangentVector)
    close(gp.w, x.numpy() * 2)
    close(gp.b, 3.0)
    close(gx, WA * 2)


def test_tangent_vector_arithmetic():
    tv = Affine.TangentVector
    a = tv(w=t64([1.0, 2.0, 3.0]), b=t64(1.0))
    b = tv(w=t64([0.5, 0.5, 0.5]), b=t64(-2.0))
    s = a + b
    assert isinstance(s, tv)
    close(s.w, [1.5, 2.5, 3.5]); close(s.b, -1.0)
    d = a - b
    close(d.w, [0.5, 1.5, 2.5]); close(d.b, 3.0)
    m = 2.0 * a
    close(m.w, [2.0, 4.0, 6.0]); close(m.b, 2.0)
    m2 = a * 3.0
    close(m2.w, [3.0, 6.0, 9.0]); close(m2.b, 3.0)
    n = -a
    close(n.w, [-1.0, -2.0, -3.0]); close(n.b, -1.0)
    # a and b are unchanged (value semantics)
    close(a.w, [1.0, 2.0, 3.0]); close(b.b, -2.0)


def test_tangent_vector_zero():
    p = _affine()
    z = Affine.TangentVector.zero(like=p)
    assert isinstance(z, Affine.TangentVector)
    close(z.w, np.zeros(3)); close(z.b, 0.0)
    assert z.w.shape == p.w.shape and z.w.dtype == p.w.dtype
    a = Affine.TangentVector(w=t64([1.0, 2.0, 3.0]), b=t64(4.0))
    close((a + z).w, [1.0, 2.0, 3.0])


def test_move_along_updates_in_place_with_value_semantics():
    p = _affine()
    w_before = p.w
    alias = p
    t = Affine.TangentVector(w=t64([1.0, 1.0, 1.0]), b=t64(-0.5))
    p.move(along=t)
    assert alias is p                                     # the same object was updated
    close(p.w, WA + 1.0)
    close(p.b, 0.0)
    close(w_before, WA)                                    # a tensor held elsewhere is unchanged
    assert p.name == "affine"


def test_unmarked_non_differentiable_field_warns_naming_the_field():
    @s4.differentiable_struct
    class Holder:
        w: s4.Tensor
        count: int = 3

    h = Holder(w=t64(WA))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        g = s4.gradient(at=h, of=lambda h: (h.w * h.count).sum())
    msgs = [str(r.message) for r in rec if issubclass(r.category, UserWarning)]
    assert any("count" in m for m in msgs), msgs
    assert any("no_derivative" in m for m in msgs), msgs
    close(g.w, np.full(3, 3.0))

    # marking it no_derivative silences the warning
    @s4.differentiable_struct
    class Quiet:
        w: s4.Tensor
        count: int = s4.no_derivative(default=3)

    q = Quiet(w=t64(WA))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s4.gradient(at=q, of=lambda q: (q.w * q.count).sum())


def test_struct_with_list_dict_and_float_fields():
    @s4.differentiable_struct
    class Bag:
        ws: list
        named: dict
        c: float

    bag = Bag(ws=[t64([1.0, 2.0]), t64([3.0])], named={"a": t64(2.0)}, c=1.5)
    g = s4.gradient(at=bag, of=lambda b: (b.ws[0].sum() * b.named["a"] + b.ws[1].sum()) * b.c)
    assert isinstance(g, Bag.TangentVector)
    close(g.ws[0], [3.0, 3.0]); close(g.ws[1], [1.5])
    close(g.named["a"], 4.5)
    assert float(g.c) == pytest.approx(2.0 * 3.0 + 3.0)


@s4.differentiable_struct
class _Inner:
    w: s4.Tensor


@s4.differentiable_struct
class _Outer:
    inner: _Inner
    s: s4.Tensor


def test_nested_structs_gradient():
    o = _Outer(inner=_Inner(w=t64(WA)), s=t64(3.0))
    g = s4.gradient(at=o, of=lambda o: (o.inner.w * o.s).sum())
    assert isinstance(g, _Outer.TangentVector)
    assert isinstance(g.inner, _Inner.TangentVector)
    close(g.inner.w, np.full(3, 3.0))
    close(g.s, WA.sum())


def test_nested_structs_move_and_no_spurious_warning():
    @s4.differentiable_struct
    class Inner:            # fresh classes: the field warning is issued once per class
        w: s4.Tensor

    @s4.differentiable_struct
    class Outer:
        inner: Inner
        s: s4.Tensor

    o = Outer(inner=Inner(w=t64(WA)), s=t64(3.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # an `inner` field IS differentiable
        g = s4.gradient(at=o, of=lambda o: (o.inner.w * o.s).sum())
    o.move(along=g)
    close(o.s, 3.0 + WA.sum())
    close(o.inner.w, WA + 3.0)


# ---- layers -----------------------------------------------------------------------------------

class MLP(s4.nn.Layer):
    l1: s4.nn.Dense
    l2: s4.nn.Dense

    def __call__(self, x):
        return self.l2(s4.relu(self.l1(x)))


def _mlp():
    return MLP(l1=s4.nn.Dense(3, 4, activation=None, seed=0, dtype=s4.float64),
               l2=s4.nn.Dense(4, 2, seed=1, dtype=s4.float64))


def test_layer_tangent_vector_and_parameters():
    m = _mlp()
    assert MLP.TangentVector.__s4_fields__ == ("l1", "l2")
    assert s4.nn.Dense.TangentVector.__s4_fields__ == ("weight", "bias")
    names = [n for n, _ in m.named_parameters()]
    assert names == ["l1.weight", "l1.bias", "l2.weight", "l2.bias"]
    params = m.parameters()
    assert len(params) == 4 and all(isinstance(p, s4.Tensor) for p in params)
    assert [p.shape for p in params] == [(3, 4), (4,), (4, 2), (2,)]
    assert params[0] is m.l1.weight


def test_layer_gradient_is_nested_tangent_vector_and_moving_lowers_the_loss():
    m = _mlp()
    x = s4.Tensor(RNG.standard_normal((5, 3)))
    y = s4.Tensor(RNG.standard_normal((5, 2)))

    def loss(pred, target):
        return ((pred - target) ** 2).mean()
    l0 = loss(m(x), y).item()
    g = s4.gradient(at=m, of=lambda m: loss(m(x), y))
    assert isinstance(g, MLP.TangentVector)
    assert isinstance(g.l1, s4.nn.Dense.TangentVector)
    assert g.l1.weight.shape == (3, 4) and g.l2.bias.shape == (2,)
    step = -0.1 * g
    assert isinstance(step, MLP.TangentVector)
    m.move(along=step)
    l1 = loss(m(x), y).item()
    assert l1 < l0
    # the layer's no_derivative fields are still there
    assert m.l2.use_bias is True


def test_layer_gradient_matches_finite_differences():
    m = _mlp()
    x = s4.Tensor(RNG.standard_normal((2, 3)))

    def f(m):
        return (s4.tanh(m(x)) ** 2).sum()
    g = s4.gradient(at=m, of=f)
    eps = 1e-6
    w = np.array(m.l1.weight.numpy())
    dw = RNG.standard_normal(w.shape)
    mp = _mlp(); mp.l1.weight = t64(w + eps * dw)
    mm = _mlp(); mm.l1.weight = t64(w - eps * dw)
    fd = (f(mp).item() - f(mm).item()) / (2 * eps)
    assert np.sum(g.l1.weight.numpy() * dw) == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_layer_of_layers_of_layers():
    class Block(s4.nn.Layer):
        a: s4.nn.Dense
        b: s4.nn.Dense

        def __call__(self, x):
            return self.b(s4.tanh(self.a(x)))

    class Net(s4.nn.Layer):
        first: Block
        second: Block
        scale: float = s4.no_derivative(default=1.0)

        def __call__(self, x):
            return self.second(self.first(x)) * self.scale

    def blk(i):
        return Block(a=s4.nn.Dense(2, 2, seed=i, dtype=s4.float64),
                     b=s4.nn.Dense(2, 2, seed=i + 10, dtype=s4.float64))
    net = Net(first=blk(0), second=blk(1))
    assert [n for n, _ in net.named_parameters()] == [
        "first.a.weight", "first.a.bias", "first.b.weight", "first.b.bias",
        "second.a.weight", "second.a.bias", "second.b.weight", "second.b.bias"]
    x = s4.Tensor(RNG.standard_normal((3, 2)))
    g = s4.gradient(at=net, of=lambda n: (n(x) ** 2).sum())
    assert isinstance(g, Net.TangentVector)
    assert isinstance(g.first, Block.TangentVector)
    assert isinstance(g.second.b, s4.nn.Dense.TangentVector)
    before = (net(x) ** 2).sum().item()
    net.move(along=-0.05 * g)
    assert (net(x) ** 2).sum().item() < before
    z = Net.TangentVector.zero(like=net)
    close(z.second.a.weight, np.zeros((2, 2)))


def test_gradient_of_layer_and_input_together():
    m = _mlp()
    x = s4.Tensor(RNG.standard_normal((2, 3)))
    gm, gx = s4.gradient(at=(m, x), of=lambda m, x: m(x).sum())
    assert isinstance(gm, MLP.TangentVector)
    assert gx.shape == (2, 3)
    eps = 1e-6
    dx = RNG.standard_normal((2, 3))
    fd = (m(x + t64(eps * dx)).sum().item() - m(x - t64(eps * dx)).sum().item()) / (2 * eps)
    assert np.sum(gx.numpy() * dx) == pytest.approx(fd, rel=1e-6, abs=1e-8)
