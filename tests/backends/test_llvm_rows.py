"""Row kernels on the LLVM backend: softmax, log-softmax, layer/RMS norm and cross-entropy are
ONE kernel each (reductions and the ops between them run per row, in stages), and any mix of
reductions over trailing axes and ops on their results matches the reference interpreter."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import s4tf_py as s4
from s4tf_py.backends.llvm import codegen, executable
from s4tf_py.ir.passes import optimize

LLVM, REF = s4.Device("llvm"), s4.Device("reference")
EPS = 1e-5


def _rms_norm(x, w):
    return x * s4.rsqrt(s4.mean(x * x, axis=-1, keepdims=True) + EPS) * (1 + w)


def _layer_norm(x, w, b):
    xc = x - s4.mean(x, axis=-1, keepdims=True)
    return xc * s4.rsqrt(s4.mean(xc * xc, axis=-1, keepdims=True) + EPS) * w + b


def _xent(x, labels):
    return s4.losses.softmax_cross_entropy(x, labels)


def _np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_layer_norm(x, w, b):
    xc = x - x.mean(-1, keepdims=True)
    return xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + EPS) * w + b


def _np_xent(x, labels):
    lsm = np.log(_np_softmax(x.astype(np.float64)))
    return -lsm[np.arange(len(labels)), labels].mean()


rng = np.random.default_rng(0)
X = (rng.standard_normal((48, 300)) * 4).astype(np.float32)
W = rng.standard_normal(300).astype(np.float32)
B = rng.standard_normal(300).astype(np.float32)
LABELS = rng.integers(0, 300, 48).astype(np.int32)

ROWWISE = {
    "softmax": (lambda x: s4.softmax(x, axis=-1), (X,), lambda x: _np_softmax(x)),
    "log_softmax": (lambda x: s4.log_softmax(x, axis=-1), (X,),
                    lambda x: np.log(_np_softmax(x.astype(np.float64)))),
    "rms_norm": (_rms_norm, (X, W),
                 lambda x, w: x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * (1 + w)),
    "layer_norm": (_layer_norm, (X, W, B), _np_layer_norm),
    "cross_entropy": (_xent, (X, LABELS), _np_xent),
}


def _groups(f, *args):
    """The fusion groups of ``f``'s optimized IR (host constants and iotas left out)."""
    fn = optimize(s4.trace(f, *[s4.Tensor(a) for a in args]))
    steps = executable.plan(fn)
    return [s for kind, s in steps if kind == "group"], \
        [s for kind, s in steps if kind != "group" and s.prim.name not in ("constant", "iota")]


@pytest.mark.parametrize("name", [n for n in ROWWISE if n != "cross_entropy"])
def test_rowwise_pattern_is_one_kernel_and_matches_numpy(name):
    f, args, ref = ROWWISE[name]
    groups, others = _groups(f, *args)
    assert len(groups) == 1, [[e.prim.name for e in g.eqns] for g in groups]
    assert not [s for s in others if s.prim.name != "reshape"], others
    with s4.default_device(LLVM):
        got = s4.compile(f)(*[s4.Tensor(a) for a in args]).numpy()
    np.testing.assert_allclose(got, ref(*args), rtol=2e-5, atol=2e-5)


def test_cross_entropy_loss_is_one_row_kernel_and_a_mean():
    f, args, ref = ROWWISE["cross_entropy"]
    groups, _ = _groups(f, *args)
    # the row kernel (log-softmax, the label's entry) and the batch mean over its row values
    assert len(groups) <= 2, [[e.prim.name for e in g.eqns] for g in groups]
    assert any("exp" in [e.prim.name for e in g.eqns] and
               [e.prim.name for e in g.eqns].count("reduce_sum") >= 2 for g in groups)
    with s4.default_device(LLVM):
        got = s4.compile(f)(*[s4.Tensor(a) for a in args]).item()
    assert abs(got - ref(*args)) < 1e-5 * max(1.0, abs(ref(*args)))


@pytest.mark.parametrize("name", list(ROWWISE))
def test_rowwise_gradients_match_the_reference(name):
    f, args, _ = ROWWISE[name]

    def loss(x, *rest):
        y = f(x, *rest)
        return (y * s4.cos(s4.arange(y.size, dtype=s4.float32).reshape(y.shape))).sum()

    grads = {}
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            t = [s4.Tensor(a) for a in args]
            step = s4.compile(lambda x, *rest: s4.value_with_gradient(
                at=x, of=lambda x: loss(x, *rest)))
            grads[dev] = [v.numpy() for v in step(*t)]
    for got, want in zip(grads[LLVM], grads[REF]):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_softmax_backward_fuses_into_few_kernels():
    groups, _ = _groups(lambda x: s4.gradient(
        at=x, of=lambda x: (s4.softmax(x, axis=-1) * s4.Tensor(W)).sum()), X)
    assert len(groups) <= 2, [[e.prim.name for e in g.eqns] for g in groups]


def test_softmax_stashes_exp_in_its_output_instead_of_recomputing_it():
    fn = optimize(s4.trace(lambda x: s4.softmax(x, axis=-1), s4.Tensor(X)))
    text = executable.kernel_module_text(fn)
    plain = executable.kernel_module_text(optimize(s4.trace(lambda x: s4.exp(x), s4.Tensor(X))))
    # the exp approximation's range-reduction constant 1/ln 2 appears once per exp emitted
    marker = "0x3ff7154760000000"
    assert plain.count(marker) == 1
    assert text.count(marker) == 1, "softmax should emit exp once (stashed), not twice"


def test_rows_with_nan_and_minus_inf_match_the_reference():
    v = X[:6].copy()
    v[0, 3] = np.nan
    v[1, :] = -np.inf
    v[2, 5] = np.inf
    v[3, :] = np.nan
    out = {}
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            x = s4.Tensor(v)
            out[dev] = [s4.softmax(x, axis=-1).numpy(), s4.max(x, axis=-1).numpy(),
                        s4.min(x, axis=-1).numpy(), _layer_norm(x, s4.Tensor(W), s4.Tensor(B)).numpy()]
    for got, want in zip(out[LLVM], out[REF]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert np.array_equal(np.isnan(got), np.isnan(want))


def test_long_float32_row_sums_stay_accurate_in_chunks():
    # one row of 3e6 elements: chunks of REDUCE_CHUNK accumulate in float32 lanes, rows in float64
    v = (np.random.default_rng(1).random((2, 3_000_000)) * 1e3).astype(np.float32)
    with s4.default_device(LLVM):
        got = s4.Tensor(v).sum(axis=-1).numpy()
    exact = v.astype(np.float64).sum(-1)
    assert np.all(np.abs(got - exact) / exact < 1e-6), (got, exact)
    assert v.shape[1] > 100 * codegen.REDUCE_CHUNK


@pytest.mark.parametrize("op", ["any", "all"])
def test_boolean_reductions_over_axes_of_size_one_read_the_data(op):
    v = np.array([[True], [False]])
    with s4.default_device(LLVM):
        got = getattr(s4, op)(s4.Tensor(v), axis=-1).numpy()
    np.testing.assert_array_equal(got, getattr(np, op)(v, axis=-1))


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float16])
def test_low_precision_products_run_as_float32_gemms(dtype):
    a = rng.standard_normal((32, 64)).astype(dtype)
    b = rng.standard_normal((64, 48)).astype(dtype)
    f = lambda a, b: s4.relu(a @ b)  # noqa: E731
    fn = optimize(s4.trace(f, s4.Tensor(a), s4.Tensor(b)))
    kinds = [(k, getattr(s, "prim", None) and s.prim.name) for k, s in executable.plan(fn)]
    assert ("dot", "dot_general") in kinds, kinds
    out = {}
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            out[dev] = s4.compile(f)(s4.Tensor(a), s4.Tensor(b)).numpy()
    assert out[LLVM].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out[LLVM].astype(np.float32), out[REF].astype(np.float32))


# ---- random row programs ------------------------------------------------------------------------

KINDS = {"sum": s4.sum, "max": s4.max, "min": s4.min, "mean": s4.mean}
ROW_OPS = {"log1p_abs": lambda r: s4.log(1 + s4.abs(r)), "scale": lambda r: r * 0.5 + 1.0,
           "rsqrt": lambda r: s4.rsqrt(s4.abs(r) + 1.0), "exp_neg": lambda r: s4.exp(-s4.abs(r))}
COMBINE = {"sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
           "div": lambda a, b: a / (s4.abs(b) + 1.0), "exp_sub": lambda a, b: s4.exp(a - b)}


@st.composite
def row_programs(draw):
    ndim = draw(st.integers(2, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7), min_size=ndim, max_size=ndim)))
    shape = shape[:-1] + (draw(st.sampled_from([1, 5, 17, 300, 600])),)
    red = draw(st.integers(1, ndim - 1))
    steps = draw(st.lists(st.tuples(st.sampled_from(sorted(KINDS)), st.booleans(),
                                    st.sampled_from(sorted(ROW_OPS) + [None]),
                                    st.sampled_from(sorted(COMBINE))), min_size=1, max_size=4))
    outs = draw(st.lists(st.integers(0, 2 * len(steps)), min_size=1, max_size=3, unique=True))
    return shape, red, steps, outs


def _run_row_program(x, red, steps, outs):
    axes = tuple(range(x.ndim - red, x.ndim))
    fulls, rows = [x], []
    for kind, keep, row_op, comb in steps:
        src = fulls[-1]
        r = KINDS[kind](src, axis=axes, keepdims=True)
        if row_op is not None:
            r = ROW_OPS[row_op](r)
        rows.append(r if keep else r.reshape(r.shape[:x.ndim - red]))
        fulls.append(COMBINE[comb](src, r))
    vals = fulls + rows
    return tuple(vals[i % len(vals)] for i in outs)


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(row_programs())
def test_random_row_programs_match_the_reference(prog):
    shape, red, steps, outs = prog
    v = np.random.default_rng(len(steps)).standard_normal(shape).astype(np.float32)
    res = {}
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            f = s4.compile(lambda x: _run_row_program(x, red, steps, outs))
            res[dev] = [t.numpy() for t in f(s4.Tensor(v))]
    for got, want in zip(res[LLVM], res[REF]):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [ml_dtypes.bfloat16, np.float16])
def test_low_precision_convolutions_run_as_float32_kernels(dtype):
    x = rng.standard_normal((2, 9, 9, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 3, 4)).astype(dtype)
    f = lambda x, w: s4.nn.functional.conv2d(x, w, padding="same")  # noqa: E731
    fn = optimize(s4.trace(f, s4.Tensor(x), s4.Tensor(w)))
    kinds = [(k, getattr(s, "prim", None) and s.prim.name) for k, s in executable.plan(fn)]
    assert ("conv", "conv_general") in kinds, kinds
    out = {}
    for dev in (LLVM, REF):
        with s4.default_device(dev):
            out[dev] = s4.compile(f)(s4.Tensor(x), s4.Tensor(w)).numpy()
    assert out[LLVM].dtype == np.dtype(dtype)
    np.testing.assert_allclose(out[LLVM].astype(np.float32), out[REF].astype(np.float32),
                               rtol=1e-2, atol=1e-2)
