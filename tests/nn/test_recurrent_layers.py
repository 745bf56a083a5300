"""Recurrent cells and layers (``s4tf_py.nn.recurrent``).

PyTorch is the oracle: its ``RNN``/``LSTM``/``GRU`` (and their cells) with the same weights,
converted to S4TF's layouts (concatenated ``[input + hidden, ...]`` weights; LSTM gate blocks
``i, g, f, o`` from PyTorch's ``i, f, g, o``; GRU per-gate kernels from PyTorch's ``r, z, n``
rows). Checked: forward outputs and final states, bidirectional layers, masks against packed
sequences, gradients (backpropagation through time) against ``torch.autograd`` and against
finite differences (``s4.check_grads``), a compiled training step on the LLVM backend against
the reference interpreter, that a sequence is one ``scan`` in the IR whatever its length, and
the shape errors.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import s4tf_py as s4
from s4tf_py.errors import DTypeError, ShapeError
from s4tf_py.nn.recurrent import (GRU, LSTM, MERGE_FUNCTIONS, RNN, BasicRNN, BasicRNNCell,
                                  Bidirectional, GRUCell, LSTMCell, LSTMState, RecurrentCell)

B, T, I, H = 3, 5, 4, 3
KINDS = ("rnn", "lstm", "gru")
TOL = 1e-11


def t64(a) -> s4.Tensor:
    return s4.Tensor(np.asarray(a, dtype=np.float64))


def close(got, want, tol=TOL):
    got = np.asarray(got.numpy() if isinstance(got, s4.Tensor) else got, dtype=np.float64)
    want = np.asarray(want.detach().numpy() if isinstance(want, torch.Tensor) else want,
                      dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- PyTorch's weights in S4TF's layouts --------------------------------------------------------

def _np(t) -> np.ndarray:
    return t.detach().numpy().astype(np.float64)


def _blocks(a, order, h, axis):
    return np.concatenate([np.take(a, range(k * h, (k + 1) * h), axis=axis) for k in order],
                          axis=axis)


# PyTorch's LSTM gate blocks are i, f, g, o; S4TF's fused layout is i, g, f, o
LSTM_FROM_TORCH = (0, 2, 1, 3)


def s4_params(kind: str, w_ih, w_hh, b_ih, b_hh, *, grad: bool = False) -> dict:
    """S4TF's parameters (numpy) from PyTorch's four tensors. With ``grad``, the same map for
    their gradients: a bias S4TF keeps as ``b_ih + b_hh`` then has ``b_ih``'s gradient."""
    w_ih, w_hh, b_ih, b_hh = (_np(v) if isinstance(v, torch.Tensor) else v
                              for v in (w_ih, w_hh, b_ih, b_hh))
    h = w_hh.shape[1]
    bias = b_ih if grad else b_ih + b_hh
    if kind == "rnn":
        return {"weight": np.concatenate([w_ih.T, w_hh.T]), "bias": bias}
    if kind == "lstm":
        w = np.concatenate([w_ih.T, w_hh.T])
        return {"fused_weight": _blocks(w, LSTM_FROM_TORCH, h, 1),
                "fused_bias": _blocks(bias, LSTM_FROM_TORCH, h, 0)}
    gates = {"reset": 0, "update": 1, "output": 2}        # PyTorch's rows: r, z, n
    out = {}
    for g, k in gates.items():
        rows = slice(k * h, (k + 1) * h)
        out[f"{g}_kernel"] = w_ih[rows].T
        out[f"{g}_recurrent_kernel"] = w_hh[rows].T
        out[f"{g}_bias"] = b_ih[rows]
        out[f"{g}_recurrent_bias"] = b_hh[rows]
    return out


CELL_TYPES = {"rnn": BasicRNNCell, "lstm": LSTMCell, "gru": GRUCell}
LAYER_TYPES = {"rnn": BasicRNN, "lstm": LSTM, "gru": GRU}
TORCH_LAYERS = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}
TORCH_CELLS = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}


def make_cell(kind: str, params: dict):
    return CELL_TYPES[kind](**{k: t64(v) for k, v in params.items()})


def torch_layer(kind: str, seed: int, bidirectional: bool = False):
    torch.manual_seed(seed)
    m = TORCH_LAYERS[kind](I, H, batch_first=True, bidirectional=bidirectional).double()
    with torch.no_grad():               # biases away from 0, so a misplaced bias shows
        for name, p in m.named_parameters():
            if "bias" in name:
                p.uniform_(-0.5, 0.5)
    return m


def cell_from_torch(kind: str, m, suffix: str = "_l0"):
    return make_cell(kind, s4_params(kind, *(getattr(m, f"{n}{suffix}")
                                             for n in ("weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh"))))


def torch_grads_as_s4(kind: str, m, suffix: str = "_l0") -> dict:
    return s4_params(kind, *(getattr(m, f"{n}{suffix}").grad
                             for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")),
                     grad=True)


def s4_state(kind: str, h, c=None):
    """The S4TF state from PyTorch's ``[batch, hidden]`` h (and c)."""
    if kind == "lstm":
        return LSTMState(cell=t64(_np(c)), hidden=t64(_np(h)))
    return t64(_np(h))


def hidden_of(state):
    """The hidden part of a state or of its tangent (an LSTMState has two parts)."""
    return getattr(state, "hidden", state)


RNG = np.random.default_rng(2024)
X = RNG.standard_normal((B, T, I))
H0 = RNG.standard_normal((B, H)) * 0.5
C0 = RNG.standard_normal((B, H)) * 0.5


# ---- cells --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_cell_step_matches_torch(kind):
    torch.manual_seed(1)
    tc = TORCH_CELLS[kind](I, H).double()
    cell = make_cell(kind, s4_params(kind, tc.weight_ih, tc.weight_hh, tc.bias_ih, tc.bias_hh))
    x, h, c = (torch.tensor(a[:, 0] if a is X else a) for a in (X, H0, C0))
    if kind == "lstm":
        want_h, want_c = tc(x, (h, c))
        out, state = cell(t64(x), LSTMState(cell=t64(c), hidden=t64(h)))
        assert isinstance(state, LSTMState)
        close(state.cell, want_c)
        close(state.hidden, want_h)
    else:
        want_h = tc(x, h)
        out, state = cell(t64(x), t64(h))
        close(state, want_h)
    close(out, want_h)        # the per-step output is the new hidden state


def test_lstm_gate_order_is_s4tfs_input_update_forget_output():
    """S4TF's formula with its named slices of the fused weight (numpy, no PyTorch)."""
    cell = LSTMCell(I, H, seed=3, dtype=s4.float64)
    w, b = cell.fused_weight.numpy(), RNG.standard_normal(4 * H)
    cell = LSTMCell(fused_weight=t64(w), fused_bias=t64(b))
    x, h, c = X[:, 0], H0, C0
    z = np.concatenate([x, h], axis=1) @ w + b
    sig = lambda v: 1 / (1 + np.exp(-v))          # noqa: E731
    i, g, f, o = sig(z[:, :H]), np.tanh(z[:, H:2 * H]), sig(z[:, 2 * H:3 * H]), sig(z[:, 3 * H:])
    c2 = c * f + i * g
    h2 = np.tanh(c2) * o
    _, state = cell(t64(x), LSTMState(cell=t64(c), hidden=t64(h)))
    close(state.cell, c2, 1e-12)
    close(state.hidden, h2, 1e-12)
    # S4TF's named slices
    close(cell.forget_weight, w[:, 2 * H:3 * H], 0)
    close(cell.update_bias, b[H:2 * H], 0)
    close(cell.output_weight, w[:, 3 * H:], 0)


def test_cell_initialization_follows_s4tf():
    rnn = BasicRNNCell(I, H, seed=0)
    assert rnn.weight.shape == (I + H, H) and rnn.bias.shape == (H,)
    assert float(s4.abs(rnn.weight).max()) <= np.sqrt(6 / (I + 2 * H))   # Glorot uniform
    assert float(s4.abs(rnn.bias).max()) == 0.0
    lstm = LSTMCell(I, H, seed=0)
    assert lstm.fused_weight.shape == (I + H, 4 * H) and lstm.fused_bias.shape == (4 * H,)
    assert np.all(lstm.fused_bias.numpy() == 0.0)      # S4TF's fused LSTMCell: zeros
    ones = LSTMCell(I, H, seed=0, forget_bias=1.0)     # S4TF's earlier per-gate LSTMCell
    close(ones.fused_bias, np.r_[np.zeros(2 * H), np.ones(H), np.zeros(H)], 0)
    assert ones.input_size == I and ones.hidden_size == H
    gru = GRUCell(I, H, seed=0)
    shapes = {n: p.shape for n, p in gru.named_parameters()}
    assert shapes["update_kernel"] == (I, H) and shapes["output_recurrent_kernel"] == (H, H)
    assert shapes["reset_recurrent_bias"] == (H,) and len(shapes) == 12
    # seeds are reproducible, and the gates of one cell draw independently
    close(GRUCell(I, H, seed=0).reset_kernel, gru.reset_kernel, 0)
    assert not np.allclose(gru.reset_kernel.numpy(), gru.update_kernel.numpy())
    assert not np.allclose(LSTMCell(I, H, seed=1).fused_weight.numpy(),
                           lstm.fused_weight.numpy())
    assert LSTMCell(I, H, dtype=s4.float64).fused_weight.dtype == s4.float64


# ---- layers: forward ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_initial_state", [False, True])
def test_layer_outputs_and_final_state_match_torch(kind, with_initial_state):
    m = torch_layer(kind, seed=5)
    layer = LAYER_TYPES[kind](cell_from_torch(kind, m))
    x = torch.tensor(X)
    h0, c0 = torch.tensor(H0)[None], torch.tensor(C0)[None]
    if kind == "lstm":
        args = ((h0, c0),) if with_initial_state else ()
        want, (h_n, c_n) = m(x, *args)
    else:
        args = (h0,) if with_initial_state else ()
        want, h_n = m(x, *args)
    init = s4_state(kind, h0[0], c0[0]) if with_initial_state else None
    out, state = layer(t64(X), init, return_state=True)
    close(out, want)
    close(hidden_of(state), h_n[0])
    if kind == "lstm":
        close(state.cell, c_n[0])
    close(layer(t64(X), init), want)          # without return_state: the outputs alone
    close(layer.last_output(t64(X), init), want[:, -1])


@pytest.mark.parametrize("kind", KINDS)
def test_bidirectional_matches_torch(kind):
    m = torch_layer(kind, seed=6, bidirectional=True)
    bi = Bidirectional(cell_from_torch(kind, m), cell_from_torch(kind, m, "_l0_reverse"))
    want, h_n = m(torch.tensor(X))
    out, (fin_f, fin_b) = bi(t64(X), return_state=True)
    close(out, want)
    h_n, c_n = h_n if kind == "lstm" else (h_n, None)
    close(hidden_of(fin_f), h_n[0])
    close(hidden_of(fin_b), h_n[1])
    if kind == "lstm":
        close(fin_b.cell, c_n[1])
    # the backward direction's final state has seen the whole sequence, from the end
    close(out[:, 0, H:], h_n[1])


def test_bidirectional_merge_functions():
    f, b = BasicRNN(I, H, seed=1, dtype=s4.float64), BasicRNN(I, H, seed=2, dtype=s4.float64)
    x = t64(X)
    of, ob = f(x).numpy(), b(x, reverse=True).numpy()
    want = {"concatenate": np.concatenate([of, ob], -1), "sum": of + ob,
            "average": (of + ob) / 2, "multiply": of * ob, "stack": np.stack([of, ob], -2)}
    assert sorted(want) == sorted(MERGE_FUNCTIONS)
    for name, w in want.items():
        close(Bidirectional(f, b, merge=name)(x), w, 1e-12)
    close(Bidirectional(f, b, merge=lambda u, v: u - v)(x), of - ob, 1e-12)
    with pytest.raises(ValueError, match="concatenate"):
        Bidirectional(f, b, merge="concat")


def test_reverse_runs_from_the_last_step_with_outputs_aligned():
    layer = GRU(I, H, seed=4, dtype=s4.float64)
    x = t64(X)
    out, state = layer(x, return_state=True, reverse=True)
    out_flipped, state_flipped = layer(s4.flip(x, axis=1), return_state=True)
    close(out, np.flip(out_flipped.numpy(), axis=1), 1e-12)
    close(state, state_flipped, 1e-12)


# ---- masks / lengths ----------------------------------------------------------------------------

LENGTHS = [5, 2, 4]


@pytest.mark.parametrize("kind", KINDS)
def test_lengths_match_torch_packed_sequences(kind):
    m = torch_layer(kind, seed=7, bidirectional=True)
    bi = Bidirectional(cell_from_torch(kind, m), cell_from_torch(kind, m, "_l0_reverse"))
    pack = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(X), torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    packed_out, h_n = m(pack)
    want, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True,
                                                     total_length=T)
    h_n, c_n = h_n if kind == "lstm" else (h_n, None)
    out, (fin_f, fin_b) = bi(t64(X), lengths=LENGTHS, return_state=True)
    close(out, want)                    # zeros past each sequence's end, as PyTorch pads
    close(hidden_of(fin_f), h_n[0])     # the state after each sequence's last valid step
    close(hidden_of(fin_b), h_n[1])     # the backward pass starts at each one's own end
    if kind == "lstm":
        close(fin_f.cell, c_n[0])
    # lengths as an integer Tensor, and last_output picks each sequence's last valid output
    fwd = bi.forward
    close(fwd(t64(X), lengths=s4.Tensor(np.array(LENGTHS, np.int32))), out[:, :, :H])
    last = fwd.last_output(t64(X), lengths=LENGTHS).numpy()
    close(last, [out.numpy()[b, n - 1, :H] for b, n in enumerate(LENGTHS)], 0)


def test_zero_length_sequence_keeps_the_initial_state():
    layer = LSTM(I, H, seed=0, dtype=s4.float64)
    init = LSTMState(cell=t64(C0), hidden=t64(H0))
    out, state = layer(t64(X), init, lengths=[0, T, 1], return_state=True)
    close(out[0], np.zeros((T, H)), 0)
    close(state.cell[0], C0[0], 0)
    close(state.hidden[0], H0[0], 0)


# ---- gradients ----------------------------------------------------------------------------------

R_OUT = RNG.standard_normal((B, T, 2 * H))
R_H = RNG.standard_normal((B, H))
R_C = RNG.standard_normal((B, H))


def _torch_loss(kind, out, h_n, c_n, width):
    loss = (out * torch.tensor(R_OUT[..., :width])).sum()
    loss = loss + (h_n[-1] * torch.tensor(R_H)).sum()
    if c_n is not None:
        loss = loss + (c_n[-1] * torch.tensor(R_C)).sum()
    return loss


def _s4_loss(out, state, width):
    loss = (out * t64(R_OUT[..., :width])).sum() + (hidden_of(state) * t64(R_H)).sum()
    if hasattr(state, "cell"):
        loss = loss + (state.cell * t64(R_C)).sum()
    return loss


@pytest.mark.parametrize("kind", KINDS)
def test_backpropagation_through_time_matches_torch(kind):
    m = torch_layer(kind, seed=8)
    layer = LAYER_TYPES[kind](cell_from_torch(kind, m))
    x = torch.tensor(X, requires_grad=True)
    h0 = torch.tensor(H0[None], requires_grad=True)
    c0 = torch.tensor(C0[None], requires_grad=True)
    out, hc = m(x, (h0, c0) if kind == "lstm" else h0)
    h_n, c_n = hc if kind == "lstm" else (hc, None)
    _torch_loss(kind, out, h_n, c_n, H).backward()

    def f(layer, x, state):
        out, final = layer(x, state, return_state=True)
        return _s4_loss(out, final, H)
    g_layer, g_x, g_state = s4.gradient(at=(layer, t64(X), s4_state(kind, h0[0], c0[0])), of=f)
    assert type(g_layer).__qualname__ == f"{type(layer).__name__}.TangentVector"
    for name, want in torch_grads_as_s4(kind, m).items():
        close(getattr(g_layer.cell, name), want, 1e-10)
    close(g_x, x.grad, 1e-10)
    close(hidden_of(g_state), h0.grad[0], 1e-10)
    if kind == "lstm":
        close(g_state.cell, c0.grad[0], 1e-10)


def test_bidirectional_lstm_gradients_with_lengths_match_torch():
    m = torch_layer("lstm", seed=9, bidirectional=True)
    bi = Bidirectional(cell_from_torch("lstm", m), cell_from_torch("lstm", m, "_l0_reverse"))
    x = torch.tensor(X, requires_grad=True)
    pack = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=True,
                                                   enforce_sorted=False)
    packed_out, (h_n, c_n) = m(pack)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True, total_length=T)
    _torch_loss("lstm", out, h_n, c_n, 2 * H).backward()   # h_n[-1], c_n[-1]: backward's

    def f(bi, x):
        out, (_, fin_b) = bi(x, lengths=LENGTHS, return_state=True)
        return _s4_loss(out, fin_b, 2 * H)
    g_bi, g_x = s4.gradient(at=(bi, t64(X)), of=f)
    for name, want in torch_grads_as_s4("lstm", m).items():
        close(getattr(g_bi.forward.cell, name), want, 1e-10)
    for name, want in torch_grads_as_s4("lstm", m, "_l0_reverse").items():
        close(getattr(g_bi.backward.cell, name), want, 1e-10)
    close(g_x, x.grad, 1e-10)


# finite differences, on tiny shapes: (batch 2, time 3, input 2, hidden 2)
TINY = np.random.default_rng(11)
TX = TINY.standard_normal((2, 3, 2))
TH = TINY.standard_normal((2, 2)) * 0.5


def _tiny_params(kind):
    cell = CELL_TYPES[kind](2, 2, seed=12, dtype=s4.float64)
    names = [n for n, _ in cell.named_parameters()]
    values = [t64(p.numpy() + TINY.standard_normal(p.shape) * 0.2) for p in cell.parameters()]
    return names, values


@pytest.mark.parametrize("kind", KINDS)
def test_layer_check_grads(kind, on_the_reference_backend):
    names, values = _tiny_params(kind)

    def f(x, h0, *params):
        layer = LAYER_TYPES[kind](CELL_TYPES[kind](**dict(zip(names, params))))
        state = LSTMState(cell=h0 * 0.5, hidden=h0) if kind == "lstm" else h0
        out, final = layer(x, state, lengths=[3, 2], return_state=True)
        return (out * out).sum() + hidden_of(final).sum()
    s4.check_grads(f, (t64(TX), t64(TH), *values), order=1)


def test_bidirectional_gru_check_grads_order2(on_the_reference_backend):
    names, values = _tiny_params("gru")

    def f(x, *params):
        cell = GRUCell(**dict(zip(names, params)))
        bi = Bidirectional(cell, cell, merge="multiply")     # shared weights: both paths add up
        return bi(x).sum()
    s4.check_grads(f, (t64(TX), *values), order=2)


# ---- the sequence is one scan -------------------------------------------------------------------

def _names(fn):
    return [e.prim.name for e in fn.eqns]


@pytest.mark.parametrize("kind", KINDS)
def test_a_sequence_is_one_scan_whatever_its_length(kind):
    layer = LAYER_TYPES[kind](I, H, seed=0)

    def f(layer, x):
        return layer(x).sum()
    traces = {t: s4.trace(f, layer, s4.ones((B, t, I))) for t in (2, 16)}
    for fn in traces.values():
        names = _names(fn)
        assert names.count("scan") == 1, names
        assert names.count("dot_general") == 1, names   # the input projection, for all steps
        (scan_eqn,) = [e for e in fn.eqns if e.prim.name == "scan"]
        body = scan_eqn.params_dict()["body"].fn
        assert _names(body).count("dot_general") == 1    # the recurrent product, once
    assert _names(traces[2]) == _names(traces[16])       # the length does not grow the graph
    # backpropagation through time is a few scans too, not an unrolled loop
    grads = {t: s4.trace(s4.gradient(of=f), layer, s4.ones((B, t, I))) for t in (2, 16)}
    assert _names(grads[2]) == _names(grads[16])
    assert 1 <= _names(grads[16]).count("scan") <= 3
    assert len(grads[16].eqns) < 60


def test_bidirectional_is_two_scans():
    bi = Bidirectional(LSTM(I, H, seed=0), LSTM(I, H, seed=1))
    names = _names(s4.trace(lambda m, x: m(x, lengths=[3, 1, 2]).sum(), bi, s4.ones((B, 3, I))))
    assert names.count("scan") == 2, names
    reverse = [e.params_dict()["reverse"] for e in
               s4.trace(lambda m, x: m(x), bi, s4.ones((B, 3, I))).eqns if e.prim.name == "scan"]
    assert sorted(reverse) == [False, True]


# ---- a compiled training step -------------------------------------------------------------------

class Tagger(s4.nn.Layer):
    """A bidirectional LSTM with a dense head per time step."""

    rnn: Bidirectional
    head: s4.nn.Dense

    def __call__(self, x):
        return self.head(self.rnn(x, lengths=[T, 3, 4]))


def _tagger_arrays():
    rng = np.random.default_rng(21)
    lstm = {"fused_weight": rng.uniform(-0.4, 0.4, (I + H, 4 * H)),
            "fused_bias": rng.uniform(-0.2, 0.2, 4 * H)}
    lstm_b = {k: v[::-1].copy() for k, v in lstm.items()}
    head = {"weight": rng.uniform(-0.4, 0.4, (2 * H, 2)), "bias": rng.uniform(-0.1, 0.1, 2)}
    return [{k: v.astype(np.float32) for k, v in d.items()} for d in (lstm, lstm_b, head)]


def _tagger(arrays):
    f, b, head = ({k: s4.Tensor(v) for k, v in d.items()} for d in arrays)
    return Tagger(rnn=Bidirectional(LSTM(LSTMCell(**f)), LSTM(LSTMCell(**b))),
                  head=s4.nn.Dense(**head))


def train_step(model, x, y, lr):
    def loss_fn(m):
        d = m(x) - y
        return (d * d).mean()
    loss, grad = s4.value_with_gradient(at=model, of=loss_fn)
    model.move(along=grad * -lr)
    return model, loss


def _run_two_steps(device):
    rng = np.random.default_rng(22)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    y = rng.standard_normal((B, T, 2)).astype(np.float32)
    with s4.default_device(device):
        model = _tagger(_tagger_arrays())
        step = s4.compile(train_step)
        losses = []
        for _ in range(2):
            model, loss = step(model, s4.Tensor(x), s4.Tensor(y), 0.5)
            losses.append(loss.item())
        assert step.traces == 1
        assert model.rnn.forward.cell.fused_weight.device == device
        return losses, [p.numpy() for p in model.parameters()]


def test_compiled_training_step_on_llvm_matches_the_reference_backend():
    llvm_losses, llvm_params = _run_two_steps(s4.Device("llvm"))
    ref_losses, ref_params = _run_two_steps(s4.Device("reference"))
    np.testing.assert_allclose(llvm_losses, ref_losses, rtol=1e-5)
    assert llvm_losses[1] < llvm_losses[0]           # it learns
    initial = [a for d in _tagger_arrays() for a in d.values()]
    for got, want, before in zip(llvm_params, ref_params, initial):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
        assert not np.array_equal(got, before)      # every parameter was updated


# ---- errors and construction --------------------------------------------------------------------

def test_wrong_shapes_raise_shape_errors_naming_the_layer():
    cell = LSTMCell(I, H, seed=0)
    x = s4.ones((B, I))
    with pytest.raises(ShapeError, match=r"LSTMCell: expects an input of shape \[batch, 4\], "
                                         r"got shape \(3, 5\)"):
        cell(s4.ones((B, I + 1)), cell.zero_state(x))
    with pytest.raises(ShapeError, match=r"GRUCell: expects an input of shape \[batch, 4\], "
                                         r"got shape \(3, 2, 4\)"):
        GRUCell(I, H, seed=0)(s4.ones((B, 2, I)), s4.zeros((B, H)))
    with pytest.raises(ShapeError, match=r"BasicRNNCell: expects a state of shape \[3, 3\], "
                                         r"got shape \(3, 4\)"):
        BasicRNNCell(I, H, seed=0)(x, s4.zeros((B, H + 1)))
    with pytest.raises(ShapeError, match=r"LSTMCell: expects a state of structure"):
        cell(x, s4.zeros((B, H)))
    with pytest.raises(ShapeError, match=r"LSTM: expects inputs of shape \[batch, time, "
                                         r"features\], got shape \(3, 4\)") as e:
        LSTM(cell)(x)
    assert "test_recurrent_layers.py" in str(e.value)      # the user's line
    with pytest.raises(ShapeError, match=r"GRU: expects inputs of shape \[batch, time, 4\], "
                                         r"got shape \(3, 5, 2\)"):
        GRU(I, H, seed=0)(s4.ones((B, T, 2)))
    with pytest.raises(ShapeError, match=r"RNN: expects an initial state of shape \[3, 3\], "
                                         r"got shape \(1, 3\)"):
        RNN(BasicRNNCell(I, H, seed=0))(s4.ones((B, T, I)), s4.zeros((1, H)))
    with pytest.raises(ShapeError, match=r"LSTM: expects lengths of shape \[3\]"):
        LSTM(cell)(s4.ones((B, T, I)), lengths=[1, 2])
    with pytest.raises(DTypeError, match=r"LSTM: expects integer lengths, got float"):
        LSTM(cell)(s4.ones((B, T, I)), lengths=[1.0, 2.0, 3.0])
    with pytest.raises(ShapeError, match=r"Bidirectional: expects inputs of shape"):
        Bidirectional(cell, LSTMCell(I, H, seed=1))(s4.ones((T, I)))


def test_layer_constructors():
    cell = LSTMCell(I, H, seed=0)
    assert LSTM(cell).cell is cell and LSTM(cell=cell).cell is cell
    built = LSTM(I, H, seed=0, forget_bias=1.0)
    assert isinstance(built.cell, LSTMCell) and built.cell.forget_bias.tolist() == [1.0] * H
    assert [n for n, _ in built.named_parameters()] == ["cell.fused_weight", "cell.fused_bias"]
    assert isinstance(GRU(I, H, seed=0).cell, GRUCell)
    assert isinstance(BasicRNN(I, H).cell, BasicRNNCell)
    with pytest.raises(TypeError, match="LSTM needs a LSTMCell"):
        LSTM(GRUCell(I, H, seed=0))
    with pytest.raises(TypeError, match="recurrent cell"):
        RNN(s4.nn.Dense(I, H))
    with pytest.raises(TypeError, match="positive int"):
        LSTMCell(I, 0)
    bi = Bidirectional(GRUCell(I, H, seed=0), GRU(I, H, seed=1))
    assert isinstance(bi.forward, RNN) and isinstance(bi.backward, GRU)
    assert [n for n, _ in bi.named_parameters()][:2] == ["forward.cell.update_kernel",
                                                          "forward.cell.update_recurrent_kernel"]


def test_a_user_cell_with_a_struct_state_runs_through_rnn():
    class Counter(RecurrentCell):
        scale: s4.Tensor

        def zero_state(self, for_):
            return {"sum": s4.zeros((for_.shape[0], 2), dtype=s4.float64),
                    "steps": s4.zeros((for_.shape[0], 1), dtype=s4.float64)}

        def __call__(self, input, state):
            new = {"sum": state["sum"] + input * self.scale, "steps": state["steps"] + 1.0}
            return new["sum"] / new["steps"], new            # the running mean
    x = RNG.standard_normal((2, 4, 2))
    layer = RNN(Counter(scale=t64(2.0)))
    out, state = layer(t64(x), return_state=True)
    close(out, 2 * np.cumsum(x, axis=1) / np.arange(1, 5)[None, :, None], 1e-12)
    close(state["steps"], np.full((2, 1), 4.0), 0)
    g = s4.gradient(at=layer, of=lambda m: m(t64(x)).sum())
    close(g.cell.scale, (np.cumsum(x, axis=1) / np.arange(1, 5)[None, :, None]).sum(), 1e-12)
    # lengths mask every leaf of the state, whatever its shape
    out, state = layer(t64(x), lengths=[4, 2], return_state=True)
    close(out[1, 2:], np.zeros((2, 2)), 0)
    close(state["steps"], [[4.0], [2.0]], 0)
    close(state["sum"][1], 2 * x[1, :2].sum(axis=0), 1e-12)
