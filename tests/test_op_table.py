"""The op test table (DESIGN §5), forward column: every row × shape set × dtype against numpy.

Rows come from every module in tests/op_rows (``optable.load_all_rows``). For each case the
operands are drawn with the row's recipe, the s4tf_py function runs on Tensors and the result
is compared with the row's numpy reference: values within ``optable.tolerances``, and the
shape and dtype exactly (both the Tensor's declared type and the buffer that materializes).

Conventions (documented in tests/op_rows/core.py as well): floating operands reach ``ref``
widened to float64 unless ``extra["ref_native"]``; a float64 reference result stands for the
row's float dtype, or float32 when the row's dtype is not floating (there is never a silent
float64); ``extra["out_dtype"]`` overrides; ``extra["xfail"]`` maps dtype names (or "*") to
the reason of a known core bug.
"""
from __future__ import annotations

import zlib

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
import numpy as np
import pytest

import optable
import s4tf_py as s4
from s4tf_py import dtypes as dt
from s4tf_py.ir.function import collect
from s4tf_py.ir.registry import REGISTRY

ROWS = optable.load_all_rows()

#: primitives that need no row of their own, and why
EXEMPT = {
    "get_tuple_element": "selects one result of a multiple-result primitive; it never stands "
                         "alone (rows for top_k and other multiple-result ops exercise it)",
}


def _cases():
    for r in ROWS:
        xfail = r.extra.get("xfail", {})
        for si, _ in enumerate(r.shapes):
            for d in r.dtypes:
                reason = xfail.get(d) or xfail.get("*")
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                yield pytest.param(r, si, d, id=f"{r.name}-{si}-{d}", marks=marks)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _widen(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64) if dt.is_floating(a.dtype) else a


def _expected_dtype(r, dtype_name, ref_out: np.ndarray, native: bool) -> np.dtype:
    od = r.extra.get("out_dtype")
    if od is not None:
        return dt.canonical(od(dtype_name) if callable(od) else od)
    if ref_out.dtype == np.float64 and not native:
        d = dt.canonical(dtype_name)
        return d if dt.is_floating(d) else dt.default_float
    return dt.canonical(ref_out.dtype)


def _seed(*parts) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


@pytest.mark.parametrize("r,si,dtype", list(_cases()))
def test_forward_matches_numpy(r, si, dtype):
    shapes = r.shapes[si]
    rng = np.random.default_rng(_seed(r.name, si, dtype))
    arrays = [np.asarray(optable.draw(r, rng, s, dtype, i)) for i, s in enumerate(shapes)]
    for a, s in zip(arrays, shapes):
        assert a.shape == tuple(s), f"row {r.name}: make() drew {a.shape}, wanted {s}"
    tensors = [s4.Tensor(a) for a in arrays]

    outs = _as_tuple(r.fn(*tensors))
    assert all(isinstance(o, s4.Tensor) for o in outs), f"{r.name} returned {outs!r}"

    # the row really exercises the primitives it claims (walk the recorded, not-yet-run graph)
    pending = [o._node for o in outs]
    _, ops, _ = collect(pending)
    used = {n.prim.name for n in ops}
    missing = set(r.prims) - used
    assert not missing, (f"row {r.name} claims {sorted(missing)} but its graph only uses "
                         f"{sorted(used)}")

    native = bool(r.extra.get("ref_native"))
    refs = _as_tuple(r.ref(*(arrays if native else [_widen(a) for a in arrays])))
    assert len(refs) == len(outs), f"{r.name}: {len(outs)} results, reference has {len(refs)}"
    rtol, atol = optable.tolerances(r, dtype)
    for k, (o, ref) in enumerate(zip(outs, refs)):
        ref = np.asarray(ref)
        want_dtype = _expected_dtype(r, dtype, ref, native)
        assert o.dtype == want_dtype, f"{r.name} result {k}: dtype {o.dtype}, expected {want_dtype}"
        assert o.shape == ref.shape, f"{r.name} result {k}: shape {o.shape}, expected {ref.shape}"
        got = o.numpy()
        assert got.dtype == o.dtype, (f"{r.name} result {k}: the buffer is {got.dtype} but the "
                                      f"tensor is typed {o.dtype}")
        assert got.shape == o.shape
        if dt.is_floating(want_dtype) and not r.extra.get("exact"):
            np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64),
                                       rtol=rtol, atol=atol, equal_nan=True,
                                       err_msg=f"{r.name} result {k} ({dtype}, shapes {shapes})")
        else:
            np.testing.assert_array_equal(got, ref.astype(want_dtype),
                                          err_msg=f"{r.name} result {k} ({dtype}, shapes {shapes})")


def test_every_primitive_has_a_row():
    covered = {p for r in ROWS for p in r.prims}
    uncovered = sorted(set(REGISTRY) - covered - set(EXEMPT))
    assert not uncovered, f"primitives with no op-table row: {', '.join(uncovered)}"


def test_rows_name_registered_primitives_and_exemptions_are_current():
    unknown = sorted({(r.name, p) for r in ROWS for p in r.prims if p not in REGISTRY})
    assert not unknown, f"rows naming primitives that are not registered: {unknown}"
    stale = sorted(set(EXEMPT) - set(REGISTRY))
    assert not stale, f"exemptions for primitives that no longer exist: {stale}"


def test_row_names_are_unique_and_rows_are_well_formed():
    names = [r.name for r in ROWS]
    dup = sorted({n for n in names if names.count(n) > 1})
    assert not dup, f"duplicate row names: {dup}"
    for r in ROWS:
        assert r.shapes, f"row {r.name} has no shape sets"
        assert r.dtypes, f"row {r.name} has no dtypes"
        for d in r.dtypes:
            dt.canonical(d)


def test_low_precision_floats_are_in_the_table():
    """float16 and bfloat16 are exercised for the elementwise, reduction and contraction ops."""
    for prim in ("add", "mul", "exp", "tanh", "reduce_sum", "dot_general", "convert", "gather"):
        dts = {d for r in ROWS if prim in r.prims for d in r.dtypes}
        assert {"float16", "bfloat16"} <= dts, f"{prim}: low-precision dtypes missing ({dts})"


def test_coverage_check_detects_an_uncovered_primitive():
    """The coverage test fails with the name when a new primitive has no row."""
    from s4tf_py.ir.registry import AVal, Primitive
    fake = Primitive("__op_table_probe__", lambda x: AVal(x.shape, x.dtype), lambda x: x)
    REGISTRY[fake.name] = fake
    try:
        with pytest.raises(AssertionError, match="__op_table_probe__"):
            test_every_primitive_has_a_row()
    finally:
        del REGISTRY[fake.name]
