"""``s4.nn.Layer``: differentiable structs that compute, and ``s4.nn.Dense``.

A subclass declares its parameters as annotated fields (keyword arguments of the synthesized
constructor, as in S4TF's memberwise initializers) and defines ``__call__``. Its
``TangentVector`` is synthesized from the fields not marked ``s4.no_derivative``.

>>> import s4tf_py as s4
>>> class MLP(s4.nn.Layer):
...     l1: s4.nn.Dense
...     l2: s4.nn.Dense
...     def __call__(self, x):
...         return self.l2(s4.relu(self.l1(x)))
>>> model = MLP(l1=s4.nn.Dense(3, 4, seed=0), l2=s4.nn.Dense(4, 1, seed=1))
>>> g = s4.gradient(at=model, of=lambda m: m(s4.ones((2, 3))).sum())
>>> type(g).__qualname__, g.l1.weight.shape
('MLP.TangentVector', (3, 4))

The protocol (S4TF's ``Layer``, in Python):

- ``layer(x)``: the forward pass (S4TF's ``callAsFunction``). It obeys
  ``s4.learning_phase("training"|"inference")``.
- ``named_parameters()`` / ``parameters()``: the differentiable tensors by key path
  (``block.0.conv.filter``); ``state_dict()`` adds the tensors of ``s4.no_derivative`` fields
  (state such as running statistics), which is what checkpoints hold.
- ``copy()``: an independent model in O(1) per tensor (value semantics); ``copy(to=device)``.
- ``move(along=tangent)`` (S4TF's ``move(along:)``) and ``move(to=device)`` (S4TF's
  ``move(to:)``), both in place.
- ``summary(input_shape=...)``: the layers with their key paths, output shapes and parameter
  counts, from a trace (nothing is computed).

**Errors name the layer.** A ``ShapeError`` or ``DTypeError`` raised inside a layer reaches the
caller naming the key path of that layer inside the model that was called, its type, the
message (expected and actual shape) and the caller's file and line:

>>> net = s4.nn.Sequential(s4.nn.Dense(3, 4, seed=0), s4.nn.Dense(5, 1, seed=1))
>>> net(s4.ones((2, 3)))
Traceback (most recent call last):
  ...
s4tf_py.errors.ShapeError: layer 1 (Dense) of Sequential: expects inputs with 5 features in the last dimension, got shape (2, 4)
  operands: Tensor(f32[2,4])
  at ...:1 (in <module>)

How: every subclass's ``__call__`` is wrapped (in ``__init_subclass__``) in a ``try`` block.
When such an error leaves a layer's ``__call__``, the layer appends itself to a chain kept on
the exception, and the message is rebuilt: each parent finds the next layer of the chain among
its fields by identity, so the key path is that of the outermost layer called. Nothing else
happens on the normal path, and a compiled step does not run the Python body at all.

**State.** Fields marked ``s4.no_derivative`` that hold tensors (running statistics, a frozen
sub-layer) are *state*: not differentiated, not updated by optimizers, but saved, copied and
moved with the model, and inputs and outputs of a compiled step (so a step that updates them
compiles once and returns the new values). A layer updates its state by assigning the field
(``self.running_mean = new``) in ``__call__``; the copy of the model that ``s4.gradient`` and
friends pass to the differentiated function writes such assignments through to the model they
were made from, as S4TF's ``Parameter`` class (a reference) did, so a training step written the
usual way updates running statistics::

    @s4.compile
    def train_step(model, opt, x, y):
        with s4.learning_phase("training"):
            loss, g = s4.value_with_gradient(at=model, of=lambda m: loss_fn(m(x), y))
        opt.update(model, along=g)
        return model, opt, loss            # the new parameters *and* the new state

    model, opt, loss = train_step(model, opt, x, y)

A write made while tracing never reaches a model outside the trace: the model returned by the
step carries the new state. Integer and boolean tensors in ``no_derivative`` fields (masks,
index tables) are constants instead: a compiled function keys on their values (it retraces
when they change), and derivative operators pass them through.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import os
import sys
import types
import weakref
from typing import Any, NamedTuple

import numpy as np

from .. import dtypes as dt
from .. import tree
from ..autodiff.api import DifferentiableFunction
from ..autodiff.structs import Differentiable, make_differentiable, no_derivative
from ..errors import DTypeError, ShapeError, format_location, op_error, user_location
from ..tensor import Tensor

#: the errors a layer annotates with its key path (wrong input shapes and dtypes)
_ANNOTATED = (ShapeError, DTypeError)


class Layer(Differentiable):
    """Base class of layers: fields are parameters (or sub-layers), ``__call__`` computes."""

    def __init_subclass__(cls, _s4_manual: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if _s4_manual:          # a class that sets up its fields itself (Sequential's)
            return
        call = cls.__dict__.get("__call__")
        if call is not None and not getattr(call, "__s4_layer_call__", False):
            cls.__call__ = _wrap_call(call)
        make_differentiable(cls, init="__init__" not in cls.__dict__)
        _register_tree(cls)

    def __call__(self, x):  # pragma: no cover - subclasses define it
        raise NotImplementedError(f"{type(self).__name__} must define __call__")

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        # a state update on the copy that a derivative operator made reaches the original model
        src = self.__dict__.get("_s4_source")
        if src is not None and name in type(self).__s4_nodiff_fields__:
            original = src()
            if original is not None:
                setattr(original, name, value)

    def __getstate__(self) -> dict:
        # the link to the model a derivative's copy was made from is not part of its value
        return {k: v for k, v in self.__dict__.items() if k != "_s4_source"}

    def parameters(self) -> list[Tensor]:
        """The differentiable tensors of this layer and its sub-layers, in field order."""
        return [v for _, v in self.named_parameters()]

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Tensor]]:
        """``(key path, tensor)`` pairs such as ``("l1.weight", ...)``."""
        out = []
        for name in type(self).__s4_diff_fields__:
            out.extend(_named(getattr(self, name), prefix + name))
        return out

    def state_dict(self, prefix: str = "") -> dict[str, Tensor]:
        """Every tensor of this layer and its sub-layers by key path, ``prefix`` prepended.

        A superset of :meth:`named_parameters` (same names, same tensors): it also holds the
        fields marked ``s4.no_derivative`` that hold tensors (state such as running
        statistics, frozen sub-layers). This is what ``s4.save(layer, path)`` writes.

        >>> import s4tf_py as s4
        >>> class Scaled(s4.nn.Layer):
        ...     dense: s4.nn.Dense
        ...     running_mean: s4.Tensor = s4.no_derivative(default=None)
        ...     def __call__(self, x):
        ...         return self.dense(x) - self.running_mean
        >>> m = Scaled(dense=s4.nn.Dense(2, 3, seed=0), running_mean=s4.zeros((3,)))
        >>> [n for n, _ in m.named_parameters()], list(m.state_dict())
        (['dense.weight', 'dense.bias'], ['dense.weight', 'dense.bias', 'running_mean'])
        """
        from ..checkpoint import state_dict
        return state_dict(self, prefix)

    def load_state(self, source, strict: bool = True, *, name_map=None):
        """Set this layer's tensors from a checkpoint, in place; returns a ``LoadReport``.

        ``source``: a checkpoint path (file, or a sharded folder; read tensor by tensor, so
        peak memory stays near one copy of the model), what ``s4.load`` returned, an open
        ``CheckpointReader``, a dict of key path to tensor or array, or another layer.
        Fields are rebound to new tensors, as ``move(along=)`` does: tensors held elsewhere
        keep their values. Each tensor keeps its device; a floating-point checkpoint tensor
        is converted to the model's float dtype (listed in ``report.cast``).

        ``strict=True``: unless every key matches in name and shape, raises
        ``CheckpointMismatchError`` listing the missing, unexpected and mismatched keys with
        their shapes, and changes nothing. ``strict=False`` loads the keys that match and
        reports the rest in the returned ``LoadReport``. ``name_map`` renames the
        checkpoint's keys (a dict, or a function giving the new name or None to drop it).

        >>> import s4tf_py as s4
        >>> a, b = s4.nn.Dense(2, 3, seed=0), s4.nn.Dense(2, 3, seed=1)
        >>> old = b.weight
        >>> b.load_state({"weight": a.weight}, strict=False).missing
        ['bias']
        >>> bool(s4.all(b.weight == a.weight)), bool(s4.all(old == b.weight))
        (True, False)
        """
        from ..checkpoint import load_state
        return load_state(self, source, strict, name_map=name_map)

    # ---- value semantics and devices ------------------------------------------------------------

    def copy(self, *, to=None):
        """An independent copy of this layer: the same structure, every tensor copied in O(1)
        (storage is shared until one side is written), state included. With ``to=device`` the
        copy's tensors are on ``device`` (S4TF's ``init(copying:to:)``). Sub-layers and
        tensors that appear twice (tied weights) appear twice in the copy as one object.

        >>> import s4tf_py as s4
        >>> a = s4.nn.Dense(2, 2, seed=0)
        >>> b = a.copy()
        >>> b.weight[0, 0] = 100.0
        >>> b.weight[0, 0].item(), a.weight[0, 0].item() == 100.0
        (100.0, False)
        """
        return _copy(self, {}, to)

    def move(self, along=None, *, to=None):
        """``move(along=tangent)``: add a tangent to every parameter (S4TF's ``move(along:)``).
        ``move(to=device)``: put every tensor of the layer, state included, on ``device``
        (S4TF's ``move(to:)``). Both work in place (fields are rebound to new tensors, so
        tensors held elsewhere keep their values) and return the layer.

        >>> import s4tf_py as s4
        >>> m = s4.nn.Dense(2, 2, seed=0)
        >>> m.move(to=s4.Device("reference")).weight.device
        Device('reference')
        """
        if (along is None) == (to is None):
            raise TypeError(f"{type(self).__name__}.move takes one of along= (a tangent vector) "
                            "or to= (a device)")
        if to is None:
            return Differentiable.move(self, along)
        from ..device import Device
        if not isinstance(to, Device):
            raise TypeError(f"move(to=) expects an s4.Device, got {type(to).__name__}")
        _move_to(self, to, {})
        return self

    # ---- inspection -----------------------------------------------------------------------------

    def summary(self, input_shape=None, *, dtype=None, inputs=None) -> "LayerSummary":
        """A table of this layer's sub-layers: key path, type, output shape, parameter count.

        Output shapes come from tracing one forward pass on an abstract input of
        ``input_shape`` (a shape, or a list of shapes for several inputs) and ``dtype``
        (default float32), or on ``inputs`` (example tensors; only their shapes and dtypes
        are used): nothing is computed. Without either, the output shapes are left out. The
        result prints as the table; its ``rows``, ``total_parameters`` and ``total_state``
        (elements of non-differentiable tensors) are there to read.

        >>> import s4tf_py as s4
        >>> model = s4.nn.Sequential(s4.nn.Flatten(), s4.nn.Dense(12, 5, seed=0),
        ...                          s4.nn.Dense(5, 2, seed=1))
        >>> s = model.summary(input_shape=(1, 3, 4))
        >>> s.total_parameters, s.rows[1].output_shape
        (77, (1, 5))
        >>> print(s)
        Sequential: input (1, 3, 4) float32
        Key path  Type     Output shape  Parameters
        -------------------------------------------
        0         Flatten  (1, 12)                0
        1         Dense    (1, 5)                65
        2         Dense    (1, 2)                12
        ===========================================
        Output: (1, 2)
        Parameters: 77 (state: 0)
        """
        return _summarize(self, input_shape, dtype, inputs)


# ---- the key path in errors -----------------------------------------------------------------------

def _wrap_call(call):
    """``call`` wrapped so that errors leaving it name the layer (see the module docstring).

    The wrapper adds one frame and a ``try`` block, nothing else (the summary finds its calls
    with a profile hook, so the normal path checks no flag). For the usual ``(self, x)``
    signature it is generated with the same parameter name, which saves packing ``*args``
    and ``**kwargs`` on every call."""
    if isinstance(call, DifferentiableFunction):
        return _LayerCallFunction(call)
    code = getattr(call, "__code__", None)
    simple = (code is not None and code.co_argcount == 2 and not code.co_kwonlyargcount
              and not code.co_posonlyargcount and not call.__defaults__
              and not code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS))
    if simple:
        arg = code.co_varnames[1]
        ns = {"__s4_call": call, "__s4_annotate": _annotate, "__s4_errors": _ANNOTATED}
        src = (f"def __call__(self, {arg}):\n"
               f"    try:\n"
               f"        return __s4_call(self, {arg})\n"
               f"    except __s4_errors as e:\n"
               f"        __s4_annotate(e, self)\n"
               f"        raise\n")
        # a file name inside the package: error locations skip this frame as library code
        exec(compile(src, _WRAPPER_FILE, "exec"), ns)
        wrapper = functools.wraps(call)(ns["__call__"])
    else:
        @functools.wraps(call)
        def wrapper(self, *args, **kwargs):
            try:
                return call(self, *args, **kwargs)
            except _ANNOTATED as e:
                _annotate(e, self)
                raise
    _WRAPPER_CODES.add(wrapper.__code__)
    wrapper.__s4_layer_call__ = True
    return wrapper


_WRAPPER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "<layer call>")
#: code objects of the wrappers: the summary's profile hook watches their returns
_WRAPPER_CODES: set = set()


class _LayerCallFunction(DifferentiableFunction):
    """The wrapper for an ``@s4.differentiable`` ``__call__``: still a DifferentiableFunction
    (so ``@s4.derivative(of=Layer.__call__)`` works), whose ``vjp`` is the original's."""

    __s4_layer_call__ = True

    def __init__(self, fn: DifferentiableFunction):
        functools.update_wrapper(self, fn)
        self.__dict__["_fn"] = fn

    f = property(lambda self: self._fn.f)
    vjp = property(lambda self: self._fn.vjp, lambda self, v: setattr(self._fn, "vjp", v))

    def __call__(self, layer, *args, **kwargs):
        try:
            return self._fn(layer, *args, **kwargs)
        except _ANNOTATED as e:
            _annotate(e, layer)
            raise


_WRAPPER_CODES.add(_LayerCallFunction.__call__.__code__)


def _annotate(e: BaseException, layer: "Layer") -> None:
    """Append ``layer`` to the chain of layers ``e`` has left and rewrite its message."""
    d = e.__dict__
    chain = d.get("_s4_layers")
    if chain is None:
        chain = d["_s4_layers"] = []
        d["_s4_keys"] = []
        d["_s4_message"] = (e.args[0] if len(e.args) == 1 and isinstance(e.args[0], str)
                            else str(e))
    if chain and chain[-1] is layer:        # super().__call__, or a layer calling itself
        return
    if chain:
        # the previous outermost layer, found among this one's fields by identity
        found = _find_path(layer, chain[-1])
        d["_s4_keys"][:0] = found if found is not None else [f"<{type(chain[-1]).__name__}>"]
    chain.append(layer)
    inner, root, keys = chain[0], layer, d["_s4_keys"]
    path = ".".join(str(k) for k in keys)
    e.layer_path = path
    e.layer_type = type(inner).__name__
    if not keys:                            # raised by the layer that was called
        return
    message = d["_s4_message"]
    head, sep, rest = message.partition("\n")
    op = getattr(e, "op", None)
    if op == e.layer_type and head.startswith(op + ": "):
        head = head[len(op) + 2:]
    message = f"layer {path} ({e.layer_type}) of {type(root).__name__}: {head}{sep}{rest}"
    # where the outermost layer was called, when the error's own line is another one (inside
    # a user-defined layer's __call__)
    called = user_location(3)
    if called is not None and called != getattr(e, "location", None):
        message += f"\n  {type(root).__name__} called at {format_location(called)}"
    e.args = (message,)


_FIELD_ORDER: dict = {}


def _field_names(v) -> tuple:
    names = _FIELD_ORDER.get(type(v))
    if names is None:
        names = _FIELD_ORDER[type(v)] = tuple(f.name for f in dataclasses.fields(v))
    return names


def _children(v):
    """(key, child) pairs of a layer, struct or container, in declaration order; else None."""
    if isinstance(v, Tensor):
        return None
    if isinstance(v, Layer) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
        return [(n, getattr(v, n, None)) for n in _field_names(v)]
    if isinstance(v, (list, tuple)):
        return list(enumerate(v))
    if isinstance(v, dict):
        return list(v.items())
    return None


def _find_path(root, target) -> list | None:
    """The keys leading from ``root`` to the object ``target`` (found by identity), or None."""
    stack = [(root, [])]
    seen = {id(root)}
    while stack:
        v, path = stack.pop()
        ch = _children(v)
        if not ch:
            continue
        for k, c in reversed(ch):           # reversed + stack: declaration order, depth first
            if c is target:
                return path + [k]
        for k, c in reversed(ch):
            if id(c) not in seen and not isinstance(c, (Tensor, str, int, float)):
                seen.add(id(c))
                stack.append((c, path + [k]))
    return None


# ---- state, the tree registration and structural copies --------------------------------------------

class _State:
    """Marks a ``no_derivative`` field whose value went to the tree's children (state)."""

    __slots__ = ()

    def __repr__(self):
        return "<state>"


_STATE = _State()


class _Link:
    """The layer a tree was flattened from (weakly held). All links compare equal, so the
    structure (and a compiled function's cache key) does not depend on which model it was."""

    __slots__ = ("ref",)

    def __init__(self, obj):
        self.ref = weakref.ref(obj)

    def __eq__(self, other):
        return isinstance(other, _Link)

    def __hash__(self):
        return 0x5A4E

    def __repr__(self):
        return "<link>"


class _Const:
    """A ``no_derivative`` value holding integer or boolean tensors (masks, index tables),
    kept static: equal when the values are equal, so a compiled function retraces when they
    change. (As tree leaves they would be differentiation inputs, which integers cannot be.)"""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Const) and _same_value(self.value, other.value)

    def __hash__(self):
        return hash(_signature(self.value))

    def __repr__(self):
        return f"<constant {_signature(self.value)}>"


def _signature(v):
    if isinstance(v, Tensor):
        return ("tensor", v.shape, str(v.dtype))
    if type(v) in (list, tuple):
        return tuple(_signature(x) for x in v)
    if type(v) is dict:
        return tuple((k, _signature(x)) for k, x in v.items())
    return type(v).__name__


def _same_value(a, b) -> bool:
    if a is b:
        return True
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a._node is b._node:
            return True
        return (a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
                and bool(np.array_equal(a._value(), b._value())))
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    return a == b


#: types of ``no_derivative`` values that are configuration whatever their value
_PLAIN = frozenset({bool, int, float, complex, str, bytes, type(None), types.FunctionType,
                    types.BuiltinFunctionType, types.MethodType, type, np.dtype})


def _kind(v) -> str:
    """How a ``no_derivative`` value is flattened: ``"state"`` (tensors and layers: tree
    children, so a compiled function takes them as inputs and returns them), ``"const"``
    (holds integer or boolean tensors) or ``"static"`` (configuration, in the aux)."""
    if isinstance(v, Tensor):
        return "state" if dt.is_floating(v.dtype) else "const"
    if isinstance(v, Layer) or hasattr(type(v), "__s4_diff_fields__"):
        return "state"
    if type(v) in (list, tuple) or type(v) is dict:
        kinds = {_kind(x) for x in (v.values() if type(v) is dict else v)}
        return "const" if "const" in kinds else "state" if "state" in kinds else "static"
    return "static"


def _register_tree(cls) -> None:
    """Make ``cls`` a tree node whose children are its differentiable fields *and* the
    ``no_derivative`` fields holding floating-point tensors or layers, so a compiled function
    takes state as inputs and returns it as outputs. The other ``no_derivative`` values are
    static, in the aux: configuration as it is, integer tensors as ``_Const`` (compared by
    value), since a derivative operator would refuse them as leaves.

    The differentiable fields come first, so a tangent rebuilt from the children (which
    takes one per differentiable field) leaves the state out. A copy rebuilt by a derivative
    operator (its tensors are marks) keeps a weak link to the layer it was made from, through
    which ``__setattr__`` writes state updates back.
    """
    diff = cls.__s4_diff_fields__
    nodiff = cls.__s4_nodiff_fields__
    base = tree._REGISTRY.get(cls)
    base_flatten = base[0] if base is not None else (
        lambda obj: ([getattr(obj, n) for n in diff], tuple(getattr(obj, n) for n in nodiff)))
    from ..ops._core import IDENTITY as identity     # the primitive of a derivative's marks

    def flatten(obj):
        children, static = base_flatten(obj)
        for v in static:
            # most configuration values (flags, sizes, activations) are decided by their type
            if type(v) not in _PLAIN and _kind(v) != "static":
                break
        else:
            return children, (static, _Link(obj))
        children = list(children)
        kept = []
        for v in static:
            k = _kind(v)
            if k == "state":             # after the differentiable fields
                children.append(v)
                kept.append(_STATE)
            else:
                kept.append(_Const(v) if k == "const" else v)
        return children, (tuple(kept), _Link(obj))

    def unflatten(aux, children):
        static, link = aux
        obj = object.__new__(cls)
        d = obj.__dict__
        n = len(diff)
        for name, v in zip(diff, children):
            d[name] = v
        for name, v in zip(nodiff, static):
            if v is _STATE:
                d[name] = children[n]
                n += 1
            else:
                d[name] = v.value if type(v) is _Const else v
        # a derivative operator marks every floating-point leaf: the first tensor tells
        for c in children:
            if type(c) is Tensor:
                if c._node.prim is identity:
                    d["_s4_source"] = link.ref
                break
        return obj

    tree.register(cls, flatten, unflatten)


def _copy(v, memo: dict, to):
    """Deep copy of layers, structs and containers; tensors copied in O(1) (or moved ``to``)."""
    if isinstance(v, Tensor):
        r = memo.get(id(v))
        if r is None:
            r = memo[id(v)] = v.to(to) if to is not None else v.copy()
        return r
    t = type(v)
    if t in (list, tuple):
        return t(_copy(x, memo, to) for x in v)
    if t is dict:
        return {k: _copy(x, memo, to) for k, x in v.items()}
    if isinstance(v, tuple) and hasattr(v, "_fields"):
        return t(*(_copy(x, memo, to) for x in v))
    if isinstance(v, Layer) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
        r = memo.get(id(v))
        if r is not None:
            return r
        r = memo[id(v)] = object.__new__(t)
        for k, x in vars(v).items():
            if k != "_s4_source":           # a copy is independent of where v came from
                r.__dict__[k] = _copy(x, memo, to)
        return r
    return v                                # configuration: functions, numbers, strings


def _move_to(v, device, memo: dict):
    """``v`` with every tensor on ``device``; layers and structs are updated in place."""
    if isinstance(v, Tensor):
        r = memo.get(id(v))
        if r is None:
            r = memo[id(v)] = v.to(device)
        return r
    t = type(v)
    if t in (list, tuple):
        items = [_move_to(x, device, memo) for x in v]
        return v if all(a is b for a, b in zip(items, v)) else t(items)
    if t is dict:
        items = {k: _move_to(x, device, memo) for k, x in v.items()}
        return v if all(items[k] is v[k] for k in v) else items
    if isinstance(v, Layer) or (dataclasses.is_dataclass(v) and not isinstance(v, type)):
        if id(v) not in memo:
            memo[id(v)] = v
            for k, x in list(vars(v).items()):
                new = _move_to(x, device, memo)
                if new is not x:
                    object.__setattr__(v, k, new)
        return v
    return v


def _named(v, path):
    if isinstance(v, Tensor):
        return [(path, v)]
    if isinstance(v, Layer):
        return v.named_parameters(path + ".")
    if isinstance(v, (list, tuple)):
        return [p for i, x in enumerate(v) for p in _named(x, f"{path}.{i}")]
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in _named(x, f"{path}.{k}")]
    return []


# ---- summary -------------------------------------------------------------------------------------

class SummaryRow(NamedTuple):
    """One sub-layer in :meth:`Layer.summary`: ``parameters`` and ``state`` count elements."""
    path: str
    type: str
    output_shape: Any
    parameters: int
    state: int


@dataclasses.dataclass
class LayerSummary:
    """What :meth:`Layer.summary` returns; ``str()`` (and ``repr()``) is the table."""
    model: str
    rows: list
    input_shapes: list | None
    output_shape: Any
    total_parameters: int
    total_state: int

    def __str__(self) -> str:
        traced = self.input_shapes is not None
        stateful = any(r.state for r in self.rows)
        head = (["Key path", "Type"] + (["Output shape"] if traced else []) + ["Parameters"]
                + (["State"] if stateful else []))
        body = []
        for r in self.rows:
            depth = r.path.count(".")
            cells = ["  " * depth + r.path, r.type]
            if traced:
                cells.append("-" if r.output_shape is None else _fmt_shape(r.output_shape))
            cells.append(f"{r.parameters:,}")
            if stateful:
                cells.append(f"{r.state:,}")
            body.append(cells)
        numeric = 1 + stateful           # right-aligned columns at the end
        widths = [max(len(c[i]) for c in [head] + body) for i in range(len(head))]

        def line(cells):
            out = [c.ljust(w) for c, w in zip(cells[:-numeric], widths)]
            out += [c.rjust(w) for c, w in zip(cells[-numeric:], widths[-numeric:])]
            return "  ".join(out).rstrip()
        rule = sum(widths) + 2 * (len(widths) - 1)
        if traced:
            inputs = ", ".join(f"{_fmt_shape(s)} {d}" for s, d in self.input_shapes)
            title = f"{self.model}: input {inputs}"
        else:
            title = f"{self.model}"
        lines = [title, line(head), "-" * rule] + [line(c) for c in body] + ["=" * rule]
        if traced:
            lines.append(f"Output: {_fmt_shape(self.output_shape)}")
        lines.append(f"Parameters: {self.total_parameters:,} (state: {self.total_state:,})")
        return "\n".join(lines)

    __repr__ = __str__


def _fmt_shape(s) -> str:
    if isinstance(s, tuple) and all(isinstance(d, int) for d in s):
        return "(" + ", ".join(map(str, s)) + ("," if len(s) == 1 else "") + ")"
    if isinstance(s, (tuple, list)):
        return "[" + ", ".join(_fmt_shape(x) for x in s) + "]"
    if isinstance(s, dict):
        return "{" + ", ".join(f"{k}: {_fmt_shape(x)}" for k, x in s.items()) + "}"
    return str(s)


def _shape_of(out):
    if isinstance(out, Tensor):
        return tuple(out.shape)
    if isinstance(out, (list, tuple)):
        return tuple(_shape_of(x) for x in out)
    if isinstance(out, dict):
        return {k: _shape_of(x) for k, x in out.items()}
    return type(out).__name__


def _recording(seen: dict):
    """A profile hook recording the output of every wrapped layer call that returns."""
    codes = _WRAPPER_CODES

    def hook(frame, event, arg):
        if event == "return" and frame.f_code in codes:
            # `layer` in _LayerCallFunction.__call__ (whose `self` is the function), else `self`
            loc = frame.f_locals
            layer = loc["layer"] if "layer" in loc else loc.get("self")
            if isinstance(layer, Layer):
                seen[id(layer)] = _shape_of(arg)
    return hook


def _layers(v, path: list, out: list, above: frozenset = frozenset()) -> None:
    """(key path, layer) of every layer below ``v``, depth first in declaration order (a layer
    reached twice is listed under both paths; one that holds its own ancestor is not entered
    again)."""
    above = above | {id(v)}
    for k, c in _children(v) or ():
        if isinstance(c, (Tensor, str, int, float)) or c is None or id(c) in above:
            continue
        p = path + [k]
        if isinstance(c, Layer):
            out.append((".".join(map(str, p)), c))
        _layers(c, p, out, above)


def _size(ts) -> int:
    return sum(math.prod(t.shape) for t in {id(t): t for t in ts}.values())


def _summarize(model: Layer, input_shape, dtype, inputs) -> LayerSummary:
    rows_src: list = []
    _layers(model, [], rows_src)
    shapes: dict = {}
    input_shapes = output_shape = None
    if input_shape is not None or inputs is not None:
        from ..ops.creation import zeros
        if inputs is None:
            many = (isinstance(input_shape, (list, tuple)) and input_shape
                    and all(isinstance(s, (list, tuple)) for s in input_shape))
            shape_list = [tuple(s) for s in input_shape] if many else [tuple(input_shape)]
            dtypes = (list(dtype) if isinstance(dtype, (list, tuple))
                      else [dtype or dt.default_float] * len(shape_list))
            params = model.parameters()
            device = params[0].device if params else None
            inputs = [zeros(s, dtype=d, device=device) for s, d in zip(shape_list, dtypes)]
        else:
            inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        input_shapes = [(tuple(x.shape), str(np.dtype(x.dtype))) for x in inputs]
        traced_root: list = []
        outputs: list = []

        def forward(m, *xs):
            traced_root.append(m)
            outputs.append(m(*xs))
            return outputs[-1]

        seen: dict = {}
        previous = sys.getprofile()
        # a profile hook, not a flag checked by every layer call: it costs only while tracing
        sys.setprofile(_recording(seen))
        try:
            from ..lazy import trace
            trace(forward, model, *inputs)     # abstract: records a graph, computes nothing
        finally:
            sys.setprofile(previous)
        output_shape = _shape_of(outputs[-1])
        traced_layers: list = []
        _layers(traced_root[0], [], traced_layers)
        shapes = {p: seen[id(l)] for p, l in traced_layers if id(l) in seen}
    rows = []
    for path, layer in rows_src:
        params = layer.parameters()
        state = [t for t in layer.state_dict().values() if isinstance(t, Tensor)]
        pid = {id(t) for t in params}
        rows.append(SummaryRow(path, type(layer).__name__, shapes.get(path),
                               _size(params), _size([t for t in state if id(t) not in pid])))
    params = model.parameters()
    pid = {id(t) for t in params}
    state = [t for t in model.state_dict().values()
             if isinstance(t, Tensor) and id(t) not in pid]
    return LayerSummary(type(model).__name__, rows, input_shapes, output_shape,
                        _size(params), _size(state))


# ---- Dense ---------------------------------------------------------------------------------------
def glorot_uniform(shape, fan_in, fan_out, seed=None, dtype=dt.float32) -> Tensor:
    """Glorot/Xavier uniform initialization (S4TF's default for Dense and Conv)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    rng = np.random.default_rng(seed)
    return Tensor(rng.uniform(-limit, limit, size=shape).astype(dtype))


class Dense(Layer):
    """A fully connected layer ``activation(x @ weight + bias)``.

    ``Dense(input_size, output_size, activation=None, use_bias=True, seed=None)``.
    """

    weight: Tensor
    bias: Tensor
    activation: object = no_derivative(default=None)
    use_bias: bool = no_derivative(default=True)

    def __init__(self, input_size: int = None, output_size: int = None, activation=None,
                 use_bias: bool = True, *, weight: Tensor = None, bias: Tensor = None,
                 seed=None, dtype=dt.float32):
        if weight is None:
            if input_size is None or output_size is None:
                raise TypeError("Dense needs input_size and output_size (or weight=)")
            weight = glorot_uniform((input_size, output_size), input_size, output_size, seed, dtype)
        if bias is None:
            bias = Tensor(np.zeros((weight.shape[1],), dtype=weight.dtype))
        self.weight = weight
        self.bias = bias
        self.activation = activation
        self.use_bias = use_bias

    def __call__(self, x):
        if x.shape[-1] != self.weight.shape[0]:
            raise op_error(ShapeError, "Dense",
                           f"expects inputs with {self.weight.shape[0]} features in the last "
                           f"dimension, got shape {x.shape}", [x])
        y = x @ self.weight
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y
