"""The IR text format round-trips: ``parse(str(fn))`` is ``fn``, and bad text fails clearly."""
from __future__ import annotations

import math

import numpy as np
import pytest

import s4tf_py as s4
from s4tf_py import dtypes as dt
from s4tf_py.errors import IRError
from s4tf_py.ir.function import Function
from s4tf_py.ir.parser import parse, parse_params, parse_type
from s4tf_py.ir.verifier import verify

import ir_cases
from ir_helpers import aval, assert_same_values, const, eqn, inputs_for, run


def _trace(name):
    try:
        return ir_cases.trace_case(name)
    except Exception as e:  # noqa: BLE001
        if name in ir_cases.KNOWN_TRACE_FAILURES:
            pytest.xfail(f"{name}: {ir_cases.KNOWN_TRACE_FAILURES[name]} ({type(e).__name__})")
        raise


def _roundtrip(fn: Function) -> Function:
    text = str(fn)
    back = parse(text)
    assert str(back) == text
    assert back.structural_key() == fn.structural_key()
    assert back == fn
    assert back.name == fn.name
    assert [v.aval for v in back.params] == [v.aval for v in fn.params]
    assert [v.aval for v in back.outputs] == [v.aval for v in fn.outputs]
    for a, b in zip(fn.eqns, back.eqns):
        assert a.prim is b.prim
        assert [o.aval for o in a.outs] == [o.aval for o in b.outs]
        # params come back with the same Python types, not just equal values
        assert [(k, type(v)) for k, v in a.params] == [(k, type(v)) for k, v in b.params]
    return back


@pytest.mark.parametrize("name", sorted(ir_cases.CASES))
def test_traced_functions_roundtrip_and_verify(name):
    fn = _trace(name)
    verify(fn)
    back = _roundtrip(fn)
    verify(back)
    assert str(parse(str(back))) == str(fn)          # idempotent
    assert_same_values(fn, back)


def test_multiple_results_weak_bf16_and_special_floats_print_as_expected():
    def f(x, s):
        v, i = s4.top_k(x, 2)
        b = x.astype(s4.bfloat16) * s
        return v, i, b, x + s4.full((2, 3), math.inf), s4.maximum(x, s4.full((3,), -math.inf)), \
            s4.where(x > 1.0, s4.full((2, 3), math.nan), x)
    fn = s4.trace(f, s4.ones((2, 3)), 0.5)
    text = str(fn)
    assert "%0: f32[2,3], %1: f32[]~" in text
    assert "top_k(%0) {k=2} : (f32[2,2], i32[2,2])" in text
    assert "{dtype=bf16}" in text
    for lit in ("value=inf", "value=-inf", "value=nan"):
        assert lit in text
    back = _roundtrip(fn)
    consts = [dict(e.params)["value"] for e in back.eqns if e.prim.name == "constant"]
    assert math.inf in consts and -math.inf in consts
    assert any(isinstance(c, float) and math.isnan(c) for c in consts)
    top = next(e for e in back.eqns if e.prim.name == "top_k")
    assert len(top.outs) == 2


def test_param_python_types_survive():
    x = aval((2, 3))
    fn_text = """
func @types(%0: f32[2,3], %1: i32[2]) -> (f32[2,3], f32[2], f32[2,3], f32[2,3], f32[2,3]~) {
  %2 = scatter(%0, %1, %0) {axis=0, combine='set'} : f32[2,3]
  %3 = reduce_sum(%2) {axes=(1,)} : f32[2]
  %4 = constant() {value=-0.0, dtype=f32, shape=(2, 3)} : f32[2,3]
  %5 = constant() {value=1, dtype=i1, shape=(2, 3)} : i1[2,3]
  %6 = select(%5, %4, %0) : f32[2,3]
  %7 = constant() {value=1.5, dtype=f32, shape=(2, 3), weak=True} : f32[2,3]~
  return %2, %3, %4, %6, %7
}"""
    fn = parse(fn_text)
    p = [e.params for e in fn.eqns]
    assert p[0] == (("axis", 0), ("combine", "set"))
    assert type(p[1][0][1]) is tuple and p[1][0][1] == (1,)
    v = dict(p[2])["value"]
    assert v == 0.0 and math.copysign(1.0, v) == -1.0         # -0.0 keeps its sign
    assert type(dict(p[3])["value"]) is int                     # 1 stays an int, not True
    assert dict(p[2])["dtype"] is dt.float32 and dict(p[3])["dtype"] is dt.bool_
    assert dict(p[5])["weak"] is True
    assert fn.outputs[4].aval == aval((2, 3), weak=True)
    assert x == fn.params[0].aval
    assert str(parse(str(fn))) == str(fn)


def test_types_and_params_helpers():
    assert parse_type("f32[2,3]") == aval((2, 3))
    assert parse_type("bf16[]~") == aval((), "bfloat16", weak=True)
    assert parse_type("i1[0]") == aval((0,), "bool")
    assert parse_type("u64[ 4 , 5 ]") == aval((4, 5), "uint64")
    for name, d in dt.FROM_SHORT_NAME.items():
        assert parse_type(f"{name}[1]").dtype == d
    assert parse_params("{a=(1, (2,), ()), b=-inf, c=None, d=f16, e='x}y', f=True}") == (
        ("a", (1, (2,), ())), ("b", -math.inf), ("c", None), ("d", dt.float16), ("e", "x}y"),
        ("f", True))
    assert parse_params("") == () and parse_params("{}") == ()


def test_hand_written_text_with_free_names_and_blank_lines():
    text = """

func @g(%x: f32[3], %y: f32[3]) -> (f32[3], f32[]) {

  %s = add(%x, %y) : f32[3]
  %t = reduce_sum(%s) {axes=(0,)} : f32[]
  return %s, %t
}
"""
    fn = parse(text)
    assert [e.prim.name for e in fn.eqns] == ["add", "reduce_sum"]
    out = run(fn, [np.arange(3, dtype=np.float32), np.ones(3, np.float32)])
    np.testing.assert_array_equal(out[0], [1, 2, 3])
    assert float(out[1]) == 6.0
    # printing renumbers the values
    assert "%2 = add(%0, %1) : f32[3]" in str(fn)


def test_no_params_and_no_outputs():
    fn = parse("func @k() -> (f32[2]) {\n  %0 = constant() {value=2.0, dtype=f32, shape=(2,)} "
               ": f32[2]\n  return %0\n}")
    np.testing.assert_array_equal(run(fn, [])[0], [2.0, 2.0])
    empty = Function([], [], [], name="nothing")
    assert str(empty) == "func @nothing() -> () {\n  return \n}"
    back = parse(str(empty))
    assert back.outputs == [] and back.params == [] and str(back) == str(empty)


def test_output_that_is_a_parameter_roundtrips():
    fn = parse("func @ident(%0: f32[2]) -> (f32[2], f32[2]) {\n  return %0, %0\n}")
    assert fn.outputs == [fn.params[0], fn.params[0]]
    assert str(parse(str(fn))) == str(fn)


def test_parse_with_verify_checks_types():
    text = "func @bad(%0: f32[2]) -> (f32[3]) {\n  %1 = exp(%0) : f32[3]\n  return %1\n}"
    fn = parse(text)                       # well-formed text, ill-typed function
    with pytest.raises(IRError, match="eqn #0"):
        verify(fn)
    with pytest.raises(IRError, match=r"result #0 has type f32\[3\]"):
        parse(text, verify=True)


HEADER = "func @f(%0: f32[2]) -> (f32[2]) {"


@pytest.mark.parametrize("text, line, expected", [
    ("fun @f() -> () {\n}", 1, "expected a function header"),
    ("func @f(%0 f32[2]) -> (f32[2]) {\n  return %0\n}", 1, "expected ':' and a type"),
    ("func @f(%0: x32[2]) -> (f32[2]) {\n  return %0\n}", 1, "unknown dtype 'x32'"),
    ("func @f(%0: f32[2,a]) -> (f32[2]) {\n  return %0\n}", 1, "non-negative integer dimension"),
    ("func @f(%0: f32[2], %0: f32[2]) -> (f32[2]) {\n  return %0\n}", 1, "defined twice"),
    (HEADER + "\n  %1 = bogus(%0) : f32[2]\n  return %1\n}", 2, "unknown primitive 'bogus'"),
    (HEADER + "\n  %1 = exp(%7) : f32[2]\n  return %1\n}", 2, "%7 is used before it is defined"),
    (HEADER + "\n  %0 = exp(%0) : f32[2]\n  return %0\n}", 2, "%0 is defined twice"),
    (HEADER + "\n  %1 = exp(%0) : f32[2]\n  %1 = exp(%1) : f32[2]\n  return %1\n}", 3,
     "defined twice (first on line 2)"),
    (HEADER + "\n  %1 = exp(%0)\n  return %1\n}", 2, "' : type' after the operands, got the end of "
     "the line"),
    (HEADER + "\n  %1 = exp(%0) : f32(2)\n  return %1\n}", 2, "expected '[' after the dtype f32"),
    (HEADER + "\n  %1 = exp(%0) : [2]\n  return %1\n}", 2, "expected a type such as f32[2,3]"),
    (HEADER + "\n  %1 = exp(%0) axes=(0,) : f32[2]\n  return %1\n}", 2, "params in braces"),
    (HEADER + "\n  %1 = reduce_sum(%0) {(0,)} : f32[]\n  return %0\n}", 2, "name=literal"),
    (HEADER + "\n  %1 = reduce_sum(%0) {axes=(0,), axes=(0,)} : f32[]\n  return %0\n}", 2,
     "given twice"),
    (HEADER + "\n  %1 = reduce_sum(%0) {axes=[0]} : f32[]\n  return %0\n}", 2,
     "expected a literal"),
    (HEADER + "\n  %1 = reduce_sum(%0) {axes=os.sep} : f32[]\n  return %0\n}", 2,
     "expected a literal"),
    (HEADER + "\n  %1 = reduce_sum(%0) {axes=foo} : f32[]\n  return %0\n}", 2,
     "unknown name 'foo'"),
    (HEADER + "\n  %1 = reduce_sum(%0) {axes=(0,} : f32[]\n  return %0\n}", 2,
     "param axes: expected a literal"),
    (HEADER + "\n  %1 = reduce_sum(%0) {axes=(0,), 3} : f32[]\n  return %0\n}", 2,
     "expected params as {name=literal"),
    (HEADER + "\n  %1 = reduce_sum(%0) {axes=-x} : f32[]\n  return %0\n}", 2,
     "a sign applies to numbers only"),
    (HEADER + "\n  %1 = exp(%0) : f32[2] $\n  return %1\n}", 2, "unexpected character '$'"),
    (HEADER + "\n  %1, %2 = exp(%0) : (f32[2], f32[2])\n  return %1\n}", 2, "exp has one result"),
    (HEADER + "\n  %1, %2 = top_k(%0) {k=1} : f32[1]\n  return %0\n}", 2,
     "2 result name(s) but 1 result type(s)"),
    (HEADER + "\n  %1 = get_tuple_element(%0) {index=0} : f32[2]\n  return %1\n}", 2,
     "never appears in a Function"),
    (HEADER + "\n  %1 = exp(%0) : f32[2]\n  return %1, %1\n}", 3, "signature says (f32[2])"),
    (HEADER + "\n  %1 = exp(%0) : f32[2]\n  return x1\n}", 3, "expected a value name"),
    (HEADER + "\n  %1 = exp(%0) : f32[2]\n  return %1\n  %2 = exp(%1) : f32[2]\n}", 4,
     "expected '}' after the return line"),
    (HEADER + "\n  %1 = exp(%0) : f32[2]\n}", 3, "expected a `return` line"),
    (HEADER + "\n  %1 = exp(%0) : f32[2]\n  return %1\n}\nfunc", 5, "after the closing"),
    (HEADER + "\n  exp(%0) : f32[2]\n  return %0\n}", 2, "expected an equation"),
])
def test_parse_errors_name_the_line_and_what_was_expected(text, line, expected):
    with pytest.raises(IRError) as info:
        parse(text)
    msg = str(info.value)
    assert f"line {line}:" in msg, msg
    assert expected in msg, msg
    bad = text.splitlines()[line - 1].rstrip()
    assert bad in msg                                     # the offending line is quoted


def test_truncated_text_and_missing_header():
    with pytest.raises(IRError, match="line 2: the text ended; expected an equation, a `return` "
                                      "line or '}'"):
        parse(HEADER + "\n  %1 = exp(%0) : f32[2]")
    with pytest.raises(IRError, match="line 2: expected '}' after the return line, got the end "
                                      "of the text"):
        parse(HEADER + "\n  return %0")
    with pytest.raises(IRError, match="no function header"):
        parse("\n\n")


def test_params_are_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    text = HEADER + "\n  %1 = reduce_sum(%0) {axes=" + payload + "} : f32[]\n  return %0\n}"
    with pytest.raises(IRError, match="IR parse error, line 2"):
        parse(text)
    assert not marker.exists()
    with pytest.raises(IRError, match="unknown name '__import__'"):
        parse(HEADER + "\n  %1 = reduce_sum(%0) {axes=__import__('os')} : f32[]\n  return %0\n}")
    with pytest.raises(IRError):
        parse(HEADER + "\n  %1 = reduce_sum(%0) {axes=(lambda: 0)} : f32[]\n  return %0\n}")


def test_parsed_function_is_usable_by_the_passes_and_interpreter():
    fn = ir_cases.trace_case("simplifiable")
    back = parse(str(fn))
    from s4tf_py.ir.passes import optimize
    assert str(optimize(back)) == str(optimize(fn))
    assert_same_values(fn, back, inputs_for(fn))


def test_hand_built_function_roundtrips():
    x = aval((4,))
    from s4tf_py.ir.function import Var
    p = Var(x)
    c = const(3, "int32", shape=(4,))
    conv = eqn("convert", [c.out], [("dtype", dt.float32)])
    a = eqn("add", [p, conv.out])
    fn = Function([p], [c, conv, a], [a.out, conv.out], name="hand")
    _roundtrip(fn)


def test_trace_with_an_unused_argument():
    fn = s4.trace(lambda x, y: x + 1.5, s4.ones((2,)), s4.ones((3,)))
    verify(fn)
    out = run(fn, [np.ones(2, np.float32), np.ones(3, np.float32), np.float32(1.5)])
    np.testing.assert_array_equal(out[0], [2.5, 2.5])


def test_nested_functions_roundtrip_and_report_their_own_lines():
    fn = ir_cases.trace_case("control_flow")
    back = _roundtrip(fn)
    from s4tf_py.ir.region import Region
    cond = [e for e in back.eqns if e.prim.name == "cond"][-1]
    branches = dict(cond.params)["branches"]
    assert isinstance(branches, tuple) and all(isinstance(b, Region) for b in branches)
    inner = next(e for e in branches[1].fn.eqns if e.prim.name == "scan")
    assert isinstance(dict(inner.params)["body"], Region)       # two levels deep
    text = str(fn)
    lines = text.splitlines()
    k = next(i for i, l in enumerate(lines) if "%5 = neg(%1) : f32[3]" in l)
    lines[k] = lines[k].replace("neg(%1)", "neg(%9)")
    with pytest.raises(IRError) as info:
        parse("\n".join(lines))
    assert f"line {k + 1}: value %9 is used before it is defined" in str(info.value)
    # names are local to each function: the body's %0 is not the outer %0 (an f32[4,3])
    assert "func @scan_body(%0: f32[3]" in text and back.params[0].aval == aval((4, 3))
