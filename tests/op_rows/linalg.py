"""Op-table rows for ops/linalg.py: cholesky, triangular_solve, lu, qr, svd, eigh and the
compositions on them (solve, inv, det). Decompositions whose factors are unique only up to
signs (qr, svd, eigh) are compared through sign-free quantities (reconstructions, |factors|),
so any correct backend passes.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

import s4tf_py as s4
from optable import FLOATS, row

L = s4.linalg
_LA = dict(dtypes=FLOATS, rtol=2e-4, atol=2e-5)


def _dt(name):
    return np.dtype(getattr(s4, name) if name == "bfloat16" else name)


def _general(rng, shape, dtype, i):
    return rng.normal(size=shape).astype(_dt(dtype))


def _spd(rng, shape, dtype, i):
    a = rng.normal(size=shape)
    n = shape[-1]
    return (a @ np.swapaxes(a, -1, -2) + n * np.eye(n)).astype(_dt(dtype))


def _well_conditioned(rng, shape, dtype, i):
    """Operand 0: a random matrix with a dominant diagonal (every triangle is well
    conditioned); other operands: plain normals."""
    a = rng.normal(size=shape)
    if i == 0:
        n = shape[-1]
        a = a + np.eye(n) * (n + 2) * np.sign(rng.normal(size=shape[:-1] + (1,)))
    return a.astype(_dt(dtype))


def _tri(a, lower, unit):
    t = np.tril(a) if lower else np.triu(a)
    if unit:
        i = np.arange(a.shape[-1])
        t[..., i, i] = 1.0
    return t


def _ref_trsolve(left_side, lower, transpose_a, unit):
    def ref(a, b):
        t = _tri(a, lower, unit)
        if transpose_a:
            t = np.swapaxes(t, -1, -2)
        if left_side:
            return np.linalg.solve(t, b)
        return np.swapaxes(np.linalg.solve(np.swapaxes(t, -1, -2), np.swapaxes(b, -1, -2)), -1, -2)
    return ref


def _batched(f):
    """Apply a 2-D numpy/scipy function over leading batch dims (tuple results stacked)."""
    def g(a):
        flat = a.reshape((-1,) + a.shape[-2:])
        outs = [f(m) for m in flat]
        if isinstance(outs[0], tuple):
            return tuple(np.stack([o[k] for o in outs]).reshape(a.shape[:-2] + outs[0][k].shape)
                         for k in range(len(outs[0])))
        return np.stack(outs).reshape(a.shape[:-2] + outs[0].shape)
    return g


# ---- primitives ---------------------------------------------------------------------------------

row("cholesky", "cholesky", lambda a: L.cholesky(a), np.linalg.cholesky,
    [((4, 4),), ((2, 3, 3),), ((1, 1),)], make=_spd, **_LA)
row("cholesky_upper", ("cholesky", "transpose"), lambda a: L.cholesky(a, upper=True),
    lambda a: np.swapaxes(np.linalg.cholesky(a), -1, -2), [((3, 3),)], make=_spd, **_LA)

for ls, lo, tr, unit in [(True, True, False, False), (True, False, True, False),
                         (False, True, True, True), (False, False, False, False),
                         (True, True, True, True)]:
    name = (f"triangular_solve_{'left' if ls else 'right'}_{'lower' if lo else 'upper'}"
            f"{'_transpose' if tr else ''}{'_unit' if unit else ''}")
    bshape = (lambda n, k, ls=ls: (n, k) if ls else (k, n))
    row(name, "triangular_solve",
        (lambda ls, lo, tr, unit: lambda a, b: L.triangular_solve(
            a, b, left_side=ls, lower=lo, transpose_a=tr, unit_diagonal=unit))(ls, lo, tr, unit),
        _ref_trsolve(ls, lo, tr, unit),
        [((4, 4), bshape(4, 2)), ((2, 3, 3), (2,) + bshape(3, 3)), ((1, 1), bshape(1, 1))],
        make=_well_conditioned, **_LA)
row("triangular_solve_vector_broadcast_batch", "triangular_solve",
    lambda a, b: L.triangular_solve(a, b), lambda a, b: np.linalg.solve(np.tril(a), b[..., None])[..., 0],
    [((2, 3, 3), (3,))], make=_well_conditioned, **_LA)

row("lu_factor", "lu", lambda a: L.lu_factor(a),
    _batched(lambda m: tuple(np.asarray(v) for v in sla.lu_factor(m))),
    [((4, 4),), ((2, 3, 3),)], make=_general, **_LA)
row("lu_plu", "lu", lambda a: L.lu(a), _batched(lambda m: sla.lu(m)),
    [((4, 4),), ((5, 3),), ((3, 5),), ((2, 3, 3),)], make=_general, **_LA)

row("qr_reduced", "qr", lambda a: (lambda q, r: (q @ r, q.mT @ q, s4.abs(r)))(*L.qr(a)),
    lambda a: (lambda q, r: (a, np.swapaxes(q, -1, -2) @ q, np.abs(r)))(*np.linalg.qr(a)),
    [((4, 3),), ((3, 4),), ((2, 3, 3),)], make=_general, **_LA)
row("qr_complete", "qr",
    lambda a: (lambda q, r: (q @ r, q.mT @ q, s4.abs(r)))(*L.qr(a, mode="complete")),
    lambda a: (lambda q, r: (a, np.swapaxes(q, -1, -2) @ q, np.abs(r)))(
        *np.linalg.qr(a, mode="complete")),
    [((5, 3),), ((2, 3, 4),)], make=_general, **_LA)


def _svd_parts(u, s, vh, k):
    return s, (u[..., :k] * s[..., None, :]) @ vh[..., :k, :], abs(u[..., :k]), abs(vh[..., :k, :])


row("svd_reduced", "svd",
    lambda a: _svd_parts(*L.svd(a, full_matrices=False), min(a.shape[-2:])),
    lambda a: _svd_parts(*np.linalg.svd(a, full_matrices=False), min(a.shape[-2:])),
    [((4, 3),), ((3, 5),), ((2, 3, 3),)], make=_general, dtypes=FLOATS, rtol=1e-3, atol=1e-4)
row("svd_full", "svd",
    lambda a: (lambda u, s, vh: (s, u.mT @ u, vh @ vh.mT))(*L.svd(a)),
    lambda a: (lambda u, s, vh: (s, np.swapaxes(u, -1, -2) @ u, vh @ np.swapaxes(vh, -1, -2)))(
        *np.linalg.svd(a)),
    [((4, 2),), ((2, 2, 3),)], make=_general, **_LA)
row("eigh", "eigh", lambda a: (lambda w, v: (w, s4.abs(v)))(*L.eigh(a)),
    lambda a: (lambda w, v: (w, np.abs(v)))(*np.linalg.eigh(a)),
    [((4, 4),), ((2, 3, 3),)], make=_general, dtypes=FLOATS, rtol=1e-3, atol=1e-4)

# ---- compositions -------------------------------------------------------------------------------

row("solve", ("lu", "triangular_solve"), lambda a, b: L.solve(a, b), np.linalg.solve,
    [((4, 4), (4, 2)), ((2, 3, 3), (2, 3, 1))], make=_well_conditioned, **_LA)
row("inv", ("lu", "triangular_solve"), lambda a: L.inv(a), np.linalg.inv,
    [((3, 3),), ((2, 4, 4),)], make=_well_conditioned, **_LA)
row("det", "lu", lambda a: L.det(a), np.linalg.det, [((3, 3),), ((2, 4, 4),), ((1, 1),)],
    make=_general, **_LA)
