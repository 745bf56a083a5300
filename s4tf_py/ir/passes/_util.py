"""Helpers shared by the passes: value substitution, param keys, effect flags."""
from __future__ import annotations

import numpy as np

from ..function import Eqn, Function, Var


def has_effect(prim) -> bool:
    """True for a primitive that must never be merged, folded or removed.

    Every primitive s4tf_py defines today is pure (random numbers are stateless: they take a
    key). A future stateful or effectful primitive marks itself with ``extra["effect"] = True``
    (or ``extra["stateful"] = True``) and the passes leave its equations alone.
    """
    extra = getattr(prim, "extra", None) or {}
    return bool(extra.get("effect") or extra.get("stateful"))


def is_opaque(prim) -> bool:
    """True for a primitive the passes must not see through: no CSE, no folding, no rewrites.

    Effectful primitives (:func:`has_effect`) and those marked ``extra["no_cse"]``, such as
    ``optimization_barrier`` (rematerialization relies on its result never being merged with,
    or computed from, the values before it). Dead equations of a ``no_cse`` primitive may still
    be removed; effectful ones never are.
    """
    extra = getattr(prim, "extra", None) or {}
    return has_effect(prim) or bool(extra.get("no_cse"))


def has_region(value) -> bool:
    """Whether a param value is, or contains, a nested function (a ``Region``)."""
    from ..region import Region
    if isinstance(value, Region):
        return True
    if isinstance(value, tuple):
        return any(has_region(v) for v in value)
    return False


def regions_in(params) -> bool:
    return any(has_region(v) for _, v in params)


def substitute(e: Eqn, subst: dict) -> Eqn:
    """``e`` with its operands renamed through ``subst`` (``e`` itself when nothing changes)."""
    if not subst:
        return e
    ins = tuple(subst.get(v, v) for v in e.inputs)
    if all(a is b for a, b in zip(ins, e.inputs)):
        return e
    return Eqn(e.prim, ins, e.params, e.outs, e.loc)


def resolve(v: Var, subst: dict) -> Var:
    return subst.get(v, v)


def rebuild(fn: Function, eqns, subst: dict | None = None) -> Function:
    """A new Function with ``fn``'s params and name, ``eqns``, and renamed outputs."""
    outs = [subst.get(v, v) for v in fn.outputs] if subst else list(fn.outputs)
    return Function(fn.params, eqns, outs, name=fn.name)


def canon(v):
    """A hashable key for a param value that tells apart what ``==`` conflates.

    ``1``, ``1.0`` and ``True`` compare equal in Python, ``0.0 == -0.0``, and ``nan != nan``;
    as CSE keys they must be distinct, distinct and equal respectively.
    """
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, int):
        return ("i", v)
    if isinstance(v, float):
        return ("f", v.hex())
    if isinstance(v, str):
        return ("s", v)
    if v is None:
        return ("n",)
    if isinstance(v, tuple):
        return ("t",) + tuple(canon(x) for x in v)
    if isinstance(v, np.dtype):
        return ("d", v.str, v.name)
    if isinstance(v, np.generic):
        return ("g", v.dtype.str, canon(v.item()))
    return ("o", type(v).__name__, v)


def canon_params(params) -> tuple:
    return tuple((k, canon(v)) for k, v in params)


def same_type(a: Var, b: Var) -> bool:
    """Whether ``b`` can stand for ``a``: identical shape, dtype and weakness."""
    return a.aval == b.aval
