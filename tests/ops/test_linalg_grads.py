"""Gradients of s4.linalg against torch autograd (float64), and ``s4.check_grads`` of the
decompositions' factors where they are well defined.

cholesky and eigh read one triangle of their input while torch's backward returns a symmetric
gradient, so those comparisons symmetrize the input first ((a + a^T) / 2 on both sides): the
gradients then agree exactly. Singular/eigen vectors are compared through sign-invariant
functions (squares of their entries).
"""
from __future__ import annotations

import numpy as np
import pytest

import s4tf_py as s4

L = s4.linalg
T = s4.Tensor
import torch  # noqa: E402 - a test extra (setup.py), never skipped

TOL = dict(rtol=1e-8, atol=1e-10)


# derivative rules against finite differences, on the interpreter (see conftest.py)
pytestmark = pytest.mark.usefixtures("on_the_reference_backend")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _spd(rng, shape):
    a = rng.normal(size=shape)
    n = shape[-1]
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


def _well_conditioned(rng, shape):
    n = shape[-1]
    return rng.normal(size=shape) + (n + 2) * np.eye(n)


def _compare(s4_fn, torch_fn, args, seed=0):
    """Values and gradients of ``sum(f(*args) * u)`` for every output of ``f``."""
    rng = _rng(seed + 100)
    outs = s4_fn(*[T(a) for a in args])
    outs = outs if isinstance(outs, tuple) else (outs,)
    us = [rng.normal(size=o.shape) for o in outs]

    def loss(*xs):
        res = s4_fn(*xs)
        res = res if isinstance(res, tuple) else (res,)
        total = None
        for r, u in zip(res, us):
            t = s4.sum(r * T(u))
            total = t if total is None else total + t
        return total

    grads = s4.gradient(at=tuple(T(a) for a in args), of=loss)
    tin = [torch.tensor(a, requires_grad=True) for a in args]
    touts = torch_fn(*tin)
    touts = touts if isinstance(touts, tuple) else (touts,)
    for o, t in zip(outs, touts):
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), **TOL)
    sum((t * torch.tensor(u)).sum() for t, u in zip(touts, us)).backward()
    for g, t in zip(grads, tin):
        np.testing.assert_allclose(g.numpy(), t.grad.numpy(), **TOL)


def _sym(x):
    return (x + x.mT) / 2


def test_cholesky_gradient_matches_torch():
    a = _spd(_rng(1), (2, 4, 4))
    _compare(lambda x: L.cholesky(_sym(x)), lambda x: torch.linalg.cholesky(_sym(x)), [a])


def test_cholesky_gradient_lands_on_the_lower_triangle():
    a = T(_spd(_rng(2), (3, 3)))
    g = s4.gradient(at=a, of=lambda x: s4.sum(L.cholesky(x) ** 2)).numpy()
    assert np.all(np.triu(g, 1) == 0)
    s4.check_grads(L.cholesky, (a,), order=2)
    s4.check_grads(lambda x: L.cholesky(x, upper=True), (a,), order=2)


@pytest.mark.parametrize("left,lower,trans,unit", [
    (True, True, False, False), (True, False, True, False), (False, True, True, True),
    (False, False, False, False), (True, True, True, True)])
def test_triangular_solve_gradients_match_torch(left, lower, trans, unit):
    rng = _rng(3)
    a = _well_conditioned(rng, (2, 4, 4))
    b = rng.normal(size=(2, 4, 3) if left else (2, 3, 4))

    def tri(x):
        t = torch.tril(x) if lower else torch.triu(x)
        return t.mT if trans else t

    def torch_fn(x, y):
        t = tri(x)
        # torch's solve_triangular has no transpose flag: transposing flips upper/lower
        return torch.linalg.solve_triangular(t, y, upper=(not lower) != trans, left=left,
                                             unitriangular=unit)

    _compare(lambda x, y: L.triangular_solve(x, y, left_side=left, lower=lower,
                                             transpose_a=trans, unit_diagonal=unit),
             torch_fn, [a, b])


@pytest.mark.parametrize("shape", [(4, 3), (3, 3), (2, 3, 5)])
def test_qr_gradients_match_torch(shape):
    """numpy and torch both use LAPACK's Householder QR: the same signs, so Q and R compare
    directly (reduced mode; torch differentiates wide matrices too)."""
    a = _rng(4).normal(size=shape)
    _compare(lambda x: tuple(L.qr(x)), lambda x: tuple(torch.linalg.qr(x)), [a])


@pytest.mark.parametrize("shape,mode", [((4, 3), "reduced"), ((3, 5), "reduced"),
                                        ((3, 3), "complete"), ((3, 5), "complete")])
def test_qr_factors_check_grads(shape, mode):
    a = T(_rng(5).normal(size=shape))
    s4.check_grads(lambda x: L.qr(x, mode=mode).Q, (a,), order=2)
    s4.check_grads(lambda x: L.qr(x, mode=mode).R, (a,), order=2)


def test_qr_complete_tall_invariants_check_grads():
    """The trailing columns of a complete Q are gauge (any orthonormal basis of the
    complement): Q1, R, Q R, Q Q^T and Q^T Q differentiate exactly."""
    a = T(_rng(6).normal(size=(5, 3)))

    def complete(x):
        return L.qr(x, mode="complete")

    for f in (lambda x: complete(x).Q[:, :3], lambda x: complete(x).R,
              lambda x: complete(x).Q @ complete(x).R, lambda x: complete(x).Q @ complete(x).Q.mT,
              lambda x: complete(x).Q.mT @ complete(x).Q):
        s4.check_grads(f, (a,), order=2)


@pytest.mark.parametrize("shape", [(4, 3), (3, 5), (2, 3, 3)])
def test_svd_singular_values_gradient_matches_torch(shape):
    a = _rng(7).normal(size=shape)
    _compare(lambda x: L.svdvals(x), lambda x: torch.linalg.svdvals(x), [a])


@pytest.mark.parametrize("shape,full", [((4, 3), False), ((3, 5), False), ((3, 3), True),
                                        ((4, 2), True), ((2, 4), True)])
def test_svd_sign_invariant_functions_match_torch(shape, full):
    """Singular values, squared entries of U and Vh (their signs are gauge) and the
    reconstruction U diag(S) Vh (distinct singular values)."""
    a = _rng(8).normal(size=shape)
    k = min(shape)

    def parts(u, s, vh):
        rec = (u[..., :k] * s[..., None, :]) @ vh[..., :k, :]
        return s, u[..., :k] ** 2, vh[..., :k, :] ** 2, rec

    _compare(lambda x: parts(*L.svd(x, full_matrices=full)),
             lambda x: parts(*torch.linalg.svd(x, full_matrices=False)), [a])


@pytest.mark.parametrize("shape", [(4, 2), (2, 3)])
def test_svd_full_matrices_invariants_check_grads(shape):
    """The trailing columns of U (rows of Vh) are gauge: orthogonality and the leading
    (sign-invariant) parts differentiate exactly."""
    a = T(_rng(9).normal(size=shape))
    k = min(shape)
    for f in (lambda x: L.svd(x).U.mT @ L.svd(x).U, lambda x: L.svd(x).U @ L.svd(x).U.mT,
              lambda x: L.svd(x).Vh @ L.svd(x).Vh.mT, lambda x: L.svd(x).U[:, :k] ** 2,
              lambda x: L.svd(x).Vh[:k] ** 2, lambda x: L.svd(x).S):
        s4.check_grads(f, (a,), order=2)


def test_eigh_gradients_match_torch():
    a = _rng(10).normal(size=(2, 4, 4))
    _compare(lambda x: L.eigvalsh(_sym(x)), lambda x: torch.linalg.eigvalsh(_sym(x)), [a])
    _compare(lambda x: (lambda w, v: (w, v ** 2))(*L.eigh(_sym(x))),
             lambda x: (lambda w, v: (w, v ** 2))(*torch.linalg.eigh(_sym(x))), [a], seed=1)


def test_eigh_reads_one_triangle_check_grads():
    a = T(_rng(11).normal(size=(3, 3)))
    for lower in (True, False):
        s4.check_grads(lambda x: L.eigh(x, lower=lower).eigenvalues, (a,), order=2)
        s4.check_grads(lambda x: L.eigh(x, lower=lower).eigenvectors ** 2, (a,), order=2)


def test_det_inv_solve_gradients_match_torch():
    rng = _rng(12)
    a = rng.normal(size=(2, 4, 4))
    _compare(L.det, torch.linalg.det, [a])
    w = _well_conditioned(rng, (2, 3, 3))
    _compare(L.inv, torch.linalg.inv, [w], seed=1)
    b = rng.normal(size=(2, 3, 2))
    _compare(L.solve, torch.linalg.solve, [w, b], seed=2)


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5)])
def test_lu_factor_gradient_matches_torch(shape):
    a = _rng(13).normal(size=shape)
    _compare(lambda x: L.lu_factor(x)[0], lambda x: torch.linalg.lu_factor(x)[0], [a])
    s4.check_grads(lambda x: L.lu(x)[1] @ L.lu(x)[2], (T(a),), order=2)


def test_slogdet_and_pinv_check_grads():
    a = T(_rng(14).normal(size=(3, 3)))
    s4.check_grads(lambda x: L.slogdet(x).logabsdet, (a,), order=2)
    s4.check_grads(L.pinv, (T(_rng(15).normal(size=(4, 3))),), order=2)
