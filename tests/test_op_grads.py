"""The op test table's gradient column: every differentiable row passes ``s4.check_grads``.

For each row marked differentiable and each of its shape sets, the floating-point operands are
drawn in float64 and ``s4.check_grads`` compares reverse mode and forward mode with central
finite differences, to second order. Integer operands (indices) are held fixed. A row whose
function returns several results is checked on each floating result.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

import optable
import s4tf_py as s4
from s4tf_py import dtypes as dt
from s4tf_py.ir.function import collect
from s4tf_py.ir.registry import REGISTRY

ROWS = optable.load_all_rows()


# derivative rules against finite differences, on the interpreter (see conftest.py)
pytestmark = pytest.mark.usefixtures("on_the_reference_backend")


def _grad_dtype(r):
    """float64 for the check when the row runs on floats; None when it has no float operand."""
    floats = [d for d in r.dtypes if d in ("float64", "float32", "float16", "bfloat16")]
    return "float64" if floats else None


def _cases():
    for r in ROWS:
        if not r.differentiable or _grad_dtype(r) is None:
            continue
        xfail = r.extra.get("grad_xfail")
        for si, _ in enumerate(r.shapes):
            marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
            yield pytest.param(r, si, id=f"{r.name}-{si}", marks=marks)


@pytest.mark.parametrize("r,si", list(_cases()))
def test_gradients_match_finite_differences(r, si):
    rng = np.random.default_rng(zlib.crc32(f"{r.name}|{si}|grad".encode()))
    arrays = [np.asarray(optable.draw(r, rng, s, "float64", i)) for i, s in enumerate(r.shapes[si])]
    is_float = [dt.is_floating(a.dtype) for a in arrays]
    if not any(is_float):
        pytest.fail(f"row {r.name} is marked differentiable but draws no floating operand")
    fixed = [s4.Tensor(a) for a in arrays]
    # rows may restrict the check to some operands (a discontinuous predicate is not one)
    float_pos = list(r.extra.get("grad_args", [i for i, f in enumerate(is_float) if f]))
    outs = r.fn(*fixed)
    outs = tuple(outs) if isinstance(outs, (tuple, list)) else (outs,)
    for k, o in enumerate(outs):
        if not dt.is_floating(o.dtype) or o.size == 0:
            continue

        def f(*xs, k=k):
            args = list(fixed)
            for p, x in zip(float_pos, xs):
                args[p] = x
            res = r.fn(*args)
            res = tuple(res) if isinstance(res, (tuple, list)) else (res,)
            return res[k]
        s4.check_grads(f, tuple(fixed[p] for p in float_pos), order=2,
                       **r.extra.get("grad_tol", {}))


def test_every_differentiable_primitive_has_rules():
    """A differentiable primitive needs both rules; a non-differentiable one must not pretend."""
    missing = [n for n, p in REGISTRY.items()
               if p.differentiable and (p.vjp is None or p.jvp is None)
               and n not in NO_RULES]
    assert not missing, f"differentiable primitives without a VJP or JVP rule: {missing}"


#: primitives that carry no derivative and why (they are not on differentiable paths)
NO_RULES = {
    "get_tuple_element": "handled by the traversal itself (selects a cotangent slot)",
    "constant": "no operands",
    "iota": "no operands",
    "floor_div": "integer-only here (floats use floor(divide))",
}
