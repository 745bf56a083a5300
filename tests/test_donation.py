"""``s4.compile(donate_argnums=...)``: results written into the arguments' buffers."""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4

LLVM, REF = s4.Device("llvm"), s4.Device("reference")


def _adam_like(p, g, m):
    m = 0.9 * m + g
    return p - 0.1 * m, m


def _address(t):
    return t._node.value.__array_interface__["data"][0]


def _arrays(seed=0, shape=(64, 48)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]


def _run(device, donate, steps=4):
    p0, g0, m0 = _arrays()
    with s4.default_device(device):
        f = s4.compile(_adam_like, donate_argnums=donate)
        p, g, m = (s4.Tensor(a) for a in (p0, g0, m0))
        seen = []
        for _ in range(steps):
            p, m = f(p, g, m)
            seen.append(_address(p))
        return p.numpy().copy(), m.numpy().copy(), seen


def test_donated_parameters_and_state_are_updated_in_place_on_llvm():
    p, m, seen = _run(LLVM, (0, 2))
    assert len(set(seen)) == 1, "the parameter's buffer should be reused by every step"
    want_p, want_m, _ = _run(REF, ())
    np.testing.assert_allclose(p, want_p, rtol=1e-6)
    np.testing.assert_allclose(m, want_m, rtol=1e-6)


def test_the_same_function_with_and_without_donation_gives_the_same_values():
    with_d, _, _ = _run(LLVM, (0, 2))
    without, _, seen = _run(LLVM, ())
    np.testing.assert_array_equal(with_d, without)
    assert len(set(seen)) > 1          # without donation, outputs come from fresh buffers


def test_a_donated_tensor_cannot_be_read_and_the_error_names_the_call():
    f = s4.compile(_adam_like, donate_argnums=0)
    p, g, m = (s4.Tensor(a) for a in _arrays())
    p2, _ = f(p, g, m)                 # the call site the error names
    line = f"{__file__}:"
    with pytest.raises(s4.ExecutionError) as ei:
        p.numpy()
    msg = str(ei.value)
    assert "donated to the compiled function _adam_like" in msg and line in msg
    assert "donate_argnums" in msg
    with pytest.raises(s4.ExecutionError, match="donated"):
        f(p, g, m)
    with pytest.raises(s4.ExecutionError, match="donated"):
        (p + 1.0).numpy()
    assert np.isfinite(p2.numpy()).all() and g.numpy().shape == (64, 48)


def test_a_donated_buffer_that_something_else_still_sees_is_copied_first():
    """Value semantics win over donation: a numpy view of the buffer, or the same tensor
    passed twice, must not see the results."""
    with s4.default_device(LLVM):
        f = s4.compile(lambda a, b: a * 2.0 + b, donate_argnums=0)
        x = s4.Tensor(np.ones((8, 8), np.float32))
        view = x.numpy()               # may share x's buffer
        snapshot = view.copy()
        y = f(x, s4.ones((8, 8)))
        np.testing.assert_array_equal(view, snapshot)
        np.testing.assert_array_equal(y.numpy(), np.full((8, 8), 3.0, np.float32))
        z = s4.Tensor(np.full((8, 8), 5.0, np.float32))
        w = f(z, z)                    # the donated buffer is also the other argument
        np.testing.assert_array_equal(w.numpy(), np.full((8, 8), 15.0, np.float32))


def test_donating_a_list_of_parameters_donates_every_leaf():
    def step(params, grads):
        return [p - 0.5 * g for p, g in zip(params, grads)]
    with s4.default_device(LLVM):
        f = s4.compile(step, donate_argnums=(0,))
        params = [s4.Tensor(a) for a in _arrays()]
        grads = [s4.ones(a.shape) for a in _arrays()]
        want = [q.numpy() - 0.5 for q in params]
        params = f(params, grads)
        params = f(params, grads)
        addrs = [_address(q) for q in params]
        params = f(params, grads)
        assert [_address(q) for q in params] == addrs
        for q, w in zip(params, want):
            np.testing.assert_allclose(q.numpy(), w - 1.0, rtol=1e-6)


def test_bad_donate_argnums_are_rejected_when_compiling():
    with pytest.raises(TypeError, match="donate_argnums"):
        s4.compile(lambda a: a, donate_argnums=(-1,))
    with pytest.raises(TypeError, match="donate_argnums"):
        s4.compile(lambda a: a, donate_argnums=("a",))


def test_a_donated_input_read_again_later_is_not_overwritten_early():
    """In place only where the kernel reads the input for the LAST time: here ``p`` is read
    again by a reduction and a product after the elementwise kernel."""
    def f(p):
        return p * 2.0, (p * p).sum(), p @ p
    a = _arrays(shape=(16, 16))[0]
    with s4.default_device(REF):
        want = [r.numpy() for r in f(s4.Tensor(a))]
    with s4.default_device(LLVM):
        got = [r.numpy() for r in s4.compile(f, donate_argnums=0)(s4.Tensor(a))]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_a_barrier_leaves_values_built_on_donated_buffers_pending():
    """A pending value that reads a donated tensor cannot be computed: a barrier skips it
    (other tests' training loops call barriers) and reading it names the donation."""
    f = s4.compile(_adam_like, donate_argnums=0)
    p, g, m = (s4.Tensor(a) for a in _arrays())
    f(p, g, m)
    stale = p + 1.0
    fresh = g * 2.0
    s4.barrier()                                   # no error: `stale` stays pending
    np.testing.assert_allclose(fresh.numpy(), _arrays()[1] * 2.0)
    with pytest.raises(s4.ExecutionError, match="donated"):
        stale.numpy()
