"""Recurrent layers: ``BasicRNNCell``, ``LSTMCell``, ``GRUCell``; ``RNN``, ``BasicRNN``,
``LSTM``, ``GRU`` and ``Bidirectional`` (S4TF's ``Recurrent.swift``).

A *cell* computes one time step: ``cell(input, state) -> (output, new_state)`` with ``input``
of shape ``[batch, input_size]``. A *recurrent layer* runs a cell over a whole sequence
``[batch, time, features]`` with :func:`s4.scan <s4tf_py.ops.control.scan>`: the step is traced
once and the sequence is one ``scan`` primitive in the IR (S4TF unrolled a Swift loop over an
array of time steps; here the length does not change the size of the graph, and the gradient,
backpropagation through time, is again one reverse scan).

Differences from S4TF, on purpose:

* A layer takes one ``[batch, time, features]`` tensor (Keras' and PyTorch's
  ``batch_first`` layout), not a Swift array of ``[batch, features]`` time steps, and returns
  all outputs as one ``[batch, time, hidden]`` tensor; ``return_state=True`` also returns the
  final state (S4TF had ``lastOutput(from:)``, here :meth:`RNN.last_output` too).
* ``LSTMCell``'s per-step output is the new *hidden* state (as in Keras and PyTorch); S4TF
  returned the whole ``State`` (cell and hidden) as the output. The state is an
  :class:`LSTMState` struct with fields ``cell`` and ``hidden``, as S4TF's ``LSTMCell.State``.
* ``GRUCell.zero_state`` has the batch dimension of its input (S4TF's was ``[1, hidden]``,
  relying on broadcasting).
* Optional ``lengths=`` (one int per batch element) mask the padded tail of each sequence:
  there the state is carried over unchanged and the output is zero, so the final state is the
  state after each sequence's last valid step (PyTorch's packed sequences). S4TF had no masks.

Inside each cell the input's contribution to every gate (``x @ W_x + b``) is computed for all
time steps at once, before the scan, as one large matrix product (``project_input``); the
scanned step then only adds the recurrent term ``h @ W_h``. That is the same arithmetic as
S4TF's ``concat([x, h]) @ W + b``, rearranged as cuDNN does it. It matters most on the LLVM
backend, where ``scan`` is a host step whose body runs on the numpy interpreter step by step,
while the projection (and everything outside the scan) is compiled.

>>> import s4tf_py as s4
>>> from s4tf_py.nn.recurrent import LSTM
>>> lstm = LSTM(3, 4, seed=0)                     # input_size 3, hidden_size 4
>>> x = s4.ones((2, 5, 3))                        # [batch, time, features]
>>> outputs, state = lstm(x, return_state=True)
>>> outputs.shape, state.cell.shape, state.hidden.shape
((2, 5, 4), (2, 4), (2, 4))
>>> [e.prim.name for e in s4.trace(lambda m, x: m(x), lstm, x).eqns].count("scan")
1
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np

from .. import dtypes as dt
from .. import tree
from ..autodiff.structs import differentiable_struct, no_derivative
from ..errors import DTypeError, ShapeError, op_error
from ..ops.control import scan
from ..tensor import Tensor
from . import initializers as init
from .layer import Layer

__all__ = ["LSTMState", "RecurrentCell", "BasicRNNCell", "LSTMCell", "GRUCell", "RNN",
           "BasicRNN", "LSTM", "GRU", "Bidirectional", "MERGE_FUNCTIONS"]


def _s4():
    # the package's top-level ops (imported lazily: s4tf_py imports s4tf_py.nn)
    import s4tf_py
    return s4tf_py


def _keys(n: int, seed, key) -> list:
    """``n`` independent ``key=`` values for the ``n`` initializers of one cell.

    With ``seed``/``key`` the draws are reproducible (``fold_in(key, i)``); with neither, each
    initializer draws from the global key (``s4.random.set_seed``)."""
    from ..ops import random as rnd
    if seed is not None and key is not None:
        raise TypeError("pass either seed= or key=, not both")
    if seed is None and key is None:
        return [None] * n
    base = rnd.key(seed) if key is None else key
    return [rnd.fold_in(base, i) for i in range(n)]


def _shape_str(shape) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _state_dtype(weight: Tensor, for_: Tensor):
    """The dtype a step computes in: the weights' promoted with a floating input's (so a
    float64 sequence through float32 weights carries a float64 state, as its steps produce)."""
    if isinstance(for_, Tensor) and dt.is_floating(for_.dtype):
        return dt.result_type(weight.dtype, for_.dtype)
    return weight.dtype


def _check_sizes(name: str, input_size, hidden_size) -> None:
    for label, v in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise TypeError(f"{name}: {label} must be a positive int, got {v!r}")


def _keep_parent_init(cls) -> None:
    """A subclass that adds no fields and no ``__init__`` keeps its parent's constructor
    (``Layer`` would otherwise synthesize a field-wise one in its place)."""
    if "__init__" not in cls.__dict__ and not cls.__dict__.get("__annotations__"):
        cls.__init__ = cls.__mro__[1].__init__


@differentiable_struct
class LSTMState:
    """The state of an :class:`LSTMCell` (S4TF's ``LSTMCell.State``): ``cell`` and ``hidden``,
    each ``[batch, hidden_size]``. A differentiable struct: its tangent is
    ``LSTMState.TangentVector``, and it flows through ``s4.scan`` as a carry.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import LSTMState
    >>> s = LSTMState(cell=s4.zeros((1, 2)), hidden=s4.ones((1, 2)))
    >>> g = s4.gradient(at=s, of=lambda s: (s.cell * 2.0 + s.hidden).sum())
    >>> g.cell.tolist(), g.hidden.tolist()
    ([[2.0, 2.0]], [[1.0, 1.0]])
    """

    cell: Tensor
    hidden: Tensor


class RecurrentCell(Layer):
    """Base of recurrent cells (S4TF's ``RecurrentLayerCell``).

    A cell defines ``zero_state(for_)`` and either ``__call__(input, state) -> (output,
    new_state)`` alone, or the two halves a recurrent layer uses: ``project_input(inputs)``
    (the input's contribution, computed for every time step before the scan; the identity by
    default) and ``step(projected, state) -> (output, new_state)`` (one scanned step; by
    default ``self(projected, state)``).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import RecurrentCell, RNN
    >>> class Accumulate(RecurrentCell):          # a parameter-free running sum
    ...     def zero_state(self, for_):
    ...         return s4.zeros_like(for_[:, 0])
    ...     def __call__(self, input, state):
    ...         new = state + input
    ...         return new, new
    >>> RNN(Accumulate())(s4.ones((1, 3, 2))).tolist()
    [[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]]
    """

    def __init_subclass__(cls, **kwargs):
        _keep_parent_init(cls)
        super().__init_subclass__(**kwargs)

    def zero_state(self, for_: Tensor):  # pragma: no cover - subclasses define it
        """A zero state for a batch like ``for_`` (any tensor whose first axis is the batch)."""
        raise NotImplementedError(f"{type(self).__name__} must define zero_state")

    def project_input(self, inputs: Tensor):
        """The input's part of the step for every time step at once (``[..., input_size]``)."""
        return inputs

    def step(self, projected, state):
        """One time step from ``project_input``'s result for that step and the state."""
        return self(projected, state)

    # ---- helpers for the cells below ----

    def _check_input(self, x: Tensor, input_size: int) -> None:
        if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != input_size:
            shape = x.shape if isinstance(x, Tensor) else type(x).__name__
            raise op_error(ShapeError, type(self).__name__,
                           f"expects an input of shape [batch, {input_size}], got shape {shape}",
                           [x] if isinstance(x, Tensor) else [])

    def _check_state(self, state, x: Tensor) -> None:
        want = tree.flatten(self.zero_state(x), is_leaf=lambda v: isinstance(v, Tensor))
        got = tree.flatten(state, is_leaf=lambda v: isinstance(v, Tensor))
        ok = want[1] == got[1] and all(isinstance(g, Tensor) and g.shape == w.shape
                                       for g, w in zip(got[0], want[0]))
        if not ok:
            shapes = [getattr(g, "shape", type(g).__name__) for g in got[0]]
            raise op_error(ShapeError, type(self).__name__,
                           f"expects a state of {_state_desc(want)}, got shape "
                           f"{shapes[0] if len(shapes) == 1 else shapes}",
                           [g for g in got[0] if isinstance(g, Tensor)])


def _state_desc(flat) -> str:
    leaves, td = flat
    shapes = [_shape_str(v.shape) for v in leaves]
    if len(shapes) == 1:
        return f"shape {shapes[0]}"
    return f"structure {td} with shapes {', '.join(shapes)}"


# ---- cells ------------------------------------------------------------------------------------

class BasicRNNCell(RecurrentCell):
    """The Elman cell ``h' = tanh(concat([x, h]) @ weight + bias)``; output and state are ``h'``.

    ``BasicRNNCell(input_size, hidden_size, seed=None, key=None, dtype=s4.float32)``, or
    ``BasicRNNCell(weight=, bias=)``. As in S4TF, ``weight`` is ``[input_size + hidden_size,
    hidden_size]`` (rows for the input first, then for the state), Glorot-uniform, and
    ``bias`` ``[hidden_size]`` zeros. (PyTorch's ``nn.RNN`` is the same cell with
    ``weight = concat([weight_ih.T, weight_hh.T])`` and ``bias = bias_ih + bias_hh``.)

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import BasicRNNCell
    >>> cell = BasicRNNCell(2, 3, seed=0)
    >>> out, state = cell(s4.ones((4, 2)), cell.zero_state(s4.ones((4, 2))))
    >>> out.shape, bool(s4.all(out == state))
    ((4, 3), True)
    """

    weight: Tensor
    bias: Tensor

    def __init__(self, input_size: int | None = None, hidden_size: int | None = None, *,
                 weight: Tensor | None = None, bias: Tensor | None = None, seed=None, key=None,
                 dtype=dt.float32):
        if weight is None:
            _check_sizes("BasicRNNCell", input_size, hidden_size)
            (kw,) = _keys(1, seed, key)
            weight = init.glorot_uniform((input_size + hidden_size, hidden_size), dtype, key=kw)
        if bias is None:
            bias = init.zeros((weight.shape[1],), weight.dtype)
        self.weight = weight
        self.bias = bias

    @property
    def hidden_size(self) -> int:
        return self.weight.shape[1]

    @property
    def input_size(self) -> int:
        return self.weight.shape[0] - self.weight.shape[1]

    def zero_state(self, for_: Tensor) -> Tensor:
        """Zeros ``[batch, hidden_size]``, the batch taken from ``for_.shape[0]``."""
        return _s4().zeros((for_.shape[0], self.hidden_size),
                           dtype=_state_dtype(self.weight, for_), device=for_.device)

    def project_input(self, inputs: Tensor) -> Tensor:
        return inputs @ self.weight[:self.input_size] + self.bias

    def step(self, projected: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h = _s4().tanh(projected + state @ self.weight[self.input_size:])
        return h, h

    def __call__(self, input: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        self._check_input(input, self.input_size)
        self._check_state(state, input)
        return self.step(self.project_input(input), state)


class LSTMCell(RecurrentCell):
    """A long short-term memory cell with S4TF's fused layout.

    ``LSTMCell(input_size, hidden_size, forget_bias=0.0, seed=None, key=None,
    dtype=s4.float32)``, or ``LSTMCell(fused_weight=, fused_bias=)``.

    ``fused_weight`` is ``[input_size + hidden_size, 4 * hidden_size]`` (rows: the input's,
    then the hidden state's) and ``fused_bias`` ``[4 * hidden_size]``. Their four column
    blocks are the gates in S4TF's order **input, update (the tanh candidate), forget,
    output** — ``i, g, f, o``; PyTorch's order is ``i, f, g, o``. The properties
    ``input_weight``, ``update_weight``, ``forget_weight``, ``output_weight`` (and ``*_bias``)
    slice them out, as in S4TF. With ``z = concat([x, h]) @ fused_weight + fused_bias``::

        c' = sigmoid(z_f) * c + sigmoid(z_i) * tanh(z_g)
        h' = sigmoid(z_o) * tanh(c')

    The output is ``h'``; the new state is ``LSTMState(cell=c', hidden=h')``.

    Initialization: ``fused_weight`` Glorot-uniform, ``fused_bias`` zeros — S4TF's fused
    ``LSTMCell`` (v0.6 onwards). S4TF's earlier per-gate ``LSTMCell`` initialized the forget
    bias to **ones** (the Jozefowicz et al. 2015 advice, Keras' ``unit_forget_bias``); pass
    ``forget_bias=1.0`` for that.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import LSTMCell
    >>> cell = LSTMCell(2, 3, forget_bias=1.0, seed=0)
    >>> cell.fused_weight.shape, cell.forget_bias.tolist()
    ((5, 12), [1.0, 1.0, 1.0])
    >>> x = s4.ones((4, 2))
    >>> out, state = cell(x, cell.zero_state(x))
    >>> out.shape, type(state).__name__, bool(s4.all(out == state.hidden))
    ((4, 3), 'LSTMState', True)
    """

    fused_weight: Tensor
    fused_bias: Tensor

    State = LSTMState

    def __init__(self, input_size: int | None = None, hidden_size: int | None = None, *,
                 forget_bias: float = 0.0, fused_weight: Tensor | None = None,
                 fused_bias: Tensor | None = None, seed=None, key=None, dtype=dt.float32):
        if fused_weight is None:
            _check_sizes("LSTMCell", input_size, hidden_size)
            (kw,) = _keys(1, seed, key)
            fused_weight = init.glorot_uniform((input_size + hidden_size, 4 * hidden_size),
                                               dtype, key=kw)
        if fused_weight.ndim != 2 or fused_weight.shape[1] % 4:
            raise op_error(ShapeError, "LSTMCell", "fused_weight must be [input_size + "
                           f"hidden_size, 4 * hidden_size], got shape {fused_weight.shape}",
                           [fused_weight])
        if fused_bias is None:
            h = fused_weight.shape[1] // 4
            b = np.zeros((4 * h,), dtype=fused_weight.dtype)
            b[2 * h:3 * h] = forget_bias          # the forget block (S4TF order i, g, f, o)
            fused_bias = Tensor(b, device=fused_weight.device)
        self.fused_weight = fused_weight
        self.fused_bias = fused_bias

    @property
    def hidden_size(self) -> int:
        return self.fused_weight.shape[1] // 4

    @property
    def input_size(self) -> int:
        return self.fused_weight.shape[0] - self.hidden_size

    def _gate(self, t: Tensor, k: int) -> Tensor:
        h = self.hidden_size
        return t[..., k * h:(k + 1) * h]

    input_weight = property(lambda self: self._gate(self.fused_weight, 0))
    update_weight = property(lambda self: self._gate(self.fused_weight, 1))
    forget_weight = property(lambda self: self._gate(self.fused_weight, 2))
    output_weight = property(lambda self: self._gate(self.fused_weight, 3))
    input_bias = property(lambda self: self._gate(self.fused_bias, 0))
    update_bias = property(lambda self: self._gate(self.fused_bias, 1))
    forget_bias = property(lambda self: self._gate(self.fused_bias, 2))
    output_bias = property(lambda self: self._gate(self.fused_bias, 3))

    def zero_state(self, for_: Tensor) -> LSTMState:
        """``LSTMState`` of zeros ``[batch, hidden_size]``, the batch from ``for_.shape[0]``."""
        s4 = _s4()
        shape = (for_.shape[0], self.hidden_size)
        dtype = _state_dtype(self.fused_weight, for_)
        return LSTMState(cell=s4.zeros(shape, dtype=dtype, device=for_.device),
                         hidden=s4.zeros(shape, dtype=dtype, device=for_.device))

    def project_input(self, inputs: Tensor) -> Tensor:
        return inputs @ self.fused_weight[:self.input_size] + self.fused_bias

    def step(self, projected: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        s4 = _s4()
        z = projected + state.hidden @ self.fused_weight[self.input_size:]
        i, g, f, o = s4.split(z, 4, axis=-1)
        cell = s4.sigmoid(f) * state.cell + s4.sigmoid(i) * s4.tanh(g)
        hidden = s4.sigmoid(o) * s4.tanh(cell)
        return hidden, LSTMState(cell=cell, hidden=hidden)

    def __call__(self, input: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        self._check_input(input, self.input_size)
        self._check_state(state, input)
        return self.step(self.project_input(input), state)


_GRU_KERNELS = ("update_kernel", "update_recurrent_kernel", "reset_kernel",
                "reset_recurrent_kernel", "output_kernel", "output_recurrent_kernel")
_GRU_BIASES = ("update_bias", "update_recurrent_bias", "reset_bias", "reset_recurrent_bias",
               "output_bias", "output_recurrent_bias")


class GRUCell(RecurrentCell):
    """A gated recurrent unit with S4TF's per-gate parameters.

    ``GRUCell(input_size, hidden_size, kernel_initializer=glorot_uniform,
    bias_initializer=zeros, seed=None, key=None, dtype=s4.float32)``, or every tensor by
    keyword. Each gate (update ``z``, reset ``r``, output/candidate ``n``) has a kernel
    ``[input_size, hidden_size]``, a recurrent kernel ``[hidden_size, hidden_size]`` and two
    biases ``[hidden_size]``. With ``W_g = g_kernel``, ``b_g = g_bias``, ``U_g =
    g_recurrent_kernel`` and ``c_g = g_recurrent_bias`` for ``g`` in update, reset, output,
    S4TF's formula (which is also PyTorch's ``nn.GRU``) is::

        z  = sigmoid(x @ W_update + b_update + h @ U_update + c_update)
        r  = sigmoid(x @ W_reset + b_reset + h @ U_reset + c_reset)
        n  = tanh(x @ W_output + b_output + r * (h @ U_output + c_output))
        h' = z * h + (1 - z) * n

    (PyTorch stacks its rows in the order ``r, z, n``.) Output and new state are ``h'``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import GRUCell
    >>> cell = GRUCell(2, 3, seed=0)
    >>> [n for n, _ in cell.named_parameters()][:3]
    ['update_kernel', 'update_recurrent_kernel', 'reset_kernel']
    >>> out, state = cell(s4.ones((4, 2)), cell.zero_state(s4.ones((4, 2))))
    >>> out.shape
    (4, 3)
    """

    update_kernel: Tensor
    update_recurrent_kernel: Tensor
    reset_kernel: Tensor
    reset_recurrent_kernel: Tensor
    output_kernel: Tensor
    output_recurrent_kernel: Tensor
    update_bias: Tensor
    update_recurrent_bias: Tensor
    reset_bias: Tensor
    reset_recurrent_bias: Tensor
    output_bias: Tensor
    output_recurrent_bias: Tensor

    def __init__(self, input_size: int | None = None, hidden_size: int | None = None, *,
                 kernel_initializer: Callable = init.glorot_uniform,
                 bias_initializer: Callable = init.zeros, seed=None, key=None,
                 dtype=dt.float32, **tensors: Tensor):
        unknown = set(tensors) - set(_GRU_KERNELS + _GRU_BIASES)
        if unknown:
            raise TypeError(f"GRUCell: unexpected keyword arguments {sorted(unknown)}")
        missing = [n for n in _GRU_KERNELS + _GRU_BIASES if n not in tensors]
        if missing:
            if input_size is None and "update_kernel" in tensors:
                input_size, hidden_size = tensors["update_kernel"].shape
            _check_sizes("GRUCell", input_size, hidden_size)
            keys = _keys(len(_GRU_KERNELS) + len(_GRU_BIASES), seed, key)
            for k, name in zip(keys, _GRU_KERNELS + _GRU_BIASES):
                if name in tensors:
                    continue
                if name in _GRU_KERNELS:
                    rows = hidden_size if "recurrent" in name else input_size
                    tensors[name] = kernel_initializer((rows, hidden_size), dtype, key=k)
                else:
                    tensors[name] = bias_initializer((hidden_size,), dtype, key=k)
        for name in _GRU_KERNELS + _GRU_BIASES:
            setattr(self, name, tensors[name])

    @property
    def hidden_size(self) -> int:
        return self.update_kernel.shape[1]

    @property
    def input_size(self) -> int:
        return self.update_kernel.shape[0]

    def zero_state(self, for_: Tensor) -> Tensor:
        """Zeros ``[batch, hidden_size]``, the batch taken from ``for_.shape[0]``."""
        return _s4().zeros((for_.shape[0], self.hidden_size),
                           dtype=_state_dtype(self.update_kernel, for_), device=for_.device)

    def project_input(self, inputs: Tensor) -> Tensor:
        s4 = _s4()
        # the three gates' input terms as one [.., 3 * hidden] product
        w = s4.concatenate([self.update_kernel, self.reset_kernel, self.output_kernel], axis=1)
        b = s4.concatenate([self.update_bias, self.reset_bias, self.output_bias])
        return inputs @ w + b

    def step(self, projected: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        s4 = _s4()
        u = s4.concatenate([self.update_recurrent_kernel, self.reset_recurrent_kernel,
                            self.output_recurrent_kernel], axis=1)
        ub = s4.concatenate([self.update_recurrent_bias, self.reset_recurrent_bias,
                             self.output_recurrent_bias])
        xz, xr, xn = s4.split(projected, 3, axis=-1)
        hz, hr, hn = s4.split(state @ u + ub, 3, axis=-1)
        z = s4.sigmoid(xz + hz)
        r = s4.sigmoid(xr + hr)
        n = s4.tanh(xn + r * hn)
        h = z * state + (1.0 - z) * n
        return h, h

    def __call__(self, input: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        self._check_input(input, self.input_size)
        self._check_state(state, input)
        return self.step(self.project_input(input), state)


# ---- layers -----------------------------------------------------------------------------------

def _is_t(v) -> bool:
    return isinstance(v, Tensor)


def _time_major(t: Tensor) -> Tensor:
    return _s4().swapaxes(t, 0, 1)


class RNN(Layer):
    """A recurrent layer (S4TF's ``RecurrentLayer``): runs ``cell`` over ``[batch, time,
    features]`` with one ``s4.scan``.

    ``layer(x, initial_state=None, *, lengths=None, return_state=False, reverse=False)``:

    * ``initial_state``: the cell's state structure (default ``cell.zero_state(x)``);
      differentiable like any input.
    * ``lengths``: ints ``[batch]`` (a list, array or integer Tensor); steps ``t >= lengths[b]``
      leave sequence ``b``'s state unchanged and output zeros.
    * ``return_state``: also return the final state: ``(outputs, state)``.
    * ``reverse``: run from the last time step to the first (outputs stay aligned with the
      inputs: ``outputs[:, t]`` has seen ``x[:, t:]``). With ``lengths``, each sequence starts
      at its own last valid step, since the padded steps before it leave the state alone.

    Returns the outputs ``[batch, time, ...]`` (``[batch, time, hidden_size]`` for the cells
    here).

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import RNN, GRUCell
    >>> rnn = RNN(GRUCell(3, 2, seed=0))
    >>> x = s4.ones((4, 6, 3))
    >>> out, h = rnn(x, lengths=[6, 2, 0, 3], return_state=True)
    >>> out.shape, h.shape
    ((4, 6, 2), (4, 2))
    >>> out[1, 2:].tolist() == [[0.0, 0.0]] * 4, bool(s4.all(h[2] == 0.0))
    (True, True)
    """

    cell: Layer

    def __init_subclass__(cls, **kwargs):
        _keep_parent_init(cls)
        super().__init_subclass__(**kwargs)

    def __init__(self, cell: Layer):
        if not callable(cell) or not hasattr(cell, "zero_state"):
            raise TypeError(f"{type(self).__name__} needs a recurrent cell (with zero_state and "
                            f"__call__(input, state)), got {type(cell).__name__}")
        self.cell = cell

    def _check_x(self, x) -> None:
        if not isinstance(x, Tensor) or x.ndim != 3:
            shape = x.shape if isinstance(x, Tensor) else type(x).__name__
            raise op_error(ShapeError, type(self).__name__,
                           f"expects inputs of shape [batch, time, features], got shape {shape}",
                           [x] if isinstance(x, Tensor) else [])
        size = getattr(self.cell, "input_size", None)
        if size is not None and x.shape[2] != size:
            raise op_error(ShapeError, type(self).__name__,
                           f"expects inputs of shape [batch, time, {size}], got shape {x.shape}",
                           [x])

    def _mask(self, lengths, x: Tensor):
        """A bool mask ``[time, batch]`` (time-major, for the scan), or None."""
        if lengths is None:
            return None
        s4 = _s4()
        if not isinstance(lengths, Tensor):
            arr = np.asarray(lengths)
            # ints stay ints (a float length is refused below, not truncated)
            lengths = Tensor(arr.astype(np.int64) if arr.dtype.kind in "iu" else arr,
                             device=x.device)
        if lengths.ndim != 1 or lengths.shape[0] != x.shape[0]:
            raise op_error(ShapeError, type(self).__name__,
                           f"expects lengths of shape [{x.shape[0]}] (one int per sequence), got "
                           f"shape {lengths.shape}", [lengths])
        if not dt.is_integer(lengths.dtype):
            raise op_error(DTypeError, type(self).__name__,
                           f"expects integer lengths, got {lengths.dtype}", [lengths])
        t = s4.arange(x.shape[1], dtype=lengths.dtype, device=x.device)
        return t[:, None] < lengths[None, :]

    def _initial(self, initial_state, x: Tensor):
        zero = self.cell.zero_state(x)
        if initial_state is None:
            return zero
        want = tree.flatten(zero, is_leaf=_is_t)
        got = tree.flatten(initial_state, is_leaf=_is_t)
        if want[1] != got[1] or any(not isinstance(g, Tensor) or g.shape != w.shape
                                    for g, w in zip(got[0], want[0])):
            shapes = [getattr(g, "shape", type(g).__name__) for g in got[0]]
            raise op_error(ShapeError, type(self).__name__,
                           f"expects an initial state of {_state_desc(want)}, got shape "
                           f"{shapes[0] if len(shapes) == 1 else shapes}",
                           [g for g in got[0] if isinstance(g, Tensor)])
        # the carry must keep one dtype: the promotion of the state's and the step's
        leaves = [g if g.dtype == w.dtype else g.astype(dt.result_type(g.dtype, w.dtype))
                  for g, w in zip(got[0], want[0])]
        return tree.unflatten(got[1], leaves)

    def __call__(self, x: Tensor, initial_state=None, *, lengths=None,
                 return_state: bool = False, reverse: bool = False):
        self._check_x(x)
        s4 = _s4()
        cell = self.cell
        state0 = self._initial(initial_state, x)
        project = getattr(cell, "project_input", None)
        step = getattr(cell, "step", None) or cell
        # every time step's input term at once (one big matmul), then time-major for the scan
        projected = project(x) if project is not None else x
        xs = _tree_map(_time_major, projected)
        mask = self._mask(lengths, x)

        if mask is None:
            def body(state, p):
                return _swap(step(p, state))
            final, ys = scan(body, state0, xs, reverse=reverse)
        else:
            def body(state, inp):
                p, m = inp                  # m: bool [batch]

                def keep(v):                # m against a [batch, ...] leaf
                    return s4.reshape(m, m.shape + (1,) * (v.ndim - 1))
                out, new = step(p, state)
                # padded steps: keep the state, output zeros (as PyTorch's packed sequences)
                new = _tree_map2(lambda a, b: s4.where(keep(a), a, b), new, state)
                out = _tree_map(lambda o: s4.where(keep(o), o, s4.zeros_like(o)), out)
                return new, out
            final, ys = scan(body, state0, (xs, mask), reverse=reverse)
        outputs = _tree_map(_time_major, ys)
        return (outputs, final) if return_state else outputs

    def last_output(self, x: Tensor, initial_state=None, *, lengths=None):
        """The output at each sequence's last (valid) time step, ``[batch, ...]`` (S4TF's
        ``lastOutput(from:)``).

        >>> import s4tf_py as s4
        >>> from s4tf_py.nn.recurrent import BasicRNN
        >>> rnn = BasicRNN(2, 3, seed=0)
        >>> x = s4.ones((2, 4, 2))
        >>> bool(s4.all(rnn.last_output(x, lengths=[4, 2])[1] == rnn(x)[1, 1]))
        True
        """
        s4 = _s4()
        outputs = self(x, initial_state, lengths=lengths)
        if lengths is None:
            return _tree_map(lambda o: o[:, -1], outputs)
        if not isinstance(lengths, Tensor):
            lengths = Tensor(np.asarray(lengths, dtype=np.int64), device=x.device)
        pick = s4.one_hot(lengths - 1, x.shape[1], dtype=x.dtype)      # [batch, time]

        def gather(o):
            w = s4.reshape(pick, pick.shape + (1,) * (o.ndim - 2))
            return (o * w).sum(axis=1)
        return _tree_map(gather, outputs)


def _swap(pair):
    out, new = pair
    return new, out


def _tree_map(fn, t):
    leaves, td = tree.flatten(t, is_leaf=_is_t)
    return tree.unflatten(td, [fn(v) for v in leaves])


def _tree_map2(fn, a, b):
    la, ta = tree.flatten(a, is_leaf=_is_t)
    lb, _ = tree.flatten(b, is_leaf=_is_t)
    return tree.unflatten(ta, [fn(x, y) for x, y in zip(la, lb)])


class _NamedRNN(RNN):
    """``Layer(cell)`` or ``Layer(input_size, hidden_size, **cell_options)``."""

    _cell_type = None      # set by each subclass (a class attribute, not a field)

    def __init__(self, cell_or_input_size: Union[Layer, int, None] = None,
                 hidden_size: int | None = None, *, cell: Layer | None = None, **options: Any):
        if cell is None:
            if isinstance(cell_or_input_size, Layer):
                cell = cell_or_input_size
            else:
                cell = self._cell_type(cell_or_input_size, hidden_size, **options)
        elif cell_or_input_size is not None:
            raise TypeError(f"{type(self).__name__}: pass a cell or sizes, not both")
        if not isinstance(cell, self._cell_type):
            raise TypeError(f"{type(self).__name__} needs a {self._cell_type.__name__}, got "
                            f"{type(cell).__name__}; use RNN(cell) for other cells")
        super().__init__(cell)


class BasicRNN(_NamedRNN):
    """``RNN`` over a :class:`BasicRNNCell`: ``BasicRNN(cell)`` or ``BasicRNN(input_size,
    hidden_size, seed=..)`` (S4TF's ``BasicRNN`` typealias)."""

    _cell_type = BasicRNNCell


class LSTM(_NamedRNN):
    """``RNN`` over an :class:`LSTMCell`: ``LSTM(cell)`` or ``LSTM(input_size, hidden_size,
    forget_bias=0.0, seed=..)``. The final state (``return_state=True``) is an
    :class:`LSTMState`.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import LSTM, LSTMCell
    >>> lstm = LSTM(LSTMCell(2, 3, seed=1))
    >>> h0 = lstm.cell.zero_state(s4.ones((5, 2)))
    >>> out, state = lstm(s4.ones((5, 7, 2)), h0, return_state=True)
    >>> bool(s4.all(out[:, -1] == state.hidden))
    True
    """

    _cell_type = LSTMCell


class GRU(_NamedRNN):
    """``RNN`` over a :class:`GRUCell`: ``GRU(cell)`` or ``GRU(input_size, hidden_size,
    seed=..)``."""

    _cell_type = GRUCell


def _stack(a: Tensor, b: Tensor) -> Tensor:
    return _s4().stack([a, b], axis=-2)


#: Bidirectional's merge functions by name (S4TF's ``Mergeable``): ``"concatenate"`` (along
#: the features, the default), ``"sum"``, ``"average"``, ``"multiply"``, ``"stack"`` (a new
#: axis before the features: ``[batch, time, 2, hidden]``, forward first).
MERGE_FUNCTIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "concatenate": lambda a, b: _s4().concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "average": lambda a, b: (a + b) / 2.0,
    "multiply": lambda a, b: a * b,
    "stack": _stack,
}


class Bidirectional(Layer):
    """Two recurrent layers over the same sequence, one forwards and one backwards, their
    outputs merged per time step (S4TF's ``BidirectionalRecurrentLayer``).

    ``Bidirectional(forward, backward, merge="concatenate")``: ``forward`` and ``backward``
    are recurrent layers (or cells, wrapped in :class:`RNN`) with independent weights;
    ``merge`` is a name from :data:`MERGE_FUNCTIONS` or a differentiable function of the two
    ``[batch, time, hidden]`` outputs. The backward layer runs with ``reverse=True``: its
    output at ``t`` has seen ``x[:, t:]`` (``x[:, t:length]`` with ``lengths``).

    ``layer(x, initial_state=None, *, lengths=None, return_state=False)``: ``initial_state``
    is ``(forward_state, backward_state)``; ``return_state=True`` returns ``(outputs,
    (forward_final, backward_final))``.

    >>> import s4tf_py as s4
    >>> from s4tf_py.nn.recurrent import Bidirectional, LSTM
    >>> bi = Bidirectional(LSTM(3, 4, seed=0), LSTM(3, 4, seed=1))
    >>> bi(s4.ones((2, 5, 3))).shape
    (2, 5, 8)
    >>> Bidirectional(LSTM(3, 4, seed=0), LSTM(3, 4, seed=1), merge="sum")(s4.ones((2, 5, 3))).shape
    (2, 5, 4)
    """

    forward: Layer
    backward: Layer
    merge: Union[str, Callable] = no_derivative(default="concatenate")

    def __init__(self, forward: Layer, backward: Layer,
                 merge: Union[str, Callable[[Tensor, Tensor], Tensor]] = "concatenate"):
        if isinstance(merge, str) and merge not in MERGE_FUNCTIONS:
            raise ValueError(f"Bidirectional: merge must be one of {sorted(MERGE_FUNCTIONS)} or a "
                             f"function, got {merge!r}")
        if not isinstance(merge, str) and not callable(merge):
            raise TypeError(f"Bidirectional: merge must be a name or a function, got {merge!r}")
        self.forward = forward if isinstance(forward, RNN) else RNN(forward)
        self.backward = backward if isinstance(backward, RNN) else RNN(backward)
        self.merge = merge

    def __call__(self, x: Tensor, initial_state: Sequence | None = None, *, lengths=None,
                 return_state: bool = False):
        if not isinstance(x, Tensor) or x.ndim != 3:
            shape = x.shape if isinstance(x, Tensor) else type(x).__name__
            raise op_error(ShapeError, "Bidirectional",
                           f"expects inputs of shape [batch, time, features], got shape {shape}",
                           [x] if isinstance(x, Tensor) else [])
        if initial_state is None:
            s_f = s_b = None
        else:
            if not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
                raise TypeError("Bidirectional: initial_state must be (forward_state, "
                                f"backward_state), got {type(initial_state).__name__}")
            s_f, s_b = initial_state
        out_f, fin_f = self.forward(x, s_f, lengths=lengths, return_state=True)
        out_b, fin_b = self.backward(x, s_b, lengths=lengths, return_state=True, reverse=True)
        merge = MERGE_FUNCTIONS[self.merge] if isinstance(self.merge, str) else self.merge
        outputs = merge(out_f, out_b)
        return (outputs, (fin_f, fin_b)) if return_state else outputs
