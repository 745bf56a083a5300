"""The IR as text: ``func @name(%0: f32[2,3], ...) -> (types) { ... }``.

Values are numbered in order (parameters first); params print as ``{name=value}`` with Python
literals, dtypes by their short names (``f32``, ``bf16`` ...). :mod:`s4tf_py.ir.parser` reads
the text back.
"""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as dt
from .registry import type_str


def format_param(v) -> str:
    if isinstance(v, np.dtype):
        return dt.SHORT_NAME[v]
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (int, str)):
        return repr(v)
    if isinstance(v, tuple):
        inner = ", ".join(format_param(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, np.generic):
        return format_param(v.item())
    from .region import Region
    if isinstance(v, Region):
        # a nested function, printed in full and indented (cond/while/scan bodies)
        return "\n    ".join(print_function(v.fn).split("\n"))
    raise TypeError(f"cannot print IR param {v!r} of type {type(v).__name__}")


def format_params(params) -> str:
    if not params:
        return ""
    return " {" + ", ".join(f"{k}={format_param(v)}" for k, v in params) + "}"


def print_function(fn) -> str:
    names: dict = {}
    for i, v in enumerate(fn.params):
        names[v] = f"%{i}"
    n = len(fn.params)
    sig = ", ".join(f"{names[v]}: {type_str(v.aval)}" for v in fn.params)
    outs = ", ".join(type_str(v.aval) for v in fn.outputs)
    lines = [f"func @{fn.name}({sig}) -> ({outs}) {{"]
    for e in fn.eqns:
        for o in e.outs:
            names[o] = f"%{n}"
            n += 1
        lhs = ", ".join(names[o] for o in e.outs)
        args = ", ".join(names[v] for v in e.inputs)
        if e.prim.printer is not None:
            ptxt = e.prim.printer(dict(e.params))
        else:
            ptxt = format_params(e.params)
        if len(e.outs) == 1 and not e.prim.multiple_results:
            ty = type_str(e.outs[0].aval)
        else:
            ty = "(" + ", ".join(type_str(o.aval) for o in e.outs) + ")"
        lines.append(f"  {lhs} = {e.prim.name}({args}){ptxt} : {ty}")
    lines.append("  return " + ", ".join(names[v] for v in fn.outputs))
    lines.append("}")
    return "\n".join(lines)
