"""Shared helpers of the IR tests: reference runs, random inputs, hand-built functions."""
from __future__ import annotations

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
import numpy as np

from s4tf_py import dtypes as dt
from s4tf_py.backends.reference import ReferenceExecutable
from s4tf_py.ir.function import Eqn, Function, Var
from s4tf_py.ir.registry import REGISTRY, AVal


def aval(shape, dtype="float32", weak=False) -> AVal:
    return AVal(tuple(shape), dt.canonical(dtype), weak)


def eqn(prim, ins, params=(), outs=None, *, out_avals=None):
    """An Eqn of ``prim`` (a name) typed by its shape rule unless ``out_avals`` is given."""
    p = REGISTRY[prim]
    params = tuple(params)
    if out_avals is None:
        r = p.shape_rule(*[v.aval for v in ins], **dict(params))
        out_avals = list(r) if p.multiple_results else [r]
    if outs is None:
        outs = [Var(a) for a in out_avals]
    return Eqn(p, ins, params, outs)


def const(value, dtype="float32", shape=(), weak=False):
    params = [("value", value), ("dtype", dt.canonical(dtype))]
    if shape:
        params.append(("shape", tuple(shape)))
    if weak:
        params.append(("weak", True))
    return eqn("constant", (), params)


def random_input(a: AVal, rng: np.random.Generator) -> np.ndarray:
    shape, d = a.shape, a.dtype
    if d == dt.bool_:
        return rng.random(shape) < 0.5
    if dt.is_integer(d):
        return rng.integers(0, 3, size=shape).astype(d)
    return np.asarray(rng.uniform(0.25, 1.75, size=shape)).astype(d)


def run(fn: Function, inputs) -> list[np.ndarray]:
    """``fn`` under the reference interpreter (on copies: the interpreter may donate buffers)."""
    with np.errstate(all="ignore"):       # random inputs may leave an op's domain
        return ReferenceExecutable(fn)([np.array(x, copy=True) for x in inputs])


def inputs_for(fn: Function, seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [random_input(v.aval, rng) for v in fn.params]


def assert_same_values(a: Function, b: Function, inputs=None, seed=0):
    """``a`` and ``b`` compute the same outputs (NaNs in the same places) on ``inputs``."""
    if inputs is None:
        inputs = inputs_for(a, seed)
    ra, rb = run(a, inputs), run(b, inputs)
    assert len(ra) == len(rb)
    for i, (x, y) in enumerate(zip(ra, rb)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.shape == y.shape and x.dtype == y.dtype, f"output {i}: {x.dtype}{x.shape} vs " \
                                                          f"{y.dtype}{y.shape}"
        if x.dtype in dt.LOW_PRECISION:
            x, y = x.astype(np.float32), y.astype(np.float32)
        np.testing.assert_array_equal(x, y, err_msg=f"output {i} differs")


def prim_names(fn: Function) -> set[str]:
    return {e.prim.name for e in fn.eqns}
