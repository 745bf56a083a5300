"""Every registered primitive goes through the IR tests.

A primitive is covered when one of the traced functions in ``ir_cases.CASES`` contains it, or,
for a primitive whose shape rule needs no params, when a generic one-equation function can be
built for it (operands of one shape and dtype, arity and dtype found by trying; built for every
param-free primitive, traced or not). Covered
primitives print, parse back to an equal function, verify, and optimize to a function computing
the same values. A primitive that is neither (one that needs params) fails
``test_every_primitive_is_covered`` with its name: add a small s4 expression for it to
``ir_cases.CASES``.
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

from s4tf_py.ir.function import Eqn, Function, Var
from s4tf_py.ir.parser import parse
from s4tf_py.ir.passes import optimize
from s4tf_py.ir.registry import REGISTRY
from s4tf_py.ir.verifier import verify

import ir_cases
from ir_helpers import aval, assert_same_values, inputs_for, prim_names

#: never in a Function (function_from_graph resolves it to the producer's results)
NOT_IN_FUNCTIONS = {"get_tuple_element"}

_DTYPES = ("float32", "int32", "bool", "uint32")


def _traced_prims() -> set[str]:
    seen: set[str] = set()
    for name in ir_cases.CASES:
        try:
            seen |= prim_names(ir_cases.trace_case(name))
        except Exception:  # noqa: BLE001 - a failing case is reported by its own tests
            pass
    return seen


def _arities(prim):
    try:
        sig = inspect.signature(prim.shape_rule)
    except (TypeError, ValueError):
        return []
    ps = list(sig.parameters.values())
    if any(p.kind is p.KEYWORD_ONLY and p.default is p.empty for p in ps):
        return []                                        # needs params: a case must cover it
    pos = [p for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(1 for p in pos if p.default is p.empty)
    if any(p.kind is p.VAR_POSITIONAL for p in ps):
        return list(range(max(required, 1), 5))
    return list(range(max(required, 1), len(pos) + 1))


def generic_function(prim) -> Function | None:
    """``prim`` applied to fresh ``[2, 3]`` operands with no params, if its rule and impl agree
    to that; None otherwise."""
    rng = np.random.default_rng(0)
    for n in _arities(prim):
        for d in _DTYPES:
            avals = [aval((2, 3), d)] * n
            try:
                r = prim.shape_rule(*avals)
                outs = list(r) if prim.multiple_results else [r]
                args = [np.asarray(rng.uniform(0.25, 0.75, (2, 3))).astype(a.dtype)
                        for a in avals]
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    prim.impl(*args)
            except Exception:  # noqa: BLE001 - not this arity/dtype
                continue
            params = [Var(a) for a in avals]
            e = Eqn(prim, params, (), [Var(a) for a in outs])
            return Function(params, [e], list(e.outs), name=f"generic_{prim.name}")
    return None


def _generic_prims() -> dict[str, Function]:
    out = {}
    for name, prim in REGISTRY.items():
        if name in NOT_IN_FUNCTIONS or prim.nullary:
            continue
        fn = generic_function(prim)
        if fn is not None:
            out[name] = fn
    return out


_TRACED = _traced_prims()
_GENERIC = _generic_prims()


def test_every_primitive_is_covered():
    missing = sorted(n for n in REGISTRY
                     if n not in NOT_IN_FUNCTIONS and n not in _TRACED and n not in _GENERIC)
    assert not missing, (
        f"primitives reached by no IR test: {', '.join(missing)}. Add a small s4 expression "
        "using each of them to tests/ir/ir_cases.py (CASES)")


@pytest.mark.parametrize("name", sorted(_GENERIC))
def test_generic_equation_roundtrips_verifies_and_optimizes(name):
    fn = _GENERIC[name]
    text = str(fn)
    back = parse(text)
    assert str(back) == text and back == fn
    verify(fn)
    out = optimize(fn)
    verify(out)
    assert_same_values(fn, out, inputs_for(fn))


def test_the_sweep_reaches_the_core_primitives_through_traced_functions():
    # the generic fallback is for param-free newcomers; the core families must be traced
    core = {"add", "mul", "dot_general", "reduce_sum", "reshape", "transpose", "slice", "pad",
            "concatenate", "gather", "scatter", "update_slice", "sort", "top_k", "constant",
            "iota", "convert", "select", "cumsum", "argmax", "take_along_axis", "rev",
            "broadcast_to", "threefry2x32"}
    assert core <= _TRACED, sorted(core - _TRACED)
