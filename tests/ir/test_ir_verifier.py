"""The verifier accepts what the tracer and the passes build and rejects each malformed case
with the equation index, the printed equation and the reason."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py.errors import IRError
from s4tf_py.ir.function import Eqn, Function, Var
from s4tf_py.ir.registry import REGISTRY, Primitive
from s4tf_py.ir.verifier import format_eqn, verify

from ir_helpers import aval, const, eqn


def _fn(params, eqns, outputs):
    return Function(params, eqns, outputs, name="t")


def _fails(fn, *fragments):
    with pytest.raises(IRError) as info:
        verify(fn)
    msg = str(info.value)
    for f in fragments:
        assert f in msg, msg
    return info.value


def test_accepts_a_traced_function():
    def f(x, y):
        v, i = s4.top_k(x @ y, 2)
        return s4.sum(v * 2.0), i, x.astype(s4.bfloat16)
    verify(s4.trace(f, s4.ones((2, 3)), s4.ones((3, 4))))


def test_accepts_outputs_that_are_parameters():
    x = Var(aval((2,)))
    verify(_fn([x], [], [x, x]))


def test_wrong_shape():
    x, y = Var(aval((2,))), Var(aval((2,)))
    e = eqn("add", [x, y], out_avals=[aval((3,))])
    err = _fails(_fn([x, y], [e], [e.out]), "eqn #0", "%2 = add(%0, %1) : f32[3]",
                 "result #0 has type f32[3] but the shape rule of add gives f32[2]")
    assert err.eqn_index == 0


def test_wrong_dtype_and_wrong_weakness():
    x = Var(aval((2,)))
    e = eqn("exp", [x], out_avals=[aval((2,), "float64")])
    _fails(_fn([x], [e], [e.out]), "result #0 has type f64[2]", "gives f32[2]")
    c = eqn("constant", (), [("value", 1.0), ("dtype", np.dtype("float32"))],
            out_avals=[aval((), weak=True)])
    _fails(_fn([], [c], [c.out]), "eqn #0", "has type f32[]~", "gives f32[]")


def test_shape_rule_rejecting_the_operands():
    x, y = Var(aval((2,))), Var(aval((3,)))
    e = eqn("add", [x, y], out_avals=[aval((2,))])
    _fails(_fn([x, y], [e], [e.out]), "eqn #0", "shape rule of add rejects the operands",
           "(f32[2], f32[3])")
    r = eqn("reduce_sum", [x], [("axis", 0)], out_avals=[aval(())])   # misspelt param
    _fails(_fn([x], [r], [r.out]), "rejects the operands", "TypeError")


def test_undefined_variable():
    x = Var(aval((2,)))
    ghost = Var(aval((2,)))
    e = eqn("add", [x, ghost])
    err = _fails(_fn([x], [e], [e.out]), "eqn #0", "operand #1",
                 "used before it is defined")
    assert f"%?{ghost.uid}" in str(err)


def test_use_before_definition():
    x = Var(aval((2,)))
    a = eqn("exp", [x])
    b = eqn("neg", [a.out])
    _fails(_fn([x], [b, a], [a.out]), "eqn #0", "neg(%?", "used before it is defined")


def test_redefinition_of_a_parameter_and_of_a_value():
    x = Var(aval((2,)))
    e = eqn("exp", [x], outs=[x])
    _fails(_fn([x], [e], [x]), "eqn #0", "redefines %0", "SSA")
    a = eqn("exp", [x])
    b = eqn("neg", [x], outs=[a.out])
    _fails(_fn([x], [a, b], [a.out]), "eqn #1", "%1 = neg(%0) : f32[2]", "redefines %1")
    p = Var(aval((2,)))
    _fails(_fn([p, p], [], [p]), "parameter #1 is the same value as parameter %0")


def test_unknown_primitive():
    x = Var(aval((2,)))
    fake = Primitive("frobnicate", lambda a: a, lambda a: a)
    e = Eqn(fake, [x], (), [Var(aval((2,)))])
    _fails(_fn([x], [e], [e.out]), "eqn #0", "unknown primitive 'frobnicate'",
           "%1 = frobnicate(%0) : f32[2]")
    # a different row that merely shares a registered name is unknown too
    impostor = Primitive("exp", lambda a: a, lambda a: a)
    e2 = Eqn(impostor, [x], (), [Var(aval((2,)))])
    _fails(_fn([x], [e2], [e2.out]), "unknown primitive 'exp'")


def test_get_tuple_element_is_rejected():
    x = Var(aval((2,)))
    e = Eqn(REGISTRY["get_tuple_element"], [x], (("index", 0),), [Var(aval((2,)))])
    _fails(_fn([x], [e], [e.out]), "get_tuple_element never appears")


def test_wrong_number_of_results():
    x = Var(aval((2, 3)))
    one = eqn("top_k", [x], [("k", 2)], out_avals=[aval((2, 2))])
    _fails(_fn([x], [one], [one.out]), "eqn #0", "top_k produces 2 result(s) but the equation "
                                                 "has 1", "%1 = top_k(%0) {k=2} : (f32[2,2])")
    two = eqn("exp", [x], out_avals=[aval((2, 3)), aval((2, 3))])
    _fails(_fn([x], [two], [two.out]), "exp produces 1 result(s) but the equation has 2")
    none = Eqn(REGISTRY["exp"], [x], (), [])
    _fails(_fn([x], [none], [x]), "at least one result")
    dup = eqn("top_k", [x], [("k", 2)])
    dup = Eqn(dup.prim, dup.inputs, dup.params, [dup.outs[0], dup.outs[0]])
    _fails(_fn([x], [dup], [dup.out]), "listed twice")


def test_undefined_output():
    x = Var(aval((2,)))
    ghost = Var(aval((3,)))
    _fails(_fn([x], [], [x, ghost]), "output #1", "f32[3]", "is not defined by the function")


def test_malformed_params():
    x = Var(aval((2,)))
    e = Eqn(REGISTRY["reduce_sum"], [x], (("axes", (0,)), ("axes", (0,))), [Var(aval(()))])
    _fails(_fn([x], [e], [e.out]), "param name is repeated")
    e = Eqn(REGISTRY["reduce_sum"], [x], ({"axes": (0,)},), [Var(aval(()))])
    _fails(_fn([x], [e], [e.out]), "(name, value) pairs")


def test_error_line_matches_the_printer():
    x, y = Var(aval((2,))), Var(aval((2,)))
    a = eqn("add", [x, y])
    c = const(2.0, weak=True)
    m = eqn("mul", [a.out, c.out], out_avals=[aval((3,))])
    fn = _fn([x, y], [a, c, m], [m.out])
    with pytest.raises(IRError) as info:
        verify(fn)
    printed = str(fn).splitlines()[3].strip()          # the printer's line for eqn #2
    assert printed == "%4 = mul(%2, %3) : f32[3]"
    assert printed in str(info.value) and "eqn #2" in str(info.value)
    names = {x: "%0", y: "%1"}
    assert format_eqn(a, names) == f"%?{a.out.uid} = add(%0, %1) : f32[2]"   # unnamed: %?uid
    assert format_eqn(a, {**names, a.out: "%2"}) == "%2 = add(%0, %1) : f32[2]"


def test_convert_of_a_weak_scalar_may_be_strong():
    # astype on a weak Python-float input records a strong convert; its shape rule keeps the
    # weakness: the verifier accepts the stronger type (and only for convert)
    fn = s4.trace(lambda s: s.astype(s4.float16), 0.5)
    verify(fn)
    s = Var(aval((), weak=True))
    bad = eqn("neg", [s], out_avals=[aval(())])
    _fails(_fn([s], [bad], [bad.out]), "has type f32[] but the shape rule of neg gives f32[]~")


def test_nested_functions_are_verified():
    fn = s4.trace(lambda x: s4.scan(lambda c, v: (c + v, c * v), s4.zeros((2,)), x),
                  s4.ones((3, 2)))
    verify(fn)
    from s4tf_py.ir.region import Region
    scan = next(e for e in fn.eqns if e.prim.name == "scan")
    body = dict(scan.params)["body"].fn
    wrong = eqn("exp", [body.params[0]], out_avals=[aval((7,))])
    broken = Function(body.params, body.eqns + [wrong], body.outputs, name="body")
    params = tuple((k, Region(broken) if k == "body" else v) for k, v in scan.params)
    bad = Eqn(scan.prim, scan.inputs, params, scan.outs)
    eqns = [bad if e is scan else e for e in fn.eqns]
    _fails(Function(fn.params, eqns, fn.outputs), "eqn #1", "nested function in param body",
           f"eqn #{len(body.eqns)}", "has type f32[7] but the shape rule of exp gives f32[2]")
