"""Automatic differentiation: the derivative operators, custom derivatives and derivative surgery.

Covers ``@s4.differentiable`` (``wrt=``), ``gradient`` / ``value_with_gradient`` / ``pullback`` /
``value_with_pullback`` (also curried), the rank-0 rule, ``@s4.derivative`` (eagerly, nested and
inside ``s4.compile``), ``without_derivative`` / ``with_derivative`` / ``differentiable_function``
/ ``with_recomputation_in_pullbacks`` (checked on the IR), forward mode, higher order,
differentiable writes (``t[i] = v``, ``t += x``), ``s4.check_grads`` and the printed IR of a
gradient. Everything runs in float64 on tiny shapes.
"""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4

F64 = s4.float64


def t64(a) -> s4.Tensor:
    """A float64 tensor built from numpy (exact, whatever Python floats do)."""
    return s4.Tensor(np.asarray(a, dtype=np.float64))


def close(got, want, tol=1e-12):
    got = np.asarray(got.numpy() if isinstance(got, s4.Tensor) else got, dtype=np.float64)
    np.testing.assert_allclose(got, np.asarray(want, dtype=np.float64), rtol=tol, atol=tol)


RNG = np.random.default_rng(1234)
XA = RNG.standard_normal(3)
YA = RNG.standard_normal(3)


# ---- the derivative operators ----------------------------------------------------------------

def test_gradient_single_tensor():
    x = t64(XA)
    g = s4.gradient(at=x, of=lambda x: (s4.sin(x) * x).sum())
    assert isinstance(g, s4.Tensor) and g.shape == (3,) and g.dtype == F64
    close(g, np.cos(XA) * XA + np.sin(XA))


def test_value_with_gradient():
    x = t64(XA)
    v, g = s4.value_with_gradient(at=x, of=lambda x: (x * x * x).sum())
    close(v, np.sum(XA ** 3))
    close(g, 3 * XA ** 2)


def test_gradient_several_arguments_returns_tuple():
    x, y = t64(XA), t64(YA)
    gx, gy = s4.gradient(at=(x, y), of=lambda x, y: (x * s4.exp(y)).sum())
    close(gx, np.exp(YA))
    close(gy, XA * np.exp(YA))


def test_gradient_python_float_arguments():
    g = s4.gradient(at=3.0, of=lambda c: c * c * c)
    assert float(g) == pytest.approx(27.0)
    x = t64(XA)
    gx, gc = s4.gradient(at=(x, 2.0), of=lambda x, c: (x * x).sum() * c)
    close(gx, 4.0 * XA)
    assert float(gc) == pytest.approx(float(np.sum(XA * XA)), rel=1e-6)


def test_gradient_of_tuple_list_dict_arguments():
    x, y = t64(XA), t64(YA)
    gt = s4.gradient(at=(x, y), of=lambda a, b: (a * b).sum())
    assert isinstance(gt, tuple) and len(gt) == 2
    gl = s4.gradient(at=[x, y], of=lambda l: (l[0] * l[1] * l[1]).sum())
    assert isinstance(gl, list) and len(gl) == 2
    close(gl[0], YA * YA)
    close(gl[1], 2 * XA * YA)
    gd = s4.gradient(at={"a": x, "b": y}, of=lambda d: (s4.sin(d["a"]) + d["b"] * d["a"]).sum())
    assert isinstance(gd, dict) and set(gd) == {"a", "b"}
    close(gd["a"], np.cos(XA) + YA)
    close(gd["b"], XA)
    # a tuple argument inside a tuple of arguments
    (g1, g2), g3 = s4.gradient(at=((x, y), x), of=lambda p, z: (p[0] * p[1] * z).sum())
    close(g1, YA * XA)
    close(g2, XA * XA)
    close(g3, XA * YA)


def test_curried_gradient():
    grad_f = s4.gradient(of=lambda x: (x * x).sum())
    close(grad_f(t64(XA)), 2 * XA)
    close(grad_f(t64(YA)), 2 * YA)
    gx, gy = s4.gradient(of=lambda x, y: (x * y * y).sum())(t64(XA), t64(YA))
    close(gx, YA * YA)
    close(gy, 2 * XA * YA)


def test_differentiable_decorator_plain_and_wrt():
    @s4.differentiable
    def f(x):
        return (x * x).sum()
    assert f(t64(XA)).item() == pytest.approx(float(np.sum(XA * XA)))
    close(s4.gradient(at=t64(XA), of=f), 2 * XA)

    @s4.differentiable(wrt="y")
    def g(x, y):
        return (x * y * y).sum()
    gy = s4.gradient(of=g)(t64(XA), t64(YA))
    assert isinstance(gy, s4.Tensor)
    close(gy, 2 * XA * YA)

    @s4.differentiable(wrt=("x", "z"))
    def h(x, y, z):
        return (x * y * z).sum()
    gx, gz = s4.gradient(of=h)(t64(XA), t64(YA), t64(XA))
    close(gx, YA * XA)
    close(gz, XA * YA)

    with pytest.raises(ValueError, match="nope"):
        s4.differentiable(wrt="nope")(lambda x: x)


def test_pullback_takes_any_cotangent():
    x = t64(XA)
    pb = s4.pullback(at=x, of=lambda x: s4.sin(x) * 2.0)
    ct = t64(YA)
    close(pb(ct), YA * 2.0 * np.cos(XA))
    v, pb2 = s4.value_with_pullback(at=x, of=lambda x: s4.sin(x) * 2.0)
    close(v, 2 * np.sin(XA))
    close(pb2(t64(np.ones(3))), 2.0 * np.cos(XA))
    # a matrix-valued function of two arguments
    m = t64(RNG.standard_normal((2, 3)))
    pbm = s4.pullback(at=(m, x), of=lambda m, x: m * x)
    ctm = RNG.standard_normal((2, 3))
    gm, gx = pbm(t64(ctm))
    close(gm, ctm * XA)
    close(gx, (ctm * m.numpy()).sum(0))


def test_pullback_of_tuple_result():
    x = t64(XA)
    v, pb = s4.value_with_pullback(at=x, of=lambda x: (x * 2.0, (x * x).sum()))
    close(v[0], 2 * XA)
    g = pb((t64(YA), t64(3.0)))
    close(g, 2.0 * YA + 6.0 * XA)


def test_pullback_checks_cotangent_shape():
    pb = s4.pullback(at=t64(XA), of=lambda x: x * 2.0)
    with pytest.raises(ValueError):
        pb(t64(np.ones(4)))


def test_rank0_rule_gradient_of_nonscalar_is_an_error():
    msg = "you can only compute the gradient of functions that return scalar values"
    with pytest.raises(s4.DifferentiationError, match=msg):
        s4.gradient(at=t64(XA), of=lambda x: x * 2.0)
    with pytest.raises(s4.DifferentiationError, match=msg):
        s4.value_with_gradient(at=t64(XA), of=lambda x: (x * x).sum(keepdims=True))
    with pytest.raises(s4.DifferentiationError, match=msg):
        s4.gradient(of=lambda x: x)(t64(XA))


# ---- custom derivatives -------------------------------------------------------------------------

def _make_square_with_custom_vjp(factor):
    """square(x) = x*x whose custom pullback is factor * x * ct (the true one has factor 2)."""
    calls = []

    @s4.differentiable
    def square(x):
        return x * x

    @s4.derivative(of=square)
    def _vjp(x):
        calls.append(1)
        return square.f(x), lambda ct: ct * factor * x
    return square, calls


def test_custom_derivative_replaces_traced_derivative():
    square, _ = _make_square_with_custom_vjp(5.0)
    x = t64(XA)
    close(square(x), XA * XA)                              # the value is unchanged
    close(s4.gradient(at=x, of=lambda x: square(x).sum()), 5.0 * XA)


def test_custom_derivative_used_inside_other_functions():
    square, _ = _make_square_with_custom_vjp(5.0)

    def inner(x):
        return s4.sin(square(x))

    def outer(x):
        return (inner(x) * 3.0).sum()
    x = t64(XA)
    close(s4.gradient(at=x, of=outer), 3.0 * np.cos(XA * XA) * 5.0 * XA)
    close(s4.gradient(of=outer)(x), 3.0 * np.cos(XA * XA) * 5.0 * XA)
    close(s4.pullback(at=x, of=inner)(t64(YA)), YA * np.cos(XA * XA) * 5.0 * XA)


def test_custom_derivative_inside_compile_traces_once():
    square, calls = _make_square_with_custom_vjp(5.0)

    def step(x):
        return s4.gradient(at=x, of=lambda x: (square(x) + x).sum())
    compiled = s4.compile(step)
    close(compiled(t64(XA)), 5.0 * XA + 1.0)
    close(compiled(t64(YA)), 5.0 * YA + 1.0)
    assert compiled.traces == 1
    assert len(calls) == 1, "the custom VJP should run once, while the body is traced"


def test_custom_derivative_independent_of_input_inside_compile():
    @s4.differentiable
    def f(x):
        return x * x

    @s4.derivative(of=f)
    def _vjp(x):
        return f.f(x), lambda ct: ct * 10.0      # does not depend on x at all
    compiled = s4.compile(lambda x: s4.gradient(at=x, of=lambda x: f(x).sum()))
    close(compiled(t64(XA)), np.full(3, 10.0))


def test_custom_derivative_several_arguments_and_tuple_results():
    @s4.differentiable
    def mul(a, b):
        return a * b

    @s4.derivative(of=mul)
    def _mul_vjp(a, b):
        return a * b, lambda ct: (ct * b * 10.0, ct * a * 100.0)
    x, y = t64(XA), t64(YA)
    gx, gy = s4.gradient(at=(x, y), of=lambda a, b: mul(a, b).sum())
    close(gx, 10.0 * YA)
    close(gy, 100.0 * XA)
    close(s4.gradient(at=y, of=lambda b: mul(x, b).sum()), 100.0 * XA)   # x held fixed

    @s4.differentiable
    def two(a):
        return a * 2.0, a * 3.0

    @s4.derivative(of=two)
    def _two_vjp(a):
        return (a * 2.0, a * 3.0), lambda ct: ct[0] * 20.0 + ct[1] * 300.0
    g = s4.gradient(at=x, of=lambda a: (two(a)[0] + 2.0 * two(a)[1]).sum())
    close(g, np.full(3, 20.0 + 600.0))


def test_custom_derivative_is_differentiated_again():
    @s4.differentiable
    def cube(a):
        return a * a * a

    @s4.derivative(of=cube)
    def _cube_vjp(a):
        return a * a * a, lambda ct: ct * 3.0 * a * a * 2.0     # deliberately doubled
    x = t64(XA)
    d2 = s4.gradient(at=x, of=lambda a: s4.gradient(at=a, of=lambda a: cube(a).sum()).sum())
    close(d2, 12.0 * XA)


def test_derivative_requires_differentiable_function():
    def plain(x):
        return x
    with pytest.raises(TypeError, match="s4.differentiable"):
        s4.derivative(of=plain)(lambda x: (x, lambda ct: ct))


def test_without_derivative():
    x = t64(XA)
    g = s4.gradient(at=x, of=lambda x: (s4.without_derivative(x) * x).sum())
    close(g, XA)                                   # d/dx (c * x) with c = x held constant
    g2 = s4.gradient(at=x, of=lambda x: (s4.without_derivative(x * x) + x).sum())
    close(g2, np.ones(3))


def test_with_derivative_hook_sees_and_replaces_cotangent():
    x = t64(XA)
    seen = []

    def observe(ct):
        seen.append(ct.numpy().copy())
        return None                               # keep the cotangent
    g = s4.gradient(at=x, of=lambda x: (s4.with_derivative(x * 2.0, observe) * 3.0).sum())
    close(g, np.full(3, 6.0))
    assert len(seen) == 1
    close(seen[0], np.full(3, 3.0))               # the cotangent reaching x*2.0

    g2 = s4.gradient(at=x, of=lambda x: (s4.with_derivative(x * 2.0, lambda ct: ct * -1.0)
                                         * 3.0).sum())
    close(g2, np.full(3, -6.0))
    # the forward value is untouched
    close(s4.with_derivative(x, lambda ct: ct * 0.0), XA)


def test_differentiable_function_from_vjp():
    cube = s4.differentiable_function(lambda x: (x * x * x, lambda ct: ct * 7.0 * x))
    x = t64(XA)
    close(cube(x), XA ** 3)
    close(s4.gradient(at=x, of=lambda x: cube(x).sum()), 7.0 * XA)


# ---- rematerialization ------------------------------------------------------------------------

def _f_sin(x):
    return s4.sin(x) * x


def _producers(fn):
    """var -> eqn that produced it."""
    out = {}
    for e in fn.eqns:
        for o in e.outs:
            out[o] = e
    return out


def _depends_on(fn, var, prim_name):
    """Whether ``var`` is computed (transitively) from an eqn named ``prim_name``."""
    prod = _producers(fn)
    stack, seen = [var], set()
    while stack:
        v = stack.pop()
        if v in seen or v not in prod:
            continue
        seen.add(v)
        e = prod[v]
        if e.prim.name == prim_name:
            return True
        stack.extend(e.inputs)
    return False


def test_with_recomputation_in_pullbacks_recomputes_forward():
    remat = s4.with_recomputation_in_pullbacks(_f_sin)
    x = t64(XA)

    def g(x):
        return (remat(x) * 3.0).sum()

    def g_plain(x):
        return (_f_sin(x) * 3.0).sum()
    want = 3.0 * (np.cos(XA) * XA + np.sin(XA))
    close(s4.gradient(at=x, of=g), want)
    close(s4.gradient(at=x, of=g_plain), want)

    # the gradient alone: its sin is computed from optimization_barrier copies of the input
    fn = s4.trace(s4.gradient(of=g), x)
    names = [e.prim.name for e in fn.eqns]
    assert "optimization_barrier" in names, str(fn)
    sins = [e for e in fn.eqns if e.prim.name == "sin"]
    assert sins and all(_depends_on(fn, e.inputs[0], "optimization_barrier") for e in sins), str(fn)

    # value and gradient together: sin runs twice, once forward and once recomputed
    fn = s4.trace(lambda x: s4.value_with_gradient(at=x, of=g), x)
    sins = [e for e in fn.eqns if e.prim.name == "sin"]
    assert len(sins) == 2, str(fn)
    from_barrier = [_depends_on(fn, e.inputs[0], "optimization_barrier") for e in sins]
    assert sorted(from_barrier) == [False, True], str(fn)
    # the gradient output uses the recomputed sin, not the forward one
    fwd_sin = sins[from_barrier.index(False)].outs[0]
    grad_out = fn.outputs[1]
    assert not _uses(fn, grad_out, fwd_sin), str(fn)

    # without remat: one sin, shared by the forward value and the pullback, and no barrier
    fn0 = s4.trace(lambda x: s4.value_with_gradient(at=x, of=g_plain), x)
    names0 = [e.prim.name for e in fn0.eqns]
    assert names0.count("sin") == 1 and "optimization_barrier" not in names0, str(fn0)
    sin0 = next(e for e in fn0.eqns if e.prim.name == "sin").outs[0]
    assert _uses(fn0, fn0.outputs[1], sin0), str(fn0)


def test_with_recomputation_in_pullbacks_several_arguments_and_second_order():
    remat = s4.with_recomputation_in_pullbacks(lambda a, b: s4.sin(a) * b)
    a, b = t64(XA), t64(YA)
    ga, gb = s4.gradient(at=(a, b), of=lambda a, b: remat(a, b).sum())
    close(ga, np.cos(XA) * YA)
    close(gb, np.sin(XA))
    s4.check_grads(lambda a, b: remat(a, b) * a, (a, b), order=2)


def _uses(fn, var, target):
    """Whether computing ``var`` reads ``target``."""
    prod = _producers(fn)
    stack, seen = [var], set()
    while stack:
        v = stack.pop()
        if v is target:
            return True
        if v in seen or v not in prod:
            continue
        seen.add(v)
        stack.extend(prod[v].inputs)
    return False


# ---- forward mode -------------------------------------------------------------------------------

def test_jvp_single_and_several_arguments():
    x, y = t64(XA), t64(YA)
    v, t = s4.jvp(s4.sin, (x,), (t64(YA),))
    close(v, np.sin(XA))
    close(t, np.cos(XA) * YA)
    v, t = s4.jvp(lambda a, b: a * b * b, (x, y), (t64(np.ones(3)), t64(np.full(3, 2.0))))
    close(v, XA * YA * YA)
    close(t, YA * YA + 2.0 * 2 * XA * YA)


def test_value_with_differential():
    x = t64(XA)
    v, diff = s4.value_with_differential(at=x, of=lambda x: s4.exp(x) * x)
    close(v, np.exp(XA) * XA)
    close(diff(t64(YA)), (np.exp(XA) * XA + np.exp(XA)) * YA)
    close(diff(t64(np.ones(3))), np.exp(XA) * XA + np.exp(XA))
    v2, diff2 = s4.value_with_differential(at=(x, t64(YA)), of=lambda a, b: (a * b).sum())
    close(diff2((t64(np.ones(3)), t64(np.zeros(3)))), np.sum(YA))


def test_forward_and_reverse_agree_on_jacobian():
    m = RNG.standard_normal((3, 3))

    def f(x):
        return s4.tanh(t64(m) @ x) * x
    x = t64(XA)
    eye = np.eye(3)
    jac_fwd = np.stack([s4.jvp(f, (x,), (t64(eye[i]),))[1].numpy() for i in range(3)], axis=1)
    # a fresh pullback per row (reusing one pullback is tested on its own below)
    jac_rev = np.stack([s4.pullback(at=x, of=f)(t64(eye[i])).numpy() for i in range(3)], axis=0)
    close(jac_fwd, jac_rev, 1e-12)


def test_pullback_called_twice_with_a_constant_made_inside_f():
    x = t64(np.ones(2))
    pb = s4.pullback(at=x, of=lambda x: s4.Tensor(np.eye(2)) @ x * x)
    close(pb(t64(np.ones(2))), np.full(2, 2.0))
    close(pb(t64(np.array([1.0, 0.0]))), np.array([2.0, 0.0]))


# ---- higher order -------------------------------------------------------------------------------

def test_second_derivative_scalar():
    x0 = t64(0.7)
    d2 = s4.gradient(at=x0, of=s4.gradient(of=lambda x: s4.sin(x) * x))
    close(d2, 2 * np.cos(0.7) - 0.7 * np.sin(0.7))
    d3 = s4.gradient(at=x0, of=s4.gradient(of=s4.gradient(of=lambda x: x * x * x * x)))
    close(d3, 24 * 0.7)


def test_gradient_of_function_calling_gradient():
    x, v = t64(XA), t64(YA)

    def h(x):
        return (s4.sin(x) * x * x).sum()
    # Hessian-vector product by reverse-over-reverse and forward-over-reverse
    hvp_rr = s4.gradient(at=x, of=lambda x: (s4.gradient(at=x, of=h) * v).sum())
    _, hvp_fr = s4.jvp(s4.gradient(of=h), (x,), (v,))
    d2 = -np.sin(XA) * XA ** 2 + 4 * XA * np.cos(XA) + 2 * np.sin(XA)   # diagonal Hessian
    close(hvp_rr, d2 * YA)
    close(hvp_fr, d2 * YA)


# ---- differentiable writes ----------------------------------------------------------------------

def test_setitem_is_differentiable_for_target_and_value():
    t0 = RNG.standard_normal((3, 4))
    v0 = RNG.standard_normal(4)

    def f(t, v):
        t[1] = v * v
        return (t * t * t).sum()
    gt, gv = s4.gradient(at=(t64(t0), t64(v0)), of=f)
    want_t = 3 * t0 ** 2
    want_t[1] = 0.0                               # overwritten: no derivative flows to it
    close(gt, want_t)
    close(gv, 3 * (v0 * v0) ** 2 * 2 * v0)


def test_setitem_does_not_change_the_callers_tensor():
    t = t64(np.zeros((2, 2)))

    def f(a):
        a = a.copy()
        a[0, 0] = 5.0
        return a.sum()
    s4.gradient(at=t, of=f)
    close(t, np.zeros((2, 2)))


def test_augmented_assignment_is_differentiable():
    def f(t, x):
        t += x * x
        t += t
        return (t * t).sum()
    a, b = t64(XA), t64(YA)
    ga, gb = s4.gradient(at=(a, b), of=f)
    u = 2 * (XA + YA * YA)
    close(ga, 2 * u * 2)
    close(gb, 2 * u * 2 * 2 * YA)


# ---- s4.check_grads -------------------------------------------------------------------------------

def test_check_grads_passes_on_correct_functions():
    x, y = t64(XA), t64(YA)
    s4.check_grads(lambda x: (s4.sin(x) * s4.exp(x)).sum(), (x,), order=2)
    s4.check_grads(lambda x, y: s4.tanh(x * y) + x, (x, y), order=2)
    s4.check_grads(lambda x: s4.sin(x) * x, (x,), order=1, modes=("rev",))
    s4.check_grads(lambda x: s4.sin(x) * x, (x,), order=1, modes=("fwd",))
    square, _ = _make_square_with_custom_vjp(2.0)      # a correct custom derivative
    s4.check_grads(lambda x: square(x).sum(), (x,), order=1)


def test_check_grads_rejects_a_wrong_custom_derivative():
    square, _ = _make_square_with_custom_vjp(3.0)      # d(x*x)/dx is 2x, not 3x
    x = t64(XA)
    with pytest.raises(AssertionError, match="reverse"):
        s4.check_grads(lambda x: square(x).sum(), (x,), order=1)
    with pytest.raises(AssertionError):
        s4.check_grads(lambda x: square(x).sum(), (x,), order=1, modes=("rev",))
    with pytest.raises(AssertionError):
        s4.check_grads(lambda x: square(x).sum(), (x,), order=2)


def test_check_grads_order2_catches_a_wrong_second_derivative():
    # first derivative right, but its own derivative is lost: cos(x) is held constant
    @s4.differentiable
    def mysin(x):
        return s4.sin(x)

    @s4.derivative(of=mysin)
    def _vjp(x):
        return s4.sin(x), lambda ct: ct * s4.cos(s4.without_derivative(x))
    x = t64(XA)
    s4.check_grads(lambda x: mysin(x).sum(), (x,), order=1)
    with pytest.raises(AssertionError):
        s4.check_grads(lambda x: mysin(x).sum(), (x,), order=2, modes=("rev",))


# ---- the IR of a gradient -------------------------------------------------------------------------

def test_printed_gradient_ir_holds_forward_and_pullback():
    x = t64(XA)
    fn = s4.trace(s4.gradient(of=lambda x: (s4.tanh(x) * x).sum()), x)
    text = str(fn)
    assert text.startswith("func @")
    names = [e.prim.name for e in fn.eqns]
    assert "tanh" in text and "tanh" in names                 # the forward op
    # d tanh = 1 - tanh^2: the pullback multiplies and subtracts, and the product rule adds
    assert "sub(" in text and "mul(" in text and "add(" in text, text
    # the sum's pullback broadcasts the seed cotangent
    assert "broadcast_to" in text, text
    # the function returns only the gradient
    assert len(fn.outputs) == 1 and fn.outputs[0].aval.shape == (3,)
    print(fn)


def test_gradient_ir_is_a_program_that_runs_like_the_eager_gradient():
    x = t64(XA)
    f = lambda x: (s4.tanh(x) * x).sum()  # noqa: E731
    compiled = s4.compile(s4.gradient(of=f))
    close(compiled(x), s4.gradient(at=x, of=f).numpy())
