"""The op test table (DESIGN §5): one row per primitive.

A row names the primitive(s) it covers, an s4tf_py function that exercises it, a numpy
reference, several operand shape sets, the dtypes to try and how to draw operand values.
``tests/test_op_table.py`` runs every row forward against numpy for every shape set and dtype,
and fails when a registered primitive has no row. Later issues add columns (gradients with
``s4.check_grads``, backend parity) that read the same rows.

Rows live in ``tests/op_rows/*.py`` (one file per op family); each file calls :func:`row`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

FLOATS = ("float32", "float64")
ALL_FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("int32", "int64")


@dataclass
class Row:
    name: str                       # test id
    prims: tuple[str, ...]          # primitives this row covers
    fn: Callable                    # (*Tensors) -> Tensor | tuple[Tensor]   (s4tf_py side)
    ref: Callable                   # (*np.ndarray) -> np.ndarray | tuple    (numpy side)
    shapes: list                    # list of tuples of operand shapes
    dtypes: tuple = FLOATS          # dtype names; every operand gets this dtype unless `make`
    make: Callable | None = None    # (rng, shape, dtype_name, operand_index) -> np.ndarray
    low: float = -2.0               # uniform value range when `make` is None
    high: float = 2.0
    rtol: float = 1e-5              # float32 tolerances; float64 uses 1e-10; f16/bf16 looser
    atol: float = 1e-6
    differentiable: bool = True     # the gradient column (autodiff issue) reads this
    notes: str = ""
    extra: dict = field(default_factory=dict)


ROWS: list[Row] = []


def row(name, prims, fn, ref, shapes, **kw) -> Row:
    if isinstance(prims, str):
        prims = (prims,)
    r = Row(name, tuple(prims), fn, ref, shapes, **kw)
    ROWS.append(r)
    return r


def draw(r: Row, rng: np.random.Generator, shape, dtype: str, index: int) -> np.ndarray:
    """Operand ``index`` of row ``r`` with ``shape`` and ``dtype``."""
    if r.make is not None:
        return r.make(rng, shape, dtype, index)
    if dtype == "bool":
        return rng.random(shape) < 0.5
    if dtype.startswith(("int", "uint")):
        return rng.integers(int(r.low), int(r.high) + 1, size=shape).astype(dtype)
    import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy)
    return rng.uniform(r.low, r.high, size=shape).astype(dtype)


def tolerances(r: Row, dtype: str) -> tuple[float, float]:
    if dtype == "float64":
        return max(r.rtol * 1e-5, 1e-10), max(r.atol * 1e-5, 1e-12)
    if dtype == "float16":
        return max(r.rtol, 2e-3), max(r.atol, 2e-3)
    if dtype == "bfloat16":
        return max(r.rtol, 1.6e-2), max(r.atol, 1.6e-2)
    return r.rtol, r.atol


def load_all_rows() -> list[Row]:
    """Import every ``tests/op_rows`` module (each registers its rows) and return the table."""
    import importlib
    import pkgutil

    import op_rows
    for m in pkgutil.iter_modules(op_rows.__path__):
        importlib.import_module(f"op_rows.{m.name}")
    return ROWS
