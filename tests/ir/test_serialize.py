"""IR serialization for the disk caches: functions, regions and LLVM plans round-trip."""
from __future__ import annotations

import pickle

import pytest

import s4tf_py as s4
from s4tf_py.ir import registry, serialize
from s4tf_py.ir.passes import optimize


def test_a_function_round_trips_with_shared_values_and_registry_rows():
    def f(x, w):
        h = s4.tanh(x @ w)
        return (h * h + h).sum(), h

    fn = optimize(s4.trace(f, s4.ones((2, 3)), s4.ones((3, 4))))
    back = serialize.loads(serialize.dumps(fn))
    assert str(back) == str(fn)
    assert all(a.prim is b.prim for a, b in zip(fn.eqns, back.eqns))   # this process's rows
    assert [e.loc for e in back.eqns] == [e.loc for e in fn.eqns]
    # a value read by two equations is one object after loading too
    produced = {o for e in back.eqns for o in e.outs} | set(back.params)
    assert all(v in produced for e in back.eqns for v in e.inputs)
    assert {v.uid for v in back.params}.isdisjoint({v.uid for v in fn.params})


def test_nested_regions_round_trip():
    def body(c, x):
        c = c * 0.5 + x
        return c, c * 2.0

    fn = s4.trace(lambda xs: s4.scan(body, s4.zeros((3,)), xs), s4.ones((4, 3)))
    back = serialize.loads(serialize.dumps(fn))
    assert str(back) == str(fn)


def test_llvm_plans_save_their_lowerings_by_primitive_name():
    from s4tf_py.backends.llvm import executable
    fn = optimize(s4.trace(lambda a: s4.softmax(s4.exp(a) * a, axis=-1), s4.ones((4, 8))))
    fn.donated = frozenset()
    program, specs = executable._build_program(fn, 1)
    data = serialize.dumps((program, specs))
    program2, specs2 = serialize.loads(data)
    ops = [op for sp in specs2 for op in getattr(sp, "ops", []) if callable(op[0])]
    assert ops and all(op[0] is registry.get("exp").llvm or
                       any(op[0] is p.llvm for p in registry.all_primitives()) for op in ops)
    assert executable._module_text(specs2) == executable._module_text(specs)


def test_a_closure_no_registry_row_names_cannot_be_saved():
    local = lambda x: x  # noqa: E731
    with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
        serialize.dumps({"f": local})
