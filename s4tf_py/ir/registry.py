"""The primitive registry: one row per primitive, with a named slot for every stage.

A :class:`Primitive` is the single place that defines an op for the whole platform:

=============  ==============================================================================
slot           meaning
=============  ==============================================================================
shape_rule     ``(*avals, **params) -> AVal | tuple[AVal, ...]``; raises on bad operands
impl           reference implementation on numpy arrays (the correctness oracle)
vjp            reverse-mode rule, written in primitives (filled by the autodiff issue)
jvp            forward-mode rule, written in primitives (filled by the autodiff issue)
llvm           CPU lowering (filled by the LLVM backend issue)
stablehlo      StableHLO lowering (filled by the XLA backend issue)
printer        optional custom text for the params (default: ``{k=v, ...}`` in Python syntax)
=============  ==============================================================================

Flags: ``differentiable`` (False for argmax, comparisons, integer casts...),
``multiple_results``, ``record_location`` (keep the user's file:line on each node, for ops
that can fail at run time or that autodiff diagnoses), ``inplace_operand`` (index of the
operand a backend may overwrite when its buffer is uniquely held, for functional updates).

Example:
    >>> from s4tf_py.ir import registry
    >>> registry.get("add").name
    'add'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import dtypes as _dt


class AVal:
    """The abstract value of an IR value: shape, dtype, and whether it came from a Python scalar."""

    __slots__ = ("shape", "dtype", "weak")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, weak: bool = False):
        self.shape = shape
        self.dtype = dtype
        self.weak = weak

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    def __eq__(self, other):
        return (isinstance(other, AVal) and self.shape == other.shape
                and self.dtype == other.dtype and self.weak == other.weak)

    def __hash__(self):
        return hash((self.shape, self.dtype, self.weak))

    def __repr__(self):
        return type_str(self)


def type_str(aval: AVal) -> str:
    """``f32[2,3]``; a weakly typed scalar prints as ``f32[]~``."""
    s = f"{_dt.SHORT_NAME[aval.dtype]}[{','.join(map(str, aval.shape))}]"
    return s + "~" if aval.weak else s


@dataclass(eq=False)
class Primitive:
    name: str
    shape_rule: Callable[..., Any]
    impl: Callable[..., Any]
    vjp: Callable[..., Any] | None = None
    jvp: Callable[..., Any] | None = None
    llvm: Callable[..., Any] | None = None
    stablehlo: Callable[..., Any] | None = None
    printer: Callable[[dict], str] | None = None
    differentiable: bool = True
    multiple_results: bool = False
    record_location: bool = False
    inplace_operand: int | None = None
    #: ops whose value depends on nothing but params (iota, constant): foldable, fusible
    nullary: bool = False
    doc: str = ""
    extra: dict = field(default_factory=dict)

    def __repr__(self):
        return f"<primitive {self.name}>"


REGISTRY: dict[str, Primitive] = {}


def register(prim: Primitive) -> Primitive:
    if prim.name in REGISTRY:
        raise ValueError(f"primitive {prim.name!r} is registered twice")
    REGISTRY[prim.name] = prim
    return prim


def define(name: str, shape_rule, impl, **slots) -> Primitive:
    """Add one row to the registry and return the primitive."""
    return register(Primitive(name, shape_rule, impl, **slots))


def get(name: str) -> Primitive:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown primitive {name!r}") from None


def all_primitives() -> list[Primitive]:
    return list(REGISTRY.values())


def defvjp(prim: Primitive, rule=None):
    """Set ``prim``'s reverse-mode rule: ``rule(ct, *inputs, out, **params) -> cotangents``.

    ``ct`` is the output cotangent (a tuple for multiple-result primitives), ``inputs`` and
    ``out`` are Tensors; the rule returns one cotangent per input (None for "zero" or for
    inputs that carry no derivative). Usable as a decorator.
    """
    def set_rule(fn):
        prim.vjp = fn
        return fn
    return set_rule(rule) if rule is not None else set_rule


def defjvp(prim: Primitive, rule=None):
    """Set ``prim``'s forward-mode rule: ``rule(tangents, *inputs, out, **params) -> tangent``.

    ``tangents`` has one entry per input (None where the tangent is zero).
    """
    def set_rule(fn):
        prim.jvp = fn
        return fn
    return set_rule(rule) if rule is not None else set_rule
