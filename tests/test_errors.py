"""Errors name the op, the operands' shapes/dtypes, and the user's own file and line (DESIGN §4).

Each check captures the line of the offending statement with :func:`_next_line` (the line right
after the call) and asserts the message points at *this* file and *that* line, never at
s4tf_py's internals. Shape and dtype errors are raised when the op is recorded (no graph runs).
"""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest

import s4tf_py as s4

HERE = os.path.basename(__file__)


def _next_line() -> int:
    """The line number of the statement after the caller's current line."""
    return inspect.currentframe().f_back.f_lineno + 1


def _check(excinfo, op: str, line: int, *fragments: str):
    msg = str(excinfo.value)
    assert msg.startswith(f"{op}:") or f" {op}:" in msg or f"\n{op}:" in msg, msg
    assert f"{HERE}:{line} " in msg or msg.endswith(f"{HERE}:{line}"), (line, msg)
    assert "s4tf_py" + os.sep not in msg.split(" at ")[-1], msg    # never a library frame
    for f in fragments:
        assert f in msg, (f, msg)
    loc = getattr(excinfo.value, "location", None)
    if loc is not None:
        assert os.path.basename(loc[0]) == HERE and loc[1] == line, loc


def _f32(*shape):
    return s4.Tensor(np.ones(shape, np.float32))


@pytest.fixture
def no_materialization():
    """Record-time errors must not run any graph."""
    before = s4.metrics()["materializations"]
    yield
    assert s4.metrics()["materializations"] == before


def test_broadcast_mismatch_in_add(no_materialization):
    a, b = _f32(2, 3), _f32(4)
    line = _next_line()
    with pytest.raises(s4.ShapeError) as ei: a + b  # noqa: E701
    _check(ei, "add", line, "f32[2,3]", "f32[4]", "broadcast")


def test_broadcast_mismatch_reflected_and_other_ops(no_materialization):
    a, b = _f32(3), _f32(2, 2)
    line = _next_line()
    with pytest.raises(s4.ShapeError) as ei: s4.where(s4.Tensor([True, False, True]), a, b)  # noqa: E701
    _check(ei, "where", line, "(3,)", "(2, 2)")
    line = _next_line()
    with pytest.raises(s4.ShapeError) as ei: b * a  # noqa: E701
    _check(ei, "mul", line, "f32[2,2]", "f32[3]")


def test_matmul_inner_dimension_mismatch(no_materialization):
    a, b = _f32(2, 3), _f32(4, 5)
    line = _next_line()
    with pytest.raises(s4.ShapeError) as ei: a @ b  # noqa: E701
    _check(ei, "matmul", line, "f32[2,3]", "f32[4,5]", "3 != 4")


def test_bad_reshape(no_materialization):
    a = _f32(2, 3)
    line = _next_line()
    with pytest.raises(s4.ShapeError) as ei: a.reshape((4, 2))  # noqa: E701
    _check(ei, "reshape", line, "f32[2,3]", "(4, 2)")
    line = _next_line()
    with pytest.raises(s4.ShapeError) as ei: s4.reshape(a, (-1, 4))  # noqa: E701
    _check(ei, "reshape", line, "f32[2,3]")


def test_out_of_range_axis(no_materialization):
    a = _f32(2, 3)
    line = _next_line()
    with pytest.raises(IndexError) as ei: s4.sum(a, axis=3)  # noqa: E701
    _check(ei, "sum", line, "f32[2,3]", "axis 3")
    line = _next_line()
    with pytest.raises(IndexError) as ei: s4.concatenate([a, a], axis=-3)  # noqa: E701
    _check(ei, "concatenate", line, "f32[2,3]")
    line = _next_line()
    with pytest.raises(IndexError) as ei: s4.argmax(a, axis=2)  # noqa: E701
    _check(ei, "argmax", line, "f32[2,3]")


def test_unknown_dtype():
    a = _f32(2)
    assert issubclass(s4.DTypeError, TypeError)
    line = _next_line()
    with pytest.raises(s4.DTypeError) as ei: a.astype("float8")  # noqa: E701
    _check(ei, "astype", line, "f32[2]", "float8")
    line = _next_line()
    with pytest.raises(s4.DTypeError) as ei: s4.astype(a, "complex64")  # noqa: E701
    _check(ei, "astype", line, "f32[2]", "complex64")


def test_unknown_dtype_in_a_creation_function():
    line = _next_line()
    with pytest.raises(s4.DTypeError) as ei: s4.zeros((2,), dtype="complex64")  # noqa: E701
    _check(ei, "full", line, "complex64")


def test_unknown_dtype_is_at_least_a_type_error_naming_the_dtype():
    with pytest.raises(TypeError, match="float8"):
        s4.Tensor([1.0], dtype="float8")
    with pytest.raises(TypeError, match="complex"):
        s4.Tensor(np.array([1 + 2j]))


def test_ragged_nested_list(no_materialization):
    line = _next_line()
    with pytest.raises(ValueError) as ei: s4.Tensor([[1.0, 2.0], [3.0]])  # noqa: E701
    _check(ei, "Tensor", line, "ragged", "[1]")
    line = _next_line()
    with pytest.raises(ValueError) as ei: s4.Tensor([[1.0, 2.0], 3.0])  # noqa: E701
    _check(ei, "Tensor", line, "ragged")


def test_nan_cast_to_int_fails_at_run_time_naming_convert_and_the_recording_line():
    x = s4.Tensor([1.0, float("nan")])
    line = _next_line()
    y = x.astype(s4.int32)              # recorded here: nothing runs yet
    assert y.shape == (2,)
    with pytest.raises(s4.ExecutionError) as ei:
        y.numpy()                       # ... the error names the line that recorded the cast
    msg = str(ei.value)
    assert msg.startswith("convert:"), msg
    assert f"{HERE}:{line} " in msg, (line, msg)
    assert "float32" in msg and "int32" in msg


def test_inf_cast_to_int_inside_a_larger_graph():
    x = s4.Tensor([1.0, 0.0])
    z = x / 0.0 + 1.0
    line = _next_line()
    w = s4.astype(z, s4.int64) * 2
    with pytest.raises(s4.ExecutionError) as ei:
        w.numpy()
    assert "convert" in str(ei.value) and f"{HERE}:{line} " in str(ei.value)


def test_out_of_range_constant_index(no_materialization):
    a = _f32(2, 3)
    line = _next_line()
    with pytest.raises(IndexError) as ei: a[5]  # noqa: E701
    _check(ei, "getitem", line, "f32[2,3]", "index 5", "size 2")
    line = _next_line()
    with pytest.raises(IndexError) as ei: a[0, -4]  # noqa: E701
    _check(ei, "getitem", line, "f32[2,3]", "-4")
    line = _next_line()
    with pytest.raises(IndexError) as ei: a[[0, 2]]  # noqa: E701
    _check(ei, "getitem", line, "f32[2,3]", "index 2")
    line = _next_line()
    with pytest.raises(IndexError) as ei: a.__setitem__((1, 3), 0.0)  # noqa: E701
    _check(ei, "setitem", line, "f32[2,3]", "index 3")


def test_dtype_errors_name_the_op(no_materialization):
    a = _f32(2)
    line = _next_line()
    with pytest.raises(s4.DTypeError) as ei: a & a  # noqa: E701
    _check(ei, "and", line, "f32[2]")
    b = s4.Tensor([True, False])
    line = _next_line()
    with pytest.raises(s4.DTypeError) as ei: b + b  # noqa: E701
    _check(ei, "add", line, "bool")


def test_errors_inside_a_users_helper_point_at_the_helper_line():
    def helper(x):
        return x @ _f32(7, 1)          # the offending line is here, not in the test

    line = inspect.getsourcelines(helper)[1] + 1
    with pytest.raises(s4.ShapeError) as ei:
        helper(_f32(2, 3))
    _check(ei, "matmul", line)
    assert "(in helper)" in str(ei.value)


def test_errors_are_raised_while_recording_inside_compile():
    @s4.compile
    def f(x):
        return x + _f32(5)              # shape error found while tracing

    line = inspect.getsourcelines(f.fn)[1] + 2
    with pytest.raises(s4.ShapeError) as ei:
        f(_f32(3))
    _check(ei, "add", line, "f32[3]", "f32[5]")


def test_error_classes():
    assert issubclass(s4.ShapeError, ValueError) and issubclass(s4.ShapeError, s4.S4TFError)
    assert issubclass(s4.DTypeError, TypeError) and issubclass(s4.DTypeError, s4.S4TFError)
    assert issubclass(s4.ExecutionError, RuntimeError)
    assert issubclass(s4.ConcretizationError, s4.S4TFError)
