"""Key-path walks over models and gradients (the part of every optimizer that is not math).

A *model* is an ``s4.nn.Layer`` (or any differentiable struct) whose fields may be nested
layers, lists, tuples and dicts, or a plain pytree of Tensors (a list, tuple, dict or a single
Tensor). Its *parameters* are the floating-point Tensors reached through differentiable fields;
each has a key path such as ``block.0.conv.filter`` (``""`` for a model that is one Tensor).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Iterator

from .. import dtypes as dt
from ..autodiff.structs import TangentVectorBase
from ..tensor import Tensor

Key = Any             # a field name, a list index or a dict key
KeyPath = tuple       # of Keys

_MISSING = object()


def path_str(path: KeyPath) -> str:
    """``("block", 0, "conv", "filter")`` -> ``"block.0.conv.filter"``."""
    return ".".join(str(k) for k in path)


def display(path: str) -> str:
    return f"'{path}'" if path else "the model itself (a single Tensor)"


def children(node) -> list[tuple[Key, Any]] | None:
    """The (key, child) pairs of a container node, or None for a leaf."""
    if isinstance(node, Tensor):
        return None
    cls = type(node)
    fields = getattr(cls, "__s4_diff_fields__", None)
    if fields is not None:                                   # Layer / differentiable struct
        return [(n, getattr(node, n)) for n in fields]
    if isinstance(node, TangentVectorBase):
        return [(n, getattr(node, n)) for n in cls.__s4_fields__]
    if isinstance(node, Mapping):
        return list(node.items())
    if isinstance(node, (list, tuple)):
        return list(enumerate(node))
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node)]
    return None


def walk(node, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every leaf (Tensor or other value) of ``node`` with its key path, depth first."""
    ch = children(node)
    if ch is None:
        yield path, node
        return
    for k, c in ch:
        yield from walk(c, path + (k,))


def is_parameter(v) -> bool:
    return isinstance(v, Tensor) and dt.is_floating(v.dtype)


def parameters(model) -> tuple[dict[str, tuple[KeyPath, Tensor]], set[str]]:
    """``({key path: (path tuple, parameter)}, {key path of every leaf})`` of ``model``."""
    params: dict[str, tuple[KeyPath, Tensor]] = {}
    leaves: set[str] = set()
    for path, v in walk(model):
        s = path_str(path)
        if s in leaves:
            raise ValueError(f"two entries of the model share the key path {display(s)} "
                             "(dict keys that print the same?); rename one")
        leaves.add(s)
        if is_parameter(v):
            params[s] = (path, v)
    return params, leaves


def lookup(grads, path: KeyPath, where: str):
    """The entry of ``grads`` at ``path``; None where a whole subtree is None."""
    node = grads
    for i, k in enumerate(path):
        if node is None:
            return None
        if isinstance(node, Mapping):
            nxt = node.get(k, _MISSING)
        elif isinstance(node, (list, tuple)):
            nxt = node[k] if isinstance(k, int) and 0 <= k < len(node) else _MISSING
        elif isinstance(k, str):
            nxt = getattr(node, k, _MISSING)
        else:
            nxt = _MISSING
        if nxt is _MISSING:
            at = path_str(path[:i]) or "the top level"
            raise ValueError(
                f"{where}: the gradient has no entry for the parameter {display(path_str(path))}: "
                f"at {at} it is a {type(node).__name__} without {k!r}. The gradient must have "
                "the model's structure (its TangentVector, or the same lists and dicts)")
        node = nxt
    return node


def extra_entries(grads, model_leaves: set[str]) -> list[str]:
    """Key paths of Tensors in ``grads`` where the model has nothing."""
    return [path_str(p) for p, v in walk(grads)
            if isinstance(v, Tensor) and path_str(p) not in model_leaves]


def write_back(node, new: dict[str, Tensor], path: KeyPath = (), root: bool = True):
    """Put the tensors of ``new`` (key path -> Tensor) into ``node``.

    As ``model.move(along:)`` does: structs (layers) are updated in place, other containers
    nested inside the model are rebuilt (so a list that something else also holds keeps its
    values), and a root list or dict is updated in place. Returns the updated node, which is a
    new object only for a root tuple or a root Tensor.
    """
    if isinstance(node, Tensor):
        return new.get(path_str(path), node)
    ch = children(node)
    if ch is None:
        return node
    updated = [(k, c, write_back(c, new, path + (k,), root=False)) for k, c in ch]
    if all(nc is c for _, c, nc in updated):
        return node
    if isinstance(node, (list, tuple)):
        items = [nc for _, _, nc in updated]
        if isinstance(node, list):
            if root:
                node[:] = items
                return node
            return type(node)(items) if type(node) is not list else items
        return type(node)(*items) if hasattr(node, "_fields") else type(node)(items)
    if isinstance(node, Mapping):
        if root and isinstance(node, dict):
            for k, _, nc in updated:
                node[k] = nc
            return node
        out = dict(node)
        for k, _, nc in updated:
            out[k] = nc
        return out if type(node) is dict else type(node)(out)
    for k, c, nc in updated:                       # structs and dataclasses: in place
        if nc is not c:
            object.__setattr__(node, k, nc)
    return node


def depends_on_trace_input(t: Tensor, limit: int = 20000) -> bool:
    """Whether ``t``'s graph reaches an abstract leaf (an input of the function being traced).
    False for a concrete value captured from outside the trace."""
    stack = [t._node]
    seen = set()
    while stack and len(seen) < limit:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if n.is_abstract:
            return True
        if n.value is not None:
            continue
        stack.extend(n.inputs)
    return len(seen) >= limit       # too big to tell: assume it does
