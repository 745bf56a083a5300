"""s4.linalg against numpy/scipy: decompositions, solves, determinants, norms."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg as sla

import s4tf_py as s4

L = s4.linalg
T = s4.Tensor


def _rng(seed=0):
    return np.random.default_rng(seed)


def _spd(rng, batch, n):
    a = rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def test_cholesky_batched_and_upper():
    a = _spd(_rng(), (3,), 4)
    np.testing.assert_allclose(L.cholesky(T(a)).numpy(), np.linalg.cholesky(a), rtol=1e-12)
    u = L.cholesky(T(a), upper=True).numpy()
    np.testing.assert_allclose(np.swapaxes(u, -1, -2) @ u, a, rtol=1e-12)


def test_cholesky_reads_the_lower_triangle_and_gives_nan_when_not_positive_definite():
    a = _spd(_rng(1), (), 3)
    junk = a + np.triu(np.ones((3, 3)), 1) * 100           # the upper triangle is ignored
    np.testing.assert_allclose(L.cholesky(T(junk)).numpy(), np.linalg.cholesky(a), rtol=1e-12)
    batch = np.stack([a, -np.eye(3)])
    r = L.cholesky(T(batch)).numpy()
    np.testing.assert_allclose(r[0], np.linalg.cholesky(a), rtol=1e-12)
    assert np.all(np.isnan(r[1]))


@pytest.mark.parametrize("left_side", [True, False])
@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("unit_diagonal", [False, True])
def test_triangular_solve(left_side, lower, transpose_a, unit_diagonal):
    rng = _rng(2)
    a = rng.normal(size=(2, 4, 4)) + 5 * np.eye(4)         # both triangles well conditioned
    b = rng.normal(size=(2, 4, 3) if left_side else (2, 3, 4))
    x = L.triangular_solve(T(a), T(b), left_side=left_side, lower=lower,
                           transpose_a=transpose_a, unit_diagonal=unit_diagonal).numpy()
    t = np.tril(a) if lower else np.triu(a)
    if unit_diagonal:
        t[..., range(4), range(4)] = 1.0
    if transpose_a:
        t = np.swapaxes(t, -1, -2)
    np.testing.assert_allclose(t @ x if left_side else x @ t, b, rtol=1e-10, atol=1e-12)


def test_triangular_solve_vector_and_broadcast_batch_vs_scipy():
    rng = _rng(3)
    a = rng.normal(size=(4, 4)) + 4 * np.eye(4)
    b = rng.normal(size=(2, 4, 2))
    x = L.triangular_solve(T(a), T(b), lower=False).numpy()
    for i in range(2):
        np.testing.assert_allclose(x[i], sla.solve_triangular(a, b[i], lower=False), rtol=1e-10)
    v = rng.normal(size=4)
    np.testing.assert_allclose(L.triangular_solve(T(a), T(v)).numpy(),
                               sla.solve_triangular(a, v, lower=True), rtol=1e-10)


@pytest.mark.parametrize("shape", [(4, 4), (2, 5, 5), (5, 3), (3, 5)])
def test_lu(shape):
    m = _rng(4).normal(size=shape)
    p, lo, up = L.lu(T(m))
    s4.barrier()
    np.testing.assert_allclose(p.numpy() @ lo.numpy() @ up.numpy(), m, rtol=1e-10, atol=1e-12)
    if shape[-1] == shape[-2]:
        lu_, piv = L.lu_factor(T(m))
        s4.barrier()
        flat = m.reshape((-1,) + shape[-2:])
        want = [sla.lu_factor(x) for x in flat]
        np.testing.assert_allclose(lu_.numpy().reshape(flat.shape), np.stack([w[0] for w in want]),
                                   rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(piv.numpy().reshape(len(flat), -1),
                                      np.stack([w[1] for w in want]))
        assert piv.dtype == s4.int32


@pytest.mark.parametrize("mode", ["reduced", "complete"])
def test_qr(mode):
    m = _rng(5).normal(size=(2, 5, 3))
    q, r = L.qr(T(m), mode=mode)
    s4.barrier()
    k = 3 if mode == "reduced" else 5
    assert q.shape == (2, 5, k) and r.shape == (2, k, 3)
    np.testing.assert_allclose(q.numpy() @ r.numpy(), m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.swapaxes(q.numpy(), -1, -2) @ q.numpy(), np.broadcast_to(
        np.eye(k), (2, k, k)), atol=1e-12)
    np.testing.assert_allclose(np.tril(r.numpy(), -1), 0, atol=1e-12)


@pytest.mark.parametrize("full_matrices", [True, False])
def test_svd(full_matrices):
    m = _rng(6).normal(size=(2, 4, 3))
    u, s, vh = L.svd(T(m), full_matrices=full_matrices)
    s4.barrier()
    assert u.shape == ((2, 4, 4) if full_matrices else (2, 4, 3)) and vh.shape == (2, 3, 3)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(m, compute_uv=False), rtol=1e-10)
    rec = (u.numpy()[..., :3] * s.numpy()[..., None, :]) @ vh.numpy()
    np.testing.assert_allclose(rec, m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(L.svdvals(T(m)).numpy(), s.numpy(), rtol=1e-12)


def test_eigh():
    a = _spd(_rng(7), (2,), 4)
    w, v = L.eigh(T(a))
    s4.barrier()
    np.testing.assert_allclose(w.numpy(), np.linalg.eigvalsh(a), rtol=1e-10)
    np.testing.assert_allclose(a @ v.numpy(), v.numpy() * w.numpy()[..., None, :], atol=1e-10)
    np.testing.assert_allclose(L.eigvalsh(T(a)).numpy(), w.numpy(), rtol=1e-12)


def test_solve_inv_det_slogdet():
    rng = _rng(8)
    a = rng.normal(size=(3, 4, 4))
    b = rng.normal(size=(3, 4, 2))
    np.testing.assert_allclose(L.solve(T(a), T(b)).numpy(), np.linalg.solve(a, b), rtol=1e-9)
    v = rng.normal(size=4)                                   # one vector, broadcast over batch
    np.testing.assert_allclose(L.solve(T(a), T(v)).numpy(),
                               np.linalg.solve(a, v[None, :, None])[..., 0], rtol=1e-9)
    b1 = rng.normal(size=(4, 2))                             # batch broadcasting of x2
    np.testing.assert_allclose(L.solve(T(a), T(b1)).numpy(), np.linalg.solve(a, b1), rtol=1e-9)
    np.testing.assert_allclose(L.inv(T(a)).numpy(), np.linalg.inv(a), rtol=1e-9)
    np.testing.assert_allclose(L.det(T(a)).numpy(), np.linalg.det(a), rtol=1e-10)
    sign, logdet = L.slogdet(T(a))
    s4.barrier()
    ws, wl = np.linalg.slogdet(a)
    np.testing.assert_array_equal(sign.numpy(), ws)
    np.testing.assert_allclose(logdet.numpy(), wl, rtol=1e-10)


def test_singular_matrices():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert L.det(T(np.ones((3, 3)))).item() == 0.0
        sign, logdet = L.slogdet(T(np.zeros((2, 2))))
        s4.barrier()
        assert sign.item() == 0.0 and logdet.item() == -np.inf
        assert not np.all(np.isfinite(L.inv(T(np.ones((2, 2)))).numpy()))


def test_float32_and_int_inputs():
    a = _spd(_rng(9), (), 3)
    r = L.cholesky(T(a.astype(np.float32)))
    assert r.dtype == s4.float32
    np.testing.assert_allclose(r.numpy(), np.linalg.cholesky(a), rtol=1e-5)
    d = L.det(T([[2, 1], [1, 3]]))
    assert d.dtype == s4.float32 and abs(d.item() - 5.0) < 1e-5
    h = L.inv(T(a).astype(s4.float16))
    assert h.dtype == s4.float16


@pytest.mark.parametrize("ord", ["fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf])
def test_matrix_norm(ord):
    m = _rng(10).normal(size=(2, 4, 3))
    np.testing.assert_allclose(L.matrix_norm(T(m), ord=ord).numpy(),
                               np.linalg.norm(m, ord=ord, axis=(-2, -1)), rtol=1e-10)
    assert L.matrix_norm(T(m), ord=ord, keepdims=True).shape == (2, 1, 1)


@pytest.mark.parametrize("ord", [1, 2, 3, 0.5, 0, np.inf, -np.inf])
def test_vector_norm(ord):
    m = _rng(11).normal(size=(2, 4, 3))
    np.testing.assert_allclose(L.vector_norm(T(m), axis=-1, ord=ord).numpy(),
                               np.linalg.norm(m, ord=ord, axis=-1), rtol=1e-10)
    if ord == 2:
        np.testing.assert_allclose(L.vector_norm(T(m)).item(), np.linalg.norm(m.ravel()))
        np.testing.assert_allclose(L.norm(T(m[0])).item(), np.linalg.norm(m[0]))
        np.testing.assert_allclose(L.norm(T(m[0]), ord=1).item(), np.linalg.norm(m[0], ord=1))
        np.testing.assert_allclose(L.norm(T(m), axis=(0, 2)).numpy(),
                                   np.linalg.norm(m, axis=(0, 2)))


def test_rank_pinv_trace_diagonal_cross_power():
    rng = _rng(12)
    r2 = rng.normal(size=(5, 2)) @ rng.normal(size=(2, 4))
    assert L.matrix_rank(T(r2)).item() == 2
    assert L.matrix_rank(T(np.eye(3))).item() == 3
    np.testing.assert_allclose(L.pinv(T(r2)).numpy(), np.linalg.pinv(r2), rtol=1e-8, atol=1e-12)
    m = rng.normal(size=(2, 3, 4))
    for off in (-2, -1, 0, 1, 3, 5):
        np.testing.assert_array_equal(L.diagonal(T(m), offset=off).numpy(),
                                      np.diagonal(m, offset=off, axis1=-2, axis2=-1))
    np.testing.assert_allclose(L.trace(T(m), offset=1).numpy(),
                               np.trace(m, offset=1, axis1=-2, axis2=-1))
    a, b = rng.normal(size=(4, 3)), rng.normal(size=(3,))
    np.testing.assert_allclose(L.cross(T(a), T(b)).numpy(), np.cross(a, b))
    g = rng.normal(size=(2, 3, 3)) + 3 * np.eye(3)
    for n in (0, 1, 2, 5, -3):
        np.testing.assert_allclose(L.matrix_power(T(g), n).numpy(),
                                   np.linalg.matrix_power(g, n), rtol=1e-9)


def test_array_api_reexports():
    a, b = _rng(13).normal(size=(3, 4)), _rng(14).normal(size=(4, 2))
    np.testing.assert_allclose(L.matmul(T(a), T(b)).numpy(), a @ b)
    np.testing.assert_allclose(L.outer(T(a[0]), T(b[:, 0])).numpy(), np.outer(a[0], b[:, 0]))
    np.testing.assert_allclose(L.vecdot(T(a), T(a)).numpy(), (a * a).sum(-1))
    np.testing.assert_allclose(L.tensordot(T(a), T(b), axes=1).numpy(), a @ b)
    np.testing.assert_allclose(L.matrix_transpose(T(a)).numpy(), a.T)
    for name in L.__all__:
        assert hasattr(L, name), name


def test_errors_name_the_op_and_line():
    with pytest.raises(s4.ShapeError) as e:
        L.cholesky(s4.ones((2, 3)))
    assert "cholesky" in str(e.value) and "test_linalg.py" in str(e.value)
    with pytest.raises(s4.ShapeError) as e:
        L.triangular_solve(s4.ones((3, 3)), s4.ones((4, 2)))
    assert "triangular_solve" in str(e.value) and "test_linalg.py" in str(e.value)
    with pytest.raises(s4.ShapeError, match="solve"):
        L.solve(s4.ones((3, 3)), s4.ones((2,)))
    with pytest.raises(ValueError, match="mode"):
        L.qr(s4.ones((3, 3)), mode="r")
    with pytest.raises(ValueError, match="ord"):
        L.matrix_norm(s4.ones((3, 3)), ord=3)
