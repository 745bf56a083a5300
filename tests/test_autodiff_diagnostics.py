"""Differentiation diagnostics, raised while tracing and pointing at the user's own line.

A non-differentiable op (argmax, a comparison, an integer cast) on a differentiable path is an
``s4.DifferentiationError`` naming the op, this file and the offending line, and suggesting
``s4.without_derivative``; a result that does not depend on the arguments warns that its
derivative is always zero; an integer differentiation argument is a clear error.
"""
from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest

import s4tf_py as s4

THIS_FILE = os.path.basename(__file__)


def t64(a) -> s4.Tensor:
    return s4.Tensor(np.asarray(a, dtype=np.float64))


XA = np.array([0.5, -1.0, 2.0])


def _line():
    """The line number of the caller's next line."""
    return sys._getframe(1).f_lineno + 1


def _assert_points_here(err, op_name, line):
    msg = str(err)
    assert op_name in msg, msg
    assert f"{THIS_FILE}:{line}" in msg, msg
    assert "s4.without_derivative" in msg, msg


def test_argmax_on_differentiable_path_is_an_error_at_the_user_line():
    where = {}

    def f(x):
        where["line"] = _line()
        y = s4.argmax(x).astype(s4.float32) * x
        return y.sum()
    x = s4.Tensor(XA.astype(np.float32))
    with pytest.raises(s4.DifferentiationError) as ei:
        s4.gradient(at=x, of=f)
    _assert_points_here(ei.value, "argmax", where["line"])


def test_comparison_on_differentiable_path_is_an_error_at_the_user_line():
    where = {}

    def f(x):
        where["line"] = _line()
        y = (x > 0).astype(s4.float32) * x
        return y.sum()
    x = s4.Tensor(XA.astype(np.float32))
    with pytest.raises(s4.DifferentiationError) as ei:
        s4.gradient(at=x, of=f)
    _assert_points_here(ei.value, "gt", where["line"])


def test_integer_cast_on_differentiable_path_is_an_error():
    where = {}

    def f(x):
        where["line"] = _line()
        y = x.astype(s4.int32).astype(s4.float64) * x
        return y.sum()
    with pytest.raises(s4.DifferentiationError) as ei:
        s4.gradient(at=t64(XA * 3), of=f)
    msg = str(ei.value)
    assert f"{THIS_FILE}:{where['line']}" in msg, msg
    assert "s4.without_derivative" in msg


def test_diagnostic_is_raised_while_tracing_without_values():
    where = {}

    def f(x):
        where["line"] = _line()
        y = s4.argmax(x).astype(s4.float64) * x
        return y.sum()
    # s4.trace runs on abstract inputs: nothing can have been computed
    with pytest.raises(s4.DifferentiationError) as ei:
        s4.trace(s4.gradient(of=f), t64(XA))
    _assert_points_here(ei.value, "argmax", where["line"])


def test_diagnostic_in_pullback_and_nested_function():
    where = {}

    def helper(x):
        where["line"] = _line()
        return (x >= 1.0).astype(s4.float64)

    def f(x):
        return helper(x) * x * 2.0
    with pytest.raises(s4.DifferentiationError) as ei:
        s4.pullback(at=t64(XA), of=f)(t64(np.ones(3)))
    _assert_points_here(ei.value, "ge", where["line"])


def test_without_derivative_is_the_escape():
    x = t64(XA)
    g = s4.gradient(at=x, of=lambda x: (s4.without_derivative((x > 0).astype(s4.float64))
                                        * x).sum())
    np.testing.assert_allclose(g.numpy(), (XA > 0).astype(np.float64))
    g2 = s4.gradient(at=x, of=lambda x: (s4.without_derivative((x > 0).astype(s4.float64))
                                         * x * x).sum())
    np.testing.assert_allclose(g2.numpy(), (XA > 0) * 2 * XA)
    g3 = s4.gradient(at=x, of=lambda x: (s4.without_derivative(s4.argmax(x).astype(s4.float64))
                                         * x).sum())
    np.testing.assert_allclose(g3.numpy(), np.full(3, 2.0))


def test_without_derivative_around_the_op_the_error_names():
    x = t64(XA)
    g = s4.gradient(at=x, of=lambda x: (s4.without_derivative(x > 0).astype(s4.float64)
                                        * x).sum())
    np.testing.assert_allclose(g.numpy(), (XA > 0).astype(np.float64))
    g3 = s4.gradient(at=x, of=lambda x: (s4.without_derivative(s4.argmax(x)).astype(s4.float64)
                                         * x).sum())
    np.testing.assert_allclose(g3.numpy(), np.full(3, 2.0))


def test_where_mask_is_fine():
    # a comparison used as a predicate (not cast into the value) is differentiable
    x = t64(XA)
    g = s4.gradient(at=x, of=lambda x: s4.where(x > 0, x * x, -x).sum())
    np.testing.assert_allclose(g.numpy(), np.where(XA > 0, 2 * XA, -1.0))


def test_constant_result_warns_derivative_is_always_zero():
    x = t64(XA)
    other = t64(np.ones(3))
    with pytest.warns(UserWarning, match="derivative is always zero") as rec:
        g = s4.gradient(at=x, of=lambda x: (other * 2.0).sum())
    np.testing.assert_allclose(g.numpy(), np.zeros(3))
    assert any(THIS_FILE in str(r.message) for r in rec), [str(r.message) for r in rec]
    with pytest.warns(UserWarning, match="derivative is always zero"):
        g2 = s4.gradient(at=x, of=lambda x: t64(3.0))
    np.testing.assert_allclose(g2.numpy(), np.zeros(3))
    with pytest.warns(UserWarning, match="derivative is always zero"):
        s4.pullback(at=x, of=lambda x: t64(np.ones(3)))


def test_no_warning_when_result_depends_on_argument():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s4.gradient(at=t64(XA), of=lambda x: (x * x).sum())


def test_gradient_at_integer_input_is_a_clear_error():
    xi = s4.Tensor(np.array([1, 2, 3], dtype=np.int32))
    with pytest.raises(s4.DifferentiationError, match="integer") as ei:
        s4.gradient(at=xi, of=lambda x: x.sum().astype(s4.float32))
    assert "int32" in str(ei.value)
    with pytest.raises(s4.DifferentiationError, match="integer"):
        s4.gradient(at=(t64(XA), xi), of=lambda x, i: (x * i).sum())
    # an integer argument not differentiated is fine
    g = s4.gradient(at=t64(XA), of=lambda x: (x * xi).sum())
    np.testing.assert_allclose(g.numpy(), [1.0, 2.0, 3.0])


def test_differentiation_error_is_an_s4tf_error():
    assert issubclass(s4.DifferentiationError, s4.S4TFError)
