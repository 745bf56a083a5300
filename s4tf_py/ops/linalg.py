"""Linear algebra (``s4.linalg``): the array API linalg extension plus S4TF's decompositions.

Primitives (each batched over leading dimensions): ``cholesky``, ``triangular_solve``, ``lu``
(partial pivoting), ``qr``, ``svd`` and ``eigh``. Everything else (solve, inv, det, slogdet,
pinv, norms, rank...) is composed from them and the ordinary ops, so it differentiates and
compiles like any other program.

Numerics follow the compiling backends rather than raising: a matrix that is not positive
definite gives a NaN Cholesky factor, a singular one gives infinite or NaN solves, as with
XLA and JAX. Integer inputs are computed in the default float; float16/bfloat16 in float32.

>>> import s4tf_py as s4
>>> a = s4.Tensor([[4.0, 2.0], [2.0, 3.0]])
>>> s4.linalg.cholesky(a).tolist()
[[2.0, 0.0], [1.0, 1.4142135381698608]]
>>> round(s4.linalg.det(a).item(), 4)
8.0
"""
from __future__ import annotations

import builtins
from typing import NamedTuple

import numpy as np

from .. import dtypes as dt
from ..errors import DTypeError, ShapeError, op_error
from ..ir.registry import AVal, define
from ..tensor import Tensor
from ._core import _broadcast_shapes, bind_op, to_tensor
from .contraction import matmul, outer, tensordot, vecdot
from .shape import matrix_transpose

__all__ = [
    "cholesky", "triangular_solve", "lu", "lu_factor", "qr", "svd", "svdvals", "eigh",
    "eigvalsh", "solve", "inv", "det", "slogdet", "matrix_norm", "vector_norm", "norm",
    "matrix_rank", "pinv", "trace", "diagonal", "cross", "matrix_power", "matmul", "tensordot",
    "vecdot", "outer", "matrix_transpose", "QRResult", "SVDResult", "SlogdetResult",
    "EighResult",
]


class QRResult(NamedTuple):
    Q: Tensor
    R: Tensor


class SVDResult(NamedTuple):
    U: Tensor
    S: Tensor
    Vh: Tensor


class SlogdetResult(NamedTuple):
    sign: Tensor
    logabsdet: Tensor


class EighResult(NamedTuple):
    eigenvalues: Tensor
    eigenvectors: Tensor


# ---- helpers for impls ------------------------------------------------------------------------

def _as_compute(*xs):
    """Arrays in the precision the impl computes in (float32 for float16/bfloat16)."""
    d = xs[0].dtype
    if d in dt.LOW_PRECISION:
        return d, [x.astype(np.float32) for x in xs]
    return d, list(xs)


def _matrix_rule(op, x, square=True):
    if x.ndim < 2:
        raise ShapeError(f"{op} needs a matrix (or a batch of them), got {x}")
    if square and x.shape[-1] != x.shape[-2]:
        raise ShapeError(f"{op} needs square matrices, got {x}")
    if not dt.is_floating(x.dtype):
        raise DTypeError(f"{op} needs floating-point matrices, got {x}")


# ---- cholesky ----------------------------------------------------------------------------------

def _cholesky_rule(x):
    _matrix_rule("cholesky", x)
    return AVal(x.shape, x.dtype, False)


def _cholesky_impl(x):
    d, (a,) = _as_compute(x)
    try:
        r = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:          # some matrix of the batch is not positive definite
        flat = a.reshape((-1,) + a.shape[-2:])
        r = np.empty_like(flat)
        for i, m in enumerate(flat):
            try:
                r[i] = np.linalg.cholesky(m)
            except np.linalg.LinAlgError:
                r[i] = np.nan
        r = r.reshape(a.shape)
    return np.ascontiguousarray(r.astype(d))


CHOLESKY = define("cholesky", _cholesky_rule, _cholesky_impl,
                  doc="Lower Cholesky factor L (x = L L^T) of each matrix, reading its lower "
                      "triangle; NaN where a matrix is not positive definite.")


# ---- triangular_solve -------------------------------------------------------------------------

def _trsolve_rule(a, b, *, left_side, lower, transpose_a, unit_diagonal):
    _matrix_rule("triangular_solve", a)
    if b.ndim < 2 or b.dtype != a.dtype:
        raise ShapeError(f"triangular_solve: the right-hand side must be a {a.dtype} matrix "
                         f"(or batch), got {b}")
    m = a.shape[-1]
    k = b.shape[-2] if left_side else b.shape[-1]
    if k != m or a.shape[:-2] != b.shape[:-2]:
        raise ShapeError(f"triangular_solve: {a} does not fit the right-hand side {b} "
                         f"({'left' if left_side else 'right'} side)")
    return AVal(b.shape, b.dtype, False)


def _substitute(a, b, lower, unit):
    """Solve a x = b for triangular a (batched, b (..., m, n)) by substitution."""
    m = a.shape[-1]
    x = np.zeros(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:], b.dtype)
    order = range(m) if lower else range(m - 1, -1, -1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for i in order:
            done = builtins.slice(0, i) if lower else builtins.slice(i + 1, m)
            s = b[..., i, :] - np.matmul(a[..., i:i + 1, done], x[..., done, :])[..., 0, :]
            x[..., i, :] = s if unit else s / a[..., i, i, None]
    return x


def _trsolve_impl(a, b, *, left_side, lower, transpose_a, unit_diagonal):
    d, (a, b) = _as_compute(a, b)
    if left_side:                       # op(a) x = b
        at = np.swapaxes(a, -1, -2) if transpose_a else a
        x = _substitute(at, b, lower != transpose_a, unit_diagonal)
    else:                               # x op(a) = b  <=>  op(a)^T x^T = b^T
        at = a if transpose_a else np.swapaxes(a, -1, -2)
        x = np.swapaxes(_substitute(at, np.swapaxes(b, -1, -2), lower == transpose_a,
                                    unit_diagonal), -1, -2)
    return np.ascontiguousarray(x.astype(d))


TRIANGULAR_SOLVE = define(
    "triangular_solve", _trsolve_rule, _trsolve_impl,
    doc="Solve op(a) x = b (left_side) or x op(a) = b for triangular a (lower or upper, "
        "op = transpose if transpose_a; unit_diagonal ignores a's diagonal).")


# ---- lu ----------------------------------------------------------------------------------------

def _lu_rule(x):
    _matrix_rule("lu", x, square=False)
    m, n = x.shape[-2:]
    k = builtins.min(m, n)
    batch = x.shape[:-2]
    return (AVal(x.shape, x.dtype, False), AVal(batch + (k,), dt.int32, False),
            AVal(batch + (m,), dt.int32, False))


def _lu_impl(x):
    d, (a,) = _as_compute(x)
    m, n = a.shape[-2:]
    k = builtins.min(m, n)
    batch = a.shape[:-2]
    A = np.array(a.reshape((-1, m, n)), copy=True)
    nb = A.shape[0]
    piv = np.zeros((nb, k), np.int32)
    perm = np.tile(np.arange(m, dtype=np.int32), (nb, 1))
    rows = np.arange(nb)
    for j in range(k):
        p = j + np.argmax(np.abs(A[:, j:, j]), axis=1)
        piv[:, j] = p
        A[rows, j], A[rows, p] = A[rows, p], A[rows, j].copy()
        perm[rows, j], perm[rows, p] = perm[rows, p], perm[rows, j].copy()
        pivot = A[:, j, j]
        nz = pivot != 0                 # as LAPACK getrf: a zero pivot column is left alone
        scale = np.where(nz, pivot, 1)
        A[:, j + 1:, j] = np.where(nz[:, None], A[:, j + 1:, j] / scale[:, None], A[:, j + 1:, j])
        A[:, j + 1:, j + 1:] -= A[:, j + 1:, j:j + 1] * A[:, j:j + 1, j + 1:]
    return (np.ascontiguousarray(A.reshape(a.shape).astype(d)), piv.reshape(batch + (k,)),
            perm.reshape(batch + (m,)))


LU = define("lu", _lu_rule, _lu_impl, multiple_results=True,
            doc="LU decomposition with partial pivoting: (lu, pivots, permutation); "
                "x[..., permutation, :] = L @ U with L unit lower (below lu's diagonal) and U "
                "upper; pivots[i] is the row swapped with row i (0-based, as LAPACK getrf).")


# ---- qr, svd, eigh ---------------------------------------------------------------------------

def _qr_rule(x, *, full_matrices):
    _matrix_rule("qr", x, square=False)
    m, n = x.shape[-2:]
    k = m if full_matrices else builtins.min(m, n)
    b = x.shape[:-2]
    return (AVal(b + (m, k), x.dtype, False), AVal(b + (k, n), x.dtype, False))


def _qr_impl(x, *, full_matrices):
    d, (a,) = _as_compute(x)
    q, r = np.linalg.qr(a, mode="complete" if full_matrices else "reduced")
    return np.ascontiguousarray(q.astype(d)), np.ascontiguousarray(r.astype(d))


QR = define("qr", _qr_rule, _qr_impl, multiple_results=True,
            doc="QR decomposition (Householder): q (m, m or k) orthonormal, r (m or k, n) upper.")


def _svd_rule(x, *, full_matrices):
    _matrix_rule("svd", x, square=False)
    m, n = x.shape[-2:]
    k = builtins.min(m, n)
    b = x.shape[:-2]
    return (AVal(b + ((m, m) if full_matrices else (m, k)), x.dtype, False),
            AVal(b + (k,), x.dtype, False),
            AVal(b + ((n, n) if full_matrices else (k, n)), x.dtype, False))


def _svd_impl(x, *, full_matrices):
    d, (a,) = _as_compute(x)
    u, s, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return tuple(np.ascontiguousarray(v.astype(d)) for v in (u, s, vh))


SVD = define("svd", _svd_rule, _svd_impl, multiple_results=True,
             doc="Singular value decomposition x = u diag(s) vh, s descending.")


def _eigh_rule(x, *, lower):
    _matrix_rule("eigh", x)
    return (AVal(x.shape[:-1], x.dtype, False), AVal(x.shape, x.dtype, False))


def _eigh_impl(x, *, lower):
    d, (a,) = _as_compute(x)
    w, v = np.linalg.eigh(a, UPLO="L" if lower else "U")
    return np.ascontiguousarray(w.astype(d)), np.ascontiguousarray(v.astype(d))


EIGH = define("eigh", _eigh_rule, _eigh_impl, multiple_results=True,
              doc="Eigenvalues (ascending) and eigenvectors of symmetric matrices, reading the "
                  "lower (or upper) triangle.")


# ---- user-facing ------------------------------------------------------------------------------

def _float_matrix(op, x, square=True, min_ndim=2) -> Tensor:
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    if x.ndim < min_ndim:
        raise op_error(ShapeError, op, f"needs at least {min_ndim} dimensions, got shape "
                                       f"{x.shape}", [x])
    if square and x.shape[-1] != x.shape[-2]:
        raise op_error(ShapeError, op, f"needs square matrices, got shape {x.shape}", [x])
    return x


def _broadcast_batch(op, a, b, core_a=2, core_b=2):
    from .shape import broadcast_to
    ba, bb = a.shape[:a.ndim - core_a], b.shape[:b.ndim - core_b]
    if ba == bb:
        return a, b
    batch = _broadcast_shapes(ba, bb)
    if batch is None:
        raise op_error(ShapeError, op, f"batch dimensions {ba} and {bb} cannot be broadcast",
                       [a, b])
    return (broadcast_to(a, batch + a.shape[a.ndim - core_a:]),
            broadcast_to(b, batch + b.shape[b.ndim - core_b:]))


def cholesky(x, /, *, upper=False) -> Tensor:
    """Cholesky factor of symmetric positive-definite matrices: lower ``L`` with ``x = L L^T``
    (``upper=True``: ``U = L^T`` with ``x = U^T U``)."""
    x = _float_matrix("cholesky", x)
    lo = bind_op(CHOLESKY, [x])
    return matrix_transpose(lo) if upper else lo


def triangular_solve(a, b, /, *, left_side=True, lower=True, transpose_a=False,
                     unit_diagonal=False) -> Tensor:
    """Solve ``op(a) @ x = b`` (``left_side``) or ``x @ op(a) = b`` for triangular ``a``.

    ``op(a)`` is ``a.T`` when ``transpose_a``; only the ``lower`` (or upper) triangle of ``a``
    is read. ``b`` may be a vector (for ``left_side``). Batch dimensions broadcast. Defaults
    follow TensorFlow's ``matrix_triangular_solve`` (left side, lower).
    """
    from .shape import expand_dims, squeeze
    op = "triangular_solve"
    a = _float_matrix(op, a)
    b = to_tensor(b)
    if b.dtype != a.dtype:
        d = dt.result_type(a, b) if dt.is_floating(b.dtype) else a.dtype
        a, b = a.astype(d), b.astype(d)
    vector = b.ndim == 1
    if vector:
        b = expand_dims(b, -1 if left_side else 0)
    a, b = _broadcast_batch(op, a, b)
    x = bind_op(TRIANGULAR_SOLVE, [a, b], (("left_side", bool(left_side)), ("lower", bool(lower)),
                                          ("transpose_a", bool(transpose_a)),
                                          ("unit_diagonal", bool(unit_diagonal))))
    return squeeze(x, -1 if left_side else -2) if vector else x


def lu_factor(x, /) -> tuple[Tensor, Tensor]:
    """``(lu, pivots)`` as scipy's ``lu_factor``: ``L`` (unit diagonal) below and ``U`` on and
    above the diagonal of ``lu``; row ``i`` was swapped with row ``pivots[i]``."""
    x = _float_matrix("lu_factor", x, square=False)
    lu_, piv, _ = bind_op(LU, [x])
    return lu_, piv


def lu(x, /) -> tuple[Tensor, Tensor, Tensor]:
    """``(p, l, u)`` with ``x = p @ l @ u`` (scipy's ``lu``): ``p`` a permutation matrix,
    ``l`` unit lower triangular (m, k), ``u`` upper triangular (k, n)."""
    from .creation import eye, tril, triu
    from .indexing import one_hot
    from .shape import slice as _slice
    x = _float_matrix("lu", x, square=False)
    lu_, _, perm = bind_op(LU, [x])
    m, n = x.shape[-2:]
    k = builtins.min(m, n)
    lower = _slice(lu_, (0,) * x.ndim, x.shape[:-1] + (k,))
    upper = _slice(lu_, (0,) * x.ndim, x.shape[:-2] + (k, n))
    l_ = tril(lower, k=-1) + eye(m, k, dtype=x.dtype, device=x.device)
    u_ = triu(upper)
    p = matrix_transpose(one_hot(perm, m, dtype=x.dtype))
    return p, l_, u_


def qr(x, /, *, mode="reduced") -> QRResult:
    """``(Q, R)`` with ``x = Q @ R``; ``mode`` "reduced" (Q is (m, k)) or "complete" (m, m)."""
    if mode not in ("reduced", "complete"):
        raise op_error(ValueError, "qr", f"mode must be 'reduced' or 'complete', got {mode!r}")
    x = _float_matrix("qr", x, square=False)
    q, r = bind_op(QR, [x], (("full_matrices", mode == "complete"),))
    return QRResult(q, r)


def svd(x, /, *, full_matrices=True) -> SVDResult:
    """``(U, S, Vh)`` with ``x = U @ diag(S) @ Vh`` and ``S`` descending."""
    x = _float_matrix("svd", x, square=False)
    u, s, vh = bind_op(SVD, [x], (("full_matrices", bool(full_matrices)),))
    return SVDResult(u, s, vh)


def svdvals(x, /) -> Tensor:
    """The singular values, descending."""
    return svd(x, full_matrices=False).S


def eigh(x, /, *, lower=True) -> EighResult:
    """Eigenvalues (ascending) and eigenvectors (columns) of symmetric matrices."""
    x = _float_matrix("eigh", x)
    w, v = bind_op(EIGH, [x], (("lower", bool(lower)),))
    return EighResult(w, v)


def eigvalsh(x, /, *, lower=True) -> Tensor:
    """The eigenvalues of symmetric matrices, ascending."""
    return eigh(x, lower=lower).eigenvalues


def diagonal(x, /, *, offset=0) -> Tensor:
    """The ``offset``-th diagonal of the last two axes (array API ``linalg.diagonal``)."""
    from .indexing import take
    from .shape import reshape
    x = to_tensor(x)
    if x.ndim < 2:
        raise op_error(ShapeError, "diagonal", f"needs at least 2 dimensions, got {x.shape}", [x])
    n, m = x.shape[-2:]
    offset = int(offset)
    length = builtins.max(0, builtins.min(n, m - offset) if offset >= 0 else
                          builtins.min(n + offset, m))
    start = offset if offset >= 0 else -offset * m
    idx = np.arange(length, dtype=np.int32) * (m + 1) + start
    flat = reshape(x, x.shape[:-2] + (n * m,))
    return take(flat, Tensor(idx, device=x.device), axis=-1)


def trace(x, /, *, offset=0, dtype=None) -> Tensor:
    """Sum of the ``offset``-th diagonal of the last two axes."""
    from .reduction import sum as _sum
    return _sum(diagonal(x, offset=offset), axis=-1, dtype=dtype)


def _lu_solve(lu_, perm, b):
    """Solve with a factorization: rows of b (..., m, k) permuted, then L and U substitutions."""
    from .indexing import take_along_axis
    from .shape import expand_dims
    pb = take_along_axis(b, expand_dims(perm, -1), axis=-2)
    y = triangular_solve(lu_, pb, lower=True, unit_diagonal=True)
    return triangular_solve(lu_, y, lower=False)


def solve(x1, x2, /) -> Tensor:
    """``x`` with ``x1 @ x = x2`` (LU with partial pivoting). ``x2`` is (..., M, K), or (M,) for
    one vector; batch dimensions broadcast."""
    from .shape import expand_dims, squeeze
    op = "solve"
    a = _float_matrix(op, x1)
    b = to_tensor(x2)
    if b.dtype != a.dtype:
        d = dt.result_type(a, b) if dt.is_floating(b.dtype) else a.dtype
        a, b = a.astype(d), b.astype(d)
    vector = b.ndim == 1
    if vector:
        b = expand_dims(b, -1)
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise op_error(ShapeError, op, f"cannot solve {a.shape} systems for right-hand sides of "
                                       f"shape {to_tensor(x2).shape}", [x1, x2])
    a, b = _broadcast_batch(op, a, b)
    lu_, _, perm = bind_op(LU, [a])
    x = _lu_solve(lu_, perm, b)
    return squeeze(x, -1) if vector else x


def inv(x, /) -> Tensor:
    """The inverse of each square matrix (infinite or NaN entries for a singular one)."""
    from .creation import eye
    from .shape import broadcast_to
    x = _float_matrix("inv", x)
    n = x.shape[-1]
    return solve(x, broadcast_to(eye(n, dtype=x.dtype, device=x.device), x.shape))


def _lu_parts(op, x):
    from .creation import arange
    from .math import not_equal, remainder, where
    from .reduction import sum as _sum
    x = _float_matrix(op, x)
    lu_, piv, _ = bind_op(LU, [x])
    d = diagonal(lu_)
    swaps = _sum(not_equal(piv, arange(x.shape[-1], dtype=dt.int32, device=x.device)),
                 axis=-1)
    parity = where(remainder(swaps, 2) == 0, 1.0, -1.0).astype(x.dtype)
    return d, parity


def det(x, /) -> Tensor:
    """The determinant of each square matrix (product of U's diagonal times the swap parity)."""
    from .reduction import prod
    d, parity = _lu_parts("det", x)
    return prod(d, axis=-1) * parity


def slogdet(x, /) -> SlogdetResult:
    """``(sign, log|det|)``; a singular matrix gives sign 0 and -inf."""
    from .math import abs as _abs, log, sign
    from .reduction import prod, sum as _sum
    d, parity = _lu_parts("slogdet", x)
    return SlogdetResult(prod(sign(d), axis=-1) * parity, _sum(log(_abs(d)), axis=-1))


def matrix_power(x, n: int, /) -> Tensor:
    """``x`` multiplied by itself ``n`` times (``n < 0`` inverts first; ``n = 0`` the identity)."""
    from .creation import eye
    from .shape import broadcast_to
    x = _float_matrix("matrix_power", x) if n < 0 else to_tensor(x)
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise op_error(ShapeError, "matrix_power", f"needs square matrices, got {x.shape}", [x])
    n = int(n)
    if n == 0:
        return broadcast_to(eye(x.shape[-1], dtype=x.dtype, device=x.device), x.shape)
    if n < 0:
        x, n = inv(x), -n
    result = None
    while n:
        if n & 1:
            result = x if result is None else matmul(result, x)
        n >>= 1
        if n:
            x = matmul(x, x)
    return result


def vector_norm(x, /, *, axis=None, keepdims=False, ord=2) -> Tensor:  # noqa: A002
    """The ``ord``-norm of vectors along ``axis`` (all axes when None): ``(sum |x|^ord)^(1/ord)``,
    ``inf``/``-inf`` the largest/smallest ``|x|``, 0 the number of non-zeros."""
    from .math import abs as _abs, not_equal, pow as _pow, sqrt
    from .reduction import max as _max, min as _min, sum as _sum
    x = to_tensor(x)
    if not dt.is_floating(x.dtype):
        x = x.astype(dt.default_float)
    a = _abs(x)
    if ord == float("inf"):
        return _max(a, axis=axis, keepdims=keepdims)
    if ord == float("-inf"):
        return _min(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return _sum(not_equal(x, 0.0).astype(x.dtype), axis=axis, keepdims=keepdims)
    if ord == 2:
        return sqrt(_sum(x * x, axis=axis, keepdims=keepdims))
    if ord == 1:
        return _sum(a, axis=axis, keepdims=keepdims)
    p = float(ord)
    return _pow(_sum(_pow(a, p), axis=axis, keepdims=keepdims), 1.0 / p)


def matrix_norm(x, /, *, keepdims=False, ord="fro") -> Tensor:  # noqa: A002
    """Norms of the matrices in the last two axes: "fro", "nuc", 1, -1, 2, -2, inf, -inf."""
    from .math import abs as _abs, sqrt
    from .reduction import max as _max, min as _min, sum as _sum
    from .shape import reshape
    x = _float_matrix("matrix_norm", x, square=False)
    inf = float("inf")
    if ord == "fro":
        r = sqrt(_sum(x * x, axis=(-2, -1)))
    elif ord == "nuc":
        r = _sum(svdvals(x), axis=-1)
    elif ord in (2, -2):
        s = svdvals(x)
        r = _max(s, axis=-1) if ord == 2 else _min(s, axis=-1)
    elif ord in (1, -1):
        c = _sum(_abs(x), axis=-2)
        r = _max(c, axis=-1) if ord == 1 else _min(c, axis=-1)
    elif ord in (inf, -inf):
        c = _sum(_abs(x), axis=-1)
        r = _max(c, axis=-1) if ord == inf else _min(c, axis=-1)
    else:
        raise op_error(ValueError, "matrix_norm", f"unsupported ord {ord!r}", [x])
    return reshape(r, r.shape + (1, 1)) if keepdims else r


def norm(x, /, ord=None, axis=None, keepdims=False) -> Tensor:  # noqa: A002
    """numpy's ``linalg.norm``: a vector norm, or a matrix norm when ``axis`` names two axes
    (or ``x`` is 2-D, ``axis`` is None and ``ord`` is given)."""
    from .shape import moveaxis, normalize_axis, reshape
    x = to_tensor(x)
    if axis is None:
        if ord is None or x.ndim == 1:
            return vector_norm(x, keepdims=keepdims, ord=2 if ord is None else ord)
        if x.ndim != 2:
            raise op_error(ValueError, "norm", f"ord={ord!r} needs a vector, a matrix or axis=",
                           [x])
        axis = (0, 1)
    if isinstance(axis, (int, np.integer)) or len(axis) == 1:
        return vector_norm(x, axis=axis, keepdims=keepdims, ord=2 if ord is None else ord)
    a0, a1 = (normalize_axis("norm", a, x.ndim, x) for a in axis)
    r = matrix_norm(moveaxis(x, (a0, a1), (-2, -1)), ord="fro" if ord is None else ord)
    if keepdims:
        r = reshape(r, tuple(1 if i in (a0, a1) else d for i, d in enumerate(x.shape)))
    return r


def _default_rtol(x):
    return builtins.max(x.shape[-2:]) * dt.finfo(x.dtype).eps


def matrix_rank(x, /, *, rtol=None) -> Tensor:
    """The number of singular values above ``rtol * largest`` (default ``max(m, n) * eps``)."""
    from .math import greater
    from .reduction import max as _max, sum as _sum
    x = _float_matrix("matrix_rank", x, square=False)
    s = svdvals(x)
    tol = (_default_rtol(x) if rtol is None else rtol) * _max(s, axis=-1, keepdims=True)
    return _sum(greater(s, tol).astype(dt.int32), axis=-1)


def pinv(x, /, *, rtol=None) -> Tensor:
    """The Moore-Penrose pseudo-inverse (singular values below ``rtol * largest`` dropped)."""
    from .math import greater, where
    from .reduction import max as _max
    from .shape import expand_dims
    x = _float_matrix("pinv", x, square=False)
    u, s, vh = svd(x, full_matrices=False)
    tol = (_default_rtol(x) if rtol is None else rtol) * _max(s, axis=-1, keepdims=True)
    keep = greater(s, tol)
    s_inv = where(keep, 1.0 / where(keep, s, 1.0), 0.0)
    return matmul(matrix_transpose(vh) * expand_dims(s_inv, -2), matrix_transpose(u))


def cross(x1, x2, /, *, axis=-1) -> Tensor:
    """Cross product of 3-vectors along ``axis`` (broadcasting the other axes)."""
    from .shape import broadcast_arrays, concatenate, normalize_axis, slice_axis
    a, b = broadcast_arrays(to_tensor(x1), to_tensor(x2))
    ax = normalize_axis("cross", axis, a.ndim, a)
    if a.shape[ax] != 3:
        raise op_error(ShapeError, "cross", f"axis {axis} must have size 3, got {a.shape}",
                       [x1, x2])
    a0, a1, a2 = (slice_axis(a, ax, i, i + 1) for i in range(3))
    b0, b1, b2 = (slice_axis(b, ax, i, i + 1) for i in range(3))
    return concatenate([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], axis=ax)
