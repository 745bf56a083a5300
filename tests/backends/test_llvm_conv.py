"""The generated convolution kernels (``backends/llvm/conv.py``) against numpy's ``_conv_impl``.

Each case builds its kernel into a module of its own, JIT-compiles it with the backend's O3
pipeline and runs it through the runtime's thread pool (and serially, on the calling thread),
over an input padded and lhs-dilated by :func:`conv.pad_input`.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import llvmlite  # noqa: E402,F401 - an install requirement

from llvmlite import ir  # noqa: E402

from s4tf_py import runtime  # noqa: E402
from s4tf_py.backends.llvm import conv, jit  # noqa: E402
from s4tf_py.ops.nn import _conv_impl, _dilate_pad  # noqa: E402


_compiled: dict = {}


def _params(nsp, strides=None, padding=None, lhs=None, rhs=None, groups=1):
    return dict(window_strides=tuple(strides or (1,) * nsp),
                padding=tuple(padding or ((0, 0),) * nsp),
                lhs_dilation=tuple(lhs or (1,) * nsp), rhs_dilation=tuple(rhs or (1,) * nsp),
                feature_group_count=groups)


def _out_shape(xp_shape, w_shape, p):
    nsp = len(xp_shape) - 2
    sp = [(xp_shape[1 + i] - ((w_shape[i] - 1) * p["rhs_dilation"][i] + 1))
          // p["window_strides"][i] + 1 for i in range(nsp)]
    return (xp_shape[0], *sp, w_shape[-1])


def _kernel(spec):
    """The callable kernel of ``spec`` (compiled once per distinct spec)."""
    module = ir.Module(name="conv_test")
    conv.build_conv_kernel(module, spec)
    text = str(module)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    if digest not in _compiled:
        unique = f"ct{digest}_{spec.name}"
        text = text.replace(f'@"{spec.name}', f'@"{unique}')    # unique in the shared engine
        jit.add_module(jit.compile_ir(text))
        _compiled[digest] = runtime.ffi.cast("s4tf_range_fn", jit.function_address(unique))
    return _compiled[digest]


def _run(spec, xp, w, parallel):
    fn = _kernel(spec)
    out = np.full(spec.out_shape, np.nan, dtype=spec.dtype)
    ptrs = np.array([xp.ctypes.data, w.ctypes.data, out.ctypes.data], dtype=np.uint64)
    ctx = runtime.ffi.cast("void *", ptrs.ctypes.data)
    if parallel:
        runtime.lib.s4tf_parallel_for(spec.iterations, fn, ctx)
    else:
        fn(ctx, 0, spec.iterations)
    return out


def _check(x_shape, w_shape, dtype=np.float32, threads=2, scheme=None, seed=0, **kw):
    rng = np.random.default_rng(seed)
    nsp = len(x_shape) - 2
    p = _params(nsp, **kw)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    xp = conv.pad_input(x, p)
    assert xp.flags.c_contiguous and xp.shape == conv.padded_shape(x_shape, p)
    spec = conv.spec_for(xp.shape, w_shape, _out_shape(xp.shape, w_shape, p),
                         p["window_strides"], p["rhs_dilation"], dtype, "k_conv", threads, scheme,
                         groups=p["feature_group_count"])
    want = _conv_impl(x, w, **p)
    assert want.shape == spec.out_shape
    # float32 sums of up to ~1e5 products in another order: compare to the output's scale
    scale = np.abs(want).max() + 1e-30
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for parallel in (False, True):
        got = _run(spec, xp, w, parallel)
        err = np.abs(got - want).max() / scale
        assert err < tol, (spec, parallel, err)
    return spec


# (x shape, w shape, options): 1-D / 2-D / 3-D, strides, dilations, padding, channel counts
CASES = [
    # 1-D
    ((3, 20, 3), (4, 3, 6), dict(strides=(2,), rhs=(2,), padding=((1, 2),))),
    ((1, 37, 1), (5, 1, 16), dict(padding=((2, 2),))),
    ((2, 40, 16), (3, 16, 1), {}),
    ((3, 19, 3), (3, 3, 33), dict(lhs=(2,), padding=((2, 2),))),
    # 2-D
    ((1, 9, 9, 1), (3, 3, 1, 1), {}),
    ((3, 12, 13, 3), (3, 3, 3, 6), dict(strides=(2, 2), padding=((1, 1), (1, 1)))),
    ((3, 11, 10, 16), (3, 2, 16, 16), dict(rhs=(2, 2))),
    ((1, 10, 12, 16), (2, 3, 16, 33), dict(strides=(1, 2), rhs=(2, 1), padding=((0, 1), (2, 0)))),
    ((3, 7, 9, 3), (3, 3, 3, 1), dict(padding=((1, 1), (1, 1)))),
    ((1, 6, 7, 16), (3, 3, 16, 6), dict(lhs=(2, 2), padding=((2, 2), (2, 2)))),
    ((3, 8, 8, 1), (4, 4, 1, 33), dict(strides=(2, 2), lhs=(2, 1), padding=((1, 2), (3, 3)))),
    ((1, 14, 30, 1), (3, 5, 1, 6), dict(rhs=(1, 2), padding=((1, 1), (4, 4)))),
    ((3, 9, 11, 3), (2, 2, 3, 16), dict(strides=(2, 1), padding=((-1, 0), (1, -2)))),
    ((1, 5, 5, 16), (5, 5, 16, 6), {}),                     # one output pixel
    ((2, 4, 33, 3), (1, 1, 3, 33), {}),                     # 1x1 kernel
    # channel blocks (4 vectors + a tail) and the packed few-channel layouts
    ((2, 6, 7, 5), (2, 2, 5, 80), {}),
    ((1, 5, 6, 4), (3, 3, 4, 70), dict(strides=(2, 1))),
    ((2, 8, 9, 7), (3, 3, 7, 3), {}),
    ((2, 8, 9, 5), (2, 3, 5, 2), dict(rhs=(1, 2))),
    ((2, 7, 8, 6), (3, 3, 6, 8), {}),
    ((1, 10, 10, 6), (3, 3, 6, 5), dict(padding=((1, 1), (1, 1)))),
    ((2, 11, 11, 1), (3, 3, 1, 2), {}),
    # 3-D
    ((2, 6, 7, 8, 3), (2, 3, 3, 3, 5), dict(strides=(1, 2, 1), rhs=(2, 1, 1),
                                           padding=((1, 0), (1, 1), (0, 2)))),
    ((1, 5, 6, 6, 16), (3, 3, 3, 16, 16), dict(lhs=(1, 2, 2), padding=((1, 1), (2, 2), (2, 2)))),
    ((3, 4, 5, 21, 1), (2, 2, 3, 1, 6), dict(strides=(1, 1, 2))),
]


@pytest.mark.parametrize("x_shape,w_shape,kw", CASES, ids=lambda v: str(v).replace(" ", ""))
def test_matches_numpy(x_shape, w_shape, kw):
    _check(x_shape, w_shape, **kw)


@pytest.mark.parametrize("name,x_shape,w_shape,kw,scheme", [
    ("conv1", (16, 28, 28, 1), (5, 5, 1, 6), dict(padding=((2, 2), (2, 2))), "pixels"),
    ("conv2", (16, 14, 14, 6), (5, 5, 6, 16), {}, "outer"),
    ("conv1_wgrad", (1, 28, 28, 128), (28, 28, 128, 6), dict(padding=((2, 2), (2, 2))), "outer"),
    ("conv2_wgrad", (6, 14, 14, 128), (10, 10, 128, 16), {}, "outer"),
    ("conv2_igrad", (16, 10, 10, 16), (5, 5, 16, 6), dict(padding=((4, 4), (4, 4))), "outer"),
    ("conv1_igrad", (8, 28, 28, 6), (5, 5, 6, 1), dict(padding=((2, 2), (2, 2))), "outer"),
])
def test_lenet_shapes(name, x_shape, w_shape, kw, scheme):
    spec = _check(x_shape, w_shape, **kw)
    assert spec.scheme == scheme, spec
    if name in ("conv1_wgrad", "conv1_igrad"):
        assert spec.group > 1, spec       # few output channels: reduction steps share vectors


@pytest.mark.parametrize("scheme", ["pixels", "outer"])
def test_schemes_agree(scheme):
    # one input channel and unit column stride: both micro-kernels apply
    _check((3, 17, 21, 1), (3, 4, 1, 5), scheme=scheme, padding=((1, 1), (0, 2)))


@pytest.mark.parametrize("threads", [1, 2, 8])
def test_schedules_for_thread_counts(threads):
    # the plan depends on the thread count (tiles, column groups); results must not
    _check((1, 6, 40, 16), (3, 3, 16, 16), threads=threads)
    _check((1, 1, 64, 3), (1, 5, 3, 16), threads=threads, rhs=(1, 2))


@pytest.mark.parametrize("host", [(32, 16), (16, 16)], ids=["avx2", "sse"])
def test_plans_for_narrower_vectors(monkeypatch, host):
    # plans made for 8- and 4-lane registers (16 of them) still compute the convolution
    monkeypatch.setitem(conv._host, "v", host)
    _check((2, 9, 10, 3), (3, 3, 3, 6), padding=((1, 1), (1, 1)))
    _check((2, 8, 9, 5), (2, 2, 5, 40), strides=(2, 1))
    _check((2, 12, 12, 1), (3, 3, 1, 6))
    _check((2, 12, 12, 1), (3, 3, 1, 6), dtype=np.float64)


def test_packed_filter_is_freed():
    # more than one block of channel vectors: each call packs the filter into a buffer of
    # its own (in every thread) and frees it
    before = runtime.live_bytes()
    spec = _check((2, 5, 6, 16), (3, 3, 16, 160), padding=((1, 1), (1, 1)))
    assert spec.pack and spec.panel_elems > 0
    assert runtime.live_bytes() == before


def test_float64():
    spec = _check((2, 9, 10, 3), (3, 3, 3, 6), dtype=np.float64, strides=(1, 2),
                  padding=((1, 1), (1, 1)))
    assert spec.dtype == np.float64
    _check((2, 12, 12, 1), (3, 3, 1, 4), dtype=np.float64)          # pixels scheme
    _check((2, 12, 3), (3, 3, 1), dtype=np.float64)


@pytest.mark.parametrize("x_shape,w_shape", [
    ((2, 9, 10, 3), (3, 3, 3, 6)),        # steps packed in lanes, with a partial group
    ((2, 9, 10, 1), (3, 3, 1, 6)),        # pixels
    ((2, 6, 7, 5), (2, 2, 5, 70)),        # packed panels, masked tail
    ((2, 6, 7, 5), (2, 2, 5, 20)),        # masked channel vector
])
def test_inf_and_nan_propagate_like_numpy(x_shape, w_shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    c = x_shape[-1] - 1               # (the last channel: the partial group's step)
    x[0, 4, 4, c], x[1, 2, 3, 0], x[1, 5, 5, c] = np.inf, -np.inf, np.nan
    w.flat[0] = 0.0                        # inf * 0 is NaN: it must come out only where real
    p = _params(2)
    spec = conv.spec_for(x.shape, w.shape, _out_shape(x.shape, w.shape, p), (1, 1), (1, 1),
                         np.float32, "k_conv", 2)
    with np.errstate(invalid="ignore"):
        got, want = _run(spec, x, w, True), _conv_impl(x, w, **p)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, atol=1e-4 * np.abs(want[ok]).max())


def test_pad_input_matches_dilate_pad():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6, 3)).astype(np.float32)
    for lhs, pad in [((1, 1), ((0, 0), (0, 0))), ((1, 1), ((2, 1), (0, 3))),
                     ((2, 3), ((1, 1), (2, 0))), ((2, 1), ((-1, 2), (1, -2)))]:
        p = _params(2, padding=pad, lhs=lhs)
        got = conv.pad_input(x, p)
        want = _dilate_pad(x, range(1, 3), lhs, pad)
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.shape == conv.padded_shape(x.shape, p)


def test_eqn_interface():
    import s4tf_py as s4
    from s4tf_py.ir.passes import optimize
    F = s4.nn.functional
    x, w = s4.ones((2, 9, 9, 3)), s4.ones((3, 3, 3, 4))
    wt = s4.ones((3, 3, 5, 3))

    def f(x, w, wt):
        y = F.conv2d(x, w, strides=2, padding="same")
        return F.conv_transpose2d(y.astype(s4.float32)[..., :3] * 1.0, wt, strides=2,
                                  padding="same"), F.conv2d(x, w, groups=1)
    fn = optimize(s4.trace(f, x, w, wt))
    eqns = [e for e in fn.eqns if e.prim.name == "conv_general"]
    assert len(eqns) == 3
    rng = np.random.default_rng(2)
    for k, e in enumerate(eqns):
        assert conv.supported(e)
        spec = conv.make_spec(e, f"k_{k}", 2)
        xa = rng.standard_normal(e.inputs[0].aval.shape).astype(np.float32)
        wa = rng.standard_normal(e.inputs[1].aval.shape).astype(np.float32)
        xp = conv.pad_input(xa, e)
        assert xp.shape == spec.in_shape
        assert spec.out_shape == e.outs[0].aval.shape and spec.iterations >= 1
        want = _conv_impl(xa, wa, **e.params_dict())
        got = _run(spec, xp, wa, spec.parallel)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_unsupported():
    import s4tf_py as s4
    F = s4.nn.functional
    x = s4.ones((1, 8, 8, 64))
    # large per-group products run numpy's batched matmul, small ones a kernel
    fn = s4.trace(lambda x, w: F.conv2d(x, w, groups=2), x, s4.ones((3, 3, 32, 64)))
    (e,) = [e for e in fn.eqns if e.prim.name == "conv_general"]
    assert not conv.supported(e)
    fn = s4.trace(lambda x, w: F.conv2d(x, w, groups=16), x, s4.ones((3, 3, 4, 32)))
    (e,) = [e for e in fn.eqns if e.prim.name == "conv_general"]
    assert conv.supported(e)
    x = s4.ones((1, 8, 8, 4))
    fn = s4.trace(lambda x, w: F.conv2d(x, w), x.astype(s4.float16),
                  s4.ones((3, 3, 4, 4)).astype(s4.float16))
    (e,) = [e for e in fn.eqns if e.prim.name == "conv_general"]
    assert not conv.supported(e)


# ---- feature groups ------------------------------------------------------------------------------

GROUPED = [
    # depthwise, multiplier 1 (the vectorized scheme): MobileNet-like, channel tails, strides
    ((2, 9, 10, 32), (3, 3, 1, 32), dict(groups=32, padding=((1, 1), (1, 1))), "depthwise"),
    ((2, 9, 10, 128), (3, 3, 1, 128), dict(groups=128, strides=(2, 2),
                                           padding=((0, 1), (0, 1))), "depthwise"),
    ((1, 8, 9, 70), (3, 3, 1, 70), dict(groups=70, padding=((1, 1), (1, 1))), "depthwise"),
    ((2, 11, 12, 5), (3, 2, 1, 5), dict(groups=5, rhs=(2, 2), strides=(1, 2)), "depthwise"),
    ((3, 7, 6, 3), (2, 3, 1, 3), dict(groups=3, lhs=(2, 1), padding=((1, 1), (-1, 2))),
     "depthwise"),
    ((1, 5, 40, 24), (1, 1, 1, 24), dict(groups=24), "depthwise"),
    ((1, 6, 70, 16), (3, 3, 1, 16), dict(groups=16, padding=((1, 1), (1, 1))), "depthwise"),
    ((2, 30, 48), (5, 1, 48), dict(groups=48, strides=(2,), padding=((2, 2),)), "depthwise"),
    ((1, 4, 5, 6, 20), (2, 2, 3, 1, 20), dict(groups=20, padding=((1, 0), (0, 1), (1, 1))),
     "depthwise"),
    # depthwise, multiplier 2 and 3
    ((2, 9, 10, 8), (3, 3, 1, 16), dict(groups=8, padding=((1, 1), (1, 1))), "grouped"),
    ((2, 9, 10, 5), (3, 3, 1, 15), dict(groups=5, strides=(2, 2), rhs=(1, 2)), "grouped"),
    # general groups, Cin != Cout
    ((2, 9, 10, 6), (3, 3, 3, 8), dict(groups=2, padding=((1, 1), (1, 1))), "grouped"),
    ((2, 9, 10, 8), (3, 2, 2, 12), dict(groups=4, strides=(2, 1), rhs=(1, 2)), "grouped"),
    ((2, 9, 10, 12), (2, 2, 3, 4), dict(groups=4, lhs=(2, 2), padding=((1, 1), (2, 2))),
     "grouped"),
    ((3, 21, 8), (3, 4, 6), dict(groups=2, strides=(2,), padding=((1, 1),)), "grouped"),
    ((1, 4, 5, 6, 4), (2, 2, 2, 2, 6), dict(groups=2), "grouped"),
]


@pytest.mark.parametrize("x_shape,w_shape,kw,scheme", GROUPED,
                         ids=lambda v: str(v).replace(" ", ""))
def test_feature_groups_match_numpy(x_shape, w_shape, kw, scheme):
    spec = _check(x_shape, w_shape, **kw)
    assert spec.scheme == scheme and spec.feature_groups == kw["groups"], spec


@pytest.mark.parametrize("host", [(32, 16), (16, 16)], ids=["avx2", "sse"])
def test_depthwise_for_narrower_vectors(monkeypatch, host):
    monkeypatch.setitem(conv._host, "v", host)
    _check((2, 9, 10, 37), (3, 3, 1, 37), groups=37, padding=((1, 1), (1, 1)))
    _check((2, 9, 10, 12), (3, 3, 1, 12), groups=12, dtype=np.float64, strides=(2, 2))


def test_depthwise_float64_and_threads():
    _check((2, 9, 10, 12), (3, 3, 1, 12), dtype=np.float64, groups=12, strides=(2, 1))
    _check((2, 9, 10, 6), (3, 3, 3, 4), dtype=np.float64, groups=2)
    for threads in (1, 8):
        _check((1, 7, 9, 64), (3, 3, 1, 64), threads=threads, groups=64,
               padding=((1, 1), (1, 1)))


def test_depthwise_inf_and_nan_propagate_like_numpy():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 8, 9, 20)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, 20)).astype(np.float32)
    x[0, 4, 4, 19], x[1, 2, 3, 0], x[1, 5, 5, 7] = np.inf, -np.inf, np.nan
    w[0, 0, 0, 19] = 0.0
    p = _params(2, groups=20)
    spec = conv.spec_for(x.shape, w.shape, _out_shape(x.shape, w.shape, p), (1, 1), (1, 1),
                         np.float32, "k_conv", 2, groups=20)
    assert spec.scheme == "depthwise"
    with np.errstate(invalid="ignore"):
        got, want = _run(spec, x, w, True), _conv_impl(x, w, **p)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-4, atol=1e-4 * np.abs(want[ok]).max())


def _grad_eqns(f, *args):
    import s4tf_py as s4
    from s4tf_py.ir.passes import optimize
    fn = optimize(s4.trace(lambda *a: s4.value_with_gradient(a, f), *args))
    return [e for e in fn.eqns if e.prim.name == "conv_general"]


@pytest.mark.parametrize("mult,strides", [(1, 1), (1, 2), (2, 2)])
def test_depthwise_gradient_convolutions(mult, strides):
    # the convolutions of a training step (forward, input and filter cotangents) are run as
    # kernels where supported() says so, and then match numpy
    import s4tf_py as s4
    F = s4.nn.functional
    x, w = s4.ones((2, 9, 9, 8)), s4.ones((3, 3, 8, mult))

    def loss(x, w):
        return F.depthwise_conv2d(x, w, strides=strides, padding="same").sum()
    eqns = _grad_eqns(loss, x, w)
    assert len(eqns) >= 2
    rng = np.random.default_rng(5)
    ran = 0
    for k, e in enumerate(eqns):
        if not conv.supported(e):
            continue
        ran += 1
        spec = conv.make_spec(e, f"k_{k}", 2)
        xa = rng.standard_normal(e.inputs[0].aval.shape).astype(np.float32)
        wa = rng.standard_normal(e.inputs[1].aval.shape).astype(np.float32)
        xp = conv.pad_input(xa, e)
        assert xp.shape == spec.in_shape and spec.out_shape == e.outs[0].aval.shape
        want = _conv_impl(xa, wa, **e.params_dict())
        got = _run(spec, xp, wa, spec.parallel)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert ran >= 1


@pytest.mark.parametrize("mult,strides,padding,dilations", [
    (1, 1, "same", 1), (1, 2, "same", 1), (1, 1, "valid", 2), (2, 2, "same", 1),
])
def test_depthwise_conv2d_through_the_stack(mult, strides, padding, dilations):
    import s4tf_py as s4
    F = s4.nn.functional
    llvm_dev, ref_dev = s4.Device("llvm"), s4.Device("reference")
    rng = np.random.default_rng(6)
    xa = rng.standard_normal((2, 11, 10, 24)).astype(np.float32)
    wa = rng.standard_normal((3, 3, 24, mult)).astype(np.float32)

    def f(x, w):
        return F.depthwise_conv2d(x, w, strides=strides, padding=padding, dilations=dilations)

    def loss(x, w):
        y = f(x, w)
        return (y * y).sum()
    outs = []
    for dev in (llvm_dev, ref_dev):
        with s4.default_device(dev):
            x, w = s4.Tensor(xa), s4.Tensor(wa)
            y = s4.compile(f)(x, w)
            val, (gx, gw) = s4.value_with_gradient((x, w), loss)
            outs.append([np.asarray(t.numpy()) for t in (y, val, gx, gw)])
    for got, want in zip(*outs):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * (np.abs(want).max() + 1))


def test_a_padded_input_buffer_is_reused_only_once_nothing_holds_it():
    """The host padding step writes into a buffer from an earlier call when it is free; the
    borders stay zero and results do not change from call to call."""
    import s4tf_py as s4
    F = s4.nn.functional
    rng = np.random.default_rng(7)
    w = rng.standard_normal((3, 3, 4, 1)).astype(np.float32)
    f = s4.compile(lambda a, b: F.depthwise_conv2d(a, b, padding="same"))
    results = []
    with s4.default_device(s4.Device("llvm")):
        for k in range(4):
            x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32) + k
            results.append((x, f(s4.Tensor(x), s4.Tensor(w)).numpy().copy()))
    with s4.default_device(s4.Device("reference")):
        for x, got in results:
            want = F.depthwise_conv2d(s4.Tensor(x), s4.Tensor(w), padding="same").numpy()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
