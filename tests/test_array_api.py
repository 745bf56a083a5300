"""The Python array API standard (2023.12): namespace, generic code, names and signatures,
and third-party array-API code paths (scikit-learn and SciPy) running on s4tf_py tensors.

``array_api_strict`` is not installed, so the generic functions below are written the way
array-API-generic library code is: only through ``xp = x.__array_namespace__()``. They run on
numpy (whose ndarray is an array API namespace too) and on s4tf_py, and must agree.
"""
from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import s4tf_py as s4

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_namespace():
    t = s4.Tensor([1.0])
    assert t.__array_namespace__() is s4
    assert t.__array_namespace__(api_version="2023.12") is s4
    assert t.__array_namespace__(api_version="2022.12") is s4
    with pytest.raises(ValueError):
        t.__array_namespace__(api_version="1999.01")
    assert s4.__array_api_version__ == "2023.12"


def test_the_vendored_array_api_compat_finds_the_namespace():
    from sklearn.externals import array_api_compat as compat
    t = s4.Tensor([1.0, 2.0])
    assert compat.array_namespace(t) is s4
    assert compat.array_namespace(t, s4.Tensor([3.0])) is s4
    assert compat.is_array_api_obj(t)
    assert compat.size(t) == 2
    assert compat.device(t) == t.device == s4.get_default_device()


# ---- array-API-generic code ------------------------------------------------------------------------

def standardize(x):
    xp = x.__array_namespace__()
    mu = xp.mean(x, axis=0, keepdims=True)
    sd = xp.std(x, axis=0, keepdims=True, correction=1)
    return (x - mu) / xp.where(sd == 0, xp.ones_like(sd), sd)


def softmax(x, axis=-1):
    xp = x.__array_namespace__()
    z = x - xp.max(x, axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / xp.sum(e, axis=axis, keepdims=True)


def pairwise_sq_dists(a, b):
    xp = a.__array_namespace__()
    aa = xp.sum(a * a, axis=1)[:, None]
    bb = xp.sum(b * b, axis=1)[None, :]
    return xp.clip(aa + bb - 2 * (a @ xp.matrix_transpose(b)), 0.0, None)


def kmeans_step(x, centers):
    xp = x.__array_namespace__()
    d = pairwise_sq_dists(x, centers)
    label = xp.argmin(d, axis=1)
    onehot = xp.astype(label[:, None] == xp.arange(centers.shape[0])[None, :], x.dtype)
    counts = xp.sum(onehot, axis=0)
    new = xp.matrix_transpose(onehot) @ x / xp.maximum(counts, 1.0)[:, None]
    return label, new


def logistic_regression_step(x, y, w, lr):
    xp = x.__array_namespace__()
    p = 1.0 / (1.0 + xp.exp(-(x @ w)))
    grad = xp.matrix_transpose(x) @ (p - y) / x.shape[0]
    loss = -xp.mean(y * xp.log(p) + (1 - y) * xp.log(1 - p))
    return w - lr * grad, loss


def describe(x):
    xp = x.__array_namespace__()
    finfo = xp.finfo(x.dtype)
    flat = xp.reshape(x, (-1,))
    s = xp.sort(flat)
    return xp.stack([xp.min(x), xp.max(x), s[s.shape[0] // 2], xp.astype(xp.sum(x > 0), x.dtype),
                     xp.asarray(finfo.eps, dtype=x.dtype)])


def _data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    return x, y


@pytest.mark.parametrize("fn", [standardize, softmax, describe], ids=lambda f: f.__name__)
def test_generic_unary_functions_agree_with_numpy(fn):
    x, _ = _data()
    ref = fn(x)
    got = fn(s4.Tensor(x))
    assert isinstance(got, s4.Tensor)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, rtol=2e-5, atol=2e-6)


def test_generic_kmeans_and_logistic_regression_agree_with_numpy():
    x, y = _data()
    c = x[:3].copy()
    lab_np, c_np = kmeans_step(x, c)
    lab_s4, c_s4 = kmeans_step(s4.Tensor(x), s4.Tensor(c))
    np.testing.assert_array_equal(lab_s4.numpy(), lab_np)
    np.testing.assert_allclose(c_s4.numpy(), c_np, rtol=1e-5, atol=1e-6)
    w_np, w_s4 = np.zeros(4, np.float32), s4.zeros((4,))
    for _ in range(5):
        w_np, loss_np = logistic_regression_step(x, y, w_np, 0.5)
        w_s4, loss_s4 = logistic_regression_step(s4.Tensor(x), s4.Tensor(y), w_s4, 0.5)
    np.testing.assert_allclose(w_s4.numpy(), w_np, rtol=1e-5, atol=1e-6)
    assert float(loss_s4) == pytest.approx(float(loss_np), rel=1e-5)


def test_generic_code_inside_s4_compile():
    x, y = _data()
    step = s4.compile(logistic_regression_step)
    w = s4.zeros((4,))
    for lr in (0.5, 0.25, 0.125):
        w, loss = step(s4.Tensor(x), s4.Tensor(y), w, lr)
    assert step.traces == 1
    w_np = np.zeros(4, np.float32)
    for lr in (0.5, 0.25, 0.125):
        w_np, _ = logistic_regression_step(x, y, w_np, lr)
    np.testing.assert_allclose(w.numpy(), w_np, rtol=1e-5, atol=1e-6)


# ---- names and signatures of the 2023.12 standard ---------------------------------------------------

REQ = inspect.Parameter.empty
# name -> [(parameter, how it must be passable: "p" positionally / "k" by keyword, default)]
SIGNATURES = {
    "arange": [("start", "p", REQ), ("stop", "p", None), ("step", "p", 1), ("dtype", "k", None),
               ("device", "k", None)],
    "asarray": [("obj", "p", REQ), ("dtype", "k", None), ("device", "k", None), ("copy", "k", None)],
    "empty": [("shape", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "empty_like": [("x", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "eye": [("n_rows", "p", REQ), ("n_cols", "p", None), ("k", "k", 0), ("dtype", "k", None),
            ("device", "k", None)],
    "from_dlpack": [("x", "p", REQ), ("device", "k", None), ("copy", "k", None)],
    "full": [("shape", "p", REQ), ("fill_value", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "full_like": [("x", "p", REQ), ("fill_value", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "linspace": [("start", "p", REQ), ("stop", "p", REQ), ("num", "p", REQ), ("dtype", "k", None),
                 ("device", "k", None), ("endpoint", "k", True)],
    "meshgrid": [("indexing", "k", "xy")],
    "ones": [("shape", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "ones_like": [("x", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "tril": [("x", "p", REQ), ("k", "k", 0)],
    "triu": [("x", "p", REQ), ("k", "k", 0)],
    "zeros": [("shape", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "zeros_like": [("x", "p", REQ), ("dtype", "k", None), ("device", "k", None)],
    "astype": [("x", "p", REQ), ("dtype", "p", REQ), ("copy", "k", True), ("device", "k", None)],
    "can_cast": [("from_", "p", REQ), ("to", "p", REQ)],
    "isdtype": [("dtype", "p", REQ), ("kind", "p", REQ)],
    "clip": [("x", "p", REQ), ("min", "p", None), ("max", "p", None)],
    "round": [("x", "p", REQ)],
    "take": [("x", "p", REQ), ("indices", "p", REQ), ("axis", "k", None)],
    "matmul": [("x1", "p", REQ), ("x2", "p", REQ)],
    "matrix_transpose": [("x", "p", REQ)],
    "tensordot": [("x1", "p", REQ), ("x2", "p", REQ), ("axes", "k", 2)],
    "vecdot": [("x1", "p", REQ), ("x2", "p", REQ), ("axis", "k", -1)],
    "broadcast_to": [("x", "p", REQ), ("shape", "p", REQ)],
    "concat": [("arrays", "p", REQ), ("axis", "k", 0)],
    "expand_dims": [("x", "p", REQ), ("axis", "k", 0)],
    "flip": [("x", "p", REQ), ("axis", "k", None)],
    "moveaxis": [("x", "p", REQ), ("source", "p", REQ), ("destination", "p", REQ)],
    "permute_dims": [("x", "p", REQ), ("axes", "p", "any")],
    "repeat": [("x", "p", REQ), ("repeats", "p", REQ), ("axis", "k", None)],
    "reshape": [("x", "p", REQ), ("shape", "p", REQ), ("copy", "k", None)],
    "roll": [("x", "p", REQ), ("shift", "p", REQ), ("axis", "k", None)],
    "squeeze": [("x", "p", REQ), ("axis", "p", "any")],
    "stack": [("arrays", "p", REQ), ("axis", "k", 0)],
    "tile": [("x", "p", REQ), ("repetitions", "p", REQ)],
    "unstack": [("x", "p", REQ), ("axis", "k", 0)],
    "argmax": [("x", "p", REQ), ("axis", "k", None), ("keepdims", "k", False)],
    "argmin": [("x", "p", REQ), ("axis", "k", None), ("keepdims", "k", False)],
    "nonzero": [("x", "p", REQ)],
    "searchsorted": [("x1", "p", REQ), ("x2", "p", REQ), ("side", "k", "left"), ("sorter", "k", None)],
    "where": [("condition", "p", REQ), ("x1", "p", REQ), ("x2", "p", REQ)],
    "argsort": [("x", "p", REQ), ("axis", "k", -1), ("descending", "k", False), ("stable", "k", True)],
    "sort": [("x", "p", REQ), ("axis", "k", -1), ("descending", "k", False), ("stable", "k", True)],
    "cumulative_sum": [("x", "p", REQ), ("axis", "k", None), ("dtype", "k", None),
                       ("include_initial", "k", False)],
    "max": [("x", "p", REQ), ("axis", "k", None), ("keepdims", "k", False)],
    "min": [("x", "p", REQ), ("axis", "k", None), ("keepdims", "k", False)],
    "mean": [("x", "p", REQ), ("axis", "k", None), ("keepdims", "k", False)],
    "prod": [("x", "p", REQ), ("axis", "k", None), ("dtype", "k", None), ("keepdims", "k", False)],
    "sum": [("x", "p", REQ), ("axis", "k", None), ("dtype", "k", None), ("keepdims", "k", False)],
    "std": [("x", "p", REQ), ("axis", "k", None), ("correction", "k", 0.0), ("keepdims", "k", False)],
    "var": [("x", "p", REQ), ("axis", "k", None), ("correction", "k", 0.0), ("keepdims", "k", False)],
    "all": [("x", "p", REQ), ("axis", "k", None), ("keepdims", "k", False)],
    "any": [("x", "p", REQ), ("axis", "k", None), ("keepdims", "k", False)],
    "unique_all": [("x", "p", REQ)], "unique_counts": [("x", "p", REQ)],
    "unique_inverse": [("x", "p", REQ)], "unique_values": [("x", "p", REQ)],
}

ELEMENTWISE_UNARY = """abs acos acosh asin asinh atan atanh bitwise_invert ceil cos cosh exp expm1 floor
    isfinite isinf isnan log log1p log2 log10 logical_not negative positive sign signbit sin sinh
    square sqrt tan tanh trunc""".split()
ELEMENTWISE_BINARY = """add atan2 bitwise_and bitwise_left_shift bitwise_or bitwise_right_shift
    bitwise_xor copysign divide equal floor_divide greater greater_equal hypot less less_equal
    logaddexp logical_and logical_or logical_xor maximum minimum multiply not_equal pow remainder
    subtract""".split()
OTHER_NAMES = """bool int8 int16 int32 int64 uint8 uint16 uint32 uint64 float32 float64 finfo iinfo
    result_type broadcast_arrays e inf nan newaxis pi linalg""".split()
LINALG = """cholesky cross det diagonal eigh eigvalsh inv matmul matrix_norm matrix_power matrix_rank
    matrix_transpose outer pinv qr slogdet solve svd svdvals tensordot trace vecdot vector_norm""".split()

#: names of the standard that s4tf_py leaves out on purpose, and why
NOT_PROVIDED = {
    "complex64": "s4tf_py has no complex dtypes (DESIGN §3 lists its dtypes)",
    "complex128": "s4tf_py has no complex dtypes",
    "real": "defined for complex input only; s4tf_py has no complex dtypes",
    "imag": "defined for complex input only; s4tf_py has no complex dtypes",
    "conj": "defined for complex input in 2023.12; s4tf_py has no complex dtypes",
    "fft": "optional extension, not provided",
}


def _all_names():
    return (list(SIGNATURES) + ELEMENTWISE_UNARY + ELEMENTWISE_BINARY + OTHER_NAMES +
            list(NOT_PROVIDED) + ["__array_namespace_info__"])


def test_array_api_names_exist():
    missing = sorted(n for n in _all_names()
                     if not hasattr(s4, n) and n not in NOT_PROVIDED and n != "__array_namespace_info__")
    assert not missing, f"array API 2023.12 names missing from s4tf_py: {missing}"
    missing_la = sorted(n for n in LINALG if not hasattr(s4.linalg, n))
    assert not missing_la, f"array API linalg names missing from s4.linalg: {missing_la}"
    stale = sorted(n for n in NOT_PROVIDED if hasattr(s4, n))
    assert not stale, f"now provided, drop from NOT_PROVIDED: {stale}"


def test_constants_and_dtypes():
    assert s4.e == pytest.approx(np.e) and s4.pi == pytest.approx(np.pi)
    assert s4.inf == float("inf") and s4.nan != s4.nan and s4.newaxis is None
    assert s4.iinfo(s4.int8).max == 127 and s4.finfo(s4.float16).eps == float(np.finfo(np.float16).eps)
    assert s4.finfo(s4.bfloat16).bits == 16
    assert s4.isdtype(s4.float32, "real floating") and s4.isdtype(s4.int8, ("integral", "bool"))
    assert not s4.isdtype(s4.uint8, "signed integer")
    assert s4.can_cast(s4.int8, s4.int32) and not s4.can_cast(s4.float64, s4.float32)


def _passable(p: inspect.Parameter, how: str) -> bool:
    if how == "p":
        return p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    return p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)


@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature(name):
    sig = inspect.signature(getattr(s4, name))
    params = sig.parameters
    for pname, how, default in SIGNATURES[name]:
        assert pname in params, f"{name}{sig}: no parameter {pname!r}"
        p = params[pname]
        assert _passable(p, how), f"{name}{sig}: {pname!r} cannot be passed " + (
            "positionally" if how == "p" else "by keyword")
        if default is REQ:
            assert p.default is REQ or p.kind == p.VAR_POSITIONAL, f"{name}: {pname} should be required"
        elif default != "any":
            assert p.default == default, f"{name}: {pname} defaults to {p.default!r}, not {default!r}"
    # nothing else may be required
    extra = [p.name for p in params.values() if p.default is REQ and
             p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and
             p.name not in {q for q, _, _ in SIGNATURES[name]}]
    assert not extra, f"{name}{sig}: extra required parameters {extra}"


@pytest.mark.parametrize("name", ELEMENTWISE_UNARY + ELEMENTWISE_BINARY)
def test_elementwise_signatures_are_positional(name):
    n = 1 if name in ELEMENTWISE_UNARY else 2
    sig = inspect.signature(getattr(s4, name))
    pos = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert len(pos) >= n and all(p.default is inspect.Parameter.empty for p in pos[:n]), (name, sig)
    x = s4.Tensor(np.array([0.25, 0.5], np.float32)) if name not in (
        "bitwise_invert", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
        "bitwise_right_shift") else s4.Tensor(np.array([1, 2], np.int32))
    r = getattr(s4, name)(*([x] * n))
    assert isinstance(r, s4.Tensor) and r.shape == (2,)
    if name in ("isfinite", "isinf", "isnan"):          # predicates on floats give bool
        assert r.dtype == np.bool_
        np.testing.assert_array_equal(r.numpy(), getattr(np, name)(x.numpy()))


def test_array_namespace_info():
    info = s4.__array_namespace_info__()
    assert info.default_device() == s4.get_default_device() == info.devices()[0]
    assert s4.Device("reference") in info.devices()
    d = info.default_dtypes()
    assert d["real floating"] == s4.float32 and d["integral"] == s4.int32
    assert d["indexing"] == s4.int32
    assert info.default_dtypes(device=s4.Device("reference")) == d
    assert set(info.dtypes(kind="real floating").values()) >= {s4.float32, s4.float64}
    assert set(info.dtypes(kind="integral").values()) >= {s4.int32, s4.int64, s4.uint8}
    assert s4.float32 not in info.dtypes(kind="integral").values()
    assert set(info.dtypes(kind=("bool", "real floating")).values()) >= {
        np.dtype(bool), s4.float32}
    assert set(info.dtypes(kind="bool").values()) == {np.dtype(bool)}
    caps = info.capabilities()
    assert isinstance(caps, dict)
    assert isinstance(caps.get("boolean indexing"), bool)
    assert isinstance(caps.get("data-dependent shapes"), bool)
    assert s4.Device("reference") in info.devices()


# ---- scikit-learn and SciPy, whose array API support needs SCIPY_ARRAY_API=1 at import ----------

_THIRD_PARTY = textwrap.dedent("""
    import json, numpy as np, sklearn, scipy.special
    import s4tf_py as s4
    from sklearn.preprocessing import MinMaxScaler, StandardScaler
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    out = {}
    def run(name, f):
        try:
            r = f(s4.Tensor(x))
            sklearn.set_config(array_api_dispatch=False)
            ref = f(x)
            out[name] = {"type": type(r).__name__, "ok": bool(np.allclose(np.asarray(r), ref,
                         rtol=1e-4, atol=1e-5)), "dtype": str(r.dtype)}
        except Exception as e:
            out[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
    def with_dispatch(f):
        def g(v):
            sklearn.set_config(array_api_dispatch=isinstance(v, s4.Tensor))
            return f(v)
        return g
    run("MinMaxScaler", with_dispatch(lambda v: MinMaxScaler().fit_transform(v)))
    run("StandardScaler", with_dispatch(lambda v: StandardScaler().fit_transform(v)))
    run("logsumexp", lambda v: scipy.special.logsumexp(v, axis=0))
    run("softmax", lambda v: scipy.special.softmax(v, axis=1))
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def third_party():
    env = dict(os.environ, SCIPY_ARRAY_API="1", PYTHONPATH=ROOT + os.pathsep +
               os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", _THIRD_PARTY], capture_output=True, text=True,
                       env=env, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def _expect_tensor_result(res, name):
    r = res[name]
    assert "error" not in r, f"{name} on s4tf_py tensors: {r.get('error')}"
    assert r["type"] == "Tensor", r           # computed by s4tf_py, not converted to numpy
    assert r["ok"], f"{name}: result differs from numpy's"
    assert r["dtype"] == "float32"


@pytest.mark.parametrize("name", ["MinMaxScaler", "StandardScaler"])
def test_sklearn_array_api_dispatch(third_party, name):
    _expect_tensor_result(third_party, name)


def test_scipy_logsumexp_array_api(third_party):
    _expect_tensor_result(third_party, "logsumexp")


def test_scipy_softmax_array_api(third_party):
    _expect_tensor_result(third_party, "softmax")
