"""Check that an ``ir.Function`` is well formed.

:func:`verify` checks, for every equation in order:

* its primitive is the registered row of that name (and never ``get_tuple_element``);
* its params are a tuple of ``(name, value)`` pairs with distinct names;
* every operand is defined before it is used (a parameter or an earlier result);
* no result redefines a parameter or an earlier value (SSA), and no value is listed twice;
* the number of results matches the primitive (one, or as many as the shape rule returns for a
  ``multiple_results`` primitive);
* each result's type (shape, dtype and weakness) equals what the primitive's shape rule computes
  from the operand types and params (a shape rule that rejects the operands is reported too;
  ``convert`` may give a strong result where its rule says weak, see ``_WEAKNESS_FROM_CONTEXT``);

nested functions in params (the Regions of ``cond``, ``while_loop``, ``scan``) are verified in
turn; and at the end that every output is a defined value. A violation raises
:class:`s4tf_py.errors.IRError` naming the equation index, the equation as the printer writes it
and the reason.

Example:
    >>> import s4tf_py as s4
    >>> from s4tf_py.ir.verifier import verify
    >>> verify(s4.trace(lambda a: (a * a).sum(), s4.ones((2, 2))))
"""
from __future__ import annotations

from ..errors import IRError
from .function import Eqn, Function, Var
from .printer import format_params
from .registry import REGISTRY, AVal, type_str

__all__ = ["verify", "format_eqn"]


def _name(names: dict, v) -> str:
    n = names.get(v) if isinstance(v, Var) else None
    if n is not None:
        return n
    if isinstance(v, Var):
        return f"%?{v.uid}"          # a value the function never defines
    return f"<{type(v).__name__}>"


def format_eqn(e: Eqn, names: dict) -> str:
    """``%3 = add(%1, %2) : f32[2]`` with the names in ``names`` (undefined values as ``%?uid``).

    Robust against malformed equations (it never raises), so errors can always show the line.
    """
    try:
        lhs = ", ".join(_name(names, o) for o in e.outs)
        args = ", ".join(_name(names, v) for v in e.inputs)
        prim = getattr(e.prim, "name", repr(e.prim))
        try:
            if getattr(e.prim, "printer", None) is not None:
                ptxt = e.prim.printer(dict(e.params))
            else:
                ptxt = format_params(e.params)
        except Exception:  # noqa: BLE001 - unprintable params are reported by the caller
            ptxt = f" {{{e.params!r}}}"
        tys = [type_str(o.aval) if isinstance(o, Var) else "?" for o in e.outs]
        multi = getattr(e.prim, "multiple_results", False)
        ty = tys[0] if len(tys) == 1 and not multi else "(" + ", ".join(tys) + ")"
        return f"{lhs} = {prim}({args}){ptxt} : {ty}"
    except Exception:  # noqa: BLE001
        return repr(e)


def _err(i: int, e: Eqn, names: dict, reason: str) -> IRError:
    err = IRError(f"IR verification failed at eqn #{i}: {reason}\n  {format_eqn(e, names)}")
    err.eqn_index = i
    return err


#: primitives whose result weakness the recording op chooses from context rather than from the
#: operand alone: ``astype`` of a weak scalar records a strong ``convert`` while the shape rule
#: keeps the operand's weakness. A strong result where the rule says weak is accepted for these
#: (making a value strong never changes how the function computes).
_WEAKNESS_FROM_CONTEXT = frozenset({"convert"})


def _same_aval(a, b) -> bool:
    return (isinstance(a, AVal) and isinstance(b, AVal) and tuple(a.shape) == tuple(b.shape)
            and a.dtype == b.dtype and bool(a.weak) == bool(b.weak))


def _regions(value, path):
    """``(path, Region)`` for every nested function in a param value."""
    from .region import Region
    if isinstance(value, Region):
        yield path, value
    elif isinstance(value, tuple):
        for k, v in enumerate(value):
            yield from _regions(v, f"{path}[{k}]")


def verify(fn: Function) -> None:
    """Raise :class:`IRError` if ``fn`` is malformed (see the module docstring); else None."""
    names: dict = {}
    for i, p in enumerate(fn.params):
        if not isinstance(p, Var):
            raise IRError(f"IR verification failed: parameter #{i} is a {type(p).__name__}, "
                          "not a Var")
        if p in names:
            raise IRError(f"IR verification failed: parameter #{i} is the same value as "
                          f"parameter {names[p]}")
        names[p] = f"%{i}"
    n = len(fn.params)
    for i, e in enumerate(fn.eqns):
        # names for this equation's results (as the printer numbers them), for the message
        new = {}
        for o in e.outs:
            if isinstance(o, Var) and o not in names and o not in new:
                new[o] = f"%{n + len(new)}"
        shown = dict(names)
        shown.update(new)
        prim = e.prim
        pname = getattr(prim, "name", None)
        if pname is None or REGISTRY.get(pname) is not prim:
            what = f"{pname!r}" if pname is not None else repr(prim)
            raise _err(i, e, shown, f"unknown primitive {what} (not the registry's row of that "
                                    "name)")
        if pname == "get_tuple_element":
            raise _err(i, e, shown, "get_tuple_element never appears in a Function: a "
                                    "multiple-result equation names each of its results")
        if not isinstance(e.params, tuple) or not all(
                isinstance(kv, tuple) and len(kv) == 2 and isinstance(kv[0], str)
                for kv in e.params):
            raise _err(i, e, shown, "params must be a tuple of (name, value) pairs")
        keys = [k for k, _ in e.params]
        if len(set(keys)) != len(keys):
            raise _err(i, e, shown, f"a param name is repeated in {keys}")
        for k, v in enumerate(e.inputs):
            if not isinstance(v, Var):
                raise _err(i, e, shown, f"operand #{k} is a {type(v).__name__}, not a Var")
            if v not in names:
                raise _err(i, e, shown, f"operand #{k} ({_name(shown, v)}) is used before it is "
                                        "defined (or never defined)")
        if not e.outs:
            raise _err(i, e, shown, "an equation must have at least one result")
        for k, o in enumerate(e.outs):
            if not isinstance(o, Var):
                raise _err(i, e, shown, f"result #{k} is a {type(o).__name__}, not a Var")
            if o in names:
                raise _err(i, e, shown, f"result #{k} redefines {names[o]}, which is already "
                                        "defined (the IR is SSA)")
        if len(set(e.outs)) != len(e.outs):
            raise _err(i, e, shown, "the same value is listed twice among the results")
        try:
            rule = prim.shape_rule(*[v.aval for v in e.inputs], **dict(e.params))
        except Exception as ex:  # noqa: BLE001 - any rejection of the operands is the finding
            raise _err(i, e, shown, f"the shape rule of {pname} rejects the operands "
                                    f"({', '.join(type_str(v.aval) for v in e.inputs)}): "
                                    f"{type(ex).__name__}: {ex}") from None
        expected = tuple(rule) if prim.multiple_results else (rule,)
        if len(expected) != len(e.outs):
            raise _err(i, e, shown, f"{pname} produces {len(expected)} result(s) but the "
                                    f"equation has {len(e.outs)}")
        for k, (o, want) in enumerate(zip(e.outs, expected)):
            if pname in _WEAKNESS_FROM_CONTEXT and isinstance(want, AVal) and want.weak:
                want = AVal(want.shape, want.dtype, bool(getattr(o.aval, "weak", False)))
            if not _same_aval(o.aval, want):
                raise _err(i, e, shown, f"result #{k} has type {type_str(o.aval)} but the shape "
                                        f"rule of {pname} gives {type_str(want)}")
        for key, value in e.params:
            for path, region in _regions(value, key):
                try:
                    verify(region.fn)
                except IRError as ex:
                    raise _err(i, e, shown, f"the nested function in param {path} is malformed: "
                                            + str(ex).replace("\n", "\n    ")) from None
        names.update(new)
        n += len(new)
    for k, v in enumerate(fn.outputs):
        if not isinstance(v, Var):
            raise IRError(f"IR verification failed: output #{k} is a {type(v).__name__}, not a "
                          "Var")
        if v not in names:
            raise IRError(f"IR verification failed: output #{k} ({_name(names, v)}, "
                          f"{type_str(v.aval)}) is not defined by the function")
