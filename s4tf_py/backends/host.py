"""Running one equation on the host with its primitive's numpy ``impl``: shared by the
reference interpreter and the LLVM backend's host steps.

A primitive with an ``inplace_operand`` writes into that operand's buffer when nothing else
references it at that moment (an intermediate read for the last time, or a donated input);
CPython's reference count tells, as numpy's own temporary elision does.
"""
from __future__ import annotations

import sys

import numpy as np

from ..errors import ExecutionError, format_location
from ..lazy.metrics import counters

_getrefcount = sys.getrefcount


def uniquely_held(a) -> bool:
    """Whether ``a`` (an element of the caller's argument list) is referenced by nothing else."""
    # references: the caller's argument list, the parameter `a`, getrefcount's argument
    return (isinstance(a, np.ndarray) and a.base is None and a.flags.writeable
            and _getrefcount(a) <= 3)


def run_host_step(impl, args: list, params: dict, multi: bool, inplace_slot, eqn):
    """``impl(*args, **params)``, in place on ``args[inplace_slot]`` when that buffer is free;
    numpy errors become an :class:`ExecutionError` naming the op, operands and user's line."""
    if inplace_slot is not None:
        if uniquely_held(args[inplace_slot]):
            params = dict(params, inplace=True)
            counters["inplace_updates"] += 1
        else:
            counters["update_copies"] += 1
    try:
        r = impl(*args, **params)
    except (ValueError, FloatingPointError, IndexError, np.linalg.LinAlgError) as e:
        raise execution_error(eqn, e, args) from None
    if multi:
        return r
    return r if type(r) is np.ndarray else np.asarray(r)   # numpy reductions give scalars


def execution_error(eqn, e, args) -> ExecutionError:
    shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in args if isinstance(a, np.ndarray))
    err = ExecutionError(f"{eqn.prim.name}: {e}\n  operands: {shapes}\n"
                         f"  at {format_location(eqn.loc)}")
    err.op, err.location = eqn.prim.name, eqn.loc
    return err
